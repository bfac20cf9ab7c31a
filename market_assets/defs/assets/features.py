# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""features_<w>: one output per configured window size (config.toml features.windows), all
computed from one read of the day.

One ``multi_asset`` reads the symbol's stock trades and greeked option trades once, streams
them in time order into one :class:`WindowAggregator` for every selected window size, and
hands each size's rows to the Parquet IO manager. Memory holds the open windows' cell
summaries (``core.cells``), not the day (stock_trades is stored in flat-file order, ticker
then time; option_trades_greeks in (underlying, sip_timestamp) order). A partition written in another order (by an older
version) is read whole and sorted instead, with the same rows as the result.

The symbol's implausible stock prints (stock_trades' plausible_prices check) are left out:
a first pass over its prices finds its day median (:class:`DayMedians`, bounded memory).
Each size's ``windows_and_columns`` check runs in this step on the staged rows, before
they replace the stored ones (:mod:`market_assets.defs.checks.features`).
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
from market_assets.core.feature_names import AGGRESSION_FEATURE_NAMES
from market_assets.core.implausible_prices import (
    DayMedians,
    PlausibleRows,
    PriceRule,
    implausible_rows,
)
from market_assets.core.prelim_final import FINAL, with_quality
from market_assets.core.statistics import StatsOptions
from market_assets.core.windows import AGGRESSOR_COLUMN
from market_assets.defs.charts import (
    aggression_chart_png,
    chart_markdown,
    features_chart_png,
    preview_markdown,
    save_chart,
)
from market_assets.defs.checks.features import features_check_specs, windows_and_columns_check
from market_assets.defs.checks.in_step import price_rule
from market_assets.defs.io_managers import BatchStream
from market_assets.defs.resources import SettingsResource
from market_assets.io.arrow_memory import release_unused_arrow_memory
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


def _aggregator(
    s: Settings, day: dt.date, windows: list[str], aggression: bool = False
) -> WindowAggregator:
    f = s.features
    rules = load_condition_rules(s.conditions.rules_file or None, s.conditions.overrides)
    stats = StatsOptions(
        kde_grid=f.kde_grid,
        dip_method=f.dip_pval_method,
        dip_bootstrap_draws=f.dip_bootstrap_draws,
        dip_seed=f.dip_seed,
    )
    return WindowAggregator(f.symbol, windows, day, f.session, rules, stats, aggression)


def _option_columns(agg: WindowAggregator) -> list[str]:
    """The option columns the windows read (with the aggressor side when it is on)."""
    return OPTION_COLUMNS + ([AGGRESSOR_COLUMN] if agg.include_aggression else [])


def _streamed(
    agg: WindowAggregator, stock: ds.Dataset, options: ds.Dataset, rule: PriceRule
) -> tuple[dict[str, list[pa.Table]], dict[str, int]]:
    """The windows of every size, from the two datasets streamed in time order."""
    symbol = agg.symbol
    of_symbol = pc.field("ticker") == symbol
    prices = stock.to_batches(columns=["ticker", "price"], filter=of_symbol, **SCAN_OPTIONS)
    plausible = PlausibleRows(
        stock.to_batches(columns=STOCK_COLUMNS, filter=of_symbol, **SCAN_OPTIONS),
        DayMedians.of(prices, rule),
    )
    s = _Counted(plausible)
    o = _Counted(
        options.to_batches(
            columns=_option_columns(agg), filter=pc.field("underlying") == symbol, **SCAN_OPTIONS
        )
    )
    tables: dict[str, list[pa.Table]] = {w: [] for w in agg.grids}
    peak = 0
    for closed in aggregate_in_time_order(agg, s, o):
        peak = max(peak, agg.buffered_trades)
        for w, t in closed.items():
            tables[w].append(t)
        # Between windows, so the step's RSS stays what it holds (measured in
        # benchmarks/README.md: a day four times as dense peaks ~30 MB higher, not ~70).
        release_unused_arrow_memory()
    return tables, {
        "underlying_trades_in": s.rows,
        "underlying_implausible_excluded": plausible.dropped,
        "option_trades_in": o.rows,
        "peak": peak,
    }


def _whole_day(
    agg: WindowAggregator, stock: ds.Dataset, options: ds.Dataset, rule: PriceRule
) -> tuple[dict[str, list[pa.Table]], dict[str, int]]:
    """The windows of every size from the whole day read at once (any stored order)."""
    symbol = agg.symbol
    st = stock.to_table(columns=STOCK_COLUMNS, filter=pc.field("ticker") == symbol)
    implausible = implausible_rows(st.column("ticker"), st.column("price").to_numpy(), rule)
    st = st.filter(pa.array(~implausible))
    ot = options.to_table(columns=_option_columns(agg), filter=pc.field("underlying") == symbol)
    agg.add_stock(st)
    agg.add_options(ot)
    closed = agg.close_all()
    tables = {w: [closed[w]] if w in closed else [] for w in agg.grids}
    peak = st.num_rows + ot.num_rows
    return tables, {
        "underlying_trades_in": st.num_rows,
        "underlying_implausible_excluded": int(implausible.sum()),
        "option_trades_in": ot.num_rows,
        "peak": peak,
    }


def _output(
    context: dg.AssetExecutionContext,
    s: Settings,
    window: str,
    table: pa.Table,
    stats: dict[str, int | float | bool],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The window size's rows with what people look at in the UI: the day's chart (also
    saved beside the data) and the first windows; then the result of its windows_and_columns
    check, which the IO manager judges on the staged rows before swapping them in."""
    f = s.features
    key = features_key(window)
    day = dt.date.fromisoformat(context.partition_key)
    table = with_quality(table, FINAL)
    check = windows_and_columns_check(window, day, f.session)
    check.selected = dg.AssetCheckKey(dg.AssetKey(key), check.name) in (
        context.selected_asset_check_keys
    )
    stream = BatchStream(table.to_batches(), table.schema, checks=[check])
    png = features_chart_png(table, title=f"{f.symbol} {window} {context.partition_key}")
    chart_uri = save_chart(
        png, ParquetStore.from_settings(s.storage), asset_path(key, f.symbol), context.partition_key
    )
    extra: dict[str, dg.MetadataValue] = {}
    if AGGRESSION_FEATURE_NAMES[0] in table.column_names:
        agg_png = aggression_chart_png(
            table, title=f"{f.symbol} {window} {context.partition_key}: buy vs sell dadvv"
        )
        extra["aggression_chart"] = dg.MetadataValue.md(
            chart_markdown(agg_png, alt=f"{f.symbol} {window} buy vs sell dadvv")
        )
    yield dg.Output(
        stream,
        output_name=key,
        metadata={
            **extra,
            "chart": dg.MetadataValue.md(chart_markdown(png, alt=f"{f.symbol} {window}")),
            "chart_path": dg.MetadataValue.path(chart_uri),
            "preview": dg.MetadataValue.md(preview_markdown(table)),
            "windows": table.num_rows,
            "symbol": f.symbol,
            "session": f.session,
            **stats,
        },
    )
    yield from stream.check_results


def build_features_assets(
    windows: list[str], partitions_def: dg.PartitionsDefinition, aggression: bool = False
) -> dg.AssetsDefinition:
    """One multi-asset with an output ``features_<w>`` per window size; any subset of them
    can be materialized (they share the day's read). ``aggression`` (features.aggression):
    the option trades come from option_trades_classified and every row gains the 68
    AGGRESSION_FEATURE_NAMES after FEATURE_NAMES."""
    options_key = "option_trades_classified" if aggression else "option_trades_greeks"
    columns = "FEATURE_NAMES" + (" + AGGRESSION_FEATURE_NAMES" if aggression else "")
    outs = {
        features_key(w): dg.AssetOut(
            key=features_key(w),
            io_manager_key="parquet_io_manager",
            group_name="features",
            kinds={"parquet", "scipy"},
            metadata={"window": w},
            description=(
                f"One row per {w} window of the session for features.symbol: identity columns, "
                f"then {columns} in order (see FEATURES.md), then quality = final, "
                "late_dropped = 0, gaps = 0."
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
        ins={"stock_trades": dg.AssetIn(), "options": dg.AssetIn(key=options_key)},
        description=(
            "Per-window features of features.symbol for every window size in features.windows, "
            "from one time-ordered read of the day."
        ),
        check_specs=features_check_specs(windows, partitions_def),
    )
    def _features(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        stock_trades: ds.Dataset,
        options: ds.Dataset,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        s = settings.settings
        rule = price_rule(s.checks)
        started = time.monotonic()
        keys = {k.to_user_string() for k in context.selected_asset_keys}
        selected = [w for w in windows if features_key(w) in keys]
        day = dt.date.fromisoformat(context.partition_key)
        try:
            tables, counts = _streamed(
                _aggregator(s, day, selected, aggression), stock_trades, options, rule
            )
            streamed = True
        except OutOfOrderError as e:
            context.log.warning(f"{e}; reading the day whole and sorting it instead")
            tables, counts = _whole_day(
                _aggregator(s, day, selected, aggression), stock_trades, options, rule
            )
            streamed = False
        elapsed = round(time.monotonic() - started, 3)
        stats = {
            "underlying_trades_in": counts["underlying_trades_in"],
            "underlying_implausible_excluded": counts["underlying_implausible_excluded"],
            "option_trades_in": counts["option_trades_in"],
            "peak_buffered_trades": counts["peak"],
            "streamed": streamed,
            "elapsed_seconds": elapsed,
        }
        for w in selected:
            yield from _output(context, s, w, pa.concat_tables(tables[w]), stats)

    return _features
