# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Cells: summaries of consecutive time slices of a symbol's trades, from which windows of
any size are put together exactly (step 2 of :mod:`core.windows`).

A cell is ``[start, start + cell_ns)``. Its summary keeps counts (trades, calls, puts, the
intrinsic-value comparisons, unclassified trades), its open/high/low/close and the values
of every statistic sample, and nothing else per trade: a stock trade costs 8 bytes (its
dollar value) and an option trade 8 to 32 (its dadvv, gadvv, premium), instead of the
trades' columns. A window made of whole cells gets exactly the numbers its trades give:
counts add up, the open is the first cell's open, high and low reduce, and the statistics
depend only on the multiset of sample values (``core.statistics`` sorts first).

Cells are summarised in chunks (:class:`CellChunk`: the cells completed at one time, in
order); a window may span several chunks (:func:`window_cells`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from market_assets.core.window_trades import BUY, SELL, UNKNOWN, OptionTrades, StockTrades

STOCK_COUNTS = ("underlying_trades", "open_close", "high_low")
OPTION_COUNTS = (
    "option_trades",
    "call_trades",
    "put_trades",
    "puts_priced",  # puts with an underlying price (so an intrinsic value)
    "calls_priced",
    "puts_below",  # priced puts below intrinsic value
    "puts_above",
    "calls_above",
    "unclassified",  # no aggressor side (aggression features only)
)
PRICES = ("open", "high", "low", "close")
CALL_PREMIUM = "calls_premium"  # not a statistic sample: only its sorted total is used


def _bounds(ts: np.ndarray, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(ts, starts, side="left"), np.searchsorted(ts, starts + length, "left")


def _count(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    cs = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    return cs[hi] - cs[lo]


def _reduce_slices(
    ufunc: np.ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``ufunc.reduce(values[lo[i]:hi[i]])`` per slice, NaN where the slice is empty."""
    if lo.size == 0:
        return np.zeros(0)
    # reduceat over interleaved (lo, hi) offsets reduces [lo, hi) at the even positions; a
    # sentinel keeps every offset a valid index.
    ext = np.append(values, 0.0)
    res = ufunc.reduceat(ext, np.column_stack((lo, hi)).ravel())[::2]
    return np.where(hi > lo, res, np.nan)


@dataclass(frozen=True)
class Ragged:
    """Per cell, a variable number of values: cell ``k`` holds
    ``values[offsets[k]:offsets[k + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Ragged:
        """The values where ``mask`` holds in each slice ``[lo[k], hi[k])``."""
        if lo.size and np.all(hi[:-1] <= lo[1:]):  # slices in order, not overlapping
            inside = np.zeros(values.size + 1, dtype=np.int64)
            np.add.at(inside, lo, 1)
            np.add.at(inside, hi, -1)
            keep = mask & (np.cumsum(inside[:-1]) > 0)
            counts = _count(keep, lo, hi)
            picked = values[keep]
        else:
            parts = [values[a:b][mask[a:b]] for a, b in zip(lo, hi, strict=True)]
            counts = np.array([p.size for p in parts], dtype=np.int64)
            picked = np.concatenate(parts) if parts else np.zeros(0)
        offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        return cls(picked, offsets)

    def cells(self, a: int, b: int) -> np.ndarray:
        """The values of cells ``a`` to ``b - 1`` (a view)."""
        return self.values[self.offsets[a] : self.offsets[b]]

    def since(self, a: int, copy: bool) -> Ragged:
        """Cells ``a`` onwards (their values copied when ``copy``)."""
        values = self.values[self.offsets[a] :]
        return Ragged(values.copy() if copy else values, self.offsets[a:] - self.offsets[a])


def _sample(values: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Ragged:
    # A non-finite value (never expected for greeks_status "ok") would poison every statistic.
    return Ragged.of(values, mask & np.isfinite(values), lo, hi)


@dataclass(frozen=True)
class CellChunk:
    """Summaries of cells starting at ``starts`` (increasing), all of one length."""

    starts: np.ndarray
    counts: dict[str, np.ndarray]  # int64 per cell
    prices: dict[str, np.ndarray]  # float64 per cell, NaN where no trade qualifies
    samples: dict[str, Ragged]

    def __len__(self) -> int:
        return int(self.starts.size)

    @property
    def trades(self) -> int:
        """Stock + option trades the cells summarise."""
        return int(self.counts["underlying_trades"].sum() + self.counts["option_trades"].sum())

    def since(self, ts: int) -> CellChunk:
        """The cells starting at or after ``ts``. Values are copied when most are dropped,
        so that the dropped cells' memory is given back (a view would keep it alive)."""
        a = int(np.searchsorted(self.starts, ts, side="left"))
        copy = 2 * a > len(self)
        return CellChunk(
            self.starts[a:],
            {k: v[a:] for k, v in self.counts.items()},
            {k: v[a:] for k, v in self.prices.items()},
            {k: r.since(a, copy) for k, r in self.samples.items()},
        )


def summarize(
    stock: StockTrades,
    options: OptionTrades,
    starts: np.ndarray,
    length: int,
    include_aggression: bool,
) -> CellChunk:
    """The cells ``[start, start + length)`` of ordered trades (``.ordered()``)."""
    starts = np.asarray(starts, dtype=np.int64)
    counts, prices, samples = _stock_cells(stock, starts, length)
    opt_counts, opt_samples = _option_cells(options, starts, length, include_aggression)
    return CellChunk(starts, counts | opt_counts, prices, samples | opt_samples)


def _stock_cells(
    s: StockTrades, starts: np.ndarray, length: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Ragged]]:
    lo, hi = _bounds(s.ts, starts, length)
    pos = np.flatnonzero(s.open_close)
    a, b = np.searchsorted(pos, lo), np.searchsorted(pos, hi)
    open_close = (b - a).astype(np.int64)
    has = b > a
    open_, close = np.full(starts.size, np.nan), np.full(starts.size, np.nan)
    open_[has] = s.price[pos[a[has]]]
    close[has] = s.price[pos[b[has] - 1]]
    hl_price = s.price[s.high_low]
    a, b = _bounds(s.ts[s.high_low], starts, length)
    counts = {
        "underlying_trades": (hi - lo).astype(np.int64),
        "open_close": open_close,
        "high_low": (b - a).astype(np.int64),
    }
    prices = {
        "open": open_,
        "high": _reduce_slices(np.maximum, hl_price, a, b),
        "low": _reduce_slices(np.minimum, hl_price, a, b),
        "close": close,
    }
    return counts, prices, {"underlying_dollar_value": _sample(s.dollar, s.volume, lo, hi)}


def _option_cells(
    o: OptionTrades, starts: np.ndarray, length: int, include_aggression: bool
) -> tuple[dict[str, np.ndarray], dict[str, Ragged]]:
    lo, hi = _bounds(o.ts, starts, length)
    put_s, call_s = o.is_put & o.has_s, o.is_call & o.has_s
    unknown = o.side == UNKNOWN if include_aggression else np.zeros(o.ts.size, dtype=bool)
    counts = {
        "option_trades": (hi - lo).astype(np.int64),
        "call_trades": _count(o.is_call, lo, hi),
        "put_trades": _count(o.is_put, lo, hi),
        "puts_priced": _count(put_s, lo, hi),
        "calls_priced": _count(call_s, lo, hi),
        "puts_below": _count(put_s & o.below, lo, hi),
        "puts_above": _count(put_s & o.above, lo, hi),
        "calls_above": _count(call_s & o.above, lo, hi),
        "unclassified": _count(unknown, lo, hi),
    }
    ok_call, ok_put = o.is_call & o.ok, o.is_put & o.ok
    samples = {
        CALL_PREMIUM: Ragged.of(o.dollar, o.is_call, lo, hi),
        "puts_dadvv": _sample(o.dadvv, ok_put, lo, hi),
        "puts_gadvv": _sample(o.gadvv, ok_put, lo, hi),
        "calls_dadvv": _sample(o.dadvv, ok_call, lo, hi),
        "calls_gadvv": _sample(o.gadvv, ok_call, lo, hi),
    }
    if include_aggression:
        buy, sell = o.side == BUY, o.side == SELL
        samples["calls_dadvv_agg_buy"] = _sample(o.dadvv, ok_call & buy, lo, hi)
        samples["calls_dadvv_agg_sell"] = _sample(o.dadvv, ok_call & sell, lo, hi)
        samples["puts_dadvv_agg_buy"] = _sample(o.dadvv, ok_put & buy, lo, hi)
        samples["puts_dadvv_agg_sell"] = _sample(o.dadvv, ok_put & sell, lo, hi)
    return counts, samples


# --- windows from cells --------------------------------------------------------------------


@dataclass(frozen=True)
class WindowCells:
    """The cells of one window: ``(chunk, first, end)`` cell ranges, in time order."""

    parts: list[tuple[CellChunk, int, int]]

    def count(self, name: str) -> int:
        return int(sum(int(c.counts[name][a:b].sum()) for c, a, b in self.parts))

    def values(self, sample: str) -> np.ndarray:
        """The window's values of a sample, as a fresh array of their own."""
        parts = [c.samples[sample].cells(a, b) for c, a, b in self.parts]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _prices(self, price: str, count: str) -> np.ndarray:
        """``price`` of the window's cells where ``count`` is positive, in time order."""
        parts = [c.prices[price][a:b][c.counts[count][a:b] > 0] for c, a, b in self.parts]
        return np.concatenate(parts) if parts else np.zeros(0)

    def ohlc(self) -> list[float]:
        """Open (the first cell's that has one), high, low, close (the last cell's)."""
        opens, closes = self._prices("open", "open_close"), self._prices("close", "open_close")
        highs, lows = self._prices("high", "high_low"), self._prices("low", "high_low")
        nan = float("nan")
        return [
            float(opens[0]) if opens.size else nan,
            float(np.maximum.reduce(highs)) if highs.size else nan,
            float(np.minimum.reduce(lows)) if lows.size else nan,
            float(closes[-1]) if closes.size else nan,
        ]


def window_cells(chunks: Sequence[CellChunk], start: int, end: int) -> WindowCells:
    """The cells starting in ``[start, end)`` across ``chunks`` (in time order)."""
    parts = []
    for c in chunks:
        a, b = np.searchsorted(c.starts, (start, end), side="left")
        if b > a:
            parts.append((c, int(a), int(b)))
    return WindowCells(parts)
