# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from market_assets.defs.assets.ingest import build_ingest_asset
from market_assets.defs.io_managers import ParquetIOManager
from market_assets.defs.partitions import trading_day_partitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.reader import MAX_KEPT_REJECTS
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings
from market_assets_tests.config_files import FIXTURES

DAY = dt.date(2026, 11, 20)
HEADER = "ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp"


GOOD_ROW = "SPY,,,4,1,1,600.5,1,1795186000000000000,10,3,,0"  # 2026-11-20 09:46:40 ET
BAD_PRICE_ROW = "SPY,,,4,2,1,6o0,2,1795186000000000001,10,3,,0"


def write_stock_file(tmp_path: Path, rows: list[str]) -> Path:
    """A stock trades file for DAY in the test mirror, with the real header."""
    src = tmp_path / "massive" / flat_file_key("stock_trades", DAY)
    src.parent.mkdir(parents=True)
    src.write_bytes(gzip.compress(("\n".join([HEADER, *rows]) + "\n").encode()))
    return src


def materialize(
    config: Path, names=("stock_trades", "option_trades"), day: dt.date = DAY, raise_on_error=True
):
    settings = load_settings(config)
    parts = trading_day_partitions(dt.date(2023, 1, 3))
    assets = [build_ingest_asset(n, parts, n) for n in names]
    settings_resource = SettingsResource(config_path=str(config))
    return dg.materialize(
        assets,
        partition_key=day.isoformat(),
        resources={
            "settings": settings_resource,
            "source": FlatFileSource(settings=settings_resource),
            "parquet_io_manager": ParquetIOManager(root=settings.storage.root, row_group_rows=4096),
        },
        raise_on_error=raise_on_error,
    )


def metadata(result, name):
    mats = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in mats[0].metadata.items()}


@pytest.fixture
def tiny_day(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2023-01-03"})
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    return config


def test_generated_day_is_ingested_with_metadata(tiny_day, tmp_path):
    result = materialize(tiny_day)
    assert result.success
    md = metadata(result, "stock_trades")
    assert md["rows_out"] > 0 and md["rejected_rows"] == 0 and md["files"] == 1
    assert md["rows_in"] >= md["rows_out"] and md["throughput_mb_s"] > 0
    assert md["source_key"] == flat_file_key("stock_trades", DAY)
    store = ParquetStore(str(tmp_path / "warehouse"))
    stock = store.dataset("stock_trades", [DAY.isoformat()]).to_table()
    assert pc.unique(stock.column("ticker")).to_pylist() == ["SPY"]  # config: ingest.stock_tickers
    assert stock.num_rows == md["rows_out"]
    opts = store.dataset("option_trades", [DAY.isoformat()]).to_table()
    assert pc.unique(opts.column("underlying")).to_pylist() == ["SPY"]
    assert opts.column("strike").null_count == 0
    f = next((tmp_path / "warehouse" / "stock_trades" / f"dt={DAY}").glob("*.parquet"))
    meta = store.read_metadata(str(f))
    assert meta["market_assets.source_key"] == flat_file_key("stock_trades", DAY)
    assert meta["market_assets.schema_version"] == "1"


def test_all_tickers_with_star(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"stock_tickers": ["*"]}
    )
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    materialize(config, names=("stock_trades",))
    t = (
        ParquetStore(str(tmp_path / "warehouse"))
        .dataset("stock_trades", [DAY.isoformat()])
        .to_table()
    )
    assert len(pc.unique(t.column("ticker"))) > 1


def test_real_massive_samples_through_the_asset(tmp_path, project_config):
    config = project_config(
        # SPY stays listed: features.symbol must be among the ingested tickers.
        partitions={"start_date": "2023-01-03"},
        ingest={"stock_tickers": ["MSFT", "SPY"]},
    )
    day = dt.date(2023, 3, 28)
    dest = tmp_path / "massive" / flat_file_key("stock_trades", day)
    dest.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stock_trades_sample.csv.gz", dest)
    result = materialize(config, names=("stock_trades",), day=day)
    assert metadata(result, "stock_trades")["rows_out"] == 99


def test_truncated_file_fails_and_keeps_previous_partition(tiny_day, tmp_path):
    materialize(tiny_day, names=("stock_trades",))
    part = tmp_path / "warehouse" / "stock_trades" / f"dt={DAY}"
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    src = tmp_path / "massive" / flat_file_key("stock_trades", DAY)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    result = materialize(tiny_day, names=("stock_trades",), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    msg = (
        failure.step_failure_data.error.cause.message
        if failure.step_failure_data.error.cause
        else ""
    )
    msg += failure.step_failure_data.error.message
    assert str(src) in msg and "truncated gzip" in msg and "compressed byte offset" in msg
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before


def test_malformed_rows_are_quarantined_and_counted(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.9}
    )
    src = write_stock_file(tmp_path, [GOOD_ROW, BAD_PRICE_ROW, "SPY,1,2"])
    result = materialize(config, names=("stock_trades",))
    md = metadata(result, "stock_trades")
    assert md["rows_out"] == 1 and md["rejected_rows"] == 2
    rejects = tmp_path / "warehouse" / "_rejects" / "stock_trades" / f"dt={DAY}" / "rejects.jsonl"
    got = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert sorted((r["line"], r["reason"]) for r in got) == [
        (3, "price: cannot parse '6o0'"),
        (4, "expected 13 fields, found 3"),
    ]
    assert all(r["file"] == str(src) for r in got)


def test_reject_fraction_above_limit_fails_the_run(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.01}
    )
    write_stock_file(tmp_path, [GOOD_ROW, BAD_PRICE_ROW])
    result = materialize(config, names=("stock_trades",), raise_on_error=False)
    assert not result.success
    assert not (tmp_path / "warehouse" / "stock_trades" / f"dt={DAY}").exists()
    assert (
        tmp_path / "warehouse" / "_rejects" / "stock_trades" / f"dt={DAY}" / "rejects.jsonl"
    ).exists()


def test_missing_file_says_when_massive_publishes(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2023-01-03"})
    (tmp_path / "massive").mkdir()
    result = materialize(config, names=("option_trades",), raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.error.message) + str(failure.event_specific_data)
    assert "11:00 ET" in text and flat_file_key("option_trades", DAY) in text


def test_s3_source_end_to_end(tmp_path, project_config, s3_bucket, monkeypatch):
    client, bucket, endpoint = s3_bucket.client, s3_bucket.bucket, s3_bucket.endpoint_url
    generate_day(DAY, tmp_path / "mirror", scale="tiny", seed=3)
    for name in ("stock_trades", "option_trades"):
        key = flat_file_key(name, DAY)
        client.upload_file(str(tmp_path / "mirror" / key), bucket, key)
    monkeypatch.setenv("MASSIVE_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("MASSIVE_SECRET_ACCESS_KEY", "testing-secret-value")
    config = project_config(
        partitions={"start_date": "2023-01-03"},
        massive={"source": "s3", "endpoint_url": endpoint, "bucket": bucket},
    )
    result = materialize(config)
    assert (
        metadata(result, "stock_trades")["source_bytes"]
        == (tmp_path / "mirror" / flat_file_key("stock_trades", DAY)).stat().st_size
    )
    assert metadata(result, "option_trades")["rows_out"] > 0


def test_every_malformed_row_is_quarantined_even_past_the_in_memory_sample(
    tmp_path, project_config
):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.9}
    )
    # Good rows with their own sequence numbers (a repeat would fail no_duplicate_trades).
    good = [
        GOOD_ROW.replace(",600.5,1,", f",600.5,{i + 1},") for i in range(MAX_KEPT_REJECTS + 500)
    ]
    rows = [row for pair in zip(good, [BAD_PRICE_ROW] * len(good), strict=True) for row in pair]
    write_stock_file(tmp_path, rows)
    md = metadata(materialize(config, names=("stock_trades",)), "stock_trades")
    assert md["rejected_rows"] == MAX_KEPT_REJECTS + 500
    rejects = tmp_path / "warehouse" / "_rejects" / "stock_trades" / f"dt={DAY}" / "rejects.jsonl"
    lines = [json.loads(x)["line"] for x in rejects.read_text().splitlines()]
    assert lines == list(range(3, 2 * (MAX_KEPT_REJECTS + 500) + 2, 2))
