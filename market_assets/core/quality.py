# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Data-quality accumulators, fed the record batches of a partition as it is written.

Each accumulator takes ``update(batch)`` once per batch, in file order, and answers from
what it kept; nothing re-reads the partition. Memory never grows with the day:

- :class:`RunDuplicateCounter` counts duplicate keys one ticker run at a time. Massive's
  flat files are ordered by ticker, so rows sharing a key (which includes the ticker) sit
  in one run; only the open run's key columns are held, so memory is bounded by the
  largest single ticker. A ticker that comes back after its run ended (a file not in
  ticker order, or two files concatenated) is detected as a run out of order: the
  counter then reports :attr:`RunDuplicateCounter.ordered` False and the caller counts
  over the written rows with hash-partitioned counting instead (see
  ``market_assets.io.spill``), which :func:`count_duplicates` serves partition by
  partition.
- The other accumulators (row counts, unparsed option tickers, greeks statuses, the
  configured tickers present) keep counters only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.enrich import status_counts
from market_assets.core.schemas import GREEKS_STATUSES

# A stored stock trade is the same trade twice when it shares its ticker and SIP sequence
# number (unique per ticker and day, per Massive).
STOCK_TRADE_KEY = ("ticker", "sequence_number")
# OPRA files carry no trade id: an option trade is an exact duplicate when every source
# column matches. Duplicates always share sip_timestamp, so it orders them.
OPTION_TRADE_COLUMNS = (
    "ticker",
    "sip_timestamp",
    "participant_timestamp",
    "exchange",
    "price",
    "size",
    "conditions",
    "correction",
)
PARSED_OPTION_COLUMNS = ("underlying", "expiration", "contract_type", "strike")
MAX_EXAMPLES = 5


class BatchAccumulator(Protocol):
    """Something fed every record batch of a partition, once, in order."""

    def update(self, batch: pa.RecordBatch) -> None: ...


# --- exact duplicate counting over one table ---------------------------------------------


@dataclass
class DuplicateCount:
    """Rows seen, rows beyond the first of each key, and up to MAX_EXAMPLES tickers having
    duplicates."""

    rows: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, duplicates: int, tickers: Iterable[str]) -> None:
        """Count ``duplicates`` more, found among ``tickers``."""
        self.duplicates += duplicates
        for t in tickers:
            if len(self.examples) >= MAX_EXAMPLES:
                break
            if t not in self.examples:
                self.examples.append(t)


def groupable(table: pa.Table | pa.RecordBatch, columns: Sequence[str]) -> pa.Table:
    """``columns`` of ``table`` usable as group keys: a list column (conditions) becomes its
    comma-joined text (null stays null, an empty list is "")."""
    out = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
    out = out.select(list(columns))
    for i, f in enumerate(out.schema):
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            text = pc.binary_join(pc.cast(out.column(i), pa.list_(pa.string())), ",")
            out = out.set_column(i, f.name, text)
    return out


def count_duplicates(table: pa.Table | pa.RecordBatch, columns: Sequence[str]) -> DuplicateCount:
    """Exact count of rows repeating an earlier row's ``columns`` (nulls compare equal), with
    example tickers when ``ticker`` is one of them. Holds the table's distinct keys."""
    keys = groupable(table, columns)
    result = DuplicateCount(rows=keys.num_rows)
    if keys.num_rows == 0:
        return result
    groups = keys.group_by(list(columns)).aggregate([(columns[0], "count", pc.CountOptions("all"))])
    counts = groups.column(f"{columns[0]}_count")
    repeated = groups.filter(pc.greater(counts, 1))
    extra = int(pc.sum(pc.subtract(repeated.column(f"{columns[0]}_count"), 1)).as_py() or 0)
    tickers = pc.unique(repeated.column("ticker")).to_pylist() if "ticker" in columns else []
    result.add(extra, tickers[:MAX_EXAMPLES])
    return result


# --- per ticker run ----------------------------------------------------------------------


def run_starts(values: pa.Array) -> np.ndarray:
    """Row index of the start of each run of equal adjacent ``values`` (0 first)."""
    n = len(values)
    if n <= 1:
        return np.zeros(min(n, 1), dtype=np.int64)
    change = pc.not_equal(values.slice(1), values.slice(0, n - 1))
    inner = pc.indices_nonzero(change).to_numpy().astype(np.int64) + 1
    return np.concatenate([np.zeros(1, dtype=np.int64), inner])


def _strictly_increasing(values: pa.Array) -> bool:
    n = len(values)
    return n <= 1 or bool(pc.all(pc.greater(values.slice(1), values.slice(0, n - 1))).as_py())


def _int64(values: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Integer or timestamp values as int64 numbers, None when some are null."""
    if values.null_count:
        return None
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not pa.types.is_int64(values.type):
        values = (
            values.view(pa.int64()) if values.type.bit_width == 64 else pc.cast(values, "int64")
        )
    return values.to_numpy()


class RunDuplicateCounter:
    """Duplicates of ``columns`` (which include ``run_column``) over input ordered by
    ``run_column``, counted one run at a time.

    ``order`` is a column of ``columns`` that duplicates share (the sequence number, the
    SIP time): a run whose ``order`` values strictly increase has no duplicate and costs one
    vectorized comparison; otherwise only the rows sharing an ``order`` value with a
    neighbour are grouped. When a run starts that does not sort after the previous one,
    the input is not ordered by ``run_column``, :attr:`ordered` turns False and counting
    stops (a key could repeat across runs already let go).
    """

    def __init__(self, columns: Sequence[str], order: str, run_column: str = "ticker"):
        if run_column not in columns or order not in columns:
            raise ValueError(f"{run_column!r} and {order!r} must be among {list(columns)}")
        self.columns = list(columns)
        self.order = order
        self.run_column = run_column
        self.rest = [c for c in self.columns if c != run_column]
        self.ordered = True
        self.count = DuplicateCount()
        self._open: str | None = None
        self._open_parts: list[pa.RecordBatch] = []

    def update(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        self.count.rows += n
        if not self.ordered or n == 0:
            return
        runs = batch.column(self.run_column)
        starts = run_starts(runs)
        names = runs.take(pa.array(starts))
        first = names[0].as_py()
        if not _strictly_increasing(names) or (self._open is not None and first < self._open):
            self._lose_order()
            return
        body = 0
        if first == self._open:  # the open run goes on
            body = int(starts[1]) if len(starts) > 1 else n
            self._open_parts.append(batch.select(self.rest).slice(0, body))
            if body == n:
                return
        self._close_open()
        last = int(starts[-1])
        if last > body:  # runs wholly inside this batch
            k = 1 if body else 0
            inner = starts[k:-1] - body
            self._count_runs(
                batch.select(self.rest).slice(body, last - body),
                inner,
                names.slice(k, len(starts) - 1 - k),
            )
        self._open = names[-1].as_py()
        self._open_parts = [batch.select(self.rest).slice(last)]

    def result(self) -> DuplicateCount:
        """The count so far, the open run included (call after the last batch)."""
        if not self.ordered:
            raise RuntimeError("input not ordered by ticker: count over the written rows")
        self._close_open()
        return self.count

    def _lose_order(self) -> None:
        self.ordered = False
        self._open, self._open_parts = None, []

    def _close_open(self) -> None:
        if self._open is None:
            return
        rows = pa.Table.from_batches(self._open_parts)
        self._count_runs(rows, np.zeros(1, dtype=np.int64), pa.array([self._open]))
        self._open, self._open_parts = None, []

    def _count_runs(self, rows: pa.Table | pa.RecordBatch, starts: np.ndarray, names) -> None:
        """Count duplicates in ``rows`` (``rest`` columns) made of whole runs starting at
        ``starts``; ``names`` holds each run's ``run_column`` value, in order."""
        n = rows.num_rows
        if n < 2:
            return
        run_id = np.zeros(n, dtype=np.int64)
        run_id[starts[1:]] = 1
        run_id = np.cumsum(run_id)
        order = _int64(rows.column(self.order))
        if order is None:
            candidates = None  # nulls: group every row
        else:
            same = run_id[1:] == run_id[:-1]
            step = np.diff(order)
            if not np.any(same & (step <= 0)):
                return  # strictly increasing in every run
            if np.any(same & (step < 0)):
                candidates = None  # a run out of order: group every row
            else:
                tie = same & (step == 0)
                candidates = np.zeros(n, dtype=bool)
                candidates[1:] |= tie
                candidates[:-1] |= tie
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        if candidates is not None:
            picked = np.flatnonzero(candidates)
            table, run_id = table.take(pa.array(picked)), run_id[picked]
        table = table.append_column(self.run_column, names.take(pa.array(run_id)))
        found = count_duplicates(table, self.columns)
        self.count.add(found.duplicates, found.examples)


# --- counters ----------------------------------------------------------------------------


class RowCount:
    """Rows seen."""

    def __init__(self) -> None:
        self.rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows


class UnparsedOptionTickers:
    """Rows whose option ticker did not parse (a null underlying, expiration, contract_type
    or strike), with up to MAX_EXAMPLES of their tickers."""

    def __init__(self) -> None:
        self.rows = 0
        self.unparsed = 0
        self.examples: list[str] = []

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if not any(batch.column(c).null_count for c in PARSED_OPTION_COLUMNS):
            return
        missing = pc.is_null(batch.column(PARSED_OPTION_COLUMNS[0]))
        for c in PARSED_OPTION_COLUMNS[1:]:
            missing = pc.or_(missing, pc.is_null(batch.column(c)))
        self.unparsed += int(pc.sum(missing).as_py() or 0)
        if len(self.examples) < MAX_EXAMPLES:
            bad = pc.filter(batch.column("ticker"), missing).to_pylist()
            self.examples += bad[: MAX_EXAMPLES - len(self.examples)]


class GreeksStatusShares:
    """Trades per greeks_status, and ``ok`` trades whose iv is not finite and positive."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts: dict[str, int] = dict.fromkeys(GREEKS_STATUSES, 0)
        self.ok_bad_iv = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        status = batch.column("greeks_status")
        for value, count in status_counts(status).items():
            self.counts[value] = self.counts.get(value, 0) + count
        iv = batch.column("iv")
        good = pc.fill_null(pc.and_(pc.is_finite(iv), pc.greater(iv, 0.0)), False)
        bad = pc.and_(pc.equal(status, "ok"), pc.invert(good))
        self.ok_bad_iv += int(pc.sum(bad).as_py() or 0)

    def share(self, status: str) -> float:
        return self.counts.get(status, 0) / self.rows if self.rows else 0.0

    def violations(
        self, min_ok_share: float, max_no_underlying_share: float, max_bad_input_share: float
    ) -> list[str]:
        """Why the shares (or the ok trades' iv) are out of bounds; empty when all is well."""
        if self.rows == 0:
            return ["option_trades_greeks has no rows"]
        out = []
        ok, nu, bad = self.share("ok"), self.share("no_underlying"), self.share("bad_input")
        if ok < min_ok_share:
            out.append(f"ok share {ok:.4%} < checks.min_ok_share {min_ok_share:.4%}")
        if nu > max_no_underlying_share:
            out.append(
                f"no_underlying share {nu:.4%} > checks.max_no_underlying_share "
                f"{max_no_underlying_share:.4%}"
            )
        if bad > max_bad_input_share:
            out.append(
                f"bad_input share {bad:.4%} > checks.max_bad_input_share {max_bad_input_share:.4%}"
            )
        unknown = sorted(s for s, n in self.counts.items() if n and s not in GREEKS_STATUSES)
        if unknown:
            out.append(f"unknown greeks_status values {unknown}")
        if self.ok_bad_iv:
            out.append(f"{self.ok_bad_iv} ok trades have an iv that is not finite and > 0")
        return out


class PresentValues:
    """Which of ``wanted`` (e.g. the configured tickers) appear in ``column``."""

    def __init__(self, column: str, wanted: Iterable[str]):
        self.column = column
        self.wanted = sorted({w.upper() for w in wanted})
        self.seen: set[str] = set()

    def update(self, batch: pa.RecordBatch) -> None:
        if len(self.seen) == len(self.wanted) or batch.num_rows == 0:
            return
        values = batch.column(self.column)
        names = values.take(pa.array(run_starts(values)))  # ordered input: one per run
        self.seen.update(v for v in pc.unique(names).to_pylist() if v in self.wanted)

    def absent(self) -> list[str]:
        """The wanted values never seen, sorted."""
        return [w for w in self.wanted if w not in self.seen]
