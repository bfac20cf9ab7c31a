# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The whole graph on a generated day, as `make demo` runs it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pyarrow.compute as pc
import pytest

from market_assets.core.bsm import bsm_price
from market_assets.core.feature_names import FEATURE_NAMES, IDENTITY_COLUMNS
from market_assets.core.prelim_final import QUALITY_NAMES
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.settings import load_settings

DAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    from market_assets_tests.config_files import write_config

    tmp = tmp_path_factory.mktemp("pipeline")
    generate_day(DAY, tmp / "massive", scale="tiny", seed=11)
    config = write_config(
        tmp / "config.toml",
        massive={"local_root": str(tmp / "massive")},
        storage={"root": str(tmp / "warehouse")},
        features={"windows": ["1m", "5m", "15m", "30m"]},
    )
    settings = load_settings(config)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("daily_features_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, partition_key=DAY.isoformat())
        assert result.success
        mats = {
            e.event_specific_data.materialization.asset_key.to_user_string(): {
                k: v.value for k, v in e.event_specific_data.materialization.metadata.items()
            }
            for e in result.all_node_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        }
    return settings, ParquetStore(settings.storage.root), mats


def test_every_asset_is_materialized(materialized):
    _, _, mats = materialized
    assert set(mats) == {
        "stock_trades",
        "option_trades",
        "stock_quotes",
        "option_quotes",
        "option_trades_greeks",
        "features_1m",
        "features_5m",
        "features_15m",
        "features_30m",
    }
    for md in mats.values():
        assert md["rows"] > 0 and md["files"] >= 1 and md["bytes"] > 0


def test_greeks_metadata_shows_status_shares(materialized):
    _, store, mats = materialized
    md = mats["option_trades_greeks"]
    shares = {k: v for k, v in md.items() if k.startswith("share_")}
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert md["share_ok"] > 0.9  # generated trades are priced from BSM


def test_greeks_stream_the_underlying_rows_in_order(materialized):
    # The stored stock trades are in (ticker, time) order, so they are merged in as they
    # stream (a tiny day is one batch: test_greeks_asset shows the bound on many).
    _, _, mats = materialized
    md = mats["option_trades_greeks"]
    assert md["underlying_in_time_order"] is True
    assert 0 < md["underlying_rows_peak_held"] <= md["underlying_trades_read"]


def test_ok_trades_reprice_at_their_iv(materialized):
    _, store, _ = materialized
    g = store.dataset("option_trades_greeks", [DAY.isoformat()]).to_table()
    ok = g.filter(pc.equal(g.column("greeks_status"), "ok"))
    col = lambda n: ok.column(n).to_numpy()  # noqa: E731
    is_call = pc.equal(ok.column("contract_type"), "call").to_numpy(zero_copy_only=False)
    model = bsm_price(
        is_call,
        col("underlying_price"),
        col("strike"),
        col("time_to_expiry"),
        col("rate"),
        col("iv"),
        col("dividend_yield"),
    )
    np.testing.assert_allclose(model, col("price"), rtol=1e-9)
    assert (col("iv") > 0).all() and np.isfinite(col("delta")).all()
    dadvv = np.abs(col("delta")) * col("underlying_price") * col("size") * 100
    np.testing.assert_allclose(col("dadvv"), dadvv, rtol=1e-12)


def test_features_have_one_row_per_window_and_the_exact_columns(materialized):
    settings, store, _ = materialized
    for window, rows in [("1m", 390), ("5m", 78), ("15m", 26), ("30m", 13)]:
        t = store.dataset(f"features/symbol=SPY/window={window}", [DAY.isoformat()]).to_table()
        assert t.column_names == [*IDENTITY_COLUMNS, *FEATURE_NAMES, *QUALITY_NAMES]
        # Final rows: the same schema as live's prelim ones (core.prelim_final).
        assert set(t["quality"].to_pylist()) == {"final"}
        assert set(t["late_dropped"].to_pylist()) == set(t["gaps"].to_pylist()) == {0}
        assert t.num_rows == rows
        assert pc.all(pc.equal(t.column("symbol"), "SPY")).as_py()
        assert pc.sum(t.column("underlying_trades")).as_py() > 0


def test_window_totals_add_up_across_sizes(materialized):
    """The same trades land in 1m and 30m windows: totals must agree to rounding."""
    _, store, _ = materialized
    one = store.dataset("features/symbol=SPY/window=1m", [DAY.isoformat()]).to_table()
    thirty = store.dataset("features/symbol=SPY/window=30m", [DAY.isoformat()]).to_table()
    for c in ("underlying_trades", "call_trades", "put_trades"):
        assert pc.sum(one.column(c)).as_py() == pc.sum(thirty.column(c)).as_py()
    for c in (
        "calls_dadvv_total",
        "puts_gadvv_total",
        "underlying_dollar_value_total",
        "calls_dollar_value",
    ):
        a, b = pc.sum(one.column(c)).as_py(), pc.sum(thirty.column(c)).as_py()
        assert a == pytest.approx(b, rel=1e-12)
