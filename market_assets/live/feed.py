# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Massive's sockets through the official ``massive.WebSocketClient``.

One :class:`FeedConnection` per market (stocks, options). The client runs as a task on the
caller's loop with ``raw=True`` (frames are decoded by :mod:`market_assets.live.protocol`,
so a malformed frame is counted, never fatal) and a processor that only puts the frame on
a bounded queue: when the pipeline falls behind the put waits, the socket stops being read
and the wait is counted as back-pressure.

Reconnects: the client itself reconnects at once after an abnormal close (re-authenticating
and resubscribing). After ``MAX_CLIENT_RECONNECTS`` of those, or a clean close by the server,
``connect()`` returns or raises and this wrapper waits ``reconnect_backoff_s`` doubling up to
``max_reconnect_backoff_s`` (times a random factor in [0.5, 1], so many clients do not
reconnect in step), resetting once a connection delivered data. Every socket loss is
reported (``on_lost(market, connection number)``) so the pipeline marks the gap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from massive import WebSocketClient
from massive.exceptions import AuthError
from websockets.asyncio.client import ClientConnection

log = logging.getLogger("market_assets.live.feed")

MAX_CLIENT_RECONNECTS = 5
MAX_FRAME_BYTES = 64 << 20  # websockets' default (1 MiB) is too small for busy frames
SUBSCRIBE_CHUNK = 200  # topics per subscribe message while subscribing at start


class FeedAuthError(RuntimeError):
    """The feed rejected the API key (or the plan has no access)."""


@dataclass
class FeedState:
    """One socket's state as the terminal view and the metrics show it."""

    market: str
    url: str
    state: str = "starting"  # starting | connected | reconnecting | backoff | stopped
    connections: int = 0
    losses: int = 0
    backoffs: int = 0
    backpressure_waits: int = 0
    backpressure_s: float = 0.0
    topics: int = 0


def rank_option_contracts(snapshots: Iterable[Any], limit: int) -> list[str]:
    """Option tickers of a chain snapshot, most traded first (day volume, then open
    interest), at most ``limit``."""
    rows = []
    for s in snapshots:
        ticker = getattr(getattr(s, "details", None), "ticker", None)
        if not ticker:
            continue
        volume = getattr(getattr(s, "day", None), "volume", None) or 0
        oi = getattr(s, "open_interest", None) or 0
        rows.append((-float(volume), -float(oi), ticker))
    rows.sort()
    return [t for _, _, t in rows[:limit]]


def snapshot_contracts(api_key: str, rest_url: str, symbol: str, limit: int) -> list[str]:
    """The symbol's ``limit`` most active option contracts, from the REST options chain
    snapshot (blocking: run it in a thread)."""
    from massive import RESTClient

    client = RESTClient(api_key=api_key, base=rest_url, retries=3)
    return rank_option_contracts(
        client.list_snapshot_options_chain(symbol, params={"limit": 250}), limit
    )


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class FeedConnection:
    """One market's socket, reconnecting until :meth:`stop`."""

    def __init__(
        self,
        market: str,
        topics: Sequence[str],
        *,
        api_key: str,
        feed: str,
        secure: bool,
        queue: asyncio.Queue,
        backoff_s: float,
        max_backoff_s: float,
        on_lost: Callable[[str, int], None],
    ) -> None:
        self.market = market
        self.topics = list(topics)
        self.queue = queue
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_lost = on_lost
        self.gen = 0  # connection number: frames carry it, so a new socket is recognised
        self._data_since_failure = False
        self._stopping = False
        self.client = WebSocketClient(
            api_key=api_key,
            feed=feed,
            market=market,
            secure=secure,
            raw=True,
            max_reconnects=MAX_CLIENT_RECONNECTS,
        )
        self.state = FeedState(market, self.client.url)

    def _connection_class(self) -> type[ClientConnection]:
        feed = self

        class TrackedConnection(ClientConnection):
            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                feed.gen += 1
                feed.state.connections += 1
                feed.state.state = "connected"

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                if not feed._stopping:
                    feed.state.losses += 1
                    feed.state.state = "reconnecting"
                    feed.on_lost(feed.market, feed.gen)

        return TrackedConnection

    async def _processor(self, frame: str | bytes) -> None:
        self._data_since_failure = True
        item = (self.market, self.gen, time.monotonic(), frame)
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.state.backpressure_waits += 1
            t0 = time.monotonic()
            await self.queue.put(item)
            self.state.backpressure_s += time.monotonic() - t0

    async def _subscribe_in_chunks(self) -> None:
        for part in chunks(self.topics, SUBSCRIBE_CHUNK):
            self.client.subscribe(*part)
            # The client sends scheduled topics between receives (at least once a second).
            for _ in range(50):
                if self._stopping or set(part) <= self.client.subs:
                    break
                await asyncio.sleep(0.02)
            self.state.topics = len(self.client.subs)

    async def run(self) -> None:
        """Connect, subscribe and feed the queue until stopped; raises
        :class:`FeedAuthError` when the key is rejected."""
        attempt = 0
        subscriber = asyncio.create_task(self._subscribe_in_chunks())
        try:
            while not self._stopping:
                self._data_since_failure = False
                # After a clean close the client keeps its topics as subscribed: schedule
                # them again so the new socket resubscribes.
                self.client.scheduled_subs |= self.client.subs
                self.client.subs = set()
                self.client.schedule_resub = True
                try:
                    await self.client.connect(
                        self._processor,
                        max_size=MAX_FRAME_BYTES,
                        create_connection=self._connection_class(),
                    )
                    reason = "the server closed the connection"
                except AuthError as e:
                    raise FeedAuthError(
                        f"{self.client.url}: the API key was rejected ({e}); check "
                        "MASSIVE_API_KEY and that the plan includes this feed"
                    ) from None
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - any socket failure: back off, retry
                    reason = f"{type(e).__name__}: {e}"
                if self._stopping:
                    break
                attempt = 1 if self._data_since_failure else attempt + 1
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                self.state.state = "backoff"
                self.state.backoffs += 1
                log.warning("%s: %s; reconnecting in %.1f s", self.market, reason, delay)
                await asyncio.sleep(delay)
        finally:
            subscriber.cancel()
            self.state.state = "stopped"

    async def stop(self) -> None:
        self._stopping = True
        if self.client.websocket is not None:
            try:
                await self.client.close()
            except Exception:  # noqa: BLE001 - closing a socket that is already gone
                pass
