# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The underlying price at each option trade: a vectorized as-of join on stock trades.

S is the price of the underlying's last trade at or before the option trade's SIP time
(ties at the same nanosecond: the highest sequence number) that is a genuine current price:
not corrected (``correction`` null or 0) and every condition on it either updates the
consolidated open/close or is 12 (Form T, extended hours) or 37 (odd lot). A trade older than
the staleness limit (age > ``max_staleness_ns``) gives no price.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.conditions import FORM_T_EXTENDED_HOURS, ODD_LOT, ConditionRules

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


class UnderlyingIndex:
    """Eligible underlying trades sorted once by (symbol, time, sequence), for repeated
    as-of lookups (one per micro-batch of option trades)."""

    def __init__(self, stock: pa.Table, rules: ConditionRules):
        keep = eligible_underlying_mask(stock, rules) if stock.num_rows else np.zeros(0, bool)
        idx = np.flatnonzero(keep)
        eligible = stock.take(pa.array(idx, pa.int64()))
        tick = _column(eligible, "ticker") if eligible.num_rows else pa.array([], pa.string())
        self.symbols = pc.unique(tick.drop_null())
        code = (
            pc.index_in(tick, value_set=self.symbols).fill_null(-1).to_numpy(zero_copy_only=False)
        )
        s_ts, _ = (
            _ts_ns(_column(eligible, "sip_timestamp"))
            if eligible.num_rows
            else (np.zeros(0, np.int64), None)
        )
        s_seq = (
            _column(eligible, "sequence_number").fill_null(-1).to_numpy(zero_copy_only=False)
            if eligible.num_rows
            else np.zeros(0, np.int64)
        )
        s_price = (
            _column(eligible, "price").to_numpy(zero_copy_only=False).astype(np.float64)
            if eligible.num_rows
            else np.zeros(0)
        )
        # Ties at one nanosecond: the highest sequence number sorts last and wins.
        order = np.lexsort((s_seq, s_ts, code))
        self.ts = s_ts[order]
        self.price = s_price[order]
        self.bounds = np.searchsorted(code[order], np.arange(len(self.symbols) + 1), side="left")
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
            fresh = ts[rows] - self.ts[at] <= max_staleness_ns
            price[rows[fresh]] = self.price[at[fresh]]
            time_ns[rows[fresh]] = self.ts[at[fresh]]
        return price, time_ns
