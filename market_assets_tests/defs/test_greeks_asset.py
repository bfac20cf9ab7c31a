# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""option_trades_greeks merges the underlyings' trades in as the sorted option trades
stream: the same prices whatever the batch size, only the staleness window held."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io import external_sort, parquet_store
from market_assets.settings import load_settings
from market_assets_tests.config_files import write_config
from market_assets_tests.materialize import materialize_day

DAY = dt.date(2026, 11, 20)
KEYS = ["stock_trades", "option_trades", "option_trades_greeks"]


def _greeks(tmp_path, name: str) -> tuple[dict, object]:
    config = write_config(
        tmp_path / f"{name}.toml",
        massive={"local_root": str(tmp_path / "massive")},
        storage={"root": str(tmp_path / name)},
    )
    settings = load_settings(config)
    result = materialize_day(build_definitions(settings), KEYS, DAY)
    mat = result.asset_materializations_for_node("option_trades_greeks")[0]
    table = pq.read_table(tmp_path / name / "option_trades_greeks" / f"dt={DAY}")
    return {k: v.value for k, v in mat.metadata.items()}, table


def test_small_option_batches_hold_few_underlying_rows_and_price_the_same(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=5)
    whole, expected = _greeks(tmp_path, "one_batch")
    # The sorted option trades 40 a batch, the stock trades read 100 at a time (the reader
    # is ahead by at most one part).
    monkeypatch.setattr(external_sort, "OUT_ROWS", 40)
    monkeypatch.setitem(parquet_store.BOUNDED_SCAN_OPTIONS, "batch_size", 100)
    small, got = _greeks(tmp_path, "small_batches")
    assert got.equals(expected)
    assert small["underlying_in_time_order"] is True
    assert small["underlying_trades_read"] == whole["underlying_trades_read"]
    assert small["underlying_rows_peak_held"] < small["underlying_trades_read"] / 3
