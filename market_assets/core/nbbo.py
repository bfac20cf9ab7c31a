# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""NBBO state and deltas from consolidated quote rows (Massive ``quotes_v1``).

A quote row's state is ``Invalid`` when a side is zero or missing (price or size null, NaN
or <= 0), else ``Crossed`` when bid > ask, ``Locked`` when bid == ask (exact float
equality: both come from the same decimal text), else ``Normal``. A delta is a row whose bid,
ask, a size or the state differs from the previous row of the same ticker (in input order);
the other rows repeat the NBBO already in force and are dropped. :func:`nbbo_deltas` works
batch by batch with the last NBBO per ticker carried between calls (:class:`NbboCarry`), so a
day's file streams through in bounded memory and gives the same rows as one call on it all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import NBBO_STATES, OPTION_QUOTES, STOCK_QUOTES, TS

NORMAL, LOCKED, CROSSED, INVALID = range(4)
STATE_NAMES = pa.array(NBBO_STATES, pa.string())
_VALUE_COLUMNS = ("bid_price", "bid_size", "ask_price", "ask_size")


def _floats(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 numpy copy with NaN for nulls."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(
        col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64
    )


def _array(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def nbbo_states(
    bid: np.ndarray, bid_size: np.ndarray, ask: np.ndarray, ask_size: np.ndarray
) -> np.ndarray:
    """State code per row (int8: NORMAL, LOCKED, CROSSED, INVALID); NaN counts as missing."""
    with np.errstate(invalid="ignore"):
        valid = (bid > 0) & (ask > 0) & (bid_size > 0) & (ask_size > 0)
        state = np.where(bid > ask, CROSSED, np.where(bid == ask, LOCKED, NORMAL))
    return np.where(valid, state, INVALID).astype(np.int8)


def state_names(codes: np.ndarray) -> pa.Array:
    """The state names (``Normal`` ...) of state codes; a negative code gives null."""
    codes = np.asarray(codes)
    idx = pa.array(codes.astype(np.int32), mask=codes < 0)
    return STATE_NAMES.take(idx)


@dataclass(frozen=True)
class NbboCarry:
    """The last NBBO per ticker seen so far: what the next batch's rows are compared with."""

    tickers: pa.Array
    values: np.ndarray  # (k, 4) float64: bid, bid_size, ask, ask_size (NaN = missing)
    state: np.ndarray  # (k,) int8

    @classmethod
    def empty(cls) -> NbboCarry:
        """No ticker seen yet (the start of a day)."""
        return cls(pa.array([], pa.string()), np.zeros((0, 4)), np.zeros(0, np.int8))

    def __len__(self) -> int:
        return len(self.tickers)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise equality of (n, 4) value blocks, NaN equal to NaN."""
    return np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)


def nbbo_deltas(
    batch: pa.RecordBatch | pa.Table, carry: NbboCarry | None = None, *, options: bool = False
) -> tuple[pa.Table, NbboCarry]:
    """The NBBO delta rows of ``batch`` (input order kept) and the carry for the next batch.

    ``batch`` has the quotes_v1 columns ``ticker``, ``bid_price``, ``bid_size``,
    ``ask_price``, ``ask_size``, ``sip_timestamp`` (int64 ns or timestamp) and optionally
    ``sequence_number``; feed a day's batches in file order with the returned carry. The
    result has the ``STOCK_QUOTES`` schema, or ``OPTION_QUOTES`` with ``options=True`` (the
    contract fields parsed from the ticker, null where it does not parse). A null ticker or
    SIP time is a ValueError naming the row: the reader rejects such rows before.
    """
    carry = NbboCarry.empty() if carry is None else carry
    n = batch.num_rows
    tickers = _array(batch, "ticker").cast(pa.string())
    ts = _array(batch, "sip_timestamp")
    for name, col in (("ticker", tickers), ("sip_timestamp", ts)):
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"quote row {row} of the batch: {name} is missing")
    values = np.column_stack([_floats(_array(batch, c)) for c in _VALUE_COLUMNS]).reshape(n, 4)
    state = nbbo_states(values[:, 0], values[:, 1], values[:, 2], values[:, 3])
    encoded = pc.dictionary_encode(tickers)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    dictionary = encoded.dictionary

    order = np.argsort(codes, kind="stable")  # O(n) when the file is in ticker order
    sc, sv, ss = codes[order], values[order], state[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sc[1:] != sc[:-1]
    changed = np.ones(n, dtype=bool)
    changed[1:] = ~_same(sv[1:], sv[:-1]) | (ss[1:] != ss[:-1])
    keep_sorted = first | changed
    # A ticker's first row in the batch is compared with its carried NBBO, if any.
    starts = np.flatnonzero(first)
    at = np.asarray(
        pc.index_in(dictionary, value_set=carry.tickers)
        .fill_null(-1)
        .to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )[sc[starts]]
    seen = at >= 0
    s_rows, c_rows = starts[seen], at[seen]
    keep_sorted[s_rows] = ~_same(sv[s_rows], carry.values[c_rows]) | (
        ss[s_rows] != carry.state[c_rows]
    )
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted

    ends = np.append(starts[1:], n) - 1
    kept_old = pc.invert(pc.is_in(carry.tickers, value_set=dictionary))
    old_idx = np.flatnonzero(np.asarray(kept_old.to_numpy(zero_copy_only=False), dtype=bool))
    new_carry = NbboCarry(
        tickers=pa.concat_arrays(
            [carry.tickers.take(pa.array(old_idx, pa.int64())), dictionary.take(sc[ends])]
        ),
        values=np.concatenate([carry.values[old_idx], sv[ends]]),
        state=np.concatenate([carry.state[old_idx], ss[ends]]),
    )
    return _delta_table(batch, tickers, ts, values, state, keep, options), new_carry


def nbbo_delta_stream(
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    options: bool = False,
    sorted_by_ticker: bool = False,
) -> Iterator[pa.Table]:
    """The NBBO deltas of a day's quote batches in file order, one table per batch (the
    carry passed along): what the quote assets store.

    With ``sorted_by_ticker`` (Massive's files) only the batch's last ticker is carried:
    no other can come back, so the carry stays one row however many contracts a whole
    option-quotes day holds. Were a ticker to come back anyway, its first row would be
    kept again (a repeated NBBO, never a lost change).
    """
    carry = NbboCarry.empty()
    for batch in batches:
        deltas, carry = nbbo_deltas(batch, carry, options=options)
        if sorted_by_ticker and len(carry) > 1 and batch.num_rows:
            last = _array(batch, "ticker").cast(pa.string())[-1]
            keep = np.flatnonzero(
                pc.equal(carry.tickers, last).fill_null(False).to_numpy(zero_copy_only=False)
            )
            carry = NbboCarry(
                carry.tickers.take(pa.array(keep, pa.int64())),
                carry.values[keep],
                carry.state[keep],
            )
        yield deltas


def _delta_table(
    batch: pa.RecordBatch | pa.Table,
    tickers: pa.Array,
    ts: pa.Array,
    values: np.ndarray,
    state: np.ndarray,
    keep: np.ndarray,
    options: bool,
) -> pa.Table:
    rows = pa.array(np.flatnonzero(keep), pa.int64())
    if "sequence_number" in batch.column_names:
        seq = _array(batch, "sequence_number").cast(pa.int64()).take(rows)
    else:
        seq = pa.nulls(len(rows), pa.int64())
    kept = values[keep]
    cols: dict[str, pa.Array] = {"ticker": tickers.take(rows)}
    if options:
        # Parsed once per contract: a file holds many rows per contract.
        encoded = pc.dictionary_encode(cols["ticker"])
        parsed, _ = parse_option_tickers(encoded.dictionary)
        for name in parsed.column_names:
            cols[name] = parsed.column(name).combine_chunks().take(encoded.indices)
    cols["sip_timestamp"] = ts.cast(TS).take(rows)
    for i, name in enumerate(_VALUE_COLUMNS):
        cols[name] = pa.array(kept[:, i], pa.float64(), from_pandas=True)
    cols["nbbo_state"] = state_names(state[keep])
    cols["sequence_number"] = seq
    return pa.table(cols, schema=OPTION_QUOTES if options else STOCK_QUOTES)
