# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Impossible values in a day's flat files are quarantined by the ingest assets, never
stored; a valid but implausible price is stored, and the implausible-price scan finds it."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc

from market_assets.core.calendar import day_bounds_ns
from market_assets.core.implausible_prices import scan_implausible_prices
from market_assets.defs.assets.ingest import build_ingest_asset
from market_assets.defs.io_managers import ParquetIOManager
from market_assets.defs.partitions import trading_day_partitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings

DAY = dt.date(2026, 11, 20)
START, END = day_bounds_ns(DAY)
NOON = START + 12 * 3_600_000_000_000

# Stock rows injected right after the file's first SPY row: field changes and the reason
# each must be quarantined with (None: valid, stored).
STOCK_INJECTED = [
    ({"price": "nan"}, "price: nan is not a finite number above 0"),
    ({"price": "inf"}, "price: inf is not a finite number above 0"),
    ({"price": "0"}, "price: 0 is not a finite number above 0"),
    ({"price": "-586.78"}, "price: -586.78 is not a finite number above 0"),
    ({"size": "0"}, "size: 0 is not a finite number above 0"),
    ({"size": "-100"}, "size: -100 is not a finite number above 0"),
    (
        {"sip_timestamp": "0"},
        "sip_timestamp: 0 (1969-12-31 19:00:00.000000000-0500) is not on 2026-11-20 "
        "(00:00-24:00 New York time)",
    ),
    (
        {"sip_timestamp": str(END + 60_000_000_000)},
        f"sip_timestamp: {END + 60_000_000_000} (2026-11-21 00:01:00.000000000-0500) is not "
        "on 2026-11-20 (00:00-24:00 New York time)",
    ),
    ({"price": "1e12"}, None),  # valid, if implausible
]
OPTION_INJECTED = [
    ({"size": "-3"}, "size: -3 is not a finite number above 0"),
    ({"price": "0"}, "price: 0 is not a finite number above 0"),
]


def inject(path: Path, ticker_prefix: str, injected: list[tuple[dict, str | None]]):
    """Insert rows after the first line of ``ticker_prefix``; returns their line numbers
    (header = 1) with the expected reasons."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    at = next(i for i, r in enumerate(rows) if r[0].startswith(ticker_prefix))
    new = []
    for n, (changes, _) in enumerate(injected):
        row = dict(zip(header, rows[at], strict=True))
        row.update({"sip_timestamp": str(NOON + n), **changes})
        if "id" in row:  # stock trades: a row of its own for the duplicate checks
            row["id"] = f"injected-{n}"
            row["sequence_number"] = str(10_000_000 + n)
        new.append([row[c] for c in header])
    rows[at + 1 : at + 1] = new
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_bytes(gzip.compress(out.getvalue().encode()))
    first_line = at + 2  # the inserted rows start on the line after row ``at`` (0-based)
    return [(first_line + n, why) for n, (_, why) in enumerate(injected) if why]


def materialize(config: Path, raise_on_error: bool = True):
    settings = load_settings(config)
    parts = trading_day_partitions(dt.date(2023, 1, 3))
    assets = [build_ingest_asset(n, parts, n) for n in ("stock_trades", "option_trades")]
    settings_resource = SettingsResource(config_path=str(config))
    return dg.materialize(
        assets,
        partition_key=DAY.isoformat(),
        resources={
            "settings": settings_resource,
            "source": FlatFileSource(settings=settings_resource),
            "parquet_io_manager": ParquetIOManager(root=settings.storage.root, row_group_rows=4096),
        },
        raise_on_error=raise_on_error,
    )


def injected_day(tmp_path: Path):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    stock = inject(tmp_path / "massive" / flat_file_key("stock_trades", DAY), "SPY", STOCK_INJECTED)
    option = inject(
        tmp_path / "massive" / flat_file_key("option_trades", DAY), "O:SPY", OPTION_INJECTED
    )
    return stock, option


def quarantined(tmp_path: Path, name: str) -> list[dict]:
    path = tmp_path / "warehouse" / "_rejects" / name / f"dt={DAY}" / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_impossible_values_are_quarantined_and_never_stored(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.01}
    )
    stock_expected, option_expected = injected_day(tmp_path)
    result = materialize(config)
    assert result.success

    store = ParquetStore(str(tmp_path / "warehouse"))
    for name, expected in (("stock_trades", stock_expected), ("option_trades", option_expected)):
        md = result.asset_materializations_for_node(name)[0].metadata
        assert md["rejected_rows"].value == len(expected)
        got = quarantined(tmp_path, name)
        assert [(r["line"], r["reason"]) for r in got] == expected  # in line order
        assert all(r["file"].endswith(flat_file_key(name, DAY)) for r in got)
        stored = store.dataset(name, [DAY.isoformat()]).to_table()
        assert stored.num_rows == md["rows_out"].value
        assert pc.min(stored.column("price")).as_py() > 0
        assert all(math.isfinite(p) for p in stored.column("price").to_pylist())
        assert pc.min(stored.column("size")).as_py() > 0
        sip = stored.column("sip_timestamp").cast("int64")
        assert START <= pc.min(sip).as_py() and pc.max(sip).as_py() < END

    stock = store.dataset("stock_trades", [DAY.isoformat()]).to_table()
    ids = [i for i in stock.column("id").to_pylist() if i.startswith("injected")]
    assert ids == ["injected-8"]  # only the valid 1e12 print was stored
    assert quarantined(tmp_path, "stock_trades")[0]["text"].startswith("SPY,")

    found = scan_implausible_prices(stock.select(["ticker", "price"]).to_batches())
    assert found.implausible == 1 and [e.price for e in found.examples] == [1e12]


def test_impossible_values_count_toward_max_reject_fraction(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2023-01-03"}, ingest={"max_reject_fraction": 0.001}
    )
    injected_day(tmp_path)
    result = materialize(config, raise_on_error=False)
    assert not result.success
    assert not (tmp_path / "warehouse" / "stock_trades" / f"dt={DAY}").exists()
    failure = next(
        e for e in result.all_events if e.is_step_failure and e.step_key == "stock_trades"
    )
    error = failure.step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "8 of " in text and "above ingest.max_reject_fraction = 0.001" in text
    assert len(quarantined(tmp_path, "stock_trades")) == 8
