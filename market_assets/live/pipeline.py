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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.aggregator import WindowAggregator
from market_assets.core.calendar import NEW_YORK, window_ns
from market_assets.core.classification_quality import value_counter
from market_assets.core.classify import ClassifyParams, NbboBook
from market_assets.core.conditions import ConditionRules
from market_assets.core.enrich import GreeksParams
from market_assets.core.live_prices import UnderlyingBuffer, price_option_trades
from market_assets.core.prelim_final import PRELIM, with_quality
from market_assets.core.schemas import NBBO_INPUT_COLUMNS
from market_assets.core.statistics import StatsOptions
from market_assets.core.trade_rules import find_violations
from market_assets.core.watermark import NEVER, Deduplicator, EventClock, GapTracker
from market_assets.io.live_store import LiveWindowStore
from market_assets.live import protocol
from market_assets.live.latency import LatencyHistogram

log = logging.getLogger("market_assets.live")

STREAMS = ("stocks", "options")  # the trade streams (one socket per market)
OPTION_QUOTES = "option_quotes"  # the option quotes' stream in the event clock
MS = 1_000_000
SEQ_BITS = 40  # an option duplicate key: contract number << SEQ_BITS | sequence number
# A frame as the sockets queue it: (market, connection number, wall time received, frame).
QueuedFrame = tuple[str, int, float, "str | bytes"]


@dataclass
class Closed:
    """Windows of one size closed (and written) together."""

    window: str
    rows: pa.Table
    # Per row: wall seconds from the watermark passing its end (the pipeline taking the
    # frame that moved it, or a tick) to the row on disk; NaN when closed by the run's end.
    latencies_s: np.ndarray
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
    close_latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # end -> disk
    queue_wait: LatencyHistogram = field(default_factory=LatencyHistogram)  # socket -> pipeline
    first_frame_at: float | None = None  # wall time (monotonic) the first frame was received
    last_frame_done_at: float | None = None  # ... the latest frames were processed

    @property
    def trades_per_s(self) -> float:
        """Trades accepted per second from the first frame received to the latest frames
        processed (the whole live path's sustained rate)."""
        if self.first_frame_at is None or self.last_frame_done_at is None:
            return 0.0
        span = self.last_frame_done_at - self.first_frame_at
        return (self.stock_trades + self.option_trades) / span if span > 0 else 0.0


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
        self._lost_gen: dict[str, set[int]] = {}  # sockets lost, per market
        self._logged: set[str] = set()
        self.decoders = {m: protocol.TradeDecoder(m) for m in STREAMS}
        self._contract_id: dict[str, int] = {}
        # (watermark, wall time it was reached): the close latency's starting points.
        self._passes: list[tuple[int, float]] = []
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
        self.counters.gaps += 1
        self.gaps.open(market, start)
        self._lost_gen.setdefault(market, set()).add(gen)

    def frames(self, items: Sequence[QueuedFrame], now: float | None = None) -> None:
        """Frames taken off the queue together at wall time ``now`` (default: the clock),
        in arrival order: ``(market, connection number, wall time received, frame)``.

        The frames of one socket are decoded into Arrow batches (trades, quotes) when they
        hold trades and quotes only (:class:`~market_assets.live.protocol.TradeDecoder`) and
        go through the rules together; the others event by event. Each socket's frames keep their order; the
        two sockets' trades meet only at the next :meth:`tick` (pricing, closing), so
        taking one market's frames before the other's changes nothing: the same result as
        one :meth:`frame` call per frame."""
        given = now is not None  # the caller's clock (frame(), replays in tests): keep to it
        now = time.monotonic() if now is None else now
        c = self.counters
        if c.first_frame_at is None and items:
            c.first_frame_at = min(wall for _, _, wall, _ in items)
        c.queue_wait.add(np.array([now - wall for _, _, wall, _ in items]))
        items = sorted(items, key=lambda x: STREAMS.index(x[0]))  # stable: order kept
        i = 0
        while i < len(items):
            market, gen = items[i][0], items[i][1]
            j = i + 1
            while j < len(items) and items[j][0] == market and items[j][1] == gen:
                j += 1
            run = items[i:j]
            fast = self.decoders[market].decode_with_quotes([x[3] for x in run])
            if fast is not None:
                self._fast(market, gen, [x[2] for x in run], fast, now)
            else:  # each frame on its own: the fast path for those it can take
                for _, _, wall, text in run:
                    self._frame(market, text, wall, gen, now, try_fast=len(run) > 1)
            i = j
        c.last_frame_done_at = now if given else time.monotonic()

    def frame(self, market: str, text: str | bytes, wall: float, gen: int = 0) -> None:
        """One frame from ``market``'s socket, received at wall time ``wall`` on connection
        number ``gen``."""
        self.frames([(market, gen, wall, text)], now=wall)

    def _fast(
        self,
        market: str,
        gen: int,
        walls: list[float],
        decoded: tuple[pa.RecordBatch, list[int], pa.RecordBatch],
        now: float,
    ) -> None:
        """Frames of trades and quotes, decoded together. Their quotes go into the book
        before their trades are taken (a trade is classified only at the next tick, once
        the quote stream has passed it, so the order within the frames does not matter)."""
        trades, counts, quotes = decoded
        self.counters.frames += len(walls)
        self.clock.heard(market, walls[-1])
        if quotes.num_rows and self.book is not None:
            self._quotes(market, quotes, walls[-1])
        if trades.num_rows:
            self._trades(market, pa.Table.from_batches([trades]), walls, counts, gen, now)

    def _frame(
        self, market: str, text: str | bytes, wall: float, gen: int, now: float, try_fast: bool
    ) -> None:
        """One frame; event by event (statuses, bad events) unless the fast decoder takes it
        and ``try_fast``."""
        fast = self.decoders[market].decode_with_quotes([text]) if try_fast else None
        if fast is not None:
            self._fast(market, gen, [wall], fast, now)
            return
        c = self.counters
        c.frames += 1
        try:
            events = protocol.decode_frame(text)
        except protocol.MalformedFrame as e:
            c.malformed["invalid_json"] += 1
            self._once("invalid_json", "%s: dropped a frame: %s", market, e)
            return
        try:
            decoded = protocol.decode_events(events, market)
        except Exception as e:  # noqa: BLE001 - one bad frame must not stop the run
            c.malformed["bad_frame"] += 1
            self._once("bad_frame", "%s: dropped a frame the decoder failed on: %r", market, e)
            return
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
            table = pa.Table.from_batches([trades])
            self._trades(market, table, [wall], [trades.num_rows], gen, now)

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
        self._new_quotes.append(quotes.select(list(NBBO_INPUT_COLUMNS)))
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

    def _trades(
        self,
        market: str,
        table: pa.Table,
        walls: list[float],
        counts: list[int],
        gen: int,
        now: float,
    ) -> None:
        """The trades of consecutive frames of one socket (``counts`` rows each, received
        at ``walls``), taken off the queue at ``now``."""
        c = self.counters
        frame_of = np.repeat(np.arange(len(counts)), counts)
        key = "ticker" if market == "stocks" else "underlying"
        mine = pc.fill_null(pc.equal(table.column(key), self.symbol), False)
        if not pc.all(mine).as_py():
            mask = mine.to_numpy(zero_copy_only=False)
            table, frame_of = table.filter(mine), frame_of[mask]
        if not table.num_rows:
            return
        table, frame_of = self._value_rules(market, table, frame_of)
        if not table.num_rows:
            return
        ts = pc.cast(table.column("sip_timestamp"), pa.int64()).to_numpy()
        first = ts[frame_of == frame_of[0]]  # the first frame holding trades
        if self._restarted:
            self._restarted = False
            self.gaps.close("restart", int(first.min()))
        lost = self._lost_gen.get(market)
        if lost:
            # The frames are taken in order but a loss is noticed when it happens: frames a
            # socket delivered before it went down may come after its loss.
            if min(lost) < gen:  # a later socket's first trades end the earlier ones' gap
                self.gaps.close(market, int(first.min()))
                lost = {g for g in lost if g >= gen}
            if gen in lost:  # this socket is down too: its gap starts after these trades
                if self.gaps.is_open(market):
                    self.gaps.move_start(market, int(ts.max()))
                else:
                    self.gaps.open(market, int(ts.max()))
            if lost:
                self._lost_gen[market] = lost
            else:
                del self._lost_gen[market]
        keep = ~self.clock.is_late(ts)
        late = int(np.count_nonzero(~keep))
        if late:
            c.late_dropped += late
        idx = np.flatnonzero(keep)
        fresh = self.dedup[market].first_seen(self._keys(market, table, ts, idx), ts[idx])
        c.duplicates += int(np.count_nonzero(~fresh))
        idx = idx[fresh]
        if idx.size < table.num_rows:
            table = table.take(pa.array(idx, pa.int64()))
            ts, frame_of = ts[idx], frame_of[idx]
        if not table.num_rows:
            return
        # Each frame moves its stream's time when it is taken (as one frame at a time would).
        cuts = np.flatnonzero(np.diff(frame_of)) + 1
        starts = np.r_[0, cuts]
        latest_per_frame = np.maximum.reduceat(ts, starts).tolist()
        for f, latest in zip(frame_of[starts].tolist(), latest_per_frame, strict=True):
            self.clock.observe(market, latest, walls[f])
            self._note_watermark(now)
        self.clock.heard(market, walls[-1])
        if market == "stocks":
            c.stock_trades += table.num_rows
            self.underlying.add(table)
            self.aggregator.add_stock(table)
        else:
            c.option_trades += table.num_rows
            self.pending.append(table)
            c.pending_options += table.num_rows

    def _keys(self, market: str, table: pa.Table, ts: np.ndarray, idx: np.ndarray) -> Any:
        """The duplicate keys of rows ``idx``: the batch's (ticker, sequence number), or
        (ticker, SIP time) without a sequence number. A sequence number that fits
        ``SEQ_BITS`` makes it one int (stocks: the number, every row is the symbol's;
        options: a number per contract, then the sequence number): an int64 array when
        every row's does."""
        seq = pc.cast(table.column("sequence_number"), pa.int64())
        q = pc.fill_null(seq, -1).to_numpy()
        packs = (q >= 0) & (q < 1 << SEQ_BITS)  # a trade's key has one form, always
        ints = (
            q if market == "stocks" else self._contract_ids(table.column("ticker")) << SEQ_BITS | q
        )
        if packs[idx].all():
            return ints[idx]
        tickers = table.column("ticker").to_pylist()
        seqs = seq.to_pylist()
        return [
            int(ints[i])
            if packs[i]
            else (tickers[i], seqs[i])
            if seqs[i] is not None
            else (tickers[i], int(ts[i]))
            for i in idx.tolist()
        ]

    def _contract_ids(self, tickers: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """A number per row for its contract, the same all run long."""
        enc = pc.dictionary_encode(tickers)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        ids = self._contract_id
        codes = np.array(
            [ids.setdefault(t, len(ids)) for t in enc.dictionary.to_pylist()], dtype=np.int64
        )
        return codes[enc.indices.to_numpy(zero_copy_only=False)]

    def _note_watermark(self, now: float) -> None:
        """Remember when (wall time) the watermark reached a new time, for the close
        latency: a window's latency runs from the first of these at or past its end."""
        wm = self.clock.peek(now)
        if not self._passes or wm > self._passes[-1][0]:
            self._passes.append((wm, now))

    def _value_rules(
        self, market: str, table: pa.Table, frame_of: np.ndarray
    ) -> tuple[pa.Table, np.ndarray]:
        """``table`` without the trades that break a value rule of the batch ingest
        (:func:`market_assets.core.trade_rules.find_violations`, for ``self.day``); those
        are counted per rule and the first of each rule is logged."""
        bad = find_violations(table, self.day)
        if not len(bad):
            return table, frame_of
        for reason in bad.reasons.to_pylist():
            rule = reason.split(":", 1)[0]
            self.counters.rejected[rule] += 1
            hint = "; live follows this day only (--date)" if rule == "sip_timestamp" else ""
            self._once(f"rule:{rule}", "%s: dropped a trade: %s%s", market, reason, hint)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[bad.rows] = False
        return table.filter(pa.array(keep)), frame_of[keep]

    # -- output -----------------------------------------------------------------------------
    def _price_until(self, until_ns: int) -> None:
        """Price (classify) and aggregate the pending option trades older than ``until_ns``."""
        if self._new_quotes and self.book is not None:
            # One delta pass per tick, not per frame (its cost is mostly per call).
            self.book.update(pa.Table.from_batches(self._new_quotes))
            self._new_quotes = []
        if not self.pending:
            return
        # One chunk: the trades left pending would otherwise keep every frame's chunk, and
        # each tick's filters cost per chunk.
        pending = pa.concat_tables(self.pending).combine_chunks()
        ts = pc.cast(pending.column("sip_timestamp"), pa.int64()).to_numpy()
        ready = ts < until_ns
        if not ready.any():
            self.pending = [pending]
            return
        now = pending.filter(pa.array(ready))
        rest = pending.filter(pa.array(~ready))
        self.pending = [rest] if rest.num_rows else []
        self.counters.pending_options = rest.num_rows
        priced = price_option_trades(now, self.underlying, self.params, self.rules)
        if self.book is not None:
            sides = self.book.classify(priced).column("aggressor_side")
            self.counters.aggressor.update(value_counter(sides))
            priced = priced.append_column("aggressor_side", sides)
        self.aggregator.add_options(priced)

    def tick(self, wall: float, until_ns: int | None = None) -> list[Closed]:
        """Price what can be priced and close every window the watermark has passed (none
        ending after ``until_ns``: a run that stops there writes no later window, however
        far one batch of frames moved the watermark)."""
        ready = self.clock.latest_ns("stocks")
        if self.book is not None:
            ready = min(ready, self.clock.latest_ns(OPTION_QUOTES))
        watermark = self.clock.watermark(wall)
        self._note_watermark(wall)
        self.counters.watermark_ns = watermark
        self.counters.latest_ns = self.clock.latest_ns()
        # An option trade is priced once the stock stream has passed its time (so its
        # as-of trade has arrived) and, with aggression, classified once the option quote
        # stream has too (so the NBBO in force has arrived); at the latest when its window
        # closes.
        self._price_until(max(ready - self.lateness_ns + 1, watermark))
        to = watermark if until_ns is None else min(watermark, until_ns)
        if to <= self.clock.frontier_ns:
            return []
        return self._close(to)

    def finish(self, until_ns: int | None = None) -> list[Closed]:
        """The run is over: close every window ending by ``until_ns`` (default: the latest
        SIP time seen)."""
        end = until_ns if until_ns is not None else self.clock.latest_ns()
        if end == NEVER:
            return []
        self._price_until(end)
        return self._close(end) if end > self.clock.frontier_ns else []

    def _close(self, to_ns: int) -> list[Closed]:
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
            self.counters.windows_written += self.store.last_rows
            self.counters.windows_skipped += n - self.store.last_rows
            self.counters.last_closed[w] = rows.slice(n - 1).to_pylist()[0]
            latencies = self._latencies(starts + window_ns(w), time.monotonic())
            # The windows written now: after a restart, some were on disk already.
            self.counters.close_latency.add(latencies[self.store.last_written])
            item = Closed(w, rows, latencies, written)
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
        self._passes = [p for p in self._passes if p[0] > frontier] or self._passes[-1:]
        return out

    def _latencies(self, ends_ns: np.ndarray, done: float) -> np.ndarray:
        """Seconds from the watermark reaching each end to ``done`` (NaN: never reached,
        the window closed because the run ended)."""
        if not self._passes:
            return np.full(ends_ns.size, np.nan)
        marks = np.array([p[0] for p in self._passes], dtype=np.int64)
        walls = np.array([p[1] for p in self._passes])
        k = np.searchsorted(marks, ends_ns, side="left")  # the first mark >= the end
        out = np.full(ends_ns.size, np.nan)
        hit = k < marks.size
        out[hit] = done - walls[k[hit]]
        return out


def _clock_text(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET")
