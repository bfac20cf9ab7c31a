# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""S3 retries show in the ingest run's log (context.log), and a hanging endpoint fails the
run within massive.max_total_retry_s naming endpoint, bucket and key."""

# ruff: noqa: F811 - pytest fixtures are imported and then named as test parameters

from __future__ import annotations

import datetime as dt
import logging
import time

import dagster as dg

from market_assets.defs.assets.ingest import build_ingest_asset
from market_assets.defs.io_managers import ParquetIOManager
from market_assets.defs.partitions import trading_day_partitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.devtools.sample_day import generate_day
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings
from market_assets_tests.s3_server import (  # noqa: F401 - fixtures used by parameter name
    dropping_proxy,
    hanging_s3,
    s3_bucket,
    s3_server,
)

DAY = dt.date(2026, 11, 20)
KEY = flat_file_key("stock_trades", DAY)


def _run(config, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    settings = load_settings(config)
    settings_resource = SettingsResource(config_path=str(config))
    asset = build_ingest_asset("stock_trades", trading_day_partitions(DAY), "stock_trades")
    return dg.materialize(
        [asset],
        partition_key=DAY.isoformat(),
        instance=instance,
        resources={
            "settings": settings_resource,
            "source": FlatFileSource(settings=settings_resource),
            "parquet_io_manager": ParquetIOManager(root=settings.storage.root),
        },
        raise_on_error=False,
    )


def _log_lines(instance: dg.DagsterInstance, run_id: str, level: int) -> list[str]:
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.dagster_event is None and e.level == level
    ]


def _s3_config(project_config, monkeypatch, endpoint: str, bucket: str, **massive):
    monkeypatch.setenv("MASSIVE_ACCESS_KEY_ID", "AKIAINGESTTEST1234")
    monkeypatch.setenv("MASSIVE_SECRET_ACCESS_KEY", "ingest-test-secret-value")
    return project_config(
        partitions={"start_date": "2026-11-02"},
        massive={
            "source": "s3",
            "endpoint_url": endpoint,
            "bucket": bucket,
            "retry_backoff_s": 0.05,
            **massive,
        },
    )


def test_a_dropped_download_is_resumed_and_the_retry_is_in_the_run_log(
    tmp_path, project_config, monkeypatch, s3_bucket, dropping_proxy
):
    client, bucket, _ = s3_bucket
    generate_day(DAY, tmp_path / "mirror", scale="tiny", seed=3)
    path = tmp_path / "mirror" / KEY
    client.upload_file(str(path), bucket, KEY)
    config = _s3_config(project_config, monkeypatch, dropping_proxy.endpoint_url, bucket)
    dropping_proxy.cut_gets([path.stat().st_size // 2])
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(config, instance)
        assert result.success
        warnings = _log_lines(instance, result.run_id, logging.WARNING)
        infos = _log_lines(instance, result.run_id, logging.INFO)
    retries = [w for w in warnings if "attempt 1 failed" in w]
    assert len(retries) == 1
    assert (
        f"s3://{bucket}/{KEY}" in retries[0]
        and "retry 1/5 in 0.05 s with a ranged GET" in (retries[0])
    )
    assert any(f"resumed s3://{bucket}/{KEY} at byte" in i for i in infos)


def test_a_hanging_endpoint_fails_the_run_within_the_bound_with_logged_retries(
    project_config, monkeypatch, hanging_s3
):
    server = hanging_s3("silent")
    config = _s3_config(
        project_config,
        monkeypatch,
        server.endpoint_url,
        "flatfiles",
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        max_total_retry_s=3.0,
    )
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.monotonic()
        result = _run(config, instance)
        elapsed = time.monotonic() - t0
        assert not result.success
        warnings = _log_lines(instance, result.run_id, logging.WARNING)
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.error.message) + str(failure.event_specific_data)
    assert f"at endpoint {server.endpoint_url} (bucket 'flatfiles', key '{KEY}')" in text
    assert "another retry would pass massive.max_total_retry_s = 3" in text
    assert len(warnings) >= 2 and all("attempt" in w and "retry" in w for w in warnings)
    # The S3 part gives up before the 3 s bound; the rest is Dagster's own run overhead.
    assert elapsed < 3.0 + 10.0
    for line in (text, *warnings):
        assert "ingest-test-secret-value" not in line and "AKIAINGESTTEST1234" not in line
