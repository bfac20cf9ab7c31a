# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""greeks.risk_free_rate = "curve": treasury_yields -> option_trades_greeks on a generated day,
the curve served by a local stand-in for Massive's REST API."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pyarrow.compute as pc
import pytest

from market_assets.core.rates import TENORS, TREASURY_YIELDS, TreasuryCurve
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.treasury import API_KEY_ENV
from market_assets.settings import load_settings
from market_assets_tests.config_files import write_config
from market_assets_tests.treasury_server import curve_row, treasury_server

DAY = dt.date(2026, 11, 20)  # a Friday
GREEKS_DAY = ["stock_trades", "option_trades", "treasury_yields", "option_trades_greeks"]


def _defs(tmp, base_url: str, rate: float | str = "curve") -> dg.Definitions:
    config = write_config(
        tmp / "config.toml",
        massive={"local_root": str(tmp / "massive")},
        storage={"root": str(tmp / "warehouse")},
        greeks={"risk_free_rate": rate},
        rates={"rest_base_url": base_url, "lookback_days": 5},
    )
    return build_definitions(load_settings(config))


def _materialize(defs: dg.Definitions, selection: list[str], day: dt.date = DAY):
    return dg.materialize(
        assets=list(defs.assets or []),
        resources=defs.resources,
        selection=selection,
        partition_key=day.isoformat(),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def curve_day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rates_pipeline")
    generate_day(DAY, tmp / "massive", scale="tiny", seed=11)
    rows = [curve_row("2026-11-19", 3.9, 0.08), curve_row("2026-11-20", 3.7, 0.1)]
    with pytest.MonkeyPatch.context() as mp, treasury_server(rows, page_size=1) as srv:
        mp.setenv(API_KEY_ENV, "test-key")
        defs = _defs(tmp, srv.base_url)
        result = _materialize(defs, GREEKS_DAY)
    assert result.success
    store = ParquetStore(str(tmp / "warehouse"))
    return store, result


def test_the_days_curve_is_stored_as_one_row(curve_day):
    store, result = curve_day
    t = store.dataset("treasury_yields", [DAY.isoformat()]).to_table()
    assert t.num_rows == 1 and t.schema.names == TREASURY_YIELDS.names
    row = t.to_pylist()[0]
    assert (row["date"], row["curve_date"], row["carried_forward"]) == (DAY, DAY, False)
    assert row["yield_1_month"] == 3.7 and row["yield_30_year"] == pytest.approx(4.7)
    md = result.asset_materializations_for_node("treasury_yields")[0].metadata
    assert md["curve_date"].value == "2026-11-20" and md["carried_forward"].value is False


def test_each_trade_is_priced_at_the_curve_rate_of_its_expiry(curve_day):
    store, _ = curve_day
    curve = TreasuryCurve(DAY, DAY, {k: 3.7 + 0.1 * i for i, k in enumerate(TENORS)})
    g = store.dataset("option_trades_greeks", [DAY.isoformat()]).to_table()
    g = g.filter(pc.is_valid(g.column("time_to_expiry")))
    t = g.column("time_to_expiry").to_numpy()
    rate = g.column("rate").to_numpy()
    np.testing.assert_allclose(rate, curve.rates(t), rtol=1e-15)
    by_expiry = g.group_by("expiration").aggregate([("rate", "min"), ("time_to_expiry", "min")])
    by_expiry = by_expiry.sort_by("expiration")
    r, t_min = (by_expiry.column(c).to_numpy() for c in ("rate_min", "time_to_expiry_min"))
    # Within a month of expiry the 1M rate (flat); beyond it the rate rises with the
    # expiry along this upward-sloping curve (the generated day has a January monthly and
    # a LEAP there).
    assert by_expiry.num_rows >= 5
    np.testing.assert_array_equal(r[t_min < 1 / 12], curve.rates(0.0))
    beyond = r[t_min >= 1 / 12]
    assert len(beyond) >= 2 and (np.diff(beyond) > 0).all() and beyond[0] > curve.rates(0.0)
    ok = pc.equal(g.column("greeks_status"), "ok")
    assert pc.mean(ok.cast("int8")).as_py() > 0.5


def test_greeks_depend_on_treasury_yields_only_with_the_curve(tmp_path):
    curve_defs = _defs(tmp_path, "http://127.0.0.1:9")
    graph = curve_defs.resolve_asset_graph()
    greeks = dg.AssetKey("option_trades_greeks")
    assert dg.AssetKey("treasury_yields") in graph.get(greeks).parent_keys
    const_defs = _defs(tmp_path, "http://127.0.0.1:9", rate=0.04)
    const_graph = const_defs.resolve_asset_graph()
    assert dg.AssetKey("treasury_yields") not in const_graph.get_all_asset_keys()
    assert dg.AssetKey("treasury_yields") not in const_graph.get(greeks).parent_keys


def test_a_holiday_carries_the_last_curve_forward(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "test-key")
    # Veterans Day 2026-11-11: stocks trade, the bond market is closed (no curve that day).
    day = dt.date(2026, 11, 11)
    with treasury_server([curve_row("2026-11-10", 3.8)]) as srv:
        result = _materialize(_defs(tmp_path, srv.base_url), ["treasury_yields"], day)
    assert result.success
    t = ParquetStore(str(tmp_path / "warehouse")).dataset("treasury_yields", [day.isoformat()])
    row = t.to_table().to_pylist()[0]
    assert (row["date"], row["curve_date"], row["carried_forward"]) == (
        day,
        dt.date(2026, 11, 10),
        True,
    )


def test_a_missing_curve_fails_the_partition_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "test-key")
    with treasury_server([curve_row("2026-11-01", 3.8)]) as srv:
        result = _materialize(_defs(tmp_path, srv.base_url), ["treasury_yields"])
    assert not result.success
    failure = result.failure_data_for_node("treasury_yields")
    assert failure is not None
    msg = failure.error.message if failure.error else ""
    assert "no Treasury curve published for 2026-11-20" in msg
    assert "/fed/v1/treasury-yields?date.gte=2026-11-15&date.lte=2026-11-20" in msg
    assert not (tmp_path / "warehouse" / "treasury_yields").exists()
