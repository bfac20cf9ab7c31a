# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""features_<w>: one output per configured window size (config.toml features.windows), all
computed from one read of the day.

One ``multi_asset`` reads the symbol's stock trades and greeked option trades once, streams
them in time order into one :class:`WindowAggregator` for every selected window size, and
hands each size's rows to the Parquet IO manager. Memory holds the open windows' trades, not
the day (stock_trades is stored in flat-file order, ticker then time; option_trades_greeks
in (underlying, sip_timestamp) order). A partition written in another order (by an older
version) is read whole and sorted instead, with the same rows as the result.
"""

import datetime as dt
import time
from collections.abc import Iterable, Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.aggregator import (
    OutOfOrderError,
    WindowAggregator,
    aggregate_in_time_order,
)
from market_assets.core.statistics import StatsOptions
from market_assets.defs.charts import (
    chart_markdown,
    features_chart_png,
    preview_markdown,
    save_chart,
)
from market_assets.defs.resources import SettingsResource
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.parquet_store import BOUNDED_SCAN_OPTIONS, ParquetStore, asset_path
from market_assets.settings import Settings

STOCK_COLUMNS = [
    "ticker",
    "sip_timestamp",
    "sequence_number",
    "price",
    "size",
    "conditions",
    "correction",
]
OPTION_COLUMNS = [
    "underlying",
    "contract_type",
    "sip_timestamp",
    "price",
    "correction",
    "underlying_price",
    "intrinsic_value",
    "dollar_value",
    "dadvv",
    "gadvv",
    "greeks_status",
]
SCAN_OPTIONS = BOUNDED_SCAN_OPTIONS


def features_key(window: str) -> str:
    """Asset key (and output name) of a window size's features."""
    return f"features_{window}"


class _Counted:
    """Wraps a batch stream and counts its rows."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self.batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for b in self.batches:
            self.rows += b.num_rows
            yield b


def _aggregator(s: Settings, day: dt.date, windows: list[str]) -> WindowAggregator:
    f = s.features
    rules = load_condition_rules(s.conditions.rules_file or None, s.conditions.overrides)
    stats = StatsOptions(
        kde_grid=f.kde_grid,
        dip_method=f.dip_pval_method,
        dip_bootstrap_draws=f.dip_bootstrap_draws,
        dip_seed=f.dip_seed,
    )
    return WindowAggregator(f.symbol, windows, day, f.session, rules, stats)


def _streamed(
    agg: WindowAggregator, stock: ds.Dataset, options: ds.Dataset
) -> tuple[dict[str, list[pa.Table]], dict[str, int]]:
    """The windows of every size, from the two datasets streamed in time order."""
    symbol = agg.symbol
    s = _Counted(
        stock.to_batches(columns=STOCK_COLUMNS, filter=pc.field("ticker") == symbol, **SCAN_OPTIONS)
    )
    o = _Counted(
        options.to_batches(
            columns=OPTION_COLUMNS, filter=pc.field("underlying") == symbol, **SCAN_OPTIONS
        )
    )
    tables: dict[str, list[pa.Table]] = {w: [] for w in agg.grids}
    peak = 0
    for closed in aggregate_in_time_order(agg, s, o):
        peak = max(peak, agg.buffered_trades)
        for w, t in closed.items():
            tables[w].append(t)
    return tables, {"underlying_trades_in": s.rows, "option_trades_in": o.rows, "peak": peak}


def _whole_day(
    agg: WindowAggregator, stock: ds.Dataset, options: ds.Dataset
) -> tuple[dict[str, list[pa.Table]], dict[str, int]]:
    """The windows of every size from the whole day read at once (any stored order)."""
    symbol = agg.symbol
    st = stock.to_table(columns=STOCK_COLUMNS, filter=pc.field("ticker") == symbol)
    ot = options.to_table(columns=OPTION_COLUMNS, filter=pc.field("underlying") == symbol)
    agg.add_stock(st)
    agg.add_options(ot)
    closed = agg.close_all()
    tables = {w: [closed[w]] if w in closed else [] for w in agg.grids}
    peak = st.num_rows + ot.num_rows
    return tables, {
        "underlying_trades_in": st.num_rows,
        "option_trades_in": ot.num_rows,
        "peak": peak,
    }


def _output(
    context: dg.AssetExecutionContext,
    s: Settings,
    window: str,
    table: pa.Table,
    stats: dict[str, int | float | bool],
) -> dg.Output:
    """The window size's rows with what people look at in the UI: the day's chart (also
    saved beside the data) and the first windows."""
    f = s.features
    key = features_key(window)
    png = features_chart_png(table, title=f"{f.symbol} {window} {context.partition_key}")
    chart_uri = save_chart(
        png, ParquetStore.from_settings(s.storage), asset_path(key, f.symbol), context.partition_key
    )
    return dg.Output(
        table,
        output_name=key,
        metadata={
            "chart": dg.MetadataValue.md(chart_markdown(png, alt=f"{f.symbol} {window}")),
            "chart_path": dg.MetadataValue.path(chart_uri),
            "preview": dg.MetadataValue.md(preview_markdown(table)),
            "windows": table.num_rows,
            "symbol": f.symbol,
            "session": f.session,
            **stats,
        },
    )


def build_features_assets(
    windows: list[str], partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """One multi-asset with an output ``features_<w>`` per window size; any subset of them
    can be materialized (they share the day's read)."""
    outs = {
        features_key(w): dg.AssetOut(
            key=features_key(w),
            io_manager_key="parquet_io_manager",
            group_name="features",
            kinds={"parquet", "scipy"},
            metadata={"window": w},
            description=(
                f"One row per {w} window of the session for features.symbol: identity columns, "
                "then FEATURE_NAMES in order (see FEATURES.md)."
            ),
            is_required=False,
        )
        for w in windows
    }

    @dg.multi_asset(
        name="features",
        outs=outs,
        partitions_def=partitions_def,
        can_subset=True,
        ins={"stock_trades": dg.AssetIn(), "option_trades_greeks": dg.AssetIn()},
        description=(
            "Per-window features of features.symbol for every window size in features.windows, "
            "from one time-ordered read of the day."
        ),
    )
    def _features(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        stock_trades: ds.Dataset,
        option_trades_greeks: ds.Dataset,
    ) -> Iterator[dg.Output]:
        s = settings.settings
        started = time.monotonic()
        keys = {k.to_user_string() for k in context.selected_asset_keys}
        selected = [w for w in windows if features_key(w) in keys]
        day = dt.date.fromisoformat(context.partition_key)
        try:
            tables, counts = _streamed(
                _aggregator(s, day, selected), stock_trades, option_trades_greeks
            )
            streamed = True
        except OutOfOrderError as e:
            context.log.warning(f"{e}; reading the day whole and sorting it instead")
            tables, counts = _whole_day(
                _aggregator(s, day, selected), stock_trades, option_trades_greeks
            )
            streamed = False
        elapsed = round(time.monotonic() - started, 3)
        stats = {
            "underlying_trades_in": counts["underlying_trades_in"],
            "option_trades_in": counts["option_trades_in"],
            "peak_buffered_trades": counts["peak"],
            "streamed": streamed,
            "elapsed_seconds": elapsed,
        }
        for w in selected:
            yield _output(context, s, w, pa.concat_tables(tables[w]), stats)

    return _features
