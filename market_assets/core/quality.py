# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Data-quality accumulators, fed the record batches of a partition as it is written.

Each accumulator takes ``update(batch)`` once per batch, in file order, and answers from
what it kept: a file as Massive writes it is never read twice. Memory never grows with
the day:

- :class:`RunDuplicateCounter` counts duplicate keys one ticker run at a time. Massive's
  flat files are ordered by ticker, then time, so rows sharing a key (which includes the
  ticker and a time or sequence number) sit next to each other: only ties are grouped and
  only the open run's last tie is held, so memory is bounded by a batch, not by the day
  nor by the largest ticker. A run whose time goes back across batches is named for a
  recount over the written rows; a ticker that comes back after its run ended (a file not
  in ticker order, two files concatenated) turns :attr:`RunDuplicateCounter.ordered`
  False: the caller then counts over the written rows with hash-partitioned counting
  (``market_assets.io.spill``), which :func:`count_duplicates` serves partition by
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
from market_assets.core.schemas import GREEKS_STATUSES, NBBO_STATES

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
    ``run_column``, counted one run at a time, holding only a handful of rows.

    ``order`` is a column of ``columns`` that duplicates share (the sequence number, the
    SIP time) and that rises within a run in a file sorted by ticker then time. Rows can
    only duplicate rows with the same ``order`` value, so only ties are grouped, and across
    batches only the open run's last tie is held. A run whose ``order`` goes down is
    counted whole where it lies inside one batch; one spanning batches is left to be
    counted again over the written rows (its name in :attr:`recount`, its rows in
    :attr:`recount_rows`). When a run starts that does not sort after the previous one,
    the input is not ordered by ``run_column``: :attr:`ordered` turns False and counting
    stops (a key could repeat across runs already let go).
    """

    def __init__(self, columns: Sequence[str], order: str, run_column: str = "ticker"):
        if run_column not in columns or order not in columns:
            raise ValueError(f"{run_column!r} and {order!r} must be among {list(columns)}")
        self.columns = list(columns)
        self.order = order
        self.run_column = run_column
        self.ordered = True
        self.count = DuplicateCount()
        self.recount: set[str] = set()
        self.recount_rows = 0
        self._open: str | None = None
        self._open_rows = 0  # rows of the open run so far
        self._open_found = 0  # duplicates counted in it so far
        self._open_recount = False
        self._tail: pa.Table | None = None  # its last tie, which the next batch may extend

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
        rows = pa.Table.from_batches([batch.select(self.columns)])
        ends = np.append(starts[1:], n)
        if first != self._open:
            self._close_open()
        elif self._open_recount:  # the open run goes on, to be counted again later
            self._open_rows += int(ends[0])
            if len(starts) == 1:
                return
            self._close_open()
            cut = int(ends[0])
            rows, starts, ends, names = rows.slice(cut), starts[1:] - cut, ends[1:] - cut, names[1:]
        else:  # the open run goes on from its last tie
            self._open_rows += int(ends[0])
            held = self._tail.num_rows if self._tail is not None else 0
            rows = pa.concat_tables([self._tail, rows]) if held else rows
            starts = np.concatenate([[0], starts[1:] + held])
            ends = ends + held
        self._scan(rows, starts, ends, names, first == self._open)

    def result(self) -> DuplicateCount:
        """The count so far, the open run included (call after the last batch); runs in
        :attr:`recount` are not in it."""
        if not self.ordered:
            raise RuntimeError("input not ordered by ticker: count over the written rows")
        self._close_open()
        return self.count

    def _lose_order(self) -> None:
        self.ordered = False
        self._open, self._tail = None, None

    def _scan(
        self,
        rows: pa.Table,
        starts: np.ndarray,
        ends: np.ndarray,
        names: pa.Array,
        first_began_before: bool,
    ) -> None:
        """Count the duplicates of whole runs (ties) in ``rows``; open the last run."""
        n, last = rows.num_rows, len(starts) - 1
        run_id = np.repeat(np.arange(len(starts)), ends - starts)
        order = _int64(rows.column(self.order))
        falling = np.ones(len(starts), dtype=bool)  # nulls: no order to rely on
        counted = np.zeros(n, dtype=bool)
        if order is not None:
            same = run_id[1:] == run_id[:-1]
            step = np.diff(order)
            falling[:] = False
            falling[run_id[1:][same & (step < 0)]] = True
            tie = same & (step == 0)
            counted[1:] |= tie
            counted[:-1] |= tie
        # A falling run not wholly here cannot be counted from the rows held: recount it.
        whole = np.ones(len(starts), dtype=bool)
        whole[last] = False
        if first_began_before:
            whole[0] = False
        counted |= (falling & whole)[run_id]
        counted &= ~(falling & ~whole)[run_id]
        tail_from = n
        if not falling[last] and order is not None:
            # The open run's last tie waits for the next batch (it may go on there).
            s = int(starts[last])
            tail_from = s + int(np.searchsorted(order[s:], order[-1], side="left"))
            counted[tail_from:] = False
        in_last = run_id == last
        if first_began_before:  # the run open before this batch
            if falling[0]:
                self._start_recount()
            if last > 0:
                self._end_open()
        self._add(rows, counted & ~in_last)
        if self._open is None:  # a run opens
            self._open = names[last].as_py()
            self._open_rows = int(ends[last] - starts[last])
            if falling[last]:
                self._start_recount()
        self._add(rows, counted & in_last, open_run=True)
        self._tail = None if self._open_recount else rows.slice(tail_from)

    def _add(self, rows: pa.Table, mask: np.ndarray, open_run: bool = False) -> None:
        if not mask.any():
            return
        found = count_duplicates(rows.filter(pa.array(mask)), self.columns)
        self.count.add(found.duplicates, found.examples)
        if open_run:
            self._open_found += found.duplicates

    def _start_recount(self) -> None:
        """Leave the open run to be counted again over the written rows, taking back what
        was counted of it."""
        assert self._open is not None
        self.recount.add(self._open)
        self.count.duplicates -= self._open_found
        self._open_found = 0
        self._open_recount = True

    def _end_open(self) -> None:
        if self._open_recount:
            self.recount_rows += self._open_rows
        self._open, self._tail, self._open_recount = None, None, False
        self._open_rows = self._open_found = 0

    def _close_open(self) -> None:
        """The open run ends at a batch's edge: count its held tie."""
        if self._open is None:
            return
        if not self._open_recount and self._tail is not None and self._tail.num_rows > 1:
            found = count_duplicates(self._tail, self.columns)
            self.count.add(found.duplicates, found.examples)
        self._end_open()


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


class NbboStateCounts:
    """NBBO rows per ``nbbo_state`` (Normal, Locked, Crossed, Invalid)."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts: dict[str, int] = dict.fromkeys(NBBO_STATES, 0)

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        if batch.num_rows == 0:
            return
        vc = pc.value_counts(batch.column("nbbo_state"))
        for value, count in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            self.counts[str(value)] = self.counts.get(str(value), 0) + int(count)

    def share(self, state: str) -> float:
        return self.counts.get(state, 0) / self.rows if self.rows else 0.0

    def violations(self, max_shares: dict[str, float]) -> list[str]:
        """Why a state's share is above its bound (``{"Locked": 0.05, ...}``); empty when
        all is well."""
        return [
            f"{state} share {self.share(state):.4%} > {limit:.4%}"
            for state, limit in max_shares.items()
            if self.share(state) > limit
        ]


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
