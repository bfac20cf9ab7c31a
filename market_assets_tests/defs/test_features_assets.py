# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The features multi-asset on a generated day: one read of the day for every window size,
any window alone, the same rows as the core's whole-day path, charts and previews kept."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.prelim_final import FINAL, QUALITY_COLUMNS, with_quality
from market_assets.core.statistics import StatsOptions
from market_assets.core.windows import features_for_day, output_schema, window_grid
from market_assets.defs.assets import features as features_asset
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.parquet_store import ParquetStore
from market_assets.settings import load_settings
from market_assets_tests.materialize import materialize_day

DAY = dt.date(2026, 11, 20)
KEY = DAY.isoformat()
WINDOWS = ["1m", "5m", "15m", "30m"]


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A generated day ingested and greeked once; features are materialized per test."""
    from market_assets_tests.config_files import write_config

    tmp = tmp_path_factory.mktemp("features")
    generate_day(DAY, tmp / "massive", scale="tiny", seed=5)
    config = write_config(
        tmp / "config.toml",
        massive={"local_root": str(tmp / "massive")},
        storage={"root": str(tmp / "warehouse")},
        # The 81 FEATURE_NAMES from option_trades_greeks (aggression: test_classified_asset).
        features={"windows": WINDOWS, "aggression": False},
    )
    settings = load_settings(config)
    defs = build_definitions(settings)
    upstream = ["stock_trades", "option_trades", "option_trades_greeks"]
    _materialize(defs, upstream)
    return settings, defs, ParquetStore(settings.storage.root)


def _materialize(defs: dg.Definitions, keys: list[str]) -> dict[str, dict]:
    """Materialize ``keys`` for the day; the materialization metadata per asset."""
    result = materialize_day(defs, keys, DAY)
    return {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("features")
    }


def _expected(settings, store: ParquetStore, window: str) -> pa.Table:
    """The core's whole-day rows from the stored trades."""
    f = settings.features
    stock = store.dataset("stock_trades", [KEY]).to_table()
    options = store.dataset("option_trades_greeks", [KEY]).to_table()
    stats = StatsOptions(f.kde_grid, f.dip_pval_method, f.dip_bootstrap_draws, f.dip_seed)
    rules = load_condition_rules(settings.conditions.rules_file or None)
    rows = features_for_day(stock, options, DAY, f.symbol, window, f.session, rules, stats)
    return with_quality(rows, FINAL)


def _stored(store: ParquetStore, window: str) -> pa.Table:
    schema = pa.schema([*output_schema(), *QUALITY_COLUMNS])
    return store.dataset(f"features/symbol=SPY/window={window}", [KEY]).to_table().cast(schema)


def test_greeks_are_stored_by_underlying_then_time(day) -> None:
    _, _, store = day
    g = store.dataset("option_trades_greeks", [KEY]).to_table(
        columns=["underlying", "sip_timestamp"]
    )
    assert g.num_rows > 100
    assert g.equals(g.sort_by([("underlying", "ascending"), ("sip_timestamp", "ascending")]))


@pytest.fixture
def small_batches(monkeypatch):
    """Read the day 300 rows at a time (the generated day is a few thousand rows)."""
    monkeypatch.setitem(features_asset.SCAN_OPTIONS, "batch_size", 300)


def test_every_window_size_from_one_streamed_read_equals_the_whole_day_rows(
    day, small_batches
) -> None:
    settings, defs, store = day
    mats = _materialize(defs, [f"features_{w}" for w in WINDOWS])
    assert set(mats) == {f"features_{w}" for w in WINDOWS}
    for w in WINDOWS:
        md = mats[f"features_{w}"]
        assert md["streamed"] is True
        assert md["windows"] == md["rows"] == window_grid(DAY, w, "regular").size
        assert md["chart"].startswith("![") and "data:image/png;base64," in md["chart"]
        assert "| window_start |" in md["preview"] and md["chart_path"].endswith(".png")
        assert md["symbol"] == "SPY" and md["session"] == "regular"
        assert md["underlying_trades_in"] > 0 and md["option_trades_in"] > 0
        assert 0 < md["peak_buffered_trades"] < md["underlying_trades_in"] + md["option_trades_in"]
        assert _stored(store, w).equals(_expected(settings, store, w)), w


def test_one_window_size_materializes_alone(day) -> None:
    settings, defs, store = day
    mats = _materialize(defs, ["features_15m"])
    assert list(mats) == ["features_15m"]
    assert _stored(store, "15m").equals(_expected(settings, store, "15m"))


def test_greeks_stored_in_another_order_are_read_whole_with_the_same_rows(
    day, small_batches
) -> None:
    settings, defs, store = day
    sorted_greeks = store.dataset("option_trades_greeks", [KEY]).to_table()
    reverse = sorted_greeks.take(pa.array(np.arange(sorted_greeks.num_rows)[::-1]))
    store.write_partition(
        "option_trades_greeks", KEY, reverse.to_batches(max_chunksize=1000), reverse.schema
    )
    try:
        mats = _materialize(defs, ["features_5m", "features_30m"])
        for w in ("5m", "30m"):
            assert mats[f"features_{w}"]["streamed"] is False
            assert _stored(store, w).equals(_expected(settings, store, w)), w
    finally:
        store.write_partition(
            "option_trades_greeks", KEY, sorted_greeks.to_batches(), sorted_greeks.schema
        )


def test_window_sizes_are_outputs_of_one_multi_asset_from_config(project_config) -> None:
    settings = load_settings(project_config(features={"windows": ["2m", "1h"]}))
    defs = build_definitions(settings)
    (features,) = [
        a
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition) and a.is_executable and a.node_def.name == "features"
    ]
    assert {k.to_user_string() for k in features.keys} == {"features_2m", "features_1h"}
    assert features.can_subset


def test_switching_features_symbol_keeps_the_previous_symbols_windows(tmp_path) -> None:
    """Features are stored per symbol (features/symbol=<S>/window=<w>/dt=<day>): a second
    symbol's windows go beside the first's, never over them."""
    from market_assets_tests.config_files import write_config

    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=5)
    both = {"stock_tickers": ["SPY", "QQQ"], "option_underlyings": ["SPY", "QQQ"]}
    stored: dict[str, pa.Table] = {}
    for symbol in ("SPY", "QQQ"):
        config = write_config(
            tmp_path / f"config-{symbol}.toml",
            massive={"local_root": str(tmp_path / "massive")},
            storage={"root": str(tmp_path / "warehouse")},
            ingest=both,
            features={"symbol": symbol, "windows": ["30m"], "aggression": False},
            realtime={"symbol": symbol},
        )
        defs = build_definitions(load_settings(config))
        _materialize(
            defs, ["stock_trades", "option_trades", "option_trades_greeks", "features_30m"]
        )
        store = ParquetStore(str(tmp_path / "warehouse"))
        stored[symbol] = store.dataset(f"features/symbol={symbol}/window=30m", [KEY]).to_table()
    spy_again = store.dataset("features/symbol=SPY/window=30m", [KEY]).to_table()
    assert spy_again.equals(stored["SPY"])
    assert set(stored["SPY"].column("symbol").to_pylist()) == {"SPY"}
    assert set(stored["QQQ"].column("symbol").to_pylist()) == {"QQQ"}
    assert sum(stored["SPY"].column("underlying_trades").to_pylist()) > 0
    assert sum(stored["QQQ"].column("underlying_trades").to_pylist()) > 0
