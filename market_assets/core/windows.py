# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Per-window feature rows (FEATURES.md) from a symbol's stock trades and greeked option trades.

Pure computation: the batch assets call :func:`features_for_day` on a whole day, the live
aggregator calls :func:`compute_windows` with the one window (or few windows) it is closing.
Trades are sorted once, windows are located with ``searchsorted`` and each window's samples
are contiguous slices, so the only Python loop is per window (at most 960 per day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core import calendar
from market_assets.core.calendar import window_ns as _window_ns
from market_assets.core.conditions import ConditionRules
from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)
from market_assets.core.statistics import SUFFIXES, StatsOptions, describe

TS = pa.timestamp("ns", tz="UTC")
COUNT_COLUMNS = ("underlying_trades", "call_trades", "put_trades")
_SAMPLES = (
    "underlying_dollar_value",
    "puts_dadvv",
    "puts_gadvv",
    "calls_dadvv",
    "calls_gadvv",
    "calls_dadvv_agg_buy",
    "calls_dadvv_agg_sell",
    "puts_dadvv_agg_buy",
    "puts_dadvv_agg_sell",
)
# The aggressor side column this module reads when aggression features are on ("buy"/"sell");
# produced upstream once quotes are available. Without it the aggression features are null.
AGGRESSOR_COLUMN = "aggressor_side"


def _sample_suffixes(names: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Map sample prefix -> [(suffix, column name)] for the statistic columns in ``names``."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        for prefix in sorted(_SAMPLES, key=len, reverse=True):
            if name.startswith(prefix + "_") and name[len(prefix) + 1 :] in SUFFIXES:
                out.setdefault(prefix, []).append((name[len(prefix) + 1 :], name))
                break
    return out


_STATS_BASE = _sample_suffixes(FEATURE_NAMES)
_STATS_AGG = _sample_suffixes(AGGRESSION_FEATURE_NAMES)


def output_schema(include_aggression: bool = False) -> pa.Schema:
    """Arrow schema of a features table: identity columns, then the feature columns."""
    fields = [
        pa.field("symbol", pa.string()),
        pa.field("window", pa.string()),
        pa.field("window_start", TS),
        pa.field("window_end", TS),
    ]
    fields += [pa.field(c, pa.int64()) for c in COUNT_COLUMNS]
    names = list(FEATURE_NAMES) + (list(AGGRESSION_FEATURE_NAMES) if include_aggression else [])
    fields += [pa.field(c, pa.float64()) for c in names]
    assert [f.name for f in fields[: len(IDENTITY_COLUMNS)]] == list(IDENTITY_COLUMNS)
    return pa.schema(fields)


def window_grid(day: dt.date, window: str, session: str) -> np.ndarray:
    """Window starts (int64 ns, UTC) of the day's session for a window size such as ``5m``."""
    return calendar.window_starts_ns(day, _window_ns(window), session)


def _ns(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _f64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy array with nulls as NaN."""
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _is(col: pa.ChunkedArray, value: str) -> np.ndarray:
    """Boolean numpy mask ``col == value`` (null -> False)."""
    return _bool(pc.fill_null(pc.equal(col, value), False))


def _null(col: pa.ChunkedArray) -> np.ndarray:
    return _bool(pc.is_null(col))


def _bool(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _not_corrected(table: pa.Table) -> np.ndarray:
    """True for trades whose correction is null or 0."""
    return _bool(pc.fill_null(pc.equal(table.column("correction"), 0), True))


def _order(ts: np.ndarray, seq: np.ndarray | None = None) -> np.ndarray:
    """Stable sort permutation by (ts, seq); cheap when the input is already in order."""
    if ts.size < 2:
        return np.arange(ts.size)
    dt_ = np.diff(ts)
    if seq is None:
        if (dt_ >= 0).all():
            return np.arange(ts.size)
        return np.argsort(ts, kind="stable")
    if (dt_ > 0).all() or ((dt_ >= 0).all() and (np.diff(seq)[dt_ == 0] >= 0).all()):
        return np.arange(ts.size)
    return np.lexsort((seq, ts))


def _bounds(ts: np.ndarray, starts: np.ndarray, window_ns: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.searchsorted(ts, starts, side="left"),
        np.searchsorted(ts, starts + window_ns, side="left"),
    )


def _count(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    cs = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    return cs[hi] - cs[lo]


def _reduce_slices(
    ufunc: np.ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``ufunc.reduce(values[lo[i]:hi[i]])`` per window, NaN where the slice is empty."""
    if lo.size == 0:
        return np.zeros(0)
    # reduceat over interleaved (lo, hi) offsets reduces [lo, hi) at the even positions; a
    # sentinel keeps every offset a valid index.
    ext = np.append(values, 0.0)
    res = ufunc.reduceat(ext, np.column_stack((lo, hi)).ravel())[::2]
    return np.where(hi > lo, res, np.nan)


@dataclass
class _Sample:
    """One statistic sample: values grouped by window as contiguous slices."""

    values: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _sample(
    ts: np.ndarray, values: np.ndarray, mask: np.ndarray, starts: np.ndarray, wns: int
) -> _Sample:
    # A non-finite value (never expected for greeks_status "ok") would poison every statistic.
    mask = mask & np.isfinite(values)
    lo, hi = _bounds(ts[mask], starts, wns)
    return _Sample(values[mask], lo, hi)


def compute_windows(
    stock: pa.Table,
    options: pa.Table,
    starts_ns: np.ndarray,
    window_ns: int,
    symbol: str,
    window: str,
    rules: ConditionRules,
    stats: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
    include_aggression: bool = False,
) -> pa.Table:
    """One feature row per window start in ``starts_ns`` (half-open ``[start, start + window_ns)``).

    ``stock`` has the STOCK_TRADES columns, ``options`` the OPTION_TRADES_GREEKS columns (either
    may hold other tickers/underlyings and trades outside the windows; they are ignored).
    """
    starts = np.asarray(starts_ns, dtype=np.int64)
    wns = int(window_ns)
    nw = starts.size
    cols: dict[str, np.ndarray] = {}

    # --- stock trades of the symbol, not corrected, in (sip_timestamp, sequence_number) order
    span = (int(starts.min()), int(starts.max()) + wns) if nw else (0, 0)
    s_ts = _ns(stock.column("sip_timestamp"))
    keep = _is(stock.column("ticker"), symbol) & _not_corrected(stock)
    keep &= (s_ts >= span[0]) & (s_ts < span[1])
    idx = np.flatnonzero(keep)
    s_seq = pc.fill_null(stock.column("sequence_number"), 0).to_numpy(zero_copy_only=False)
    idx = idx[_order(s_ts[idx], s_seq[idx])]
    s_ts = s_ts[idx]
    s_px = _f64(stock.column("price"))[idx]
    s_dv = s_px * _f64(stock.column("size"))[idx]
    conds = stock.column("conditions")
    oc = rules.mask(conds, "open_close")[idx]
    hl = rules.mask(conds, "high_low")[idx]
    vol = rules.mask(conds, "volume")[idx]
    lo, hi = _bounds(s_ts, starts, wns)
    cols["underlying_trades"] = (hi - lo).astype(np.int64)

    open_ = np.full(nw, np.nan)
    close = np.full(nw, np.nan)
    pos = np.flatnonzero(oc)
    a, b = np.searchsorted(pos, lo), np.searchsorted(pos, hi)
    has = b > a
    open_[has] = s_px[pos[a[has]]]
    close[has] = s_px[pos[b[has] - 1]]
    a, b = _bounds(s_ts[hl], starts, wns)
    high = _reduce_slices(np.maximum, s_px[hl], a, b)
    low = _reduce_slices(np.minimum, s_px[hl], a, b)
    cols["underlying_price_open"] = open_
    cols["underlying_price_high"] = high
    cols["underlying_price_low"] = low
    cols["underlying_price_close"] = close

    samples: dict[str, _Sample] = {"underlying_dollar_value": _sample(s_ts, s_dv, vol, starts, wns)}

    # --- option trades on the symbol, not corrected, in sip_timestamp order
    o_ts = _ns(options.column("sip_timestamp"))
    keep = _is(options.column("underlying"), symbol) & _not_corrected(options)
    keep &= (o_ts >= span[0]) & (o_ts < span[1])
    idx = np.flatnonzero(keep)
    idx = idx[_order(o_ts[idx])]
    o_ts = o_ts[idx]
    is_call = _is(options.column("contract_type"), "call")[idx]
    is_put = _is(options.column("contract_type"), "put")[idx]
    status = options.column("greeks_status")
    ok = _is(status, "ok")[idx]
    o_px = _f64(options.column("price"))[idx]
    intrinsic = _f64(options.column("intrinsic_value"))[idx]
    has_s = ~_is(status, "no_underlying")[idx] & ~np.isnan(intrinsic) & ~_null(status)[idx]
    dollar = np.nan_to_num(_f64(options.column("dollar_value"))[idx], nan=0.0)
    dadvv = _f64(options.column("dadvv"))[idx]
    gadvv = _f64(options.column("gadvv"))[idx]

    lo, hi = _bounds(o_ts, starts, wns)
    cols["call_trades"] = _count(is_call, lo, hi)
    cols["put_trades"] = _count(is_put, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        put_s = _count(is_put & has_s, lo, hi)
        call_s = _count(is_call & has_s, lo, hi)
        below = is_put & has_s & (o_px < intrinsic)
        above_p = is_put & has_s & (o_px > intrinsic)
        above_c = is_call & has_s & (o_px > intrinsic)
        cols["puts_below_intrinsic_pct"] = np.where(
            put_s > 0, _count(below, lo, hi) / put_s, np.nan
        )
        cols["puts_above_intrinsic_pct"] = np.where(
            put_s > 0, _count(above_p, lo, hi) / put_s, np.nan
        )
        cols["calls_above_intrinsic_pct"] = np.where(
            call_s > 0, _count(above_c, lo, hi) / call_s, np.nan
        )
    call_dollar = dollar[is_call]
    c_lo, c_hi = _bounds(o_ts[is_call], starts, wns)
    cols["calls_dollar_value"] = np.nan_to_num(_reduce_slices(np.add, call_dollar, c_lo, c_hi))

    ok_call = is_call & ok
    ok_put = is_put & ok
    samples["puts_dadvv"] = _sample(o_ts, dadvv, ok_put, starts, wns)
    samples["puts_gadvv"] = _sample(o_ts, gadvv, ok_put, starts, wns)
    samples["calls_dadvv"] = _sample(o_ts, dadvv, ok_call, starts, wns)
    samples["calls_gadvv"] = _sample(o_ts, gadvv, ok_call, starts, wns)

    stat_groups = dict(_STATS_BASE)
    if include_aggression:
        stat_groups.update(_STATS_AGG)
        if AGGRESSOR_COLUMN in options.column_names:
            side = options.column(AGGRESSOR_COLUMN)
            buy = _is(side, "buy")[idx]
            sell = _is(side, "sell")[idx]
            samples["calls_dadvv_agg_buy"] = _sample(o_ts, dadvv, ok_call & buy, starts, wns)
            samples["calls_dadvv_agg_sell"] = _sample(o_ts, dadvv, ok_call & sell, starts, wns)
            samples["puts_dadvv_agg_buy"] = _sample(o_ts, dadvv, ok_put & buy, starts, wns)
            samples["puts_dadvv_agg_sell"] = _sample(o_ts, dadvv, ok_put & sell, starts, wns)

    for prefix, items in stat_groups.items():
        arrs = {name: np.full(nw, np.nan) for _, name in items}
        sample = samples.get(prefix)
        if sample is not None:
            suffixes = [s for s, _ in items]
            for w in range(nw):
                res = describe(sample.values[sample.lo[w] : sample.hi[w]], suffixes, stats)
                for s, name in items:
                    v = res[s]
                    if v is not None:
                        arrs[name][w] = v
        cols.update(arrs)

    schema = output_schema(include_aggression)
    arrays: list[pa.Array] = [
        pa.array(np.full(nw, symbol, dtype=object), pa.string()),
        pa.array(np.full(nw, window, dtype=object), pa.string()),
        pa.array(starts, pa.int64()).cast(TS),
        pa.array(starts + wns, pa.int64()).cast(TS),
    ]
    for f in list(schema)[4:]:
        v = cols[f.name]
        if f.type == pa.int64():
            arrays.append(pa.array(v, pa.int64()))
        else:
            arrays.append(pa.array(v, pa.float64(), mask=np.isnan(v)))
    return pa.Table.from_arrays(arrays, schema=schema)


def features_for_day(
    stock: pa.Table,
    options: pa.Table,
    day: dt.date,
    symbol: str,
    window: str,
    session: str,
    rules: ConditionRules,
    stats: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
    include_aggression: bool = False,
) -> pa.Table:
    """The day's feature rows: every window of the session, trades or not."""
    return compute_windows(
        stock,
        options,
        window_grid(day, window, session),
        _window_ns(window),
        symbol,
        window,
        rules,
        stats,
        include_aggression,
    )
