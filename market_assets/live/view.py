# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The terminal view of ``market-assets live`` (rich): sockets, subscriptions, events/s,
watermark lag, late/duplicate/malformed counts and the last closed windows."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table

from market_assets.core.calendar import NEW_YORK
from market_assets.core.watermark import NEVER
from market_assets.live.feed import FeedState
from market_assets.live.pipeline import LiveCounters

KEY_FEATURES = (
    "underlying_trades",
    "call_trades",
    "put_trades",
    "underlying_price_close",
    "calls_dollar_value",
    "gaps",
)


def _et(ns: int) -> str:
    if ns == NEVER:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=NEW_YORK).strftime("%H:%M:%S.%f")[:-3]


class Rate:
    """Events per second over the last few seconds."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def update(self, total: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.samples.append((now, total))
        self.samples = [s for s in self.samples if now - s[0] <= 5.0]
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0


def render(
    symbol: str, c: LiveCounters, feeds: Sequence[FeedState], queue_depth: int, rate: float
) -> Group:
    """The whole view as a rich renderable."""
    head = Table(title=f"market-assets live: {symbol}", show_header=True, expand=False)
    for col in ("socket", "state", "connections", "losses", "topics", "back-pressure"):
        head.add_column(col)
    for f in feeds:
        head.add_row(
            f.market, f.state, str(f.connections), str(f.losses), str(f.topics),
            f"{f.backpressure_waits} waits / {f.backpressure_s:.1f} s",
        )  # fmt: skip
    stats = Table(show_header=False, expand=False)
    stats.add_column("what")
    stats.add_column("value")
    lag = (c.latest_ns - c.watermark_ns) / 1e9 if c.watermark_ns != NEVER else float("nan")
    malformed = ", ".join(f"{k} {v}" for k, v in sorted(c.malformed.items())) or "0"
    for k, v in (
        ("subscriptions confirmed", f"{len(c.subscribed)}"),
        ("events/s", f"{rate:,.0f}"),
        ("trades (stocks / options)", f"{c.stock_trades:,} / {c.option_trades:,}"),
        ("quotes (stocks / options)", f"{c.stock_quotes:,} / {c.option_quotes:,}"),
        (f"{symbol} bid / ask", " / ".join(f"{v:,.2f}" for v in c.nbbo) if c.nbbo else "-"),
        (
            "option trades buy / sell / unknown",
            " / ".join(f"{c.aggressor.get(k, 0):,}" for k in ("buy", "sell", "unknown")),
        ),
        ("rejected (value rules)", ", ".join(f"{k} {v}" for k, v in c.rejected.items()) or "0"),
        ("latest SIP time / watermark", f"{_et(c.latest_ns)} / {_et(c.watermark_ns)}"),
        ("watermark lag", f"{lag:.3f} s"),
        ("late dropped / duplicates", f"{c.late_dropped:,} / {c.duplicates:,}"),
        ("malformed", malformed),
        ("server errors", str(sum(c.server_errors.values()))),
        ("queue / pending option trades", f"{queue_depth} frames / {c.pending_options:,}"),
        ("windows written / gaps", f"{c.windows_written:,} / {c.gaps}"),
        ("window close latency p50 / p99", _latency(c)),
    ):
        stats.add_row(k, v)
    last = Table(title="last closed windows", expand=False)
    last.add_column("window")
    last.add_column("start (ET)")
    for k in KEY_FEATURES:
        last.add_column(k)
    for w, row in sorted(c.last_closed.items()):
        start = row.get("window_start")
        last.add_row(
            w,
            start.astimezone(NEW_YORK).strftime("%H:%M") if start else "-",
            *(_fmt(row.get(k)) for k in KEY_FEATURES),
        )
    return Group(head, stats, last)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _latency(c: LiveCounters) -> str:
    h = c.close_latency
    return f"{_ms(h.quantile(0.5))} / {_ms(h.quantile(0.99))}"


def summary_line(c: LiveCounters, rate: float) -> str:
    """One line for logs when the view is off."""
    return (
        f"watermark {_et(c.watermark_ns)} trades {c.stock_trades}+{c.option_trades} "
        f"({rate:,.0f}/s) late {c.late_dropped} dup {c.duplicates} "
        f"malformed {sum(c.malformed.values())} windows {c.windows_written} gaps {c.gaps} "
        f"close latency p50/p99 {_latency(c)}"
    )
