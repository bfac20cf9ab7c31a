# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Incremental window features: trades go in as they arrive, closed windows come out.

A :class:`WindowAggregator` is built for one symbol, one trading day's session and one or
more window sizes. Stock trades (STOCK_TRADES columns) and greeked option trades
(OPTION_TRADES_GREEKS columns) are added as Arrow batches in event-time order;
:meth:`WindowAggregator.close_until` closes every window that ends at or before a
watermark, each exactly once (a window without trades is a row too), computed by
:func:`core.windows.rows_from_cells` from exactly that window's trades, so the rows equal
the whole-day ones bit for bit however the trades were batched. Trades are held only until
the watermark passes the end of their cell (a slice as long as the window sizes' greatest
common divisor, 1m by default); the cells of windows not yet closed keep their counts,
prices and sample values (8 bytes a stock trade, 8-32 an option trade): memory is bounded
by the largest open window's samples, not by the day.

The watermark is a promise that no trade older than it will come. A trade that arrives
older than the last watermark anyway is dropped and counted in ``late_dropped`` (for every
window size, so the sizes keep adding up); an emitted window is never reopened.

:func:`aggregate_in_time_order` drives an aggregator from two time-ordered streams (the
batch assets' path); the live path calls ``add_*`` and ``close_until`` itself.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import window_ns
from market_assets.core.cells import CellChunk, summarize
from market_assets.core.conditions import ConditionRules
from market_assets.core.statistics import StatsOptions
from market_assets.core.windows import (
    OptionTrades,
    StockTrades,
    Trades,
    rows_from_cells,
    window_grid,
)

_END_OF_TIME = np.iinfo(np.int64).max
# Buffered chunks are merged into one once there are this many (the live path adds many
# small batches; each close scans every chunk).
_MAX_CHUNKS = 32


C = TypeVar("C", StockTrades, OptionTrades)


class OutOfOrderError(ValueError):
    """A stream handed to :func:`aggregate_in_time_order` went back in time."""


class _Buffer(Generic[C]):
    """Time-sorted chunks of trades of the windows that are still open."""

    def __init__(self, cls: type[C]) -> None:
        self.cls = cls
        self.chunks: list[C] = []

    def add(self, trades: C) -> None:
        if len(trades):
            self.chunks.append(trades.ordered())
        if len(self.chunks) > _MAX_CHUNKS:
            self._merge()

    def _merge(self) -> None:
        """All chunks as one, built column by column, each chunk's column released once
        copied: the buffer is never held twice (a 30m window at the open is its largest)."""
        columns = [{name: getattr(c, name) for name in self.cls.DTYPES} for c in self.chunks]
        self.chunks = []
        merged = {
            name: np.concatenate([col.pop(name) for col in columns]) for name in self.cls.DTYPES
        }
        self.chunks = [self.cls(**merged).ordered()]

    def between(self, start: int, end: int) -> C:
        """The buffered trades with ``start <= ts < end``, ordered."""
        inside = sum(c.count_between(start, end) for c in self.chunks)
        if len(self.chunks) > 1 and 2 * inside > len(self):
            # Most of the buffer (a long window closing): merge the chunks into one and
            # slice it, so the window is not held twice (chunks + a copy) while its rows
            # are computed.
            self._merge()
        parts = [p for p in (c.between(start, end) for c in self.chunks) if len(p)]
        if len(parts) == 1:
            return parts[0]
        return self.cls.concat(parts).ordered() if parts else self.cls.empty()

    def drop_before(self, ts: int) -> None:
        """Forget the trades older than ``ts``. A chunk mostly dropped is copied, so that
        the memory of its dropped rows is given back (a slice would keep it all alive)."""
        kept: list[C] = []
        for c in self.chunks:
            if c.ts[-1] < ts:
                continue
            if c.ts[0] < ts:
                rest = c.between(ts, _END_OF_TIME)
                c = rest.copy() if 2 * len(rest) < len(c) else rest
            kept.append(c)
        self.chunks = kept

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)


class WindowAggregator:
    """Per-window features of one symbol's trading day, for several window sizes at once."""

    def __init__(
        self,
        symbol: str,
        windows: Sequence[str],
        day: dt.date,
        session: str,
        rules: ConditionRules,
        stats: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
        include_aggression: bool = False,
    ) -> None:
        if not windows:
            raise ValueError("at least one window size is needed")
        self.symbol = symbol
        self.rules = rules
        self.stats = stats
        self.include_aggression = include_aggression
        self.grids = {w: window_grid(day, w, session) for w in windows}
        self.window_ns = {w: window_ns(w) for w in windows}
        self._next = dict.fromkeys(windows, 0)  # first window of each size not yet emitted
        self._span = (
            min(int(g[0]) for g in self.grids.values() if g.size),
            max(int(g[-1]) + self.window_ns[w] for w, g in self.grids.items() if g.size),
        )
        # Trades are summarised per cell as soon as the watermark passes its end; every
        # window (clock-aligned, its length a multiple of the cell's) is whole cells.
        self.cell_ns = math.gcd(*self.window_ns.values())
        self._cells = np.arange(self._span[0], self._span[1], self.cell_ns, dtype=np.int64)
        self._cells_done = 0  # cells summarised so far
        self._chunks: list[CellChunk] = []
        self._stock = _Buffer(StockTrades)
        self._options = _Buffer(OptionTrades)
        self.watermark_ns = np.iinfo(np.int64).min
        self.late_dropped = 0

    # -- input ----------------------------------------------------------------------------
    def add_stock(self, trades: Trades) -> None:
        """Add stock trades (STOCK_TRADES columns; other tickers are ignored)."""
        self._stock.add(self._admit(StockTrades.from_arrow(trades, self.symbol, self.rules)))

    def add_options(self, trades: Trades) -> None:
        """Add greeked option trades (OPTION_TRADES_GREEKS columns; other underlyings ignored)."""
        self._options.add(self._admit(OptionTrades.from_arrow(trades, self.symbol)))

    def _admit(self, trades: C) -> C:
        """The trades inside the session's windows that are not late; late ones counted."""
        ts = trades.ts
        late = ts < self.watermark_ns
        keep = ~late & (ts >= self._span[0]) & (ts < self._span[1])
        self.late_dropped += int(np.count_nonzero(late & (ts >= self._span[0])))
        return trades if keep.all() else trades.take(np.flatnonzero(keep))

    # -- output ---------------------------------------------------------------------------
    def close_until(self, watermark_ns: int) -> dict[str, pa.Table]:
        """Rows of every window (of every size) ending at or before ``watermark_ns`` that was
        not emitted yet, per window size (sizes with no newly closed window are left out)."""
        self.watermark_ns = max(self.watermark_ns, int(watermark_ns))
        self._summarize_cells()
        out: dict[str, pa.Table] = {}
        for w, grid in self.grids.items():
            wns = self.window_ns[w]
            i = self._next[w]
            k = int(np.searchsorted(grid, self.watermark_ns - wns, side="right"))
            if k <= i:
                continue
            out[w] = rows_from_cells(
                self._chunks,
                grid[i:k],
                wns,
                self.symbol,
                w,
                self.stats,
                self.include_aggression,
            )
            self._next[w] = k
        if out:
            keep_from = min(
                (int(g[self._next[w]]) for w, g in self.grids.items() if self._next[w] < g.size),
                default=_END_OF_TIME,
            )
            self._chunks = [
                c.since(keep_from) for c in self._chunks if int(c.starts[-1]) >= keep_from
            ]
        return out

    def _summarize_cells(self) -> None:
        """Summarise the cells the watermark has passed and forget their trades."""
        k = int(np.searchsorted(self._cells, self.watermark_ns - self.cell_ns, side="right"))
        if k <= self._cells_done:
            return
        starts = self._cells[self._cells_done : k]
        lo, hi = int(starts[0]), int(starts[-1]) + self.cell_ns
        chunk = summarize(
            self._stock.between(lo, hi),
            self._options.between(lo, hi),
            starts,
            self.cell_ns,
            self.include_aggression,
        )
        self._chunks.append(chunk)
        self._stock.drop_before(hi)
        self._options.drop_before(hi)
        self._cells_done = k

    def close_all(self) -> dict[str, pa.Table]:
        """Close every remaining window of the session (the day is over)."""
        return self.close_until(_END_OF_TIME)

    @property
    def buffered_trades(self) -> int:
        """Stock + option trades of the open windows: held as trades until their cell is
        complete, then as the cell's summary."""
        summarised = sum(c.trades for c in self._chunks)
        return len(self._stock) + len(self._options) + summarised


def _max_ts(batch: Trades) -> int | None:
    if not batch.num_rows:
        return None
    return int(pc.max(pc.cast(batch.column("sip_timestamp"), pa.int64())).as_py())


def _min_ts(batch: Trades) -> int:
    return int(pc.min(pc.cast(batch.column("sip_timestamp"), pa.int64())).as_py())


def aggregate_in_time_order(
    aggregator: WindowAggregator,
    stock: Iterable[Trades],
    options: Iterable[Trades],
) -> Iterator[dict[str, pa.Table]]:
    """Feed two streams, each holding only the symbol's trades in sip_timestamp order, and
    yield the windows closed along the way (then the rest once both end).

    The stream that is behind is read next; the watermark is the older of the two streams'
    latest times, so memory stays bounded by the open windows plus one batch per stream.
    Raises :class:`OutOfOrderError` when a batch holds a trade older than the watermark.
    """
    streams = {"stock": iter(stock), "options": iter(options)}
    add = {"stock": aggregator.add_stock, "options": aggregator.add_options}
    latest = {"stock": np.iinfo(np.int64).min, "options": np.iinfo(np.int64).min}
    while streams:
        name = min(streams, key=lambda s: latest[s])
        batch = next(streams[name], None)
        if batch is None:
            del streams[name]
            latest[name] = _END_OF_TIME
        else:
            top = _max_ts(batch)
            if top is None:
                continue
            if _min_ts(batch) < aggregator.watermark_ns:
                raise OutOfOrderError(
                    f"{name} trades are not in sip_timestamp order: a trade at "
                    f"{_min_ts(batch)} ns arrived after trades up to {aggregator.watermark_ns} "
                    "ns were closed"
                )
            add[name](batch)
            latest[name] = max(latest[name], top)
        watermark = min(latest.values())
        if streams and watermark > np.iinfo(np.int64).min:
            closed = aggregator.close_until(watermark)
            if closed:
                yield closed
    closed = aggregator.close_all()
    if closed:
        yield closed
