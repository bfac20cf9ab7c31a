# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Stock prints far from their ticker's day median: valid values that cannot be real.

A trade at 1e12 passes every value rule (:mod:`market_assets.core.trade_rules`) and would
still wreck a day's features. The rule (docs/data_quality.md), per ticker and day:

    a print is implausible when it is more than ``factor`` (10) times above or below the
    ticker's median price for the day, and more than ``tolerance`` ($0.01) away from it.

Prices are compared on a log scale in steps of 0.1% ("levels"), so a ticker's median is
kept as a histogram of levels: exact for the levels, bounded memory whatever the number
of trades, and a one-pass scan over a stored partition ordered by ticker (as Massive's
files are). The same definition marks rows held in memory (:func:`implausible_mask` for
one ticker, :func:`implausible_rows` for several), so a check and a filter always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STEP = math.log1p(0.001)  # one price level: 0.1%
LOWEST_PRICE, HIGHEST_PRICE = 1e-6, 1e9  # prices beyond are counted at these levels
_LO = math.floor(math.log(LOWEST_PRICE) / STEP)
_HI = math.floor(math.log(HIGHEST_PRICE) / STEP)


@dataclass(frozen=True)
class PriceRule:
    """``factor``: how many times above or below the median a print may be;
    ``tolerance``: a print this close to the median (in price units) always passes, so
    sub-penny tickers moving a few ticks are not flagged."""

    factor: float = 10.0
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if not self.factor > 1 or not self.tolerance >= 0:
            raise ValueError(f"need factor > 1 and tolerance >= 0, got {self}")

    @property
    def max_levels(self) -> int:
        return round(math.log(self.factor) / STEP)


def price_levels(prices: np.ndarray) -> np.ndarray:
    """0.1% levels of positive finite prices (int64, clipped to the supported range);
    -1 - ``_HI`` marks a price that is not a positive finite number."""
    prices = np.asarray(prices, dtype=np.float64)
    valid = np.isfinite(prices) & (prices > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = np.floor(np.log(np.where(valid, prices, 1.0)) / STEP)
    levels = np.clip(levels, _LO, _HI).astype(np.int64)
    levels[~valid] = _INVALID
    return levels


_INVALID = -1 - _HI


def level_price(levels: np.ndarray | int) -> np.ndarray | float:
    """The price at the middle of a level."""
    return np.exp((np.asarray(levels, dtype=np.float64) + 0.5) * STEP)


def implausible_levels(levels: np.ndarray, median_level: int, rule: PriceRule) -> np.ndarray:
    """True where a print at ``levels`` is implausible for a ticker whose median is at
    ``median_level`` (invalid prices are always implausible)."""
    far = np.abs(levels - median_level) > rule.max_levels
    apart = np.abs(level_price(levels) - level_price(median_level)) > rule.tolerance
    return (far & apart) | (levels == _INVALID)


def implausible_mask(prices: np.ndarray, rule: PriceRule = PriceRule()) -> np.ndarray:
    """One ticker's prices for a day, all in memory: True for its implausible prints."""
    levels = price_levels(prices)
    valid = levels[levels != _INVALID]
    if not len(valid):
        return np.ones(len(levels), dtype=bool)
    k = (len(valid) - 1) // 2  # the lower median, as the scan computes it
    return implausible_levels(levels, int(np.partition(valid, k)[k]), rule)


def implausible_rows(
    tickers: pa.Array | pa.ChunkedArray, prices: np.ndarray, rule: PriceRule = PriceRule()
) -> np.ndarray:
    """Several tickers' prints held in memory, in any order (e.g. the underlyings a greeks
    or features step loads): True for the implausible ones, each judged against its own
    ticker's median, by the same definition as the scan."""
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks()
    codes = pc.dictionary_encode(tickers).indices.to_numpy(zero_copy_only=False)
    levels = price_levels(prices)
    out = levels == _INVALID
    order = np.lexsort((levels, codes))  # by ticker, then level: invalid ones first
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds):
        valid = group[levels[group] != _INVALID]  # already sorted by level
        if len(valid):
            median = int(levels[valid[(len(valid) - 1) // 2]])
            out[group] = implausible_levels(levels[group], median, rule)
    return out


@dataclass(frozen=True)
class ImplausiblePrint:
    ticker: str
    row: int  # 0-based position in the scanned stream (the stored partition's row order)
    price: float
    median: float  # the ticker's median price, to 0.1%


@dataclass
class ImplausiblePrices:
    """What a scan found: counts, the tickers with implausible prints (ticker -> count)
    and up to ``max_examples`` example prints, the most extreme of each ticker first."""

    rule: PriceRule
    rows: int = 0
    tickers: int = 0
    implausible: int = 0
    by_ticker: dict[str, int] = field(default_factory=dict)
    examples: list[ImplausiblePrint] = field(default_factory=list)


_EXTREMES = 3  # lowest and highest prints kept per ticker as example candidates


class _TickerRun:
    """One ticker's prints so far: a histogram of levels and its extreme prints."""

    def __init__(self, ticker: str, hist: np.ndarray):
        self.ticker = ticker
        self.hist = hist  # shared by the runs of a scan, all zeros when a run starts
        self.lo, self.hi = _HI, _LO
        self.valid = 0
        self.invalid = 0  # prints that are not positive finite numbers
        self.invalid_rows: list[tuple[int, float]] = []  # the first few of them
        self.extremes: list[tuple[int, float, int]] = []  # (level, price, row)

    def add(self, prices: np.ndarray, first_row: int) -> None:
        levels = price_levels(prices)
        bad = levels == _INVALID
        if bad.any():
            self.invalid += int(bad.sum())
            room = _EXTREMES - len(self.invalid_rows)
            for i in np.flatnonzero(bad)[:room]:
                self.invalid_rows.append((first_row + int(i), float(prices[i])))
            keep = np.flatnonzero(~bad)
            levels, prices, rows = levels[keep], prices[keep], first_row + keep
        else:
            rows = first_row + np.arange(len(levels))
        if not len(levels):
            return
        lo, hi = int(levels.min()), int(levels.max())
        self.hist[lo - _LO : hi - _LO + 1] += np.bincount(levels - lo, minlength=hi - lo + 1)
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.valid += len(levels)
        order = np.argsort(levels, kind="stable")
        picks = np.unique(np.r_[order[:_EXTREMES], order[-_EXTREMES:]])
        self.extremes += [(int(levels[i]), float(prices[i]), int(rows[i])) for i in picks]
        self.extremes.sort()
        if len(self.extremes) > 2 * _EXTREMES:
            self.extremes = self.extremes[:_EXTREMES] + self.extremes[-_EXTREMES:]

    def finish(self, rule: PriceRule, out: ImplausiblePrices, max_examples: int) -> None:
        out.tickers += 1
        count, median, far = self.invalid, math.nan, []
        if self.valid:
            span = self.hist[self.lo - _LO : self.hi - _LO + 1]
            level = self.lo + int(np.searchsorted(np.cumsum(span), (self.valid + 1) // 2))
            median = float(level_price(level))
            count += int(
                span[implausible_levels(np.arange(self.lo, self.hi + 1), level, rule)].sum()
            )
            span[:] = 0  # leave the shared histogram clean for the next ticker
            flagged = implausible_levels(np.array([e[0] for e in self.extremes]), level, rule)
            far = sorted(
                (e for e, f in zip(self.extremes, flagged, strict=True) if f),
                key=lambda e: -abs(e[0] - level),
            )
        if not count:
            return
        out.implausible += count
        out.by_ticker[self.ticker] = count
        examples = [ImplausiblePrint(self.ticker, r, p, median) for r, p in self.invalid_rows]
        examples += [ImplausiblePrint(self.ticker, r, p, median) for _, p, r in far]
        out.examples += examples[: max(0, max_examples - len(out.examples))]


def scan_implausible_prices(
    trades: Iterable[pa.RecordBatch | pa.Table],
    rule: PriceRule = PriceRule(),
    max_examples: int = 20,
) -> ImplausiblePrices:
    """Count the implausible prints of a day's stock trades (``ticker`` and ``price``
    columns), read once in order. Every ticker's rows must be contiguous (Massive's files
    and the stored partitions are ordered by ticker); a ticker seen again after another
    one raises ValueError, since its median would be wrong."""
    out = ImplausiblePrices(rule)
    hist = np.zeros(_HI - _LO + 1, dtype=np.int64)
    run: _TickerRun | None = None
    done: set[str] = set()
    row = 0
    for part in trades:
        for batch in part.to_batches() if isinstance(part, pa.Table) else [part]:
            n = batch.num_rows
            if not n:
                continue
            tickers = batch.column("ticker")
            if pa.types.is_dictionary(tickers.type):
                tickers = tickers.cast(pa.string())
            prices = np.asarray(batch.column("price").to_numpy(zero_copy_only=False), np.float64)
            changes = pc.not_equal(tickers.slice(1), tickers.slice(0, n - 1))
            starts = [0, *(np.flatnonzero(changes.to_numpy(zero_copy_only=False)) + 1).tolist()]
            for start, end in zip(starts, [*starts[1:], n], strict=True):
                ticker = tickers[start].as_py()
                if run is None or ticker != run.ticker:
                    if run is not None:
                        run.finish(rule, out, max_examples)
                        done.add(run.ticker)
                    if ticker in done:
                        raise ValueError(
                            f"trades are not ordered by ticker: {ticker} appears again at "
                            f"row {row + start:,}"
                        )
                    run = _TickerRun(ticker, hist)
                run.add(prices[start:end], row + start)
            out.rows += n
            row += n
    if run is not None:
        run.finish(rule, out, max_examples)
    return out
