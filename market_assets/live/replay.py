# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""``market-assets replay``: a local server speaking Massive's WebSocket protocol, serving one
trading day read from the configured flat-file source.

The official client needs no patch, only ``feed="127.0.0.1:PORT"`` and ``secure=False``:
``WebSocketClient(api_key=..., feed="127.0.0.1:PORT", market="stocks", secure=False)``.

Protocol subset served (messages in :mod:`market_assets.live.protocol`):

- Endpoints ``ws://HOST:PORT/stocks`` and ``ws://HOST:PORT/options`` (the client connects to
  ``ws(s)://FEED/MARKET``); any other path gets HTTP 404. No TLS, no compression.
- On connect: ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``.
- ``{"action":"auth","params":KEY}`` -> ``auth_success`` / ``authenticated``; a key not
  accepted -> ``auth_failed`` / ``authentication failed``, then the server closes (1008).
  Accepted keys: ``api_key`` (CLI: ``--api-key``, else ``$MASSIVE_API_KEY`` if set), or any
  non-empty key when unset. The key is never logged.
- ``{"action":"subscribe"|"unsubscribe","params":"T.SPY,Q.SPY"}``: comma-separated topics
  ``T.<ticker>`` (trades), ``Q.<ticker>`` (quotes) and wildcards ``T.*``/``Q.*``; option
  contracts as ``T.O:SPY261120C00600000``. One ``success`` status per topic
  (``subscribed to: T.SPY`` / ``unsubscribed to: T.SPY``). Other channels (``A``, ``AM``, ...)
  get an ``error`` status: the replay serves trades and quotes only. Before ``auth``:
  ``error`` / ``not authorized``. (The texts of these two ``error`` statuses are the
  replay's own; the others are the service's, as documented and seen in its clients.)
- Events: JSON arrays of up to ``max_frame_messages`` events, in SIP-time order, with
  Massive's short field names; ``t`` is the SIP time in Unix milliseconds (see the protocol
  module for every field and for the choices where flat files and the feed differ).
- Not emulated: ``max_connections`` (one connection per cluster), ``slow_consumer``
  disconnects (the replay waits for a slow client instead), aggregates and other channels,
  the limit of 1,000 option contracts per connection for quotes (the replay also accepts
  ``Q.*`` on ``/options``, which the service documents only per contract).

Replay semantics:

- The served universe is ``--symbols`` (default ``realtime.symbol``): those stock tickers'
  trades and quotes on ``/stocks``, and the trades and quotes of their option contracts on
  ``/options``. ``T.*`` means every served ticker or contract. Quotes come from the
  ``quotes_v1`` files when they exist (``--no-quotes`` skips them).
- One replay clock for the whole server, started by the first subscription (or, with
  ``--wait-for stocks,options``, once each listed endpoint has a subscription). An event
  with SIP time ``t`` is sent at ``start + (t - t0) / speed`` (``t0``: ``--start`` or the
  day's first event; ``--speed max``: as fast as the clients read). A client that
  reconnects misses what was sent meanwhile, as on the real feed. After the day's last
  event the server stays up, idle, until stopped (SIGINT/SIGTERM: clean shutdown).
- ``--drop-every N``: every connection is closed with code 1012 (abnormal: the official
  client reconnects at once, re-authenticates and resubscribes) right after its N-th
  message.

Test hooks (every count is over the day's trades in replay order, both markets together;
each injection is recorded in ``ReplayServer.stats.injected``):

- ``--inject-duplicates N``: every N-th trade is sent twice (the copy right after it).
- ``--inject-late N``: every N-th trade is held back and sent once the replay clock has
  passed its SIP time plus ``--late-by`` seconds (default 5), with its original ``t``.
- ``--inject-bad N``: after every N-th trade, one bad message to the connections that got
  the trade, in turn: a frame that is not valid JSON, an event of unknown type
  (``{"ev":"ZZ",...}``), and the trade without its ``p`` field.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import heapq
import hmac
import http
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from market_assets.core.calendar import NEW_YORK
from market_assets.io.sizes import MIB
from market_assets.live import protocol
from market_assets.live.day import STREAMS, ReplayDay

log = logging.getLogger("market_assets.live.replay")

API_KEY_ENV = "MASSIVE_API_KEY"
# The CLI's exit codes (market_assets.cli.EXIT_CODES).
EXIT_FAILED, EXIT_USAGE, EXIT_NOT_YET = 1, 2, 3
DROP_CLOSE_CODE = 1012  # "service restart": not 1000/1001, so clients treat it as abnormal
BAD_KINDS = ("invalid_json", "unknown_event", "missing_field")


@dataclass(frozen=True)
class Injection:
    """Test hooks; 0 disables each (see the module docstring)."""

    duplicates: int = 0
    late: int = 0
    late_by_s: float = 5.0
    bad: int = 0

    @property
    def active(self) -> bool:
        return bool(self.duplicates or self.late or self.bad)


@dataclass(frozen=True)
class ReplayOptions:
    """How the server replays its day. ``speed`` None means as fast as clients read."""

    speed: float | None = 1.0
    start_ns: int | None = None  # replay clock origin (SIP ns); default: the first event
    drop_every: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None  # None: any non-empty key is accepted
    wait_for: tuple[str, ...] = ()
    inject: Injection = Injection()
    max_frame_messages: int = 1000
    record: bool = False  # keep every message sent, per connection (tests)


@dataclass
class Injected:
    """One injected message: ``kind`` (duplicate, late, invalid_json, unknown_event,
    missing_field), the trade's ordinal in replay order, its topic and the text sent."""

    kind: str
    ordinal: int
    topic: str
    text: str


@dataclass
class ConnectionStats:
    id: int
    market: str
    authenticated: bool = False
    subscriptions: set[str] = field(default_factory=set)
    messages: int = 0  # events sent (injected ones included)
    frames: int = 0
    dropped: bool = False  # closed by --drop-every
    closed: bool = False
    sent: list[str] = field(default_factory=list)  # with ``record``: every message sent


@dataclass
class ReplayStats:
    clock_started: bool = False
    finished: bool = False  # the day's last event has been replayed
    events_replayed: int = 0  # day events whose time the replay clock has passed
    events_unrouted: int = 0  # of those, events no connection was subscribed to
    connections: list[ConnectionStats] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)


class _Injected(str):
    """A message added by a test hook (not a day event)."""


class _RawFrame(_Injected):
    """Text sent as a frame of its own, as is (the invalid-JSON hook)."""


Item = tuple[int, str, str]  # (stream, topic, message)


class _Connection:
    def __init__(self, ws: ServerConnection, market: str, stats: ConnectionStats) -> None:
        self.ws = ws
        self.market = market
        self.streams = {i for i, (m, _) in enumerate(STREAMS) if m == market}
        self.topics: set[str] = set()  # exact topics, e.g. "T.SPY"
        self.wild: set[str] = set()  # channels subscribed with "*"
        self.stats = stats
        self.closing = False
        self.lock = asyncio.Lock()

    @property
    def listening(self) -> bool:
        return self.stats.authenticated and not self.closing and bool(self.topics or self.wild)

    def wants(self, stream: int, topic: str) -> bool:
        return stream in self.streams and (topic in self.topics or topic[0] in self.wild)

    async def send(self, text: str) -> None:
        async with self.lock:
            await self.ws.send(text)


class _Clock:
    """Maps SIP time to wall time: ``t`` is due ``(t - t0) / speed`` seconds after start."""

    def __init__(self, speed: float | None, t0_ns: int, now: float) -> None:
        self.speed = speed
        self.t0_ns = t0_ns
        self.wall0 = now

    def event_now(self, now: float) -> float:
        if self.speed is None:
            return math.inf
        return self.t0_ns + (now - self.wall0) * self.speed * 1e9

    def seconds_until(self, t_ns: float, now: float) -> float:
        assert self.speed is not None
        return (t_ns - self.t0_ns) / 1e9 / self.speed - (now - self.wall0)


class ReplayServer:
    """The replay server over a prepared :class:`ReplayDay`; run it with :meth:`run`
    (asyncio) or :func:`serve_in_thread` (tests)."""

    def __init__(self, day: ReplayDay, options: ReplayOptions | None = None) -> None:
        self.day = day
        self.options = options or ReplayOptions()
        bad = [m for m in self.options.wait_for if m not in protocol.MARKETS]
        if bad:
            raise ValueError(f"wait_for: unknown market(s) {bad}; expected {protocol.MARKETS}")
        self.stats = ReplayStats()
        self.port: int | None = None
        self.finished = threading.Event()
        self._conns: list[_Connection] = []
        self._server: Server | None = None
        self._producer: asyncio.Task | None = None
        self._clock: _Clock | None = None
        self._trades = 0  # trades seen by the injection hooks
        self._late: list[tuple[float, int, Item]] = []
        self._closing: set[asyncio.Task] = set()  # drop-every closes under way

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen; ``self.port`` is the bound port (useful with port 0)."""
        self._server = await serve(
            self._handle,
            self.options.host,
            self.options.port,
            process_request=self._route,
            compression=None,
            write_limit=MIB,
            max_size=MIB,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        """Stop the clock and close every connection (1001, going away)."""
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def run(
        self, stop: asyncio.Event, ready: Callable[[ReplayServer], None] | None = None
    ) -> None:
        """Serve until ``stop`` is set; ``ready`` is called once listening."""
        await self.start()
        try:
            if ready is not None:
                ready(self)
            await stop.wait()
        finally:
            await self.stop()

    # -- connections -----------------------------------------------------------------------
    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0].strip("/") not in protocol.MARKETS:
            return connection.respond(
                http.HTTPStatus.NOT_FOUND,
                f"unknown endpoint {request.path}: connect to /stocks or /options\n",
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        market = ws.request.path.split("?")[0].strip("/")
        stats = ConnectionStats(id=len(self.stats.connections) + 1, market=market)
        self.stats.connections.append(stats)
        conn = _Connection(ws, market, stats)
        self._conns.append(conn)
        log.info("connection %d: %s from %s", stats.id, market, ws.remote_address)
        try:
            await conn.send(protocol.status_frame(protocol.CONNECTED))
            async for data in ws:
                if not await self._command(conn, data):
                    break
        except ConnectionClosed:
            pass
        finally:
            conn.closing = True
            stats.closed = True
            self._conns.remove(conn)
            log.info("connection %d closed after %d messages", stats.id, stats.messages)

    async def _command(self, conn: _Connection, data: str | bytes) -> bool:
        """Handle one client message; False ends the connection."""
        try:
            msg = json.loads(data)
            action, params = msg.get("action"), msg.get("params")
        except (ValueError, AttributeError):
            await conn.send(protocol.status_frame(("error", "invalid message")))
            return True
        if action == "auth":
            key = params if isinstance(params, str) else ""
            wanted = self.options.api_key
            ok = bool(key) and (wanted is None or hmac.compare_digest(key, wanted))
            if not ok:
                log.warning("connection %d: authentication failed", conn.stats.id)
                await conn.send(protocol.status_frame(protocol.AUTH_FAILED))
                await conn.ws.close(1008, "authentication failed")
                return False
            conn.stats.authenticated = True
            await conn.send(protocol.status_frame(protocol.AUTH_SUCCESS))
            return True
        if action in ("subscribe", "unsubscribe"):
            if not conn.stats.authenticated:
                await conn.send(protocol.status_frame(("error", "not authorized")))
                return True
            topics = [t.strip() for t in (params if isinstance(params, str) else "").split(",")]
            await self._subscription(conn, action, [t for t in topics if t])
            return True
        await conn.send(protocol.status_frame(("error", f"unknown action: {action}")))
        return True

    async def _subscription(self, conn: _Connection, action: str, topics: list[str]) -> None:
        for topic in topics:
            channel, _, symbol = topic.partition(".")
            if channel not in protocol.CHANNELS or not symbol:
                await conn.send(
                    protocol.status_frame(
                        ("error", f"the replay serves T and Q topics only: {topic}")
                    )
                )
                continue
            key = f"{channel}.{symbol.upper()}"
            if action == "subscribe":
                # Acknowledge first, so the topic's events follow its status.
                await conn.send(protocol.status_frame(protocol.subscribed(topic)))
                (conn.wild.add(channel) if symbol == "*" else conn.topics.add(key))
                conn.stats.subscriptions.add(key)
            else:
                (conn.wild.discard(channel) if symbol == "*" else conn.topics.discard(key))
                conn.stats.subscriptions.discard(key)
                await conn.send(protocol.status_frame(protocol.unsubscribed(topic)))
        log.info("connection %d: %s %s", conn.stats.id, action, ",".join(topics))
        self._maybe_start_clock()

    # -- the replay clock ------------------------------------------------------------------
    def _maybe_start_clock(self) -> None:
        if self._producer is not None:
            return
        listening = {c.market for c in self._conns if c.listening}
        needed = set(self.options.wait_for)
        if not listening or not needed <= listening:
            return
        first = self.day.stats.first_ns
        t0 = self.options.start_ns if self.options.start_ns is not None else (first or 0)
        loop = asyncio.get_running_loop()
        self._clock = _Clock(self.options.speed, t0, loop.time())
        self.stats.clock_started = True
        log.info("replay clock started (speed %s)", self.options.speed or "max")
        self._producer = asyncio.create_task(self._produce())

    async def _produce(self) -> None:
        assert self._clock is not None
        try:
            for segment in self.day.segments():
                await self._replay_segment(segment)
            while self._late:
                await self._wait_until(self._late[0][0])
                now = self._clock.event_now(asyncio.get_running_loop().time())
                await self._dispatch([item for _, item in self._pop_late(now)])
            self.stats.finished = True
            self.finished.set()
            log.info("end of the day: %d events replayed; idle", self.stats.events_replayed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the replay stopped")
            raise

    async def _wait_until(self, t_ns: float) -> None:
        assert self._clock is not None
        loop = asyncio.get_running_loop()
        while self._clock.speed is not None:
            wait = self._clock.seconds_until(t_ns, loop.time())
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _replay_segment(self, segment: pa.Table) -> None:
        assert self._clock is not None
        t = segment.column("t_ns").to_numpy()
        streams = segment.column("stream").to_numpy()
        topics = segment.column("topic")
        msgs = segment.column("msg")
        loop = asyncio.get_running_loop()
        chunk = self.options.max_frame_messages
        i, n = 0, len(t)
        if self.options.start_ns is not None:  # the replay starts at --start
            i = int(np.searchsorted(t, self.options.start_ns, side="left"))
        while i < n:
            nxt = min(t[i], self._late[0][0]) if self._late else t[i]
            await self._wait_until(nxt)
            now = self._clock.event_now(loop.time())
            j = i + chunk if now == math.inf else int(np.searchsorted(t, now, side="right"))
            j = min(max(j, i), i + chunk, n)
            items: list[Item] = list(
                zip(
                    streams[i:j].tolist(),
                    topics.slice(i, j - i).to_pylist(),
                    msgs.slice(i, j - i).to_pylist(),
                    strict=True,
                )
            )
            if self.options.inject.active or self._late:
                timed = self._inject(items, t[i:j].tolist())
                timed += self._pop_late(float(t[j - 1]) if j > i else now)
                timed.sort(key=lambda x: x[0])  # stable: late ones after equal times
                items = [item for _, item in timed]
            await self._dispatch(items)
            i = j
            if self._clock.speed is None:
                await asyncio.sleep(0)  # let the connections' handlers run

    # -- test hooks --------------------------------------------------------------------------
    def _inject(self, items: list[Item], times: list[int]) -> list[tuple[float, Item]]:
        """``items`` with their SIP times, the test hooks applied (extras share their
        trade's time; late trades go to the late heap)."""
        inj = self.options.inject
        out: list[tuple[float, Item]] = []
        for (stream, topic, msg), t_ns in zip(items, times, strict=True):
            out.append((t_ns, (stream, topic, msg)))
            if STREAMS[stream][1] != "T" or not inj.active:
                continue
            self._trades += 1
            k = self._trades
            if inj.late and k % inj.late == 0:
                out.pop()
                heapq.heappush(self._late, (t_ns + inj.late_by_s * 1e9, k, (stream, topic, msg)))
                self.stats.injected.append(Injected("late", k, topic, msg))
                continue
            if inj.duplicates and k % inj.duplicates == 0:
                out.append((t_ns, (stream, topic, _Injected(msg))))
                self.stats.injected.append(Injected("duplicate", k, topic, msg))
            if inj.bad and k % inj.bad == 0:
                kind = BAD_KINDS[(k // inj.bad - 1) % len(BAD_KINDS)]
                text = _bad_message(kind, msg)
                out.append((t_ns, (stream, topic, text)))
                self.stats.injected.append(Injected(kind, k, topic, str(text)))
        return out

    def _pop_late(self, until: float) -> list[tuple[float, Item]]:
        out = []
        while self._late and self._late[0][0] <= until:
            due, _, item = heapq.heappop(self._late)
            out.append((due, item))
        return out

    # -- sending -------------------------------------------------------------------------------
    async def _dispatch(self, items: list[Item]) -> None:
        events = sum(1 for _, _, m in items if not isinstance(m, _Injected))
        self.stats.events_replayed += events
        delivered = [False] * len(items)
        for conn in [c for c in self._conns if c.listening]:
            mine = [k for k, (s, tp, _) in enumerate(items) if conn.wants(s, tp)]
            if not mine:
                continue
            sent = await self._send(conn, [items[k][2] for k in mine])
            for k in mine[:sent]:
                delivered[k] = True
        self.stats.events_unrouted += sum(
            1
            for (_, _, m), d in zip(items, delivered, strict=True)
            if not d and not isinstance(m, _Injected)
        )

    async def _send(self, conn: _Connection, msgs: list[str]) -> int:
        """Send ``msgs`` in frames; returns how many went out before a drop or a close."""
        drop = False
        if self.options.drop_every:
            room = self.options.drop_every - conn.stats.messages
            if len(msgs) >= room:
                msgs, drop = msgs[:room], True
        frames: list[tuple[str, list[str]]] = []
        pending: list[str] = []
        for m in msgs:
            if isinstance(m, _RawFrame):
                if pending:
                    frames.append((protocol.frame(pending), pending))
                    pending = []
                frames.append((str(m), [m]))
            else:
                pending.append(m)
                if len(pending) >= self.options.max_frame_messages:
                    frames.append((protocol.frame(pending), pending))
                    pending = []
        if pending:
            frames.append((protocol.frame(pending), pending))
        sent = 0
        for text, parts in frames:
            try:
                await conn.send(text)
            except ConnectionClosed:
                conn.closing = True
                return sent
            sent += len(parts)
            conn.stats.messages += len(parts)
            conn.stats.frames += 1
            if self.options.record:
                conn.stats.sent.extend(str(p) for p in parts)
        if drop:
            conn.closing = True
            conn.stats.dropped = True
            log.info("connection %d: dropped after %d messages", conn.stats.id, sent)
            task = asyncio.create_task(conn.ws.close(DROP_CLOSE_CODE, "replay --drop-every"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return sent


def _bad_message(kind: str, msg: str) -> str:
    event = json.loads(msg)
    if kind == "invalid_json":
        return _RawFrame("[" + msg[: len(msg) // 2])
    if kind == "unknown_event":
        text = json.dumps({"ev": "ZZ", "sym": event["sym"], "t": event["t"]}, separators=(",", ":"))
        return _Injected(text)
    event.pop("p", None)
    return _Injected(json.dumps(event, separators=(",", ":")))


@contextlib.contextmanager
def serve_in_thread(day: ReplayDay, options: ReplayOptions | None = None) -> Iterator[ReplayServer]:
    """Run a :class:`ReplayServer` on its own event loop in a thread; stops on exit."""
    server = ReplayServer(day, options)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await server.run(stop, ready=lambda _: ready.set())

    def target() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            errors.append(e)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="replay-server", daemon=True)
    thread.start()
    if not ready.wait(30) or errors:
        raise RuntimeError(f"the replay server did not start: {errors[0] if errors else 'timeout'}")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(30)


# --- CLI ------------------------------------------------------------------------------------


def _speed(s: str) -> float | None:
    if s == "max":
        return None
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: expected a positive number or 'max'") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{s!r}: the speed must be a positive number")
    return v


def _hhmm(s: str) -> dt.time:
    try:
        return dt.datetime.strptime(s, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a time as HH:MM (ET)") from None


def _count(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("expected a positive whole number")
    return v


def _markets(s: str) -> tuple[str, ...]:
    out = tuple(m.strip() for m in s.split(",") if m.strip())
    bad = [m for m in out if m not in protocol.MARKETS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown market(s) {bad}: expected stocks, options")
    return out


def start_ns(day: dt.date, at: dt.time) -> int:
    """``at`` (New York time) on ``day`` in ns since the epoch."""
    return int(dt.datetime.combine(day, at, NEW_YORK).timestamp()) * 1_000_000_000


def add_replay_parser(
    sub: Any, date_type: Callable[[str], dt.date], parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """Register ``market-assets replay`` on the CLI's subparsers."""
    p = sub.add_parser(
        "replay",
        parents=list(parents),
        help="serve one trading day over Massive's WebSocket protocol on 127.0.0.1",
        description=(
            "Serve one day of the configured flat files as Massive's WebSocket feed "
            "(ws://HOST:PORT/stocks and /options) for the official massive client."
        ),
    )
    p.add_argument("--date", type=date_type, required=True, help="trading day (YYYY-MM-DD)")
    p.add_argument(
        "--speed", type=_speed, default=1.0, help="1 = real time, N = N times faster, max"
    )
    p.add_argument("--start", type=_hhmm, help="replay from HH:MM ET (default: first event)")
    p.add_argument("--drop-every", type=_count, help="close each connection after N messages")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--symbols", help="comma-separated tickers served (default: realtime.symbol); * = all"
    )
    p.add_argument("--no-quotes", action="store_true", help="serve trades only")
    p.add_argument(
        "--api-key",
        help=f"the accepted key (default: ${API_KEY_ENV} if set, else any non-empty key)",
    )
    p.add_argument(
        "--wait-for",
        type=_markets,
        default=(),
        help="start the clock once these endpoints have a subscription, e.g. stocks,options",
    )
    p.add_argument(
        "--inject-duplicates",
        type=_count,
        default=0,
        metavar="N",
        help="send every N-th trade twice",
    )
    p.add_argument(
        "--inject-late", type=_count, default=0, metavar="N", help="send every N-th trade late"
    )
    p.add_argument(
        "--late-by", type=float, default=5.0, metavar="S", help="late trades: S seconds (5)"
    )
    p.add_argument(
        "--inject-bad",
        type=_count,
        default=0,
        metavar="N",
        help="after every N-th trade, a bad message: invalid JSON, unknown event, missing field",
    )
    p.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from market_assets.io.source import store_from_settings
    from market_assets.live.day import prepare_day
    from market_assets.settings import load_settings

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    from market_assets.io.reader import IngestError
    from market_assets.io.source import SourceError

    settings = load_settings()
    symbols = (args.symbols or settings.realtime.symbol).split(",")
    origin = start_ns(args.date, args.start) if args.start else None
    options = ReplayOptions(
        speed=args.speed,
        start_ns=origin,
        drop_every=args.drop_every,
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        wait_for=args.wait_for,
        inject=Injection(
            duplicates=args.inject_duplicates,
            late=args.inject_late,
            late_by_s=args.late_by,
            bad=args.inject_bad,
        ),
    )
    try:
        day = prepare_day(
            store_from_settings(settings.massive, os.environ),
            args.date,
            symbols,
            quotes=not args.no_quotes,
            start_ns=origin,
            block_size=int(settings.ingest.block_size_mb * MIB),
            max_reject_fraction=settings.ingest.max_reject_fraction,
        )
    except (SourceError, IngestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return _exit_code(e)
    try:
        return asyncio.run(_serve(day, options))
    except OSError as e:  # e.g. the port is taken
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        day.close()


def _exit_code(e: Exception) -> int:
    from market_assets.io.source import BadCredentials, FileNotPublished

    if isinstance(e, FileNotPublished):
        return EXIT_NOT_YET
    return EXIT_USAGE if isinstance(e, BadCredentials) else EXIT_FAILED


async def _serve(day: ReplayDay, options: ReplayOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(server: ReplayServer) -> None:
        s = day.stats
        served = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in s.events.items() if n)
        print(
            f"replaying {day.day} ({served or 'no events'}) at speed "
            f"{options.speed or 'max'}{'' if options.api_key else ', any API key accepted'}\n"
            f"listening on ws://{options.host}:{server.port}/stocks and "
            f"ws://{options.host}:{server.port}/options; Ctrl-C stops",
            flush=True,
        )

    await ReplayServer(day, options).run(stop, ready)
    print("replay server stopped", file=sys.stderr, flush=True)
    return 0
