# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""features_<w>: one asset per configured window size (config.toml features.windows)."""

import datetime as dt
import time

import dagster as dg
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.statistics import StatsOptions
from market_assets.core.windows import features_for_day
from market_assets.defs.charts import (
    chart_markdown,
    features_chart_png,
    preview_markdown,
    save_chart,
)
from market_assets.defs.resources import SettingsResource
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.parquet_store import ParquetStore, asset_path

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


def build_features_asset(
    window: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The features asset for one window size."""

    @dg.asset(
        name=f"features_{window}",
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="features",
        kinds={"parquet", "scipy"},
        metadata={"window": window},
        ins={"stock_trades": dg.AssetIn(), "option_trades_greeks": dg.AssetIn()},
        description=(
            f"One row per {window} window of the session for features.symbol: identity columns, "
            "then FEATURE_NAMES in order (see FEATURES.md)."
        ),
    )
    def _features(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        stock_trades: ds.Dataset,
        option_trades_greeks: ds.Dataset,
    ) -> dg.Output:
        s = settings.settings
        f = s.features
        started = time.monotonic()
        day = dt.date.fromisoformat(context.partition_key)
        # One symbol's day of trades, only the columns the features use.
        stock = stock_trades.to_table(columns=STOCK_COLUMNS, filter=pc.field("ticker") == f.symbol)
        options = option_trades_greeks.to_table(
            columns=OPTION_COLUMNS, filter=pc.field("underlying") == f.symbol
        )
        rules = load_condition_rules(s.conditions.rules_file or None, s.conditions.overrides)
        stats = StatsOptions(
            kde_grid=f.kde_grid,
            dip_method=f.dip_pval_method,
            dip_bootstrap_draws=f.dip_bootstrap_draws,
            dip_seed=f.dip_seed,
        )
        table = features_for_day(stock, options, day, f.symbol, window, f.session, rules, stats)
        elapsed = time.monotonic() - started
        # What people look at in the UI: the day's chart (also saved beside the data) and
        # the first windows.
        png = features_chart_png(table, title=f"{f.symbol} {window} {context.partition_key}")
        chart_uri = save_chart(
            png,
            ParquetStore.from_settings(s.storage),
            asset_path(f"features_{window}"),
            context.partition_key,
        )
        return dg.Output(
            table,
            metadata={
                "chart": dg.MetadataValue.md(chart_markdown(png, alt=f"{f.symbol} {window}")),
                "chart_path": dg.MetadataValue.path(chart_uri),
                "preview": dg.MetadataValue.md(preview_markdown(table)),
                "windows": table.num_rows,
                "symbol": f.symbol,
                "session": f.session,
                "underlying_trades_in": stock.num_rows,
                "option_trades_in": options.num_rows,
                "elapsed_seconds": round(elapsed, 3),
            },
        )

    return _features
