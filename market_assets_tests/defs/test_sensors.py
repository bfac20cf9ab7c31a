# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""new_trading_day_sensor against a real local mirror and a local S3 server."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import dagster as dg
import pytest

from market_assets.core.calendar import trading_days
from market_assets.defs import sensors
from market_assets.defs.definitions import build_definitions
from market_assets.defs.sensors import build_new_trading_day_sensor
from market_assets.io.source import S3Store, flat_file_key
from market_assets.settings import load_settings

HEADERS = {
    "stock_trades": b"ticker,conditions,correction,exchange,id,participant_timestamp,price,"
    b"sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp\n",
    "option_trades": b"ticker,conditions,correction,exchange,price,sip_timestamp,size\n",
    "stock_quotes": b"ticker,ask_exchange,ask_price\n",
    "option_quotes": b"ticker,ask_exchange,ask_price\n",
}
TRADES_ONLY = {"enabled": False}  # quotes off: a day needs its two trades files


def _put_local(root: Path, dataset: str, day: dt.date) -> None:
    path = root / flat_file_key(dataset, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(HEADERS[dataset]))


def _tick(sensor: dg.SensorDefinition, cursor: str | None):
    """One evaluation against the project's definitions: (run requests, new cursor, skip message)."""
    defs = build_definitions(load_settings())
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        data = sensor.evaluate_tick(ctx)
    return data.run_requests or [], data.cursor, data.skip_message


def test_local_mirror_runs_a_day_once_both_files_exist(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2026-11-02"}, quotes=TRADES_ONLY)
    mirror = tmp_path / "massive"
    sensor = build_new_trading_day_sensor(load_settings(config))
    day = dt.date(2026, 11, 20)

    mirror.mkdir()
    runs, cursor, skip = _tick(sensor, None)
    assert runs == [] and cursor is None and "no new trading day" in skip

    _put_local(mirror, "stock_trades", day)
    runs, cursor, skip = _tick(sensor, None)
    assert runs == [] and cursor is None
    assert "2026-11-20 is waiting for option_trades" in skip

    _put_local(mirror, "option_trades", day)
    runs, cursor, _ = _tick(sensor, None)
    assert [(r.run_key, r.partition_key) for r in runs] == [("2026-11-20", "2026-11-20")]
    assert runs[0].tags["market_assets/trigger"] == "new_trading_day_sensor"
    assert cursor == "2026-11-20"

    # The next tick with that cursor sees nothing new.
    runs, cursor2, skip = _tick(sensor, cursor)
    assert runs == [] and cursor2 == cursor and skip


def test_only_trading_days_from_start_date_are_requested_in_order(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2026-09-01"}, quotes=TRADES_ONLY)
    mirror = tmp_path / "massive"
    days = [
        dt.date(2026, 8, 31),  # before partitions.start_date
        dt.date(2026, 9, 1),
        dt.date(2026, 9, 5),  # a Saturday
        dt.date(2026, 9, 7),  # Labor Day
        dt.date(2026, 9, 8),
        dt.date(2026, 10, 1),  # next month's folder
        dt.date.today() + dt.timedelta(days=14),  # has not happened: no partition yet
    ]
    for d in days:
        for name in ("stock_trades", "option_trades", "stock_quotes"):
            _put_local(mirror, name, d)
    sensor = build_new_trading_day_sensor(load_settings(config))
    runs, cursor, _ = _tick(sensor, None)
    assert [r.run_key for r in runs] == ["2026-09-01", "2026-09-08", "2026-10-01"]
    assert cursor == "2026-10-01"
    assert _tick(sensor, cursor)[0] == []


def test_a_day_still_being_published_holds_later_days(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2026-11-02"}, quotes=TRADES_ONLY)
    mirror = tmp_path / "massive"
    _put_local(mirror, "stock_trades", dt.date(2026, 11, 19))
    for d in (dt.date(2026, 11, 18), dt.date(2026, 11, 20)):
        _put_local(mirror, "stock_trades", d)
        _put_local(mirror, "option_trades", d)
    sensor = build_new_trading_day_sensor(load_settings(config))
    runs, cursor, _ = _tick(sensor, "2026-11-17")
    # 11-18 runs; 11-19 misses its option file, so the cursor stops before it.
    assert [r.run_key for r in runs] == ["2026-11-18"] and cursor == "2026-11-18"
    _put_local(mirror, "option_trades", dt.date(2026, 11, 19))
    runs, cursor, _ = _tick(sensor, cursor)
    assert [r.run_key for r in runs] == ["2026-11-19", "2026-11-20"] and cursor == "2026-11-20"


def test_with_quotes_enabled_a_day_also_waits_for_its_quote_files(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2026-11-02"})
    mirror, day = tmp_path / "massive", dt.date(2026, 11, 20)
    sensor = build_new_trading_day_sensor(load_settings(config))
    for name in ("stock_trades", "option_trades", "stock_quotes"):
        _put_local(mirror, name, day)
    runs, cursor, skip = _tick(sensor, None)
    assert runs == [] and cursor is None and "2026-11-20 is waiting for option_quotes" in skip
    _put_local(mirror, "option_quotes", day)
    runs, cursor, _ = _tick(sensor, None)
    assert [r.run_key for r in runs] == ["2026-11-20"] and cursor == "2026-11-20"


def _s3_days(n: int) -> list[dt.date]:
    return trading_days(dt.date(2026, 9, 1), dt.date(2026, 12, 31))[:n]


def test_s3_source_from_config(s3_bucket, project_config, monkeypatch):
    client, bucket, endpoint = s3_bucket
    monkeypatch.setenv("MASSIVE_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("MASSIVE_SECRET_ACCESS_KEY", "testing")
    config = project_config(
        massive={"source": "s3", "endpoint_url": endpoint, "bucket": bucket},
        partitions={"start_date": "2026-09-01"},
        quotes=TRADES_ONLY,
    )
    sensor = build_new_trading_day_sensor(load_settings(config))
    day = dt.date(2026, 11, 20)
    client.put_object(Bucket=bucket, Key=flat_file_key("option_trades", day), Body=b"x")
    assert _tick(sensor, None)[0] == []
    client.put_object(Bucket=bucket, Key=flat_file_key("stock_trades", day), Body=b"x")
    runs, cursor, _ = _tick(sensor, None)
    assert [r.run_key for r in runs] == ["2026-11-20"] and cursor == "2026-11-20"
    assert _tick(sensor, cursor)[0] == []


def test_s3_lists_only_keys_after_the_cursor_with_pagination(s3_bucket, project_config):
    client, bucket, endpoint = s3_bucket
    days = _s3_days(40)
    for d in days:
        for name in ("stock_trades", "option_trades", "stock_quotes"):
            client.put_object(Bucket=bucket, Key=flat_file_key(name, d), Body=b"x")
    calls: list[dict] = []
    returned: list[int] = []
    client.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    client.meta.events.register(
        "after-call.s3.ListObjectsV2",
        lambda parsed, **_: returned.append(len(parsed.get("Contents", ()))),
    )
    store = S3Store(bucket, endpoint, "us-east-1", "testing", "testing", client=client, page_size=7)
    config = project_config(partitions={"start_date": "2026-09-01"}, quotes=TRADES_ONLY)
    sensor = build_new_trading_day_sensor(load_settings(config), store_factory=lambda: store)

    runs, cursor, _ = _tick(sensor, None)
    assert [r.run_key for r in runs] == [d.isoformat() for d in days[: sensors.MAX_RUNS_PER_TICK]]
    assert cursor == days[sensors.MAX_RUNS_PER_TICK - 1].isoformat()
    # 40 keys per dataset in pages of 7: continuation tokens were followed.
    assert sum(1 for c in calls if "ContinuationToken" in c) >= 2 * 5
    assert {c["Prefix"] for c in calls} == {
        "us_stocks_sip/trades_v1/",
        "us_options_opra/trades_v1/",
    }

    calls.clear()
    returned.clear()
    runs, cursor, _ = _tick(sensor, cursor)
    assert [r.run_key for r in runs] == [d.isoformat() for d in days[sensors.MAX_RUNS_PER_TICK :]]
    assert cursor == days[-1].isoformat()
    # Only the 15 newer keys of each dataset were listed, starting after the cursor's key.
    assert {c["StartAfter"] for c in calls} == {
        flat_file_key("stock_trades", days[sensors.MAX_RUNS_PER_TICK - 1]),
        flat_file_key("option_trades", days[sensors.MAX_RUNS_PER_TICK - 1]),
    }
    assert sum(returned) == 2 * (len(days) - sensors.MAX_RUNS_PER_TICK)

    calls.clear()
    returned.clear()
    runs, cursor2, skip = _tick(sensor, cursor)
    assert runs == [] and cursor2 == cursor and skip
    assert sum(returned) == 0 and len(calls) == 2


def test_unreadable_source_skips_with_the_reason(tmp_path, project_config):
    config = project_config(massive={"local_root": str(tmp_path / "nowhere")})
    runs, cursor, skip = _tick(build_new_trading_day_sensor(load_settings(config)), None)
    assert runs == [] and cursor is None
    assert "does not exist" in skip


@pytest.mark.parametrize("cursor", ["2025-12-01", None])
def test_cursor_before_start_date_lists_from_start_date(tmp_path, project_config, cursor):
    config = project_config(partitions={"start_date": "2026-11-20"}, quotes=TRADES_ONLY)
    for d in (dt.date(2026, 11, 19), dt.date(2026, 11, 20)):
        _put_local(tmp_path / "massive", "stock_trades", d)
        _put_local(tmp_path / "massive", "option_trades", d)
    runs, _, _ = _tick(build_new_trading_day_sensor(load_settings(config)), cursor)
    assert [r.run_key for r in runs] == ["2026-11-20"]
