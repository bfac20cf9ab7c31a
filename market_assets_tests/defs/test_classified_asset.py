# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""option_trades_classified and the aggression features materialized by Dagster on a
generated day: equal to the core's whole-day references, checks in the step, nbbo_mid."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from market_assets.core.classify import classify_table
from market_assets.core.feature_names import AGGRESSION_FEATURE_NAMES, FEATURE_NAMES
from market_assets.core.schemas import OPTION_TRADES_CLASSIFIED
from market_assets.core.statistics import StatsOptions
from market_assets.core.underlying import NbboMidIndex
from market_assets.core.windows import features_for_day
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.parquet_store import BOUNDED_SCAN_OPTIONS, ParquetStore
from market_assets.settings import load_settings
from market_assets_tests.config_files import write_config
from market_assets_tests.materialize import materialize_day

DAY = dt.date(2026, 11, 20)
KEY = DAY.isoformat()
UPSTREAM = ["stock_trades", "option_trades", "option_quotes", "option_trades_greeks"]


def _materialize(defs: dg.Definitions, keys: list[str]) -> dg.ExecuteInProcessResult:
    return materialize_day(defs, keys, DAY)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _generated(tmp, seed: int, windows: list[str]):
    """A generated tiny day with aggression and quotes on, its upstream materialized."""
    generate_day(DAY, tmp / "massive", scale="tiny", seed=seed)
    config = write_config(
        tmp / "config.toml",
        massive={"local_root": str(tmp / "massive")},
        storage={"root": str(tmp / "warehouse")},
        features={"windows": windows, "aggression": True},
        quotes={"enabled": True},
    )
    settings = load_settings(config)
    defs = build_definitions(settings)
    _materialize(defs, UPSTREAM)
    return settings, defs, ParquetStore(settings.storage.root)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    return _generated(tmp_path_factory.mktemp("classified"), seed=5, windows=["5m", "30m"])


def test_lineage_runs_from_option_quotes_through_the_classified_trades_to_the_features(day):
    _, defs, _ = day
    graph = defs.resolve_asset_graph()
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents["option_trades_classified"] == {"option_quotes", "option_trades_greeks"}
    assert parents["features_5m"] == {"stock_trades", "option_trades_classified"}
    assert "stock_quotes" not in parents["option_trades_greeks"]


def test_classified_trades_equal_classify_table_on_the_whole_day(day, monkeypatch):
    _, defs, store = day
    monkeypatch.setitem(BOUNDED_SCAN_OPTIONS, "batch_size", 300)  # many quote and trade batches
    result = _materialize(defs, ["option_trades_classified"])
    [mat] = result.asset_materializations_for_node("option_trades_classified")
    md = {k: v.value for k, v in mat.metadata.items()}
    got = store.dataset("option_trades_classified", [KEY]).to_table()
    greeks = store.dataset("option_trades_greeks", [KEY]).to_table()
    quotes = store.dataset("option_quotes", [KEY]).to_table()
    assert got.schema.names == OPTION_TRADES_CLASSIFIED.names
    assert got.num_rows == greeks.num_rows == md["rows"] > 500
    assert got.cast(OPTION_TRADES_CLASSIFIED).equals(
        classify_table(greeks, quotes).cast(OPTION_TRADES_CLASSIFIED)
    )
    # The raw and greeks columns are option_trades_greeks' rows, unchanged, in its order.
    assert got.select(greeks.column_names).equals(greeks)
    sides = pc.value_counts(got.column("aggressor_side")).to_pylist()
    assert {d["values"] for d in sides} >= {"buy", "sell"}
    checks = _checks(result)
    assert checks["all_trades_kept"].passed
    assert checks["classification_quality"].passed
    quality = {k: v.value for k, v in checks["classification_quality"].metadata.items()}
    assert quality["nbbo_age_p50_us"] <= quality["nbbo_age_p90_us"] <= quality["nbbo_age_p99_us"]
    assert 0 <= quality["share_nbbo_locked"] <= 1 and "share_unknown_stale" in quality
    assert md["option_quotes_read"] == quotes.num_rows


def test_features_with_aggression_have_the_68_columns_and_the_core_statistics(day):
    settings, defs, store = day
    _materialize(defs, ["option_trades_classified"])
    result = _materialize(defs, ["features_5m", "features_30m"])
    f = settings.features
    stock = store.dataset("stock_trades", [KEY]).to_table()
    options = store.dataset("option_trades_classified", [KEY]).to_table()
    stats = StatsOptions(f.kde_grid, f.dip_pval_method, f.dip_bootstrap_draws, f.dip_seed)
    rules = load_condition_rules(None)
    for w in ("5m", "30m"):
        got = store.dataset(f"features/symbol=SPY/window={w}", [KEY]).to_table()
        names = got.column_names[7:-3]
        assert names == list(FEATURE_NAMES) + list(AGGRESSION_FEATURE_NAMES)
        assert len(names) == 149
        assert got.column_names[-3:] == ["quality", "late_dropped", "gaps"]
        want = features_for_day(
            stock, options, DAY, "SPY", w, f.session, rules, stats, include_aggression=True
        )
        assert got.select(want.column_names).cast(want.schema).equals(want), w
        buy = got.column("calls_dadvv_agg_buy_total").drop_null()
        assert len(buy) > 0
    mats = {
        m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("features")
    }
    chart = mats["features_5m"].metadata["aggression_chart"].value
    assert "data:image/png;base64," in chart
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_a_day_without_usable_quotes_warns_but_keeps_every_trade(day):
    _, defs, store = day
    quotes = store.dataset("option_quotes", [KEY]).to_table()
    # Every quote an hour late: most trades have no NBBO yet, or a stale one.
    late = pc.add(quotes.column("sip_timestamp").cast(pa.int64()), 3_600 * 10**9)
    shifted = quotes.set_column(
        quotes.schema.get_field_index("sip_timestamp"),
        quotes.schema.field("sip_timestamp"),
        late.cast(quotes.schema.field("sip_timestamp").type),
    )
    store.write_partition("option_quotes", KEY, shifted.to_batches(), quotes.schema)
    try:
        result = _materialize(defs, ["option_trades_classified"])
    finally:
        store.write_partition("option_quotes", KEY, quotes.to_batches(), quotes.schema)
    checks = _checks(result)
    assert checks["all_trades_kept"].passed
    quality = checks["classification_quality"]
    assert not quality.passed and quality.severity == dg.AssetCheckSeverity.WARN
    assert "checks.max_unknown_share" in quality.description
    assert "no_quote" in quality.description


def test_nbbo_mid_prices_the_options_from_stock_quotes(tmp_path):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=5)
    config = write_config(
        tmp_path / "config.toml",
        massive={"local_root": str(tmp_path / "massive")},
        storage={"root": str(tmp_path / "warehouse")},
        # The generated day's stock quotes are sparse (a few around each burst of trades).
        greeks={"underlying_price": "nbbo_mid", "max_underlying_staleness_s": 60.0},
        checks={"min_ok_share": 0.5, "max_no_underlying_share": 0.5},
        features={"aggression": False},
        quotes={"enabled": True},
    )
    defs = build_definitions(load_settings(config))
    graph = defs.resolve_asset_graph()
    parents = {
        p.to_user_string() for p in graph.get(dg.AssetKey("option_trades_greeks")).parent_keys
    }
    assert parents == {"option_trades", "stock_trades", "stock_quotes"}
    result = _materialize(
        defs, ["stock_trades", "stock_quotes", "option_trades", "option_trades_greeks"]
    )
    store = ParquetStore(str(tmp_path / "warehouse"))
    greeks = store.dataset("option_trades_greeks", [KEY]).to_table()
    quotes = store.dataset("stock_quotes", [KEY]).to_table()
    want, _ = NbboMidIndex(quotes).asof(
        greeks.column("underlying"), greeks.column("sip_timestamp"), 60 * 10**9
    )
    got = greeks.column("underlying_price").to_numpy(zero_copy_only=False)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isfinite(got).mean() > 0.5
    [mat] = result.asset_materializations_for_node("option_trades_greeks")
    assert mat.metadata["underlying_price"].value == "nbbo_mid"


def test_quotes_stored_out_of_ticker_order_are_sorted_first_with_the_same_result(tmp_path):
    # A partition written by another tool: the streamed join refuses it, the step sorts the
    # quotes by ticker (bounded external sort) and classifies again.
    _, defs, store = _generated(tmp_path, seed=8, windows=["5m"])
    quotes = store.dataset("option_quotes", [KEY]).to_table()
    backwards = quotes.sort_by([("ticker", "descending")])
    store.write_partition("option_quotes", KEY, backwards.to_batches(), backwards.schema)
    result = _materialize(defs, ["option_trades_classified"])
    [mat] = result.asset_materializations_for_node("option_trades_classified")
    got = store.dataset("option_trades_classified", [KEY]).to_table()
    greeks = store.dataset("option_trades_greeks", [KEY]).to_table()
    assert got.cast(OPTION_TRADES_CLASSIFIED).equals(
        classify_table(greeks, quotes).cast(OPTION_TRADES_CLASSIFIED)
    )
    assert mat.metadata["option_quotes_read"].value == quotes.num_rows
