# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The underlying price at each option trade: a vectorized as-of join on stock trades
(:class:`UnderlyingIndex`) or on the underlying's NBBO mid (:class:`NbboMidIndex`).

S is the price of the underlying's last trade at or before the option trade's SIP time
(ties at the same nanosecond: the highest sequence number) that is a genuine current price:
not corrected (``correction`` null or 0) and every condition on it either updates the
consolidated open/close or is 12 (Form T, extended hours) or 37 (odd lot). A trade older than
the staleness limit (age > ``max_staleness_ns``) gives no price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.conditions import FORM_T_EXTENDED_HOURS, ODD_LOT, ConditionRules
from market_assets.core.nbbo import NORMAL, nbbo_states

ELIGIBLE_EXTRA_CONDITIONS = (FORM_T_EXTENDED_HOURS, ODD_LOT)


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _ts_ns(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 ns and a validity mask for a timestamp (or int64) array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    ints = arr.cast(pa.int64()) if pa.types.is_timestamp(arr.type) else arr
    valid = ~np.asarray(ints.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return ints.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), valid


def _symbol_codes(tickers: pa.Array, symbols: dict[str, int]) -> np.ndarray:
    """int32 code per row into ``symbols`` (extended with new tickers in first-seen order);
    -1 for a null ticker."""
    unique = pc.unique(tickers.drop_null()).to_pylist()
    for t in unique:
        symbols.setdefault(t, len(symbols))
    local = pc.index_in(tickers, value_set=pa.array(unique, pa.string()))
    remap = np.array([symbols[t] for t in unique] + [-1], dtype=np.int32)
    return remap[local.fill_null(len(unique)).to_numpy(zero_copy_only=False)]


def eligible_underlying_mask(stock: pa.Table, rules: ConditionRules) -> np.ndarray:
    """True for stock trades that may set S: not corrected, every condition eligible."""
    n = stock.num_rows
    if n == 0:
        return np.zeros(0, dtype=bool)
    cond_ok = rules.mask(
        _column(stock, "conditions"), "open_close", extra=ELIGIBLE_EXTRA_CONDITIONS
    )
    correction = _column(stock, "correction").fill_null(0).to_numpy(zero_copy_only=False)
    _, ts_valid = _ts_ns(_column(stock, "sip_timestamp"))
    price_valid = ~np.asarray(_column(stock, "price").is_null().to_numpy(zero_copy_only=False))
    return cond_ok & (correction == 0) & ts_valid & price_valid


@dataclass(frozen=True)
class _Rows:
    """One part's rows kept for an as-of index."""

    ts: np.ndarray
    seq: np.ndarray
    price: np.ndarray
    code: np.ndarray


def _sequence(table: pa.Table) -> np.ndarray:
    seq = _column(table, "sequence_number").fill_null(-1).to_numpy(zero_copy_only=False)
    return np.asarray(seq, dtype=np.int64)


class AsofPrices:
    """Prices per symbol sorted once by (symbol, time, sequence) for repeated as-of
    lookups (one per micro-batch of option trades); a NaN price is a row in force that
    gives no price."""

    symbols: pa.Array
    ts: np.ndarray
    price: np.ndarray
    bounds: np.ndarray
    size: int

    def _index_parts(
        self,
        parts: pa.Table | pa.RecordBatch | Iterable[pa.Table | pa.RecordBatch],
        reduce: Callable[[pa.Table, dict[str, int]], _Rows | None],
    ) -> None:
        """Index ``parts`` (a table or an iterable of tables/batches), each reduced as it
        arrives by ``reduce(table, symbols)`` to the rows kept (time, sequence, price,
        symbol code; ``symbols`` grows with the tickers seen) or None for none."""
        items = [parts] if isinstance(parts, pa.Table | pa.RecordBatch) else parts
        symbols: dict[str, int] = {}
        ts_parts, seq_parts, price_parts, code_parts = [], [], [], []
        for part in items:
            table = pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part
            rows = reduce(table, symbols) if table.num_rows else None
            if rows is None:
                continue
            ts_parts.append(rows.ts)
            seq_parts.append(rows.seq)
            price_parts.append(rows.price)
            code_parts.append(rows.code)
        self._index(symbols, ts_parts, seq_parts, price_parts, code_parts)

    def _index(
        self,
        symbols: dict[str, int],
        ts_parts: list[np.ndarray],
        seq_parts: list[np.ndarray],
        price_parts: list[np.ndarray],
        code_parts: list[np.ndarray],
    ) -> None:
        self.symbols = pa.array(list(symbols), pa.string())
        s_ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64)
        s_seq = np.concatenate(seq_parts) if seq_parts else np.zeros(0, np.int64)
        s_price = np.concatenate(price_parts) if price_parts else np.zeros(0)
        code = np.concatenate(code_parts) if code_parts else np.zeros(0, np.int32)
        ts_parts.clear(), seq_parts.clear(), price_parts.clear(), code_parts.clear()
        # Ties at one nanosecond: the highest sequence number sorts last and wins.
        order = np.lexsort((s_seq, s_ts, code))
        del s_seq
        self.ts = s_ts[order]
        self.price = s_price[order]
        self.bounds = np.searchsorted(code[order], np.arange(len(symbols) + 1), side="left")
        self.size = len(order)

    def asof(
        self,
        option_underlying: np.ndarray | pa.Array | pa.ChunkedArray,
        option_ts_ns: np.ndarray | pa.Array | pa.ChunkedArray,
        max_staleness_ns: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(price, time_ns)`` per option trade: NaN and -1 where none is fresh enough.

        ``option_ts_ns`` is int64 ns or a timestamp array (a null time gives no price).
        """
        und = (
            pa.array(option_underlying)
            if isinstance(option_underlying, np.ndarray)
            else option_underlying
        )
        if isinstance(und, pa.ChunkedArray):
            und = und.combine_chunks() if und.num_chunks else pa.array([], pa.string())
        if isinstance(option_ts_ns, np.ndarray) and option_ts_ns.dtype.kind in "iu":
            ts = option_ts_ns.astype(np.int64, copy=False)
            ts_valid = np.ones(ts.shape, dtype=bool)
        else:
            arr = (
                option_ts_ns
                if isinstance(option_ts_ns, pa.Array | pa.ChunkedArray)
                else pa.array(option_ts_ns)
            )
            ts, ts_valid = _ts_ns(arr)
        n = len(und)
        price = np.full(n, np.nan)
        time_ns = np.full(n, -1, dtype=np.int64)
        if n == 0 or self.size == 0:
            return price, time_ns
        opt_code = (
            pc.index_in(und, value_set=self.symbols).fill_null(-1).to_numpy(zero_copy_only=False)
        )
        want = (opt_code >= 0) & ts_valid
        for code in np.unique(opt_code[want]):  # one vectorized search per symbol
            rows = np.flatnonzero(want & (opt_code == code))
            lo, hi = self.bounds[code], self.bounds[code + 1]
            pos = np.searchsorted(self.ts[lo:hi], ts[rows], side="right") - 1
            found = pos >= 0
            at = lo + pos[found]
            rows = rows[found]
            fresh = (ts[rows] - self.ts[at] <= max_staleness_ns) & ~np.isnan(self.price[at])
            price[rows[fresh]] = self.price[at[fresh]]
            time_ns[rows[fresh]] = self.ts[at[fresh]]
        return price, time_ns


def eligible_trade_rows(
    table: pa.Table, rules: ConditionRules, symbols: dict[str, int]
) -> _Rows | None:
    """The stock trades that may set S (time, sequence, price, symbol code), or None."""
    keep = eligible_underlying_mask(table, rules)
    if not keep.any():
        return None
    ts, _ = _ts_ns(_column(table, "sip_timestamp"))
    price = _column(table, "price").fill_null(0).to_numpy(zero_copy_only=False)
    return _Rows(
        ts[keep],
        _sequence(table)[keep],
        np.asarray(price, dtype=np.float64)[keep],
        _symbol_codes(_column(table, "ticker"), symbols)[keep],
    )


def nbbo_mid_rows(table: pa.Table, symbols: dict[str, int]) -> _Rows:
    """Each NBBO row's time, sequence, mid (NaN where the state is not Normal) and symbol code."""
    ts, ts_ok = _ts_ns(_column(table, "sip_timestamp"))
    code = _symbol_codes(_column(table, "ticker"), symbols)
    keep = ts_ok & (code >= 0)
    bid, bid_size, ask, ask_size = (
        _column(table, c).cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        for c in ("bid_price", "bid_size", "ask_price", "ask_size")
    )
    normal = nbbo_states(bid, bid_size, ask, ask_size) == NORMAL
    mid = np.where(normal, (bid + ask) / 2, np.nan)
    return _Rows(ts[keep], _sequence(table)[keep], mid[keep], code[keep])


class UnderlyingIndex(AsofPrices):
    """Eligible underlying trades sorted once by (symbol, time, sequence), for repeated
    as-of lookups (one per micro-batch of option trades).

    ``stock`` is a table or an iterable of tables/record batches: each part is reduced to its
    eligible trades' time, sequence, price and symbol code as it arrives, so only those
    (28 bytes a trade) are held, never the stock rows themselves."""

    def __init__(
        self,
        stock: pa.Table | pa.RecordBatch | Iterable[pa.Table | pa.RecordBatch],
        rules: ConditionRules,
    ):
        self._index_parts(stock, lambda table, symbols: eligible_trade_rows(table, rules, symbols))


class NbboMidIndex(AsofPrices):
    """The underlying price as the mid of the underlying's NBBO in force (greeks.
    underlying_price = "nbbo_mid"), with :class:`UnderlyingIndex`'s interface.

    ``quotes``: NBBO rows (stock_quotes: ticker, sip_timestamp, bid/ask price and size,
    sequence_number), a table or an iterable of parts, each reduced as it arrives to time
    and mid (16 bytes a row; NaN where the state is not Normal). The NBBO in force at a
    trade is the latest row at or before its SIP time (ties: the highest sequence number,
    then the last row); it prices the trade when Normal and no older than the
    ``max_staleness_ns`` of the lookup (and ``max_age_ns``, when given)."""

    def __init__(
        self,
        quotes: pa.Table | pa.RecordBatch | Iterable[pa.Table | pa.RecordBatch],
        max_age_ns: int | None = None,
    ):
        self.max_age_ns = np.iinfo(np.int64).max if max_age_ns is None else int(max_age_ns)
        self._index_parts(quotes, nbbo_mid_rows)

    def asof(
        self,
        option_underlying: np.ndarray | pa.Array | pa.ChunkedArray,
        option_ts_ns: np.ndarray | pa.Array | pa.ChunkedArray,
        max_staleness_ns: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mid, time_ns)`` per option trade: NaN and -1 where no Normal NBBO is in force
        within ``min(max_staleness_ns, max_age_ns)``."""
        return super().asof(option_underlying, option_ts_ns, min(max_staleness_ns, self.max_age_ns))


_INT64_MIN = int(np.iinfo(np.int64).min)


class StreamedAsof:
    """As-of prices for option trades that come sorted by (underlying, time), from
    underlying rows (stock trades or NBBO rows) streamed in (ticker, time) order, the order
    of the stored stock partitions.

    :meth:`index_for` gives, for one batch of option trades, an :class:`AsofPrices` of the
    rows each of its underlyings had from ``max_staleness_ns`` before its first trade to its
    last: every lookup of the batch finds the same row (or the same staleness) as in an index
    of the whole day, so prices are identical, while only the rows the batch can use (and
    those read ahead of it) are held, not the day. ``reduce(table, symbols)`` turns a part
    into its rows (:func:`eligible_trade_rows`, :func:`nbbo_mid_rows`). A stream found out of
    order is read to its end instead and the rest served from all of it (still exact).
    """

    def __init__(
        self,
        parts: Iterable[pa.Table | pa.RecordBatch],
        reduce: Callable[[pa.Table, dict[str, int]], _Rows | None],
        max_staleness_ns: int,
    ) -> None:
        self._parts = iter(parts)
        self._reduce = reduce
        self.staleness_ns = int(max_staleness_ns)
        self._held: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._last: tuple[str, int] | None = None  # key of the latest row read
        self._served: tuple[str, int] | None = None  # key of the latest option trade served
        self.in_order = True
        self._done = False
        self.rows_read = 0
        self.peak_held = 0

    @property
    def held(self) -> int:
        """Rows held now."""
        return sum(c[0].size for chunks in self._held.values() for c in chunks)

    def _read_past(self, ticker: str, ts: int) -> None:
        """Read until a row after ``(ticker, ts)`` has been read (or the stream ends)."""
        while not self._done and (
            not self.in_order or self._last is None or self._last <= (ticker, ts)
        ):
            part = next(self._parts, None)
            if part is None:
                self._done = True
                break
            table = pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part
            symbols: dict[str, int] = {}
            rows = self._reduce(table, symbols) if table.num_rows else None
            if rows is None or not rows.ts.size:
                continue
            self.rows_read += int(rows.ts.size)
            self._add_runs(rows, list(symbols))
        self.peak_held = max(self.peak_held, self.held)

    def _add_runs(self, rows: _Rows, names: list[str]) -> None:
        starts = np.flatnonzero(np.r_[True, rows.code[1:] != rows.code[:-1]])
        ends = np.r_[starts[1:], rows.code.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            name, ts = names[int(rows.code[a])], rows.ts[a:b]
            first, last = (name, int(ts[0])), (name, int(ts[-1]))
            if self._last is not None and first < self._last or (np.diff(ts) < 0).any():
                self.in_order = False
            self._held.setdefault(name, []).append((ts, rows.seq[a:b], rows.price[a:b]))
            self._last = last if self._last is None else max(self._last, last)

    def _rows_of(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        chunks = self._held.get(name)
        if not chunks:
            return None
        if len(chunks) > 1:
            chunks[:] = [tuple(np.concatenate(c) for c in zip(*chunks, strict=True))]
        return chunks[0]

    def index_for(
        self, option_underlying: pa.Array | pa.ChunkedArray, option_ts: pa.Array | pa.ChunkedArray
    ) -> AsofPrices:
        """The index one batch of option trades (sorted by underlying, then time) needs."""
        und = option_underlying
        if isinstance(und, pa.ChunkedArray):
            und = und.combine_chunks() if und.num_chunks else pa.array([], pa.string())
        ts, valid = _ts_ns(option_ts)
        local: dict[str, int] = {}
        code = _symbol_codes(und, local)
        valid &= code >= 0
        names = list(local)
        ranges: dict[str, tuple[int, int]] = {}
        if valid.any():
            # One run per underlying in a sorted batch: its first and last time, vectorized.
            c, t = code[valid], ts[valid]
            starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
            lows, highs = np.minimum.reduceat(t, starts), np.maximum.reduceat(t, starts)
            for k, lo, hi in zip(c[starts].tolist(), lows.tolist(), highs.tolist(), strict=True):
                old = ranges.get(names[k], (lo, hi))
                ranges[names[k]] = (min(old[0], lo), max(old[1], hi))
        if ranges:
            u_first, u_last = min(ranges), max(ranges)
            if self._served is not None and (u_first, ranges[u_first][0]) < self._served:
                raise ValueError(
                    f"option trades are not sorted by (underlying, sip_timestamp): {u_first} at "
                    f"{ranges[u_first][0]} ns came after {self._served[0]} at {self._served[1]} ns"
                )
            self._served = (u_last, ranges[u_last][1])
            self._read_past(u_last, ranges[u_last][1])
        index = self._index(ranges)
        if ranges and self.in_order:
            self._forget_before(u_last, ranges[u_last][1] - self.staleness_ns)
        return index

    def _index(self, ranges: dict[str, tuple[int, int]]) -> AsofPrices:
        symbols: dict[str, int] = {}
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for name, (lo, hi) in sorted(ranges.items()):
            held = self._rows_of(name)
            if held is None:
                continue
            ts, seq, price = held
            start = max(lo - self.staleness_ns, _INT64_MIN)
            if self.in_order:
                a = int(np.searchsorted(ts, start, side="left"))
                pick: slice | np.ndarray = slice(a, int(np.searchsorted(ts, hi, side="right")))
            else:
                pick = (ts >= start) & (ts <= hi)
            code = symbols.setdefault(name, len(symbols))
            parts[0].append(ts[pick])
            parts[1].append(seq[pick])
            parts[2].append(price[pick])
            parts[3].append(np.full(parts[0][-1].size, code, dtype=np.int32))
        index = AsofPrices()
        index._index(symbols, *parts)
        return index

    def _forget_before(self, ticker: str, ts: int) -> None:
        """Drop the rows the coming batches cannot use: those of tickers before ``ticker``
        and ``ticker``'s before ``ts`` (copied when most go, so their memory is freed)."""
        for name in [n for n in self._held if n < ticker]:
            del self._held[name]
        held = self._rows_of(ticker)
        if held is not None:
            a = int(np.searchsorted(held[0], ts, side="left"))
            if a:
                keep = [c[a:] for c in held]
                if 2 * a > held[0].size:
                    keep = [c.copy() for c in keep]
                self._held[ticker] = [tuple(keep)]
