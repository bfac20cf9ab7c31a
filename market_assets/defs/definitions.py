# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The one Definitions object: assets, resources, IO manager, jobs, schedules, sensors, checks.

The graph comes from config.toml ($MARKET_ASSETS_CONFIG): the partitions start at
``partitions.start_date`` and there is one ``features_<w>`` asset per ``features.windows``.
"""

from __future__ import annotations

import dagster as dg

from market_assets.defs.assets.features import build_features_assets
from market_assets.defs.assets.greeks import build_greeks_asset
from market_assets.defs.assets.ingest import build_ingest_asset
from market_assets.defs.assets.quotes import build_quote_assets
from market_assets.defs.assets.rates import build_treasury_yields_asset
from market_assets.defs.assets.reconciliation import build_reconciliation_asset
from market_assets.defs.checks import build_asset_checks
from market_assets.defs.executor import STEP_EXECUTOR
from market_assets.defs.io_managers import ParquetIOManager
from market_assets.defs.jobs import DAILY_FEATURES_JOB
from market_assets.defs.live import build_live_sensor, build_live_spec
from market_assets.defs.partitions import trading_day_partitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.defs.schedules import build_daily_schedule
from market_assets.defs.sensors import build_new_trading_day_sensor
from market_assets.settings import Settings, config_path, load_settings


def build_definitions(
    settings: Settings, executor: dg.ExecutorDefinition = STEP_EXECUTOR
) -> dg.Definitions:
    """Build the graph for ``settings``; its runs' steps run on ``executor`` (in the run's
    process by default; ``celery_definitions`` passes dagster-celery's)."""
    partitions = trading_day_partitions(settings.partitions.start_date)
    rate_curve = settings.greeks.risk_free_rate == "curve"  # treasury_yields -> greeks
    assets = [
        build_ingest_asset(
            "stock_trades",
            partitions,
            "Stock trades of ingest.stock_tickers, streamed from Massive's us_stocks_sip/trades_v1 file.",
            settings.massive.source,
        ),
        build_ingest_asset(
            "option_trades",
            partitions,
            "Option trades of ingest.option_underlyings with the ticker parsed into underlying, "
            "expiration, contract_type and strike, from us_options_opra/trades_v1.",
            settings.massive.source,
        ),
        *(
            build_quote_assets(partitions, settings.massive.source)
            if settings.quotes.enabled
            else []
        ),
        *([build_treasury_yields_asset(partitions)] if rate_curve else []),
        build_greeks_asset(partitions, rate_curve),
        build_features_assets(list(settings.features.windows), partitions),
        build_live_spec(partitions),
        build_reconciliation_asset(settings, partitions),
    ]
    all_days = dg.define_asset_job(
        DAILY_FEATURES_JOB,
        selection=dg.AssetSelection.all(),
        description=(
            "Every asset and its checks for one trading day: ingest, greeks, all feature windows, "
            "their reconciliation with the live windows (skipped when live did not run). "
            "Backfills run one partition per run (at most two at once: dagster_home/dagster.yaml)."
        ),
    )
    settings_resource = SettingsResource(config_path=str(settings.path))
    return dg.Definitions(
        assets=assets,
        jobs=[all_days],
        executor=executor,
        asset_checks=build_asset_checks(settings, partitions),
        schedules=[build_daily_schedule(settings, job_name=all_days.name)],
        sensors=[
            build_new_trading_day_sensor(settings, job_name=all_days.name),
            build_live_sensor(settings, partitions),
        ],
        resources={
            "settings": settings_resource,
            "source": FlatFileSource(settings=settings_resource),
            "parquet_io_manager": ParquetIOManager(
                root=settings.storage.root,
                s3_endpoint_url=settings.storage.s3_endpoint_url,
                row_group_rows=settings.storage.row_group_rows,
                file_target_mb=settings.storage.file_target_mb,
                features_symbol=settings.features.symbol,
            ),
        },
    )


def _load() -> dg.Definitions:
    path = config_path()
    return build_definitions(load_settings(path))


defs = _load()
