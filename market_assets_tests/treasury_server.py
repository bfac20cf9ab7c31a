# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A local stand-in for Massive's ``/fed/v1/treasury-yields`` on 127.0.0.1, for tests.

Serves the documented JSON (``status``, ``request_id``, ``count``, ``results`` of ``date`` +
``yield_1_month`` .. ``yield_30_year`` in percent, ``next_url`` while more pages remain),
filtered by ``date.gte`` / ``date.lte`` and sorted by date (``order`` asc or desc), at most
``page_size`` rows per page. Requests are recorded; ``fail_status`` answers every request
with that HTTP status instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from market_assets.core.rates import TENORS

PATH = "/fed/v1/treasury-yields"


def curve_row(date: str, level: float, slope: float = 0.05) -> dict[str, Any]:
    """A published row: ``level`` percent at 1M, rising by ``slope`` per tenor step."""
    return {"date": date} | {k: round(level + i * slope, 4) for i, k in enumerate(TENORS)}


@dataclass
class TreasuryServer:
    rows: list[dict[str, Any]]
    page_size: int = 100
    fail_status: int | None = None
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)
    base_url: str = ""

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        q = {k: v[0] for k, v in query.items()}
        offset = int(q.pop("cursor", "0"))
        rows = sorted(
            (
                r
                for r in self.rows
                if q.get("date.gte", "") <= r["date"] <= q.get("date.lte", "9999-12-31")
            ),
            key=lambda r: r["date"],
            reverse=q.get("order", "desc") == "desc",
        )
        limit = min(int(q.get("limit", "100")), self.page_size)
        out: dict[str, Any] = {
            "status": "OK",
            "request_id": f"req-{len(self.requests)}",
            "count": len(rows[offset : offset + limit]),
            "results": rows[offset : offset + limit],
        }
        if offset + limit < len(rows):
            out["next_url"] = f"{self.base_url}{PATH}?" + urlencode(
                q | {"cursor": str(offset + limit)}
            )
        return out


@contextmanager
def treasury_server(
    rows: list[dict[str, Any]], page_size: int = 100, fail_status: int | None = None
) -> Iterator[TreasuryServer]:
    """Run a :class:`TreasuryServer` on a free port of 127.0.0.1 for the ``with`` block."""
    state = TreasuryServer(rows, page_size, fail_status)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            query = parse_qs(url.query)
            state.requests.append((url.path, query, self.headers.get("Authorization", "")))
            if state.fail_status is not None:
                self._send(state.fail_status, {"status": "ERROR", "error": "simulated failure"})
            elif url.path != PATH:
                self._send(404, {"status": "NOT_FOUND"})
            else:
                self._send(200, state.page(query))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
