# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Definitions load, and config (not code) decides the graph."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from market_assets.io.parquet_store import asset_path
from market_assets.settings import load_settings
from market_assets_tests.config_files import REPO

INGEST = {"stock_trades", "option_trades", "stock_quotes", "option_quotes"}


def _check_names(repo: dg.RepositoryDefinition) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in repo.asset_graph.asset_check_keys:
        out.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    return out


def test_module_defs_resolve_every_asset_check_job_schedule_and_sensor():
    from market_assets.defs.definitions import defs

    repo = defs.get_repository_def()
    settings = load_settings()
    windows = {f"features_{w}" for w in settings.features.windows}
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    live = {"live_features", "features_reconciliation"}
    assert keys == INGEST | {"option_trades_greeks"} | live | windows
    job = repo.get_job("daily_features_job")
    in_job = {k.to_user_string() for k in job.asset_layer.asset_graph.get_all_asset_keys()}
    assert in_job - {"live_features"} == keys - {"live_features"}  # live is observed, not run
    # Every check runs in the daily job (so a run reports them for its partition).
    assert job.asset_layer.asset_graph.asset_check_keys == repo.asset_graph.asset_check_keys
    checks = _check_names(repo)
    assert checks["stock_trades"] == {"non_empty", "no_duplicate_trades", "plausible_prices"}
    assert checks["option_trades"] == {"non_empty", "exact_duplicates", "tickers_parsed"}
    assert checks["option_trades_greeks"] == {"status_shares"}
    assert checks["stock_quotes"] == {"non_empty", "nbbo_states"} == checks["option_quotes"]
    assert all(checks[w] == {"windows_and_columns"} for w in windows)
    assert [s.name for s in repo.schedule_defs] == ["daily_features_schedule"]
    assert sorted(s.name for s in repo.sensor_defs) == [
        "live_output_sensor",
        "new_trading_day_sensor",
    ]
    assert repo.get_sensor_def("new_trading_day_sensor").job_name == "daily_features_job"


def test_every_asset_is_daily_partitioned_and_ingest_uses_the_ingest_pool():
    from market_assets.defs.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    partitions = {graph.get(k).partitions_def for k in graph.get_all_asset_keys()}
    assert len(partitions) == 1
    (pdef,) = partitions
    assert isinstance(pdef, dg.TimeWindowPartitionsDefinition)
    assert pdef.timezone == "America/New_York"
    assert "2026-11-20" in pdef.get_partition_keys_in_range(
        dg.PartitionKeyRange("2026-11-16", "2026-11-20")
    )
    # No weekend or holiday partitions: a backfill over a range runs trading days only.
    keys = pdef.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-20", "2026-11-30"))
    assert keys == [
        "2026-11-20",
        "2026-11-23",
        "2026-11-24",
        "2026-11-25",
        "2026-11-27",
        "2026-11-30",
    ]
    for name in INGEST:
        assert repo.assets_defs_by_key[dg.AssetKey(name)].op.pool == "ingest"


def test_feature_windows_come_from_config(project_config):
    from market_assets.defs.definitions import build_definitions

    config = project_config(features={"windows": ["1h", "2m"]})
    repo = build_definitions(load_settings(config)).get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    windows = {k for k in keys if k.startswith("features_") and k != "features_reconciliation"}
    assert windows == {"features_1h", "features_2m"}
    assert _check_names(repo)["features_1h"] == {"windows_and_columns"}
    spec = repo.assets_defs_by_key[dg.AssetKey("features_1h")].specs_by_key[
        dg.AssetKey("features_1h")
    ]
    assert spec.metadata["window"] == "1h"
    assert asset_path("features_1h", "SPY") == "features/symbol=SPY/window=1h"


def test_dg_check_defs_passes_from_the_repo_root():
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(REPO / ".venv"),
        "MARKET_ASSETS_CONFIG": str(REPO / "config.toml"),
    }
    dg_bin = os.path.join(os.path.dirname(sys.executable), "dg")
    proc = subprocess.run(
        [dg_bin, "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
