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

from market_assets.conditions import FORM_T_EXTENDED_HOURS, ODD_LOT, ConditionRules

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


def underlying_asof(
    option_underlying: np.ndarray | pa.Array | pa.ChunkedArray,
    option_ts_ns: np.ndarray,
    stock: pa.Table,
    rules: ConditionRules,
    max_staleness_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Underlying price and its SIP time (ns) for each option trade.

    ``option_ts_ns`` is int64 ns (or a timestamp array; nulls give no price). Returns
    ``(price, time_ns)``: NaN and -1 where there is no eligible, fresh underlying trade.
    One ``np.searchsorted`` per underlying symbol over its eligible trades sorted by
    (sip_timestamp, sequence_number).
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
    if n == 0 or stock.num_rows == 0:
        return price, time_ns

    keep = eligible_underlying_mask(stock, rules)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return price, time_ns
    eligible = stock.take(pa.array(idx))
    symbols = pc.unique(_column(eligible, "ticker").drop_null())
    stock_code = pc.index_in(_column(eligible, "ticker"), value_set=symbols)
    stock_code = stock_code.fill_null(-1).to_numpy(zero_copy_only=False)
    opt_code = pc.index_in(und, value_set=symbols).fill_null(-1).to_numpy(zero_copy_only=False)
    s_ts, _ = _ts_ns(_column(eligible, "sip_timestamp"))
    s_seq = _column(eligible, "sequence_number").fill_null(-1).to_numpy(zero_copy_only=False)
    s_price = _column(eligible, "price").to_numpy(zero_copy_only=False).astype(np.float64)

    # Sort once by (symbol, time, sequence); each symbol is then one contiguous sorted run.
    order = np.lexsort((s_seq, s_ts, stock_code))
    code_sorted = stock_code[order]
    ts_sorted = s_ts[order]
    price_sorted = s_price[order]
    bounds = np.searchsorted(code_sorted, np.arange(len(symbols) + 1), side="left")
    want = opt_code >= 0
    want &= ts_valid
    for code in np.unique(opt_code[want]):  # one vectorized search per symbol
        rows = np.flatnonzero(want & (opt_code == code))
        lo, hi = bounds[code], bounds[code + 1]
        run = ts_sorted[lo:hi]
        pos = np.searchsorted(run, ts[rows], side="right") - 1
        found = pos >= 0
        at = lo + pos[found]
        rows = rows[found]
        fresh = ts[rows] - ts_sorted[at] <= max_staleness_ns
        price[rows[fresh]] = price_sorted[at[fresh]]
        time_ns[rows[fresh]] = ts_sorted[at[fresh]]
    return price, time_ns
