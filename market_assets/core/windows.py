# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Per-window feature rows (FEATURES.md) from a symbol's stock trades and greeked option trades.

Pure computation in named steps:

1. :meth:`StockTrades.from_arrow` / :meth:`OptionTrades.from_arrow` keep the symbol's
   trades that count (not corrected) as numpy columns with the per-trade values the
   features use (dollar value, condition masks, call/put flags, ...).
2. ``.ordered()`` sorts them: stock trades by (sip_timestamp, sequence_number), option
   trades by sip_timestamp, both stable.
3. :func:`window_rows` turns ordered trades and a list of window starts into one row per
   window: counts and prices (:func:`_stock_columns`), option fractions and sums
   (:func:`_option_columns`), the statistics of each sample (:func:`_statistic_columns`),
   then the Arrow table (:func:`_to_table`).

Every number of a window depends only on that window's trades (not on the other windows
computed in the same call, nor on how the trades were batched), so the whole-day path
(:func:`features_for_day`) and the incremental one (``core.aggregator.WindowAggregator``)
give identical rows. Windows are located with ``searchsorted``; each window's samples are
contiguous slices, so the only Python loop is per window (at most 960 per day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

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
from market_assets.core.statistics import SUFFIXES, StatsOptions, describe, sorted_total

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
# produced upstream once quotes are available. A window holding an option trade that came
# without it has null aggression features.
AGGRESSOR_COLUMN = "aggressor_side"
_UNKNOWN, _NEITHER, _BUY, _SELL = -1, 0, 1, 2


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


# --- step 1: the trades that count, as numpy columns ---------------------------------------

Trades = pa.Table | pa.RecordBatch


def _ns(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _f64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy array with nulls as NaN."""
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _bool(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _is(col: pa.ChunkedArray | pa.Array, value: str) -> np.ndarray:
    """Boolean numpy mask ``col == value`` (null -> False)."""
    return _bool(pc.fill_null(pc.equal(col, value), False))


def _counted(trades: Trades, key: str, symbol: str) -> np.ndarray:
    """Row indices of the symbol's trades whose correction is null or 0."""
    keep = _is(trades.column(key), symbol)
    keep &= _bool(pc.fill_null(pc.equal(trades.column("correction"), 0), True))
    return np.flatnonzero(keep)


class _Columns:
    """Equal-length numpy columns (a dataclass) that can be taken, sliced and concatenated."""

    ts: np.ndarray
    DTYPES: ClassVar[dict[str, type]]

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def empty(cls) -> Self:
        return cls(**{name: np.zeros(0, dtype=t) for name, t in cls.DTYPES.items()})

    def _map(self, f) -> Self:  # noqa: ANN001 - a numpy indexing function
        return type(self)(**{k.name: f(getattr(self, k.name)) for k in dataclasses.fields(self)})

    def take(self, idx: np.ndarray | slice) -> Self:
        return self._map(lambda a: a[idx])

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        if len(parts) == 1:
            return parts[0]
        names = [k.name for k in dataclasses.fields(cls)]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def between(self, start: int, end: int) -> Self:
        """The trades with ``start <= ts < end`` (``ts`` sorted)."""
        a, b = np.searchsorted(self.ts, (start, end), side="left")
        return self.take(slice(int(a), int(b)))


@dataclass(frozen=True)
class StockTrades(_Columns):
    """The symbol's stock trades that count (not corrected), with what the features use."""

    ts: np.ndarray  # int64 ns since the epoch, UTC
    seq: np.ndarray  # int64 sequence number (null -> 0)
    price: np.ndarray
    dollar: np.ndarray  # price x size
    open_close: np.ndarray  # every condition updates open/close
    high_low: np.ndarray  # every condition updates high/low
    volume: np.ndarray  # every condition updates volume
    DTYPES: ClassVar[dict[str, type]] = {
        "ts": np.int64,
        "seq": np.int64,
        "price": np.float64,
        "dollar": np.float64,
        "open_close": np.bool_,
        "high_low": np.bool_,
        "volume": np.bool_,
    }

    @classmethod
    def from_arrow(cls, trades: Trades, symbol: str, rules: ConditionRules) -> StockTrades:
        """From STOCK_TRADES columns (other tickers and corrected trades are dropped)."""
        idx = _counted(trades, "ticker", symbol)
        conds = trades.column("conditions")
        price = _f64(trades.column("price"))[idx]
        return cls(
            ts=_ns(trades.column("sip_timestamp"))[idx],
            seq=pc.fill_null(trades.column("sequence_number"), 0)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64, copy=False)[idx],
            price=price,
            dollar=price * _f64(trades.column("size"))[idx],
            open_close=rules.mask(conds, "open_close")[idx],
            high_low=rules.mask(conds, "high_low")[idx],
            volume=rules.mask(conds, "volume")[idx],
        )

    def ordered(self) -> StockTrades:
        """Sorted by (sip_timestamp, sequence_number), stable; a no-op when already so."""
        ts, seq = self.ts, self.seq
        if ts.size < 2:
            return self
        d = np.diff(ts)
        if (d > 0).all() or ((d >= 0).all() and (np.diff(seq)[d == 0] >= 0).all()):
            return self
        return self.take(np.lexsort((seq, ts)))


@dataclass(frozen=True)
class OptionTrades(_Columns):
    """The symbol's option trades that count (not corrected), with what the features use."""

    ts: np.ndarray
    is_call: np.ndarray
    is_put: np.ndarray
    ok: np.ndarray  # greeks_status == "ok"
    has_s: np.ndarray  # an underlying price, so an intrinsic value, exists
    price: np.ndarray
    intrinsic: np.ndarray
    dollar: np.ndarray  # premium (null -> 0)
    dadvv: np.ndarray
    gadvv: np.ndarray
    side: np.ndarray  # int8 aggressor side: -1 no classification, 0 neither, 1 buy, 2 sell
    DTYPES: ClassVar[dict[str, type]] = {
        "ts": np.int64,
        "is_call": np.bool_,
        "is_put": np.bool_,
        "ok": np.bool_,
        "has_s": np.bool_,
        "price": np.float64,
        "intrinsic": np.float64,
        "dollar": np.float64,
        "dadvv": np.float64,
        "gadvv": np.float64,
        "side": np.int8,
    }

    @classmethod
    def from_arrow(cls, trades: Trades, symbol: str) -> OptionTrades:
        """From OPTION_TRADES_GREEKS columns (other underlyings and corrected trades dropped)."""
        idx = _counted(trades, "underlying", symbol)
        status = trades.column("greeks_status")
        intrinsic = _f64(trades.column("intrinsic_value"))[idx]
        has_s = ~_is(status, "no_underlying")[idx] & ~np.isnan(intrinsic)
        has_s &= ~_bool(pc.is_null(status))[idx]
        side = np.full(idx.size, _UNKNOWN, dtype=np.int8)
        if AGGRESSOR_COLUMN in trades.column_names:
            col = trades.column(AGGRESSOR_COLUMN)
            side[:] = _NEITHER
            side[_is(col, "buy")[idx]] = _BUY
            side[_is(col, "sell")[idx]] = _SELL
        return cls(
            ts=_ns(trades.column("sip_timestamp"))[idx],
            is_call=_is(trades.column("contract_type"), "call")[idx],
            is_put=_is(trades.column("contract_type"), "put")[idx],
            ok=_is(status, "ok")[idx],
            has_s=has_s,
            price=_f64(trades.column("price"))[idx],
            intrinsic=intrinsic,
            dollar=np.nan_to_num(_f64(trades.column("dollar_value"))[idx], nan=0.0),
            dadvv=_f64(trades.column("dadvv"))[idx],
            gadvv=_f64(trades.column("gadvv"))[idx],
            side=side,
        )

    def ordered(self) -> OptionTrades:
        """Sorted by sip_timestamp, stable; a no-op when already so."""
        if self.ts.size < 2 or (np.diff(self.ts) >= 0).all():
            return self
        return self.take(np.argsort(self.ts, kind="stable"))


# --- step 3: window rows from ordered trades ------------------------------------------------


def _bounds(ts: np.ndarray, starts: np.ndarray, wns: int) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(ts, starts, side="left"), np.searchsorted(ts, starts + wns, side="left")


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
    """One statistic sample: per window, the values where ``mask`` holds between the
    window's bounds ``lo``/``hi`` in the full (time-ordered) columns.

    A window's values are gathered only when asked, so a day's samples never exist as
    copies side by side: at most one window of one sample is copied at a time (the trades
    of a 30-minute window are held once, in the buffer, not once per sample)."""

    values: np.ndarray
    mask: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def window(self, w: int) -> np.ndarray:
        a, b = int(self.lo[w]), int(self.hi[w])
        return self.values[a:b][self.mask[a:b]]


def _sample(values: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> _Sample:
    # A non-finite value (never expected for greeks_status "ok") would poison every statistic.
    return _Sample(values, mask & np.isfinite(values), lo, hi)


def _stock_columns(
    s: StockTrades, starts: np.ndarray, wns: int
) -> tuple[dict[str, np.ndarray], dict[str, _Sample]]:
    """Trade count, open/high/low/close and the dollar-value sample per window."""
    nw = starts.size
    lo, hi = _bounds(s.ts, starts, wns)
    open_ = np.full(nw, np.nan)
    close = np.full(nw, np.nan)
    pos = np.flatnonzero(s.open_close)
    a, b = np.searchsorted(pos, lo), np.searchsorted(pos, hi)
    has = b > a
    open_[has] = s.price[pos[a[has]]]
    close[has] = s.price[pos[b[has] - 1]]
    a, b = _bounds(s.ts[s.high_low], starts, wns)
    cols = {
        "underlying_trades": (hi - lo).astype(np.int64),
        "underlying_price_open": open_,
        "underlying_price_high": _reduce_slices(np.maximum, s.price[s.high_low], a, b),
        "underlying_price_low": _reduce_slices(np.minimum, s.price[s.high_low], a, b),
        "underlying_price_close": close,
    }
    return cols, {"underlying_dollar_value": _sample(s.dollar, s.volume, lo, hi)}


def _fraction(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _option_columns(
    o: OptionTrades, starts: np.ndarray, wns: int, include_aggression: bool
) -> tuple[dict[str, np.ndarray], dict[str, _Sample]]:
    """Call/put counts, intrinsic fractions, call premium and the dadvv/gadvv samples."""
    lo, hi = _bounds(o.ts, starts, wns)
    with np.errstate(invalid="ignore"):
        below = o.price < o.intrinsic
        above = o.price > o.intrinsic
    put_s, call_s = o.is_put & o.has_s, o.is_call & o.has_s
    put_n, call_n = _count(put_s, lo, hi), _count(call_s, lo, hi)
    # The window's call premium summed in sorted order, like every sample total.
    premium = _Sample(o.dollar, o.is_call, lo, hi)
    cols = {
        "call_trades": _count(o.is_call, lo, hi),
        "put_trades": _count(o.is_put, lo, hi),
        "puts_below_intrinsic_pct": _fraction(_count(put_s & below, lo, hi), put_n),
        "puts_above_intrinsic_pct": _fraction(_count(put_s & above, lo, hi), put_n),
        "calls_above_intrinsic_pct": _fraction(_count(call_s & above, lo, hi), call_n),
        "calls_dollar_value": np.array(
            [sorted_total(premium.window(w)) for w in range(starts.size)], dtype=np.float64
        ),
    }
    ok_call, ok_put = o.is_call & o.ok, o.is_put & o.ok
    samples = {
        "puts_dadvv": _sample(o.dadvv, ok_put, lo, hi),
        "puts_gadvv": _sample(o.gadvv, ok_put, lo, hi),
        "calls_dadvv": _sample(o.dadvv, ok_call, lo, hi),
        "calls_gadvv": _sample(o.gadvv, ok_call, lo, hi),
    }
    if include_aggression:
        buy, sell = o.side == _BUY, o.side == _SELL
        samples["calls_dadvv_agg_buy"] = _sample(o.dadvv, ok_call & buy, lo, hi)
        samples["calls_dadvv_agg_sell"] = _sample(o.dadvv, ok_call & sell, lo, hi)
        samples["puts_dadvv_agg_buy"] = _sample(o.dadvv, ok_put & buy, lo, hi)
        samples["puts_dadvv_agg_sell"] = _sample(o.dadvv, ok_put & sell, lo, hi)
        cols["_unclassified"] = _count(o.side == _UNKNOWN, lo, hi)
    return cols, samples


def _statistic_columns(
    samples: dict[str, _Sample], skip: dict[str, np.ndarray], nw: int, stats: StatsOptions
) -> dict[str, np.ndarray]:
    """The FEATURES.md statistics of every sample per window (NaN = null); the windows
    where ``skip[prefix]`` is true stay null."""
    cols: dict[str, np.ndarray] = {}
    for prefix, sample in samples.items():
        items = _STATS_BASE.get(prefix) or _STATS_AGG[prefix]
        suffixes = [s for s, _ in items]
        arrs = {name: np.full(nw, np.nan) for _, name in items}
        no = skip.get(prefix)
        for w in range(nw):
            if no is not None and no[w]:
                continue
            res = describe(sample.window(w), suffixes, stats)
            for s, name in items:
                v = res[s]
                if v is not None:
                    arrs[name][w] = v
        cols.update(arrs)
    return cols


def _to_table(
    cols: dict[str, np.ndarray],
    starts: np.ndarray,
    wns: int,
    symbol: str,
    window: str,
    include_aggression: bool,
) -> pa.Table:
    nw = starts.size
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


def window_rows(
    stock: StockTrades,
    options: OptionTrades,
    starts_ns: np.ndarray,
    window_ns: int,
    symbol: str,
    window: str,
    stats: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
    include_aggression: bool = False,
) -> pa.Table:
    """One feature row per window start (half-open ``[start, start + window_ns)``) from
    ordered trades (``.ordered()``); trades outside the windows are ignored."""
    starts = np.asarray(starts_ns, dtype=np.int64)
    wns = int(window_ns)
    cols, samples = _stock_columns(stock, starts, wns)
    opt_cols, opt_samples = _option_columns(options, starts, wns, include_aggression)
    cols.update(opt_cols)
    samples.update(opt_samples)
    unclassified = cols.pop("_unclassified", np.zeros(starts.size, dtype=np.int64)) > 0
    skip = {prefix: unclassified for prefix in _STATS_AGG}
    cols.update(_statistic_columns(samples, skip, starts.size, stats))
    return _to_table(cols, starts, wns, symbol, window, include_aggression)


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
    return window_rows(
        StockTrades.from_arrow(stock, symbol, rules).ordered(),
        OptionTrades.from_arrow(options, symbol).ordered(),
        starts_ns,
        window_ns,
        symbol,
        window,
        stats,
        include_aggression,
    )


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
