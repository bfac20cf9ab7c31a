# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Per-window feature rows (FEATURES.md) from a symbol's stock trades and greeked option trades.

Pure computation in named steps:

1. :mod:`core.window_trades`: the symbol's trades that count (not corrected) as numpy
   columns, ordered (stock by (sip_timestamp, sequence_number), options by sip_timestamp).
2. :mod:`core.cells`: the trades summarised per cell (a time slice whose length divides
   every window size): counts, open/high/low/close and the values of each statistic sample.
3. :func:`rows_from_cells`: one row per window from the cells it is made of: counts and
   prices, option fractions and the call premium, the statistics of each sample
   (:func:`_statistic_columns`), then the Arrow table (:func:`_to_table`).

Every number of a window depends only on that window's trades (not on the other windows
computed in the same call, nor on how the trades were batched or cut into cells), so the
whole-day path (:func:`features_for_day`, one cell per window) and the incremental one
(``core.aggregator.WindowAggregator``, cells as long as the windows' greatest common
divisor) give identical rows. The only Python loop is per window (at most 960 per day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from market_assets.core import calendar
from market_assets.core.calendar import window_ns as _window_ns
from market_assets.core.cells import CALL_PREMIUM, CellChunk, WindowCells, summarize, window_cells
from market_assets.core.conditions import ConditionRules
from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)
from market_assets.core.statistics import SUFFIXES, StatsOptions, describe, sorted_total
from market_assets.core.window_trades import (
    AGGRESSOR_COLUMN,
    OptionTrades,
    StockTrades,
    Trades,
)

__all__ = [
    "AGGRESSOR_COLUMN",
    "OptionTrades",
    "StockTrades",
    "Trades",
    "compute_windows",
    "features_for_day",
    "output_schema",
    "rows_from_cells",
    "window_grid",
    "window_rows",
]

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


# --- step 3: window rows from cells -----------------------------------------------------------


def _fraction(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


_COUNTED = (
    "underlying_trades",
    "call_trades",
    "put_trades",
    "puts_priced",
    "calls_priced",
    "puts_below",
    "puts_above",
    "calls_above",
    "unclassified",
)


def _count_and_price_columns(windows: list[WindowCells]) -> dict[str, np.ndarray]:
    """Trade counts, open/high/low/close, the intrinsic-value fractions and the call premium."""
    n = {k: np.array([w.count(k) for w in windows], dtype=np.int64) for k in _COUNTED}
    ohlc = np.array([w.ohlc() for w in windows], dtype=np.float64).reshape(len(windows), 4)
    return {
        "underlying_trades": n["underlying_trades"],
        "call_trades": n["call_trades"],
        "put_trades": n["put_trades"],
        "underlying_price_open": ohlc[:, 0],
        "underlying_price_high": ohlc[:, 1],
        "underlying_price_low": ohlc[:, 2],
        "underlying_price_close": ohlc[:, 3],
        "puts_below_intrinsic_pct": _fraction(n["puts_below"], n["puts_priced"]),
        "puts_above_intrinsic_pct": _fraction(n["puts_above"], n["puts_priced"]),
        "calls_above_intrinsic_pct": _fraction(n["calls_above"], n["calls_priced"]),
        # The window's call premium summed in sorted order, like every sample total.
        "calls_dollar_value": np.array(
            [sorted_total(w.values(CALL_PREMIUM)) for w in windows], dtype=np.float64
        ),
        "_unclassified": n["unclassified"],
    }


def _statistic_columns(
    windows: list[WindowCells], stats: StatsOptions, include_aggression: bool
) -> dict[str, np.ndarray]:
    """The FEATURES.md statistics of every sample per window (NaN = null). A window holding
    an option trade without an aggressor side has null aggression statistics."""
    nw = len(windows)
    unclassified = [w.count("unclassified") > 0 for w in windows]
    samples = list(_STATS_BASE.items())
    if include_aggression:
        samples += list(_STATS_AGG.items())
    cols: dict[str, np.ndarray] = {}
    for prefix, items in samples:
        suffixes = [s for s, _ in items]
        arrs = {name: np.full(nw, np.nan) for _, name in items}
        skip = prefix in _STATS_AGG
        for i, w in enumerate(windows):
            if skip and unclassified[i]:
                continue
            # values() is a fresh copy: describe may sort it in place.
            res = describe(w.values(prefix), suffixes, stats, overwrite_input=True)
            for s, name in items:
                v = res[s]
                if v is not None:
                    arrs[name][i] = v
        cols.update(arrs)
    return cols


def rows_from_cells(
    chunks: Sequence[CellChunk],
    starts_ns: np.ndarray,
    window_ns: int,
    symbol: str,
    window: str,
    stats: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
    include_aggression: bool = False,
) -> pa.Table:
    """One feature row per window start (``[start, start + window_ns)``), each window made
    of the cells of ``chunks`` that start inside it (whole cells: their length divides
    ``window_ns`` and they are aligned with the windows)."""
    starts = np.asarray(starts_ns, dtype=np.int64)
    wns = int(window_ns)
    windows = [window_cells(chunks, int(a), int(a) + wns) for a in starts]
    cols = _count_and_price_columns(windows)
    cols.pop("_unclassified")
    cols.update(_statistic_columns(windows, stats, include_aggression))
    return _to_table(cols, starts, wns, symbol, window, include_aggression)


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
    if starts.size > 1 and not (np.diff(starts) >= wns).all():
        # Overlapping (or unordered) windows: each is its own cell.
        tables = [
            window_rows(
                stock, options, starts[i : i + 1], wns, symbol, window, stats, include_aggression
            )
            for i in range(starts.size)
        ]
        return pa.concat_tables(tables)
    cells = summarize(stock, options, starts, wns, include_aggression)
    return rows_from_cells([cells], starts, wns, symbol, window, stats, include_aggression)


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
