# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""option_trades -> option_trades_greeks: underlying price, time to expiry, IV, greeks, values.

Works on any batch size (a whole day or a live micro-batch); everything is vectorized.

Status precedence, first match wins:

1. ``bad_input``: the trade itself is unusable (price or strike not a finite positive
   number, contract_type not call/put, or a null expiration or SIP time);
2. ``expired``: time to expiry <= 0 (after 16:00 New York on the expiration date);
3. ``no_underlying``: no eligible underlying trade within the staleness limit;
4. then ``implied_volatility``'s: ``bad_input`` (S not positive), ``below_intrinsic``,
   ``above_max`` or ``ok`` (see market_assets.core.greeks).

iv and the greeks are null unless ``ok``; dadvv and gadvv likewise (FEATURES.md leaves
non-ok trades out of those samples); intrinsic_value is null only without S.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import expiry_ns
from market_assets.core.conditions import ConditionRules
from market_assets.core.greeks import (
    BAD_INPUT,
    EXPIRED,
    OK,
    STATUS_CODES,
    greeks,
    implied_volatility,
)
from market_assets.core.rates import TreasuryCurve, rate_at
from market_assets.core.schemas import GREEKS_STATUSES, OPTION_TRADES, OPTION_TRADES_GREEKS
from market_assets.core.underlying import AsofPrices, UnderlyingIndex

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
NO_UNDERLYING = STATUS_CODES["no_underlying"]


@dataclass(frozen=True)
class GreeksParams:
    rate: float | TreasuryCurve  # a constant, or the curve at each trade's time to expiry
    dividend_yield: float
    contract_multiplier: float
    gadvv_scale: float
    max_underlying_staleness_s: float


def _f64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy with NaN for nulls."""
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _nullable(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    mask = np.isnan(values) if null is None else (null | np.isnan(values))
    return pa.array(values, type=pa.float64(), mask=mask)


def time_to_expiry(expiration: pa.ChunkedArray | pa.Array, ts_ns: np.ndarray) -> np.ndarray:
    """Years (ACT/365) from ``ts_ns`` to 16:00 New York on the expiration date; NaN if null."""
    days = expiration.cast(pa.int32()).fill_null(np.iinfo(np.int32).min)
    days = days.to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(len(days), np.nan)
    valid = days != np.iinfo(np.int32).min
    if not valid.any():
        return out
    uniq, inverse = np.unique(days[valid], return_inverse=True)
    epoch = dt.date(1970, 1, 1)
    exp_ns = np.array([expiry_ns(epoch + dt.timedelta(days=int(d))) for d in uniq], dtype=np.int64)
    # Integer difference first: float64 ns since the epoch would lose microseconds.
    out[valid] = (exp_ns[inverse] - ts_ns[valid]).astype(np.float64) / NS_PER_YEAR
    return out


def _option_columns(options: pa.Table) -> list[pa.ChunkedArray]:
    cols = []
    for field in OPTION_TRADES:
        if field.name in options.column_names:
            col = options.column(field.name)
            cols.append(col.cast(field.type) if col.type != field.type else col)
        else:  # 7-column source files have no participant_timestamp
            cols.append(pa.chunked_array([pa.nulls(options.num_rows, field.type)], field.type))
    return cols


def enrich_option_trades(
    options: pa.Table,
    stock: pa.Table | AsofPrices,
    params: GreeksParams,
    rules: ConditionRules,
) -> pa.Table:
    """Add the greeks columns to option trades; returns exactly ``OPTION_TRADES_GREEKS``.

    ``stock`` is the underlying trades, or an index built once (:class:`UnderlyingIndex`
    from them, :class:`NbboMidIndex` from the underlying's quotes) when enriching many
    micro-batches."""
    cols = _option_columns(options)
    by_name = dict(zip(OPTION_TRADES.names, cols, strict=True))
    n = options.num_rows
    ts_arr = by_name["sip_timestamp"].cast(pa.int64())
    ts_null = np.asarray(ts_arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    ts = ts_arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)

    max_stale = int(round(params.max_underlying_staleness_s * 1e9))
    index = stock if isinstance(stock, AsofPrices) else UnderlyingIndex(stock, rules)
    S, S_time = index.asof(by_name["underlying"], pa.array(ts, pa.int64(), mask=ts_null), max_stale)
    K = _f64(by_name["strike"])
    price = _f64(by_name["price"])
    size = _f64(by_name["size"])
    ctype = by_name["contract_type"]
    is_call = pc.fill_null(pc.equal(ctype, "call"), False).to_numpy(zero_copy_only=False)
    is_put = pc.fill_null(pc.equal(ctype, "put"), False).to_numpy(zero_copy_only=False)
    t = time_to_expiry(by_name["expiration"], ts)
    t[ts_null] = np.nan
    r, q = rate_at(params.rate, t), float(params.dividend_yield)

    iv, status = implied_volatility(price, S, K, t, r, q, is_call)
    has_s = ~np.isnan(S)
    with np.errstate(invalid="ignore"):
        trade_bad = ~((price > 0) & np.isfinite(price) & (K > 0) & np.isfinite(K))
    trade_bad |= ~(is_call | is_put) | np.isnan(t)
    status = np.where(has_s, status, NO_UNDERLYING).astype(np.int8)
    with np.errstate(invalid="ignore"):
        status[~trade_bad & (t <= 0)] = EXPIRED
    status[trade_bad] = BAD_INPUT
    ok = status == OK
    iv = np.where(ok, iv, np.nan)

    g = {k: np.full(n, np.nan) for k in ("delta", "gamma", "vega", "theta")}
    if ok.any():
        i = np.flatnonzero(ok)
        gi = greeks(S[i], K[i], t[i], r[i], q, iv[i], is_call[i])
        for k, v in gi.items():
            g[k][i] = v
    m, gs = float(params.contract_multiplier), float(params.gadvv_scale)
    with np.errstate(invalid="ignore"):
        dollar_value = price * size * m
        dadvv = np.abs(g["delta"]) * S * size * m
        gadvv = np.abs(g["gamma"]) * S * S * size * m * gs
        intrinsic = np.where(is_call, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))
    intrinsic[~(is_call | is_put)] = np.nan

    s_time = pa.array(S_time, pa.int64(), mask=~has_s).cast(
        OPTION_TRADES_GREEKS.field("underlying_price_time").type
    )
    status_str = pa.DictionaryArray.from_arrays(
        pa.array(status, pa.int8()), pa.array(GREEKS_STATUSES, pa.string())
    ).cast(pa.string())
    extra = [
        _nullable(S),
        s_time,
        _nullable(t),
        _nullable(r),
        pa.array(np.full(n, q), pa.float64()),
        _nullable(iv),
        _nullable(g["delta"]),
        _nullable(g["gamma"]),
        _nullable(g["vega"]),
        _nullable(g["theta"]),
        _nullable(intrinsic),
        _nullable(dollar_value),
        _nullable(dadvv),
        _nullable(gadvv),
        status_str,
    ]
    arrays = [c.combine_chunks() if c.num_chunks != 1 else c.chunk(0) for c in cols] + extra
    if n == 0:
        arrays = [pa.array([], f.type) for f in OPTION_TRADES_GREEKS]
    return pa.Table.from_arrays(arrays, schema=OPTION_TRADES_GREEKS)


def status_counts(statuses: pa.Table | pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """Rows per greeks_status (of a table's ``greeks_status`` column, or of a status
    array), every status present (0 when absent)."""
    if isinstance(statuses, pa.Table):
        statuses = statuses.column("greeks_status")
    counts = dict.fromkeys(GREEKS_STATUSES, 0)
    if len(statuses):
        vc = pc.value_counts(statuses)
        for value, count in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            if value is not None:
                counts[value] = counts.get(value, 0) + int(count)
    return counts
