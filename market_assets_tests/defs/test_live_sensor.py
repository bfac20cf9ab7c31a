# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Dagster view of live output: live_output_sensor observes live_features per day."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from market_assets.defs.definitions import build_definitions
from market_assets.settings import load_settings
from market_assets_tests.config_files import write_config


def test_the_sensor_reports_each_live_partition_once_per_change(tmp_path):
    out = tmp_path / "live"
    folder = out / "window=1m" / "dt=2026-11-20"
    folder.mkdir(parents=True)
    start = int(dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC).timestamp()) * 10**9
    pq.write_table(pa.table({"x": [1, 2]}), folder / f"part-{start}-{start + 60 * 10**9}.parquet")
    settings = load_settings(write_config(tmp_path / "config.toml", realtime={"output": str(out)}))
    defs = build_definitions(settings)
    sensor = defs.get_sensor_def("live_output_sensor")
    assert dg.AssetKey("live_features") in {a.key for a in defs.resolve_all_asset_specs()}
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
        (obs,) = result.asset_events
        assert obs.partition == "2026-11-20"
        assert obs.metadata["windows_1m"].value == 2
        again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert again.asset_events == []
