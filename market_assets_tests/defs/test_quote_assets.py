# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""stock_quotes and option_quotes materialized by Dagster from real files: NBBO deltas,
early stop (local and S3), rejects, failed partitions and the in-step checks."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from market_assets.core.nbbo import nbbo_deltas
from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import OPTION_QUOTES, STOCK_QUOTES
from market_assets.defs.assets.quotes import build_quote_assets
from market_assets.defs.definitions import build_definitions
from market_assets.defs.io_managers import ParquetIOManager
from market_assets.defs.partitions import trading_day_partitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.devtools.quote_files import roots, write_option_quotes
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings

DAY = dt.date(2026, 11, 20)
ROOTS = roots(40, include=("BBB", "SPY"))
OPTION_HEADER = (
    "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,"
    "sequence_number,sip_timestamp"
)


def materialize(
    config: Path,
    names=("stock_quotes", "option_quotes"),
    raise_on_error=True,
    instance: dg.DagsterInstance | None = None,
):
    settings = load_settings(config)
    assets = [
        a
        for a in build_quote_assets(trading_day_partitions(dt.date(2023, 1, 3)))
        if a.key.to_user_string() in names
    ]
    settings_resource = SettingsResource(config_path=str(config))
    return dg.materialize(
        assets,
        partition_key=DAY.isoformat(),
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={
            "settings": settings_resource,
            "source": FlatFileSource(settings=settings_resource),
            "parquet_io_manager": ParquetIOManager(root=settings.storage.root, row_group_rows=4096),
        },
        raise_on_error=raise_on_error,
    )


def metadata(result, name: str) -> dict:
    [mat] = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in mat.metadata.items()}


def checks(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def stored(tmp_path: Path, name: str) -> pa.Table:
    return ParquetStore(str(tmp_path / "warehouse")).dataset(name, [DAY.isoformat()]).to_table()


def one_shot_deltas(path: Path, name: str, keep: str) -> pa.Table:
    """The reference: the whole file read at once, the kept rows' deltas in one call."""
    table = pcsv.read_csv(path)
    table = table.rename_columns([c.lower() for c in table.column_names])
    options = name == "option_quotes"
    if options:
        parsed, _ = parse_option_tickers(table["ticker"].combine_chunks())
        mask = pc.fill_null(pc.equal(parsed["underlying"], keep), False)
    else:
        mask = pc.equal(table["ticker"], keep)
    return nbbo_deltas(table.filter(mask), options=options)[0]


@pytest.fixture
def tiny_day(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2023-01-03"})
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    return config


@pytest.fixture(scope="module")
def many_roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~400k option quotes over 40+ roots in ticker order (several MB of gzip); BBB, early in
    the file, has a few times a root's share."""
    path = tmp_path_factory.mktemp("quotes") / "option_quotes.csv.gz"
    write_option_quotes(path, 400_000, ROOTS, weights={"BBB": 3}, contracts_per_root=40)
    return path


def test_the_sample_day_is_stored_as_its_nbbo_deltas(tiny_day, tmp_path):
    result = materialize(tiny_day)
    assert result.success
    for name, schema in (("stock_quotes", STOCK_QUOTES), ("option_quotes", OPTION_QUOTES)):
        src = tmp_path / "massive" / flat_file_key(name, DAY)
        got = stored(tmp_path, name)
        assert got.schema == schema
        expected = one_shot_deltas(src, name, "SPY")  # quotes lists [] = features.symbol
        assert got.num_rows > 0 and got.equals(expected)
        md = metadata(result, name)
        assert md["rows"] == md["rows_out"] == got.num_rows
        assert md["quote_rows"] >= md["rows_out"] and md["rejected_rows"] == 0
        assert sum(md[f"nbbo_{s}"] for s in ("normal", "locked", "crossed", "invalid")) == (
            got.num_rows
        )
        counts = pc.value_counts(got["nbbo_state"]).to_pylist()
        assert {c["values"]: c["counts"] for c in counts} == {
            s: md[f"nbbo_{s.lower()}"]
            for s in ("Normal", "Locked", "Crossed", "Invalid")
            if md[f"nbbo_{s.lower()}"]
        }
        assert md["source_bytes_read"] <= md["source_bytes"] == src.stat().st_size
        found = checks(result)
        assert found[(name, "non_empty")].passed
        states = found[(name, "nbbo_states")]
        assert states.metadata["rows"].value == got.num_rows
        assert states.metadata["max_invalid_share"].value == 0.5


def test_one_underlying_reads_a_prefix_and_gives_the_rows_of_a_full_read(
    many_roots, tmp_path, project_config
):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, quotes={"underlyings": ["BBB"]}
    )
    src = tmp_path / "massive" / flat_file_key("option_quotes", DAY)
    src.parent.mkdir(parents=True)
    src.write_bytes(many_roots.read_bytes())
    result = materialize(config, names=("option_quotes",))
    md = metadata(result, "option_quotes")
    assert md["stopped_early"] and md["blocks_skipped"] >= 0
    assert md["source_bytes_read"] < md["source_bytes"] / 3, md
    got = stored(tmp_path, "option_quotes")
    assert set(got["underlying"].to_pylist()) == {"BBB"}
    assert got.equals(one_shot_deltas(src, "option_quotes", "BBB"))


def test_malformed_quote_rows_are_quarantined_with_file_and_line(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.5}
    )
    rows = [
        "O:SPY261120C00600000,301,1.10,5,302,1.00,7,1,1795186000000000000",
        "O:SPY261120C00600000,301,1.10,5,302,1.0x,7,2,1795186000000000001",  # line 3
        "O:SPY261120C00600000,301,1.20,5,302,1.00,7",  # line 4: 7 fields
        "O:SPY261120C00600000,301,1.20,5,302,1.00,7,4,1795186000000000003",
        "O:SPY261120C00600000,301,1.20,5,302,1.00,7,5,1795186000000000004",  # a repeat
    ]
    src = tmp_path / "massive" / flat_file_key("option_quotes", DAY)
    src.parent.mkdir(parents=True)
    src.write_bytes(gzip.compress(("\n".join([OPTION_HEADER, *rows]) + "\n").encode()))
    result = materialize(config, names=("option_quotes",))
    md = metadata(result, "option_quotes")
    assert (md["rejected_rows"], md["quote_rows"], md["rows_out"]) == (2, 3, 2)
    path = tmp_path / "warehouse" / "_rejects" / "option_quotes" / f"dt={DAY}" / "rejects.jsonl"
    got = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["line"], r["reason"], r["file"]) for r in got] == [
        (3, "bid_price: invalid value '1.0x'", str(src)),
        (4, "expected 9 fields, found 7", str(src)),
    ]
    assert got[0]["text"] == rows[1]

    # Above ingest.max_reject_fraction the day fails, naming the first reject; the
    # previous partition stays and the rejects are still quarantined.
    part = tmp_path / "warehouse" / "option_quotes" / f"dt={DAY}"
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    path.unlink()
    project_config(partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.1})
    result = materialize(config, names=("option_quotes",), raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "2 of 5 rows rejected" in text and "above ingest.max_reject_fraction = 0.1" in text
    assert "first at line 3: bid_price" in text
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before
    assert path.exists()


def test_a_failed_or_empty_day_keeps_the_previous_partition(tiny_day, tmp_path):
    assert materialize(tiny_day, names=("stock_quotes",)).success
    part = tmp_path / "warehouse" / "stock_quotes" / f"dt={DAY}"
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    src = tmp_path / "massive" / flat_file_key("stock_quotes", DAY)
    whole = src.read_bytes()

    src.write_bytes(whole[: len(whole) // 2])  # truncated gzip
    result = materialize(tiny_day, names=("stock_quotes",), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "truncated gzip" in text and str(src) in text
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before

    header = gzip.decompress(whole).split(b"\n", 1)[0]
    src.write_bytes(
        gzip.compress(
            header
            + b"\nAAPL"
            + gzip.decompress(whole).split(b"\nAAPL", 1)[1].split(b"\n", 1)[0]
            + b"\n"
        )
    )
    result = materialize(tiny_day, names=("stock_quotes",), raise_on_error=False)
    assert not result.success
    empty = checks(result)[("stock_quotes", "non_empty")]
    assert not empty.passed and "none of quotes.tickers (SPY)" in empty.description
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before


def test_s3_source_stops_the_download_after_the_underlying(
    many_roots, tmp_path, project_config, s3_bucket, monkeypatch
):
    client, bucket, endpoint = s3_bucket
    key = flat_file_key("option_quotes", DAY)
    client.upload_file(str(many_roots), bucket, key)
    monkeypatch.setenv("MASSIVE_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("MASSIVE_SECRET_ACCESS_KEY", "testing-secret-value")
    config = project_config(
        partitions={"start_date": "2023-01-03"},
        massive={"source": "s3", "endpoint_url": endpoint, "bucket": bucket},
        quotes={"underlyings": ["BBB"]},
    )
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(config, names=("option_quotes",), instance=instance)
    md = metadata(result, "option_quotes")
    assert md["source_bytes"] == many_roots.stat().st_size
    assert md["stopped_early"] and md["source_bytes_read"] < md["source_bytes"] / 3, md
    # The reader closes the S3 body at the first line past BBB: the run log says where.
    lines = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(
        f"past the last of BBB at compressed byte {md['source_bytes_read']:,} of "
        f"{md['source_bytes']:,}"
        in line
        and "the source was closed there" in line
        for line in lines
    ), lines
    local = tmp_path / "local.csv.gz"
    local.write_bytes(many_roots.read_bytes())
    assert stored(tmp_path, "option_quotes").equals(one_shot_deltas(local, "option_quotes", "BBB"))


def test_quotes_enabled_false_takes_the_quote_assets_out_of_the_graph(project_config):
    def assets(config: Path) -> set[str]:
        graph = build_definitions(load_settings(config)).resolve_asset_graph()
        return {k.to_user_string() for k in graph.get_all_asset_keys()}

    assert {"stock_quotes", "option_quotes"} <= assets(project_config())
    off = assets(project_config(quotes={"enabled": False}))
    assert not off & {"stock_quotes", "option_quotes"} and "option_trades" in off
