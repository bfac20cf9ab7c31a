# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""features_reconciliation on a generated day in a real Dagster instance: the batch graph
materialized, then `market-assets live` run against the replay server over 127.0.0.1, then
the report compared with what the day holds (the corrected trades live cannot see)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.defs.charts import reconciliation_chart_png
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import LocalStore, flat_file_key
from market_assets.live.day import prepare_day
from market_assets.live.replay import ReplayOptions, serve_in_thread
from market_assets.live.run import LiveOptions, run_live
from market_assets.settings import Settings, load_settings
from market_assets_tests.config_files import write_config
from market_assets_tests.live.test_live import _whole_millisecond_option_times

DAY = dt.date(2026, 11, 20)
KEY = "reconcile-key"
WINDOWS = ["1m", "5m"]
ASSET = dg.AssetKey("features_reconciliation")


def _config(
    tmp: Path, name: str, live_output: Path, port: int = 1, live_windows: list[str] = WINDOWS
) -> Path:
    return write_config(
        tmp / name,
        massive={"local_root": str(tmp / "massive")},
        storage={"root": str(tmp / "warehouse")},
        features={"windows": WINDOWS},
        realtime={
            "feed": f"127.0.0.1:{port}",
            "secure": False,
            "option_contracts": "all",
            "output": str(live_output),
            "windows": live_windows,
            "metrics_port": 0,
        },
    )


def _run(settings: Settings, instance: dg.DagsterInstance, assets: list[str] | None = None):
    job = build_definitions(settings).resolve_job_def("daily_features_job")
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    result = job.execute_in_process(
        instance=instance, partition_key=DAY.isoformat(), asset_selection=selection
    )
    assert result.success
    return result


def _events(result, kind: str) -> list:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == kind and e.asset_key == ASSET
    ]


def _report(result) -> dict[str, object]:
    (mat,) = _events(result, "ASSET_MATERIALIZATION")
    return {k: v.value for k, v in mat.materialization.metadata.items()}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory):
    """The day's batch graph materialized (reconciliation skipped: live has not run), then
    live run against the replay server; yields the tmp folder, the instance and the first
    run's result."""
    tmp = tmp_path_factory.mktemp("reconcile")
    generate_day(DAY, tmp / "massive", scale="tiny", seed=3)
    # Whole-millisecond option times, as OPRA's (the feed carries milliseconds).
    _whole_millisecond_option_times(tmp / "massive" / flat_file_key("option_trades", DAY))
    settings = load_settings(_config(tmp, "config.toml", tmp / "live"))
    with dg.instance_for_test() as instance:
        first = _run(settings, instance)
        with (
            prepare_day(LocalStore(tmp / "massive"), DAY, ["SPY"], quotes=False) as replayed,
            serve_in_thread(
                replayed, ReplayOptions(speed=None, api_key=KEY, wait_for=("stocks", "options"))
            ) as server,
        ):
            live = load_settings(_config(tmp, "live.toml", tmp / "live", server.port))
            opts = LiveOptions(until=dt.time(16, 0), idle_exit_s=3.0, day=DAY)
            pipeline = asyncio.run(run_live(live, KEY, opts))
        assert pipeline.counters.gaps == 0 and pipeline.counters.late_dropped == 0
        yield tmp, settings, instance, first


def _corrected_windows(settings: Settings, window: str) -> int:
    """Session windows holding a corrected stock trade: the batch (final) leaves it out,
    the feed has no correction field so live (prelim) counts it."""
    stock = ParquetStore(settings.storage.root).dataset("stock_trades", [DAY.isoformat()])
    t = stock.to_table(columns=["sip_timestamp", "correction"])
    ts = pc.cast(
        t.filter(pc.fill_null(pc.not_equal(t["correction"], 0), False))["sip_timestamp"], pa.int64()
    )
    wns = window_ns(window)
    starts = window_starts_ns(DAY, wns)
    ts = ts.to_numpy()
    ts = ts[(ts >= starts[0]) & (ts < starts[-1] + wns)]
    return len(np.unique(np.searchsorted(starts, ts, side="right") - 1))


def test_without_live_output_the_report_is_skipped_with_the_reason(day):
    _, _, _, first = day
    assert _events(first, "ASSET_MATERIALIZATION") == []
    (obs,) = _events(first, "ASSET_OBSERVATION")
    reason = obs.asset_observation.metadata["skipped"].value
    assert reason.startswith(f"no live output for {DAY}") and "market-assets live" in reason


def test_the_report_counts_the_windows_corrected_trades_made_differ(day):
    tmp, settings, instance, _ = day
    md = _report(_run(settings, instance, ["features_reconciliation"]))
    for w, n in (("1m", 390), ("5m", 78)):
        corrected = _corrected_windows(settings, w)
        assert 0 < corrected < n / 5
        assert md[f"windows_compared_{w}"] == n
        assert md[f"windows_differing_{w}"] == corrected
        assert md[f"windows_only_final_{w}"] == md[f"windows_only_prelim_{w}"] == 0
        assert md[f"windows_with_gaps_{w}"] == md[f"late_dropped_{w}"] == 0
        assert md[f"max_rel_diff_{w}"] > 0
    report = md["report"]
    assert "### 1m" in report and "### 5m" in report
    counts = next(line for line in report.splitlines() if line.startswith("| trade_counts |"))
    assert counts.split("|")[3].strip() == str(_corrected_windows(settings, "1m"))
    assert "underlying_trades at " in counts
    assert "Differing windows (the first 1 of 1):" in report
    assert report.count("![prelim vs final ") == 2  # a chart per window size
    assert md["live_output"] == str(tmp / "live")
    latest = instance.get_latest_materialization_event(ASSET)
    assert latest is not None and latest.dagster_event.partition == DAY.isoformat()


def test_a_window_size_live_did_not_write_is_named_in_the_report(day):
    tmp, _, instance, _ = day
    partial = tmp / "live_1m_only"
    shutil.copytree(tmp / "live" / "window=1m", partial / "window=1m", dirs_exist_ok=True)
    settings = load_settings(_config(tmp, "partial.toml", partial))
    md = _report(_run(settings, instance, ["features_reconciliation"]))
    assert md["windows"] == "1m" and md["windows_compared_1m"] == 390
    assert "windows_compared_5m" not in md
    assert "No live output for window size(s) 5m." in md["report"]


def test_no_window_size_in_both_lists_is_skipped_with_the_reason(day):
    tmp, _, instance, _ = day
    config = _config(tmp, "disjoint.toml", tmp / "live", live_windows=["15m"])
    result = _run(load_settings(config), instance, ["features_reconciliation"])
    assert _events(result, "ASSET_MATERIALIZATION") == []
    (obs,) = _events(result, "ASSET_OBSERVATION")
    reason = obs.asset_observation.metadata["skipped"].value
    assert "no window size is in both realtime.windows ['15m']" in reason


def test_the_chart_draws_the_differing_windows_and_shades_the_gaps():
    starts = window_starts_ns(DAY, window_ns("5m"))
    png = reconciliation_chart_png(
        starts, window_ns("5m"), [(int(starts[3]), 12), (int(starts[40]), 1)], [int(starts[3])]
    )
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    none = reconciliation_chart_png(starts, window_ns("5m"), [], [])
    assert none.startswith(b"\x89PNG") and none != png
