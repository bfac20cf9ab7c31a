# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""From feed frames to written windows: decode, drop trades that break a value rule, late
and duplicate trades, price (and classify) the option trades, aggregate, close windows on
the watermark and write each exactly once.

One :class:`LivePipeline` per run and trading day, driven by the asyncio consumer in
:mod:`market_assets.live.run` (single-threaded: no locks). The rules are the batch's: the
normalised columns of :mod:`market_assets.live.protocol`, the value rules of
:mod:`market_assets.core.trade_rules`, the condition rules, the greeks of
:mod:`market_assets.core.enrich` with the live as-of rule of
:mod:`market_assets.core.live_prices`, the aggressor classification of
:mod:`market_assets.core.classify` (an :class:`~market_assets.core.classify.NbboBook` fed by
the ``Q`` events, when ``aggression`` is on) and the window aggregator of
:mod:`market_assets.core.aggregator`. Event time, lateness, duplicates and gaps:
:mod:`market_assets.core.watermark`. docs/live.md states the rules.

Every written row ends with the quality columns of
:func:`market_assets.core.prelim_final.with_quality` (the batch's too): ``quality``
("prelim"), ``late_dropped`` (trades dropped as late so far in this run when the window was
written) and ``gaps`` (feed gaps overlapping the window; > 0 means it may miss trades).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.aggregator import WindowAggregator
from market_assets.core.calendar import NEW_YORK, window_ns
from market_assets.core.classify import ClassifyParams, NbboBook
from market_assets.core.conditions import ConditionRules
from market_assets.core.enrich import GreeksParams
from market_assets.core.live_prices import UnderlyingBuffer, price_option_trades
from market_assets.core.prelim_final import PRELIM, with_quality
from market_assets.core.statistics import StatsOptions
from market_assets.core.trade_rules import find_violations
from market_assets.core.watermark import NEVER, Deduplicator, EventClock, GapTracker
from market_assets.io.live_store import LiveWindowStore
from market_assets.live import protocol

log = logging.getLogger("market_assets.live")

STREAMS = ("stocks", "options")  # the trade streams (one socket per market)
OPTION_QUOTES = "option_quotes"  # the option quotes' stream in the event clock
MS = 1_000_000
NBBO_INPUT = [
    "ticker",
    "sip_timestamp",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "sequence_number",
]


@dataclass
class Closed:
    """Windows of one size closed (and written) together."""

    window: str
    rows: pa.Table
    latency_s: float  # watermark passing their end -> rows on disk (wall clock)
    written: bool


@dataclass
class LiveCounters:
    """What the terminal view and the metrics endpoint show."""

    frames: int = 0
    stock_trades: int = 0
    option_trades: int = 0
    stock_quotes: int = 0
    option_quotes: int = 0
    aggressor: Counter[str] = field(default_factory=Counter)  # buy / sell / unknown
    rejected: Counter[str] = field(default_factory=Counter)  # trades per broken value rule
    nbbo: tuple[float, float] | None = None  # the symbol's latest bid and ask received
    late_dropped: int = 0
    duplicates: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    subscribed: set[str] = field(default_factory=set)
    pending_options: int = 0
    windows_written: int = 0
    windows_skipped: int = 0  # closed again after a restart: already on disk
    gaps: int = 0
    watermark_ns: int = NEVER
    latest_ns: int = NEVER
    last_closed: dict[str, dict[str, Any]] = field(default_factory=dict)


class LivePipeline:
    """The live path's state for one symbol and one trading day ``day`` (trades stamped on
    another day break the value rules: counted in ``rejected``, never aggregated).

    ``aggression``: classify the option trades against the NBBO of the ``Q`` events
    (``classify``: the classifier's settings) and write the 68 aggression columns.
    """

    def __init__(
        self,
        symbol: str,
        windows: list[str],
        session: str,
        rules: ConditionRules,
        params: GreeksParams,
        stats: StatsOptions,
        output: Any,
        allowed_lateness_s: float,
        stream_idle_s: float,
        day: dt.date,
        on_closed: Callable[[Closed], None] | None = None,
        *,
        aggression: bool = False,
        classify: ClassifyParams | None = None,
    ) -> None:
        self.symbol = symbol
        self.windows = list(windows)
        self.session = session
        self.rules = rules
        self.params = params
        self.stats_options = stats
        self.output = output
        self.day = day
        self.on_closed = on_closed
        self.lateness_ns = int(round(allowed_lateness_s * 1e9))
        self.max_stale_ns = int(round(params.max_underlying_staleness_s * 1e9))
        # The option quotes gate classification as the stock trades gate pricing.
        self.book = NbboBook(classify, strictly_before=True) if aggression else None
        clock_streams = STREAMS + ((OPTION_QUOTES,) if aggression else ())
        self.clock = EventClock(clock_streams, allowed_lateness_s, stream_idle_s)
        self.dedup = {s: Deduplicator() for s in STREAMS}
        self.gaps = GapTracker()
        self.counters = LiveCounters()
        self.underlying = UnderlyingBuffer(rules)
        self.pending: list[pa.Table] = []
        self._new_quotes: list[pa.RecordBatch] = []
        self._contract = re.compile(f"^O:{re.escape(symbol)}[0-9]")
        self._lost_gen: dict[str, int] = {}
        self._logged: set[str] = set()
        self._last_frame_wall = time.monotonic()
        self.aggregator = WindowAggregator(
            symbol, self.windows, day, session, rules, stats, include_aggression=aggression
        )
        self.store = LiveWindowStore(output, day, self.windows)
        self._restarted = False
        ends = [self.store.last_end_ns(w, window_ns(w)) for w in self.windows]
        if all(e is not None for e in ends):  # a restart: skip what is on disk
            resume = min(e for e in ends if e is not None)
            self.aggregator.close_until(resume)
            self.clock.advance(resume)
            self.gaps.open("restart", resume)  # until the first trade after the restart
            self._restarted = True
            log.info("restart: windows up to %s are on disk", _clock_text(resume))

    # -- input ------------------------------------------------------------------------------
    def _once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(message + " (logged once; counted in the metrics)", *args)

    def connection_lost(self, market: str, gen: int = 0) -> None:
        """``market``'s socket number ``gen`` is down: a gap opens after its last message
        (frames of that socket still queued move the gap's start; the first trade of a
        later socket ends it)."""
        start = max(self.clock.latest_ns(market), self.clock.frontier_ns)
        if not self.gaps.is_open(market):
            self.counters.gaps += 1
        self.gaps.open(market, start)
        self._lost_gen[market] = gen

    def frame(self, market: str, text: str | bytes, wall: float, gen: int = 0) -> None:
        """One frame from ``market``'s socket, received at wall time ``wall`` on connection
        number ``gen``."""
        c = self.counters
        c.frames += 1
        self._last_frame_wall = wall
        try:
            events = protocol.decode_frame(text)
        except protocol.MalformedFrame as e:
            c.malformed["invalid_json"] += 1
            self._once("invalid_json", "%s: dropped a frame: %s", market, e)
            return
        decoded = protocol.decode_events(events, market)
        for st in decoded.statuses:
            self._status(market, st)
        for ev in decoded.unknown:
            c.malformed["unknown_event"] += 1
            self._once(f"unknown:{ev.get('ev')}", "%s: unknown event %r", market, ev.get("ev"))
        for reason, _ in decoded.malformed:
            kind = "missing_field" if reason.startswith("missing") else "bad_field"
            c.malformed[kind] += 1
            self._once(f"{kind}:{reason}", "%s: dropped an event: %s", market, reason)
        self.clock.heard(market, wall)
        if decoded.quotes.num_rows and self.book is not None:
            self._quotes(market, decoded.quotes, wall)
        trades = decoded.trades
        if trades.num_rows:
            self._trades(market, pa.Table.from_batches([trades]), wall, gen)

    def _quotes(self, market: str, quotes: pa.RecordBatch, wall: float) -> None:
        """The symbol's (stocks) or its contracts' (options) quotes into the NBBO book."""
        assert self.book is not None
        tickers = quotes.column("ticker")
        if market == "stocks":
            mine = pc.equal(tickers, self.symbol)
        else:
            mine = pc.match_substring_regex(tickers, self._contract.pattern)
        quotes = quotes.filter(pc.fill_null(mine, False))
        if not quotes.num_rows:
            return
        # Applied in arrival order before classifying (both markets: the columns they share).
        self._new_quotes.append(quotes.select(NBBO_INPUT))
        if market == "stocks":
            self.counters.stock_quotes += quotes.num_rows
            last = quotes.slice(quotes.num_rows - 1).to_pylist()[0]
            self.counters.nbbo = (last["bid_price"], last["ask_price"])
        else:
            self.counters.option_quotes += quotes.num_rows
            latest = pc.max(pc.cast(quotes.column("sip_timestamp"), pa.int64())).as_py()
            self.clock.observe(OPTION_QUOTES, latest, wall)

    def _status(self, market: str, st: dict[str, Any]) -> None:
        status, message = st.get("status"), str(st.get("message", ""))
        if status == "success" and message.startswith("subscribed to: "):
            self.counters.subscribed.add(f"{market}:{message.removeprefix('subscribed to: ')}")
        elif status == "success" and message.startswith("unsubscribed to: "):
            self.counters.subscribed.discard(
                f"{market}:{message.removeprefix('unsubscribed to: ')}"
            )
        elif status not in ("connected", "auth_success", "success"):
            self.counters.server_errors[f"{status}: {message}"] += 1
            self._once(f"status:{status}:{message}", "%s: server %s: %s", market, status, message)

    def _trades(self, market: str, table: pa.Table, wall: float, gen: int) -> None:
        c = self.counters
        key = "ticker" if market == "stocks" else "underlying"
        table = table.filter(pc.fill_null(pc.equal(table.column(key), self.symbol), False))
        if not table.num_rows:
            return
        table = self._value_rules(market, table)
        if not table.num_rows:
            return
        ts = pc.cast(table.column("sip_timestamp"), pa.int64()).to_numpy()
        if self._restarted:
            self._restarted = False
            self.gaps.close("restart", int(ts.min()))
        lost = self._lost_gen.get(market)
        if lost is not None:
            if gen > lost:
                del self._lost_gen[market]
                self.gaps.close(market, int(ts.min()))
            else:  # a frame the lost socket delivered before it went down
                self.gaps.move_start(market, int(ts.max()))
        keep = ~self.clock.is_late(ts)
        late = int(np.count_nonzero(~keep))
        if late:
            c.late_dropped += late
        tickers = table.column("ticker").to_pylist()
        seq = table.column("sequence_number").to_pylist()
        keys = [
            (t, q) if q is not None else (t, int(s))
            for t, q, s in zip(tickers, seq, ts, strict=True)
        ]
        idx = np.flatnonzero(keep)
        fresh = self.dedup[market].first_seen([keys[i] for i in idx], ts[idx])
        c.duplicates += int(np.count_nonzero(~fresh))
        idx = idx[fresh]
        if idx.size < table.num_rows:
            table = table.take(pa.array(idx, pa.int64()))
            ts = ts[idx]
        if not table.num_rows:
            return
        self.clock.observe(market, int(ts.max()), wall)
        if market == "stocks":
            c.stock_trades += table.num_rows
            self.underlying.add(table)
            self.aggregator.add_stock(table)
        else:
            c.option_trades += table.num_rows
            self.pending.append(table)
            c.pending_options += table.num_rows

    def _value_rules(self, market: str, table: pa.Table) -> pa.Table:
        """``table`` without the trades that break a value rule of the batch ingest
        (:func:`market_assets.core.trade_rules.find_violations`, for ``self.day``); those
        are counted per rule and the first of each rule is logged."""
        bad = find_violations(table, self.day)
        if not len(bad):
            return table
        for reason in bad.reasons.to_pylist():
            rule = reason.split(":", 1)[0]
            self.counters.rejected[rule] += 1
            hint = "; live follows this day only (--date)" if rule == "sip_timestamp" else ""
            self._once(f"rule:{rule}", "%s: dropped a trade: %s%s", market, reason, hint)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[bad.rows] = False
        return table.filter(pa.array(keep))

    # -- output -----------------------------------------------------------------------------
    def _price_until(self, until_ns: int) -> None:
        """Price (classify) and aggregate the pending option trades older than ``until_ns``."""
        if self._new_quotes and self.book is not None:
            # One delta pass per tick, not per frame (its cost is mostly per call).
            self.book.update(pa.Table.from_batches(self._new_quotes))
            self._new_quotes = []
        if not self.pending:
            return
        pending = pa.concat_tables(self.pending)
        ts = pc.cast(pending.column("sip_timestamp"), pa.int64()).to_numpy()
        ready = ts < until_ns
        if not ready.any():
            self.pending = [pending] if len(self.pending) > 1 else self.pending
            return
        now = pending.filter(pa.array(ready))
        rest = pending.filter(pa.array(~ready))
        self.pending = [rest] if rest.num_rows else []
        self.counters.pending_options = rest.num_rows
        priced = price_option_trades(now, self.underlying, self.params, self.rules)
        if self.book is not None:
            sides = self.book.classify(priced).column("aggressor_side")
            self.counters.aggressor.update(sides.to_pylist())
            priced = priced.append_column("aggressor_side", sides)
        self.aggregator.add_options(priced)

    def tick(self, wall: float) -> list[Closed]:
        """Price what can be priced and close every window the watermark has passed."""
        ready = self.clock.latest_ns("stocks")
        if self.book is not None:
            ready = min(ready, self.clock.latest_ns(OPTION_QUOTES))
        watermark = self.clock.watermark(wall)
        self.counters.watermark_ns = watermark
        self.counters.latest_ns = self.clock.latest_ns()
        # An option trade is priced once the stock stream has passed its time (so its
        # as-of trade has arrived) and, with aggression, classified once the option quote
        # stream has too (so the NBBO in force has arrived); at the latest when its window
        # closes.
        self._price_until(max(ready - self.lateness_ns + 1, watermark))
        if watermark <= self.clock.frontier_ns:
            return []
        return self._close(watermark)

    def finish(self, until_ns: int | None = None) -> list[Closed]:
        """The run is over: close every window ending by ``until_ns`` (default: the latest
        SIP time seen)."""
        end = until_ns if until_ns is not None else self.clock.latest_ns()
        if end == NEVER:
            return []
        self._price_until(end)
        return self._close(end) if end > self.clock.frontier_ns else []

    def _close(self, to_ns: int) -> list[Closed]:
        started = self._last_frame_wall
        closed = self.aggregator.close_until(to_ns)
        frontier = self.clock.advance(to_ns)
        out = []
        for w, rows in closed.items():
            if not rows.num_rows:
                continue
            starts = pc.cast(rows.column("window_start"), pa.int64()).to_numpy()
            n = rows.num_rows
            rows = with_quality(
                rows, PRELIM, self.counters.late_dropped, self.gaps.count(starts, window_ns(w))
            )
            path = self.store.write(w, rows)
            written = path is not None
            if written:
                self.counters.windows_written += n
            else:
                self.counters.windows_skipped += n
            self.counters.last_closed[w] = rows.slice(n - 1).to_pylist()[0]
            item = Closed(w, rows, time.monotonic() - started, written)
            out.append(item)
            if self.on_closed is not None:
                self.on_closed(item)
        self.dedup["stocks"].forget_before(frontier)
        self.dedup["options"].forget_before(frontier)
        oldest = frontier
        if self.pending:
            oldest = min(
                oldest, min(int(pc.min(p.column("sip_timestamp")).value) for p in self.pending)
            )
        self.underlying.forget_before(oldest - self.max_stale_ns - 2 * MS)
        if self.book is not None:
            self.book.forget_before(oldest)
        self.gaps.forget_before(frontier - max(window_ns(w) for w in self.windows))
        return out


def _clock_text(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET")
