# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Stock prints far from their ticker's day median: valid values that cannot be real.

A trade at 1e12 passes every value rule (:mod:`market_assets.core.trade_rules`) and would
still wreck a day's features. The rule (docs/data_quality.md), per ticker and day:

    a print is implausible when it is more than ``factor`` (10) times above or below the
    ticker's median price for the day, and more than ``tolerance`` ($0.01) away from it.

Prices are compared on a log scale in steps of 0.1% ("levels"), so a ticker's median is
kept as counts of levels: exact for the levels, and bounded memory whatever the number of
trades. Two ways to find the medians, one definition (:func:`implausible_levels` against
the lower median level):

- :class:`ImplausiblePriceScan`: one pass over a partition ordered by ticker (as Massive's
  files and the stored partitions are), one ticker's histogram at a time; what the
  ingest's in-step check runs on the batches as they are written.
- :class:`DayMedians`: rows in any order, counts of (ticker, level) pairs; what marks rows
  held or streamed by a downstream step (:func:`implausible_rows`,
  :func:`drop_implausible`, :class:`PlausibleRows`), and the check's fallback when a partition is not ordered
  by ticker (:func:`scan_implausible_prices_any_order`).

So the check and the filters of the greeks and features always agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

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


def implausible_levels(
    levels: np.ndarray, median_level: int | np.ndarray, rule: PriceRule
) -> np.ndarray:
    """True where a print at ``levels`` is implausible for a ticker whose median is at
    ``median_level`` (one level, or one per print); invalid prices are always implausible."""
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
    tickers: pa.Array | pa.ChunkedArray,
    prices: np.ndarray | pa.Array | pa.ChunkedArray,
    rule: PriceRule = PriceRule(),
) -> np.ndarray:
    """Several tickers' prints held in memory, in any order (e.g. the underlyings a greeks
    step loads): True for the implausible ones, each judged against its own ticker's
    median, by the same definition as the scan."""
    prices = _float64(prices)
    medians = DayMedians(rule)
    step = 1 << 20  # rows at a time: the temporaries stay small whatever the day
    for at in range(0, len(prices), step):
        medians.update(tickers.slice(at, step), prices[at : at + step])
    out = np.zeros(len(prices), dtype=bool)
    for at in range(0, len(prices), step):
        out[at : at + step] = medians.implausible(tickers.slice(at, step), prices[at : at + step])
    return out


def _text(tickers: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks()
    return tickers.cast(pa.string()) if pa.types.is_dictionary(tickers.type) else tickers


def _float64(prices: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(prices, pa.Array | pa.ChunkedArray):
        prices = prices.to_numpy(zero_copy_only=False)  # a null price becomes nan
    return np.asarray(prices, dtype=np.float64)


class DayMedians:
    """Each ticker's median price level for the day, from (ticker, price) rows fed in any
    order; then marks rows against those medians.

    Holds counts of (ticker, level) pairs, so memory is bounded by the levels a ticker's
    day spans (about 100 for a 10% move; at most 34,557), not by its number of trades.
    Prices that are not positive finite numbers do not count toward a median.
    """

    _COMPACT_ROWS = 1 << 16

    def __init__(self, rule: PriceRule = PriceRule()) -> None:
        self.rule = rule
        self._parts: list[pa.Table] = []
        self._held = 0
        self._compact_at = self._COMPACT_ROWS
        self._medians: tuple[pa.Array, np.ndarray] | None = None

    @classmethod
    def of(
        cls, rows: Iterable[pa.RecordBatch | pa.Table], rule: PriceRule = PriceRule()
    ) -> DayMedians:
        """The medians of ``rows`` (``ticker`` and ``price`` columns), read once."""
        medians = cls(rule)
        for batch in _batches(rows):
            medians.update(batch.column("ticker"), batch.column("price"))
        return medians

    def update(
        self, tickers: pa.Array | pa.ChunkedArray, prices: np.ndarray | pa.Array | pa.ChunkedArray
    ) -> None:
        """Count one batch of prints."""
        levels = price_levels(_float64(prices))
        valid = levels != _INVALID
        rows = pa.table({"ticker": _text(tickers), "level": levels}).filter(pa.array(valid))
        if not rows.num_rows:
            return
        self._add(rows.group_by(["ticker", "level"]).aggregate([("level", "count")]))

    def _add(self, counts: pa.Table) -> None:
        self._parts.append(counts.rename_columns(["ticker", "level", "n"]))
        self._held += counts.num_rows
        self._medians = None
        if self._held > self._compact_at:
            self._compact()
            self._compact_at = max(self._COMPACT_ROWS, 2 * self._held)

    def _compact(self) -> pa.Table:
        if len(self._parts) != 1:
            merged = (
                pa.concat_tables(self._parts)
                .group_by(["ticker", "level"])
                .aggregate([("n", "sum")])
            )
            self._parts = [merged.rename_columns(["ticker", "level", "n"])]
            self._held = self._parts[0].num_rows
        return self._parts[0]

    def medians(self) -> tuple[pa.Array, np.ndarray]:
        """The tickers seen with a valid price (sorted) and their lower median levels."""
        if self._medians is not None:
            return self._medians
        if not self._parts:
            self._medians = (pa.array([], pa.string()), np.array([], dtype=np.int64))
            return self._medians
        counts = self._compact().sort_by([("ticker", "ascending"), ("level", "ascending")])
        tickers = counts.column("ticker").combine_chunks()
        levels = counts.column("level").to_numpy()
        cumulative = np.cumsum(counts.column("n").to_numpy())
        n = len(tickers)
        changes = pc.not_equal(tickers.slice(1), tickers.slice(0, n - 1))
        first = np.r_[0, np.flatnonzero(changes.to_numpy(zero_copy_only=False)) + 1]
        last = np.r_[first[1:], n] - 1
        before = cumulative[first] - counts.column("n").to_numpy()[first]
        total = cumulative[last] - before
        # The lower median: the ((total + 1) // 2)-th print of the ticker, as the scan counts.
        at = np.searchsorted(cumulative, before + (total + 1) // 2, side="left")
        self._medians = (tickers.take(pa.array(first)), levels[at])
        return self._medians

    def median_levels(self) -> dict[str, int]:
        """Ticker -> its lower median level."""
        names, levels = self.medians()
        return dict(zip(names.to_pylist(), levels.tolist(), strict=True))

    def implausible(
        self, tickers: pa.Array | pa.ChunkedArray, prices: np.ndarray | pa.Array | pa.ChunkedArray
    ) -> np.ndarray:
        """True for the implausible prints among these rows, each against its ticker's
        median. A ticker without a median (no valid price fed) has only implausible rows."""
        names, median_levels = self.medians()
        levels = price_levels(_float64(prices))
        at = pc.fill_null(pc.index_in(_text(tickers), value_set=names), -1)
        at = at.to_numpy(zero_copy_only=False).astype(np.int64)
        known = at >= 0
        out = np.ones(len(levels), dtype=bool)
        out[known] = implausible_levels(levels[known], median_levels[at[known]], self.rule)
        return out


Rows = TypeVar("Rows", pa.RecordBatch, pa.Table)


def drop_implausible(rows: Rows, medians: DayMedians) -> tuple[Rows, int]:
    """``rows`` (``ticker`` and ``price`` columns) without their implausible prints, and
    how many were dropped."""
    if not rows.num_rows:
        return rows, 0
    bad = medians.implausible(rows.column("ticker"), rows.column("price"))
    dropped = int(bad.sum())
    return (rows.filter(pa.array(~bad)) if dropped else rows), dropped


class PlausibleRows:
    """A stream of batches (``ticker`` and ``price`` among their columns) without the
    implausible prints by ``medians``; :attr:`dropped` counts those left out so far."""

    def __init__(self, batches: Iterable[pa.RecordBatch], medians: DayMedians) -> None:
        self.batches, self.medians = batches, medians
        self.dropped = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.batches:
            kept, dropped = drop_implausible(batch, self.medians)
            self.dropped += dropped
            yield kept


@dataclass(frozen=True)
class ImplausiblePrint:
    ticker: str
    row: int  # 0-based position in the scanned stream (the stored partition's row order)
    price: float
    median: float  # the ticker's median price, to 0.1%
    sip_timestamp: int | None = None  # ns since the epoch, when the rows have the column


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
TIME_COLUMN = "sip_timestamp"


class _TickerRun:
    """One ticker's prints so far: a histogram of levels and its extreme prints."""

    def __init__(self, ticker: str, hist: np.ndarray):
        self.ticker = ticker
        self.hist = hist  # shared by the runs of a scan, all zeros when a run starts
        self.lo, self.hi = _HI, _LO
        self.valid = 0
        self.invalid = 0  # prints that are not positive finite numbers
        self.invalid_rows: list[tuple[int, float, int | None]] = []  # the first few of them
        self.extremes: list[tuple[int, float, int, int | None]] = []  # (level, price, row, time)

    def add(self, prices: np.ndarray, first_row: int, times: np.ndarray | None = None) -> None:
        levels = price_levels(prices)
        rows = first_row + np.arange(len(levels))
        bad = levels == _INVALID
        if bad.any():
            self.invalid += int(bad.sum())
            room = _EXTREMES - len(self.invalid_rows)
            for i in np.flatnonzero(bad)[:room]:
                self.invalid_rows.append((int(rows[i]), float(prices[i]), _time(times, i)))
            keep = np.flatnonzero(~bad)
            levels, prices, rows = levels[keep], prices[keep], rows[keep]
            times = times[keep] if times is not None else None
        if not len(levels):
            return
        lo, hi = int(levels.min()), int(levels.max())
        self.hist[lo - _LO : hi - _LO + 1] += np.bincount(levels - lo, minlength=hi - lo + 1)
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.valid += len(levels)
        order = np.argsort(levels, kind="stable")
        picks = np.unique(np.r_[order[:_EXTREMES], order[-_EXTREMES:]])
        self.extremes += [
            (int(levels[i]), float(prices[i]), int(rows[i]), _time(times, i)) for i in picks
        ]
        self.extremes.sort(key=lambda e: (e[0], e[2]))
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
        examples = [ImplausiblePrint(self.ticker, r, p, median, t) for r, p, t in self.invalid_rows]
        examples += [ImplausiblePrint(self.ticker, r, p, median, t) for _, p, r, t in far]
        out.examples += examples[: max(0, max_examples - len(out.examples))]


def _time(times: np.ndarray | None, i: int) -> int | None:
    return None if times is None else int(times[i])


def _times(batch: pa.RecordBatch) -> np.ndarray | None:
    """The rows' SIP times as int64 ns, when the batch has them (without nulls)."""
    if TIME_COLUMN not in batch.schema.names:
        return None
    col = batch.column(TIME_COLUMN)
    if col.null_count:
        return None
    if pa.types.is_timestamp(col.type):
        col = col.view(pa.int64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def _batches(trades: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[pa.RecordBatch]:
    for part in trades:
        yield from part.to_batches() if isinstance(part, pa.Table) else [part]


class ImplausiblePriceScan:
    """The implausible prints of a day's stock trades (``ticker``, ``price`` and, when
    present, ``sip_timestamp`` columns) fed batch by batch in stored order, one ticker run
    at a time (bounded memory: one histogram, a few example prints per ticker).

    Every ticker's rows must be contiguous (Massive's files and the stored partitions are
    ordered by ticker). A ticker seen again after another one turns :attr:`ordered` False
    (its median would be wrong): :attr:`disorder` says where, and the caller counts over
    the rows again with :func:`scan_implausible_prices_any_order`.
    """

    def __init__(self, rule: PriceRule = PriceRule(), max_examples: int = 20) -> None:
        self.rule, self.max_examples = rule, max_examples
        self.ordered = True
        self.disorder = ""
        self._out = ImplausiblePrices(rule)
        self._hist = np.zeros(_HI - _LO + 1, dtype=np.int64)
        self._run: _TickerRun | None = None
        self._done: set[str] = set()
        self._finished = False

    def update(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        first = self._out.rows
        self._out.rows += n
        if not n or not self.ordered:
            return
        tickers = _text(batch.column("ticker"))
        prices = _float64(batch.column("price"))
        times = _times(batch)
        changes = pc.not_equal(tickers.slice(1), tickers.slice(0, n - 1))
        starts = [0, *(np.flatnonzero(changes.to_numpy(zero_copy_only=False)) + 1).tolist()]
        for start, end in zip(starts, [*starts[1:], n], strict=True):
            ticker = tickers[start].as_py()
            if self._run is None or ticker != self._run.ticker:
                if self._run is not None:
                    self._run.finish(self.rule, self._out, self.max_examples)
                    self._done.add(self._run.ticker)
                if ticker in self._done:
                    self.ordered = False
                    self.disorder = (
                        f"trades are not ordered by ticker: {ticker} appears again at "
                        f"row {first + start:,}"
                    )
                    self._run = None
                    return
                self._run = _TickerRun(ticker, self._hist)
            part = times[start:end] if times is not None else None
            self._run.add(prices[start:end], first + start, part)

    def result(self) -> ImplausiblePrices:
        """What the scan found (call after the last batch); ValueError when the rows were
        not ordered by ticker."""
        if not self.ordered:
            raise ValueError(self.disorder)
        if not self._finished and self._run is not None:
            self._run.finish(self.rule, self._out, self.max_examples)
        self._finished = True
        return self._out


def scan_implausible_prices(
    trades: Iterable[pa.RecordBatch | pa.Table],
    rule: PriceRule = PriceRule(),
    max_examples: int = 20,
) -> ImplausiblePrices:
    """Count the implausible prints of a day's stock trades (``ticker`` and ``price``
    columns), read once in order. Every ticker's rows must be contiguous (Massive's files
    and the stored partitions are ordered by ticker); a ticker seen again after another
    one raises ValueError, since its median would be wrong."""
    scan = ImplausiblePriceScan(rule, max_examples)
    for batch in _batches(trades):
        scan.update(batch)
        if not scan.ordered:
            break
    return scan.result()


def scan_implausible_prices_any_order(
    read: Callable[[], Iterable[pa.RecordBatch | pa.Table]],
    rule: PriceRule = PriceRule(),
    max_examples: int = 20,
) -> ImplausiblePrices:
    """:func:`scan_implausible_prices` over rows in any order, read twice (``read()`` gives
    the same rows each time): the medians first (:class:`DayMedians`), then the marks.
    Memory: the (ticker, level) counts, the tickers' names and ``max_examples`` prints.
    The examples are the most extreme prints (furthest from their median) first."""
    medians = DayMedians(rule)
    for batch in _batches(read()):
        medians.update(batch.column("ticker"), batch.column("price"))
    names, median_levels = medians.medians()
    out = ImplausiblePrices(rule)
    seen: set[str] = set()
    candidates: list[tuple[int, ImplausiblePrint]] = []
    for batch in _batches(read()):
        n = batch.num_rows
        if not n:
            continue
        tickers = _text(batch.column("ticker"))
        seen.update(pc.unique(tickers).to_pylist())
        prices = _float64(batch.column("price"))
        bad = np.flatnonzero(medians.implausible(tickers, prices))
        if len(bad):
            flagged = tickers.take(pa.array(bad))
            for item in pc.value_counts(flagged).to_pylist():
                name = item["values"]
                out.by_ticker[name] = out.by_ticker.get(name, 0) + item["counts"]
            # Only this batch's most extreme prints can be among the examples.
            at = pc.fill_null(pc.index_in(flagged, value_set=names), -1).to_numpy(
                zero_copy_only=False
            )
            levels = price_levels(prices[bad])
            known = (at >= 0) & (levels != _INVALID)
            far = np.full(len(bad), _HI - _LO, dtype=np.int64)
            far[known] = np.abs(levels[known] - median_levels[at[known]])
            times = _times(batch)
            for j in np.argsort(-far, kind="stable")[:max_examples].tolist():
                i = int(bad[j])
                median = float(level_price(median_levels[at[j]])) if at[j] >= 0 else math.nan
                found = ImplausiblePrint(
                    flagged[j].as_py(), out.rows + i, float(prices[i]), median, _time(times, i)
                )
                candidates.append((-int(far[j]), found))
            candidates.sort(key=lambda c: (c[0], c[1].row))
            del candidates[max_examples:]
        out.rows += n
    out.tickers = len(seen)
    out.implausible = sum(out.by_ticker.values())
    out.by_ticker = dict(sorted(out.by_ticker.items()))
    out.examples = [e for _, e in candidates]
    return out
