# Copyright (c) James Kassemi, SC, US. All rights reserved.
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from market_assets.core.bsm import bsm_price
from market_assets.core.calendar import expiry_ns
from market_assets.core.enrich import GreeksParams, enrich_option_trades, status_counts
from market_assets.core.greeks import greeks
from market_assets.core.schemas import OPTION_TRADES, OPTION_TRADES_GREEKS, STOCK_TRADES
from market_assets.io.condition_rules import load_condition_rules

RULES = load_condition_rules()
DAY = dt.date(2025, 6, 2)
CLOSE = expiry_ns(DAY)
SEC = 1_000_000_000
PARAMS = GreeksParams(0.04, 0.012, 100.0, 0.01, 5.0)


def stock(ts, prices, tickers=None) -> pa.Table:
    n = len(ts)
    ts_type = STOCK_TRADES.field("sip_timestamp").type
    return pa.Table.from_pydict(
        {
            "ticker": pa.array(tickers or ["SPY"] * n, pa.string()),
            "sip_timestamp": pa.array(ts, pa.int64()).cast(ts_type),
            "participant_timestamp": pa.nulls(n, ts_type),
            "price": pa.array(prices, pa.float64()),
            "size": pa.array([100.0] * n),
            "exchange": pa.array([4] * n, pa.int32()),
            "conditions": pa.array([[]] * n, pa.list_(pa.int32())),
            "correction": pa.array([0] * n, pa.int32()),
            "sequence_number": pa.array(list(range(n)), pa.int64()),
            "id": pa.array([str(i) for i in range(n)]),
            "tape": pa.array([1] * n, pa.int32()),
            "trf_id": pa.nulls(n, pa.int32()),
            "trf_timestamp": pa.nulls(n, ts_type),
        },
        schema=STOCK_TRADES,
    )


def options(rows) -> pa.Table:
    """rows: (underlying, expiration, type, strike, ts, price, size)."""
    ts_type = OPTION_TRADES.field("sip_timestamp").type
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 7
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "ticker": pa.array(["O:X"] * n, pa.string()),
            "underlying": pa.array(cols[0], pa.string()),
            "expiration": pa.array(cols[1], pa.date32()),
            "contract_type": pa.array(cols[2], pa.string()),
            "strike": pa.array(cols[3], pa.float64()),
            "sip_timestamp": pa.array(cols[4], pa.int64()).cast(ts_type),
            "participant_timestamp": pa.nulls(n, ts_type),
            "price": pa.array(cols[5], pa.float64()),
            "size": pa.array(cols[6], pa.float64()),
            "exchange": pa.array([300] * n, pa.int32()),
            "conditions": pa.array([[209]] * n, pa.list_(pa.int32())),
            "correction": pa.array([0] * n, pa.int32()),
        },
        schema=OPTION_TRADES,
    )


def test_enrich_values_statuses_and_schema(tmp_path):
    ts0 = CLOSE - 3600 * SEC  # 15:00 New York
    stk = stock([ts0 - SEC, ts0 + 7200 * SEC - SEC], [600.0, 601.0])
    t = 3600 / (365 * 86400)
    good_call = float(np.round(bsm_price(True, 600.0, 602.0, t, 0.04, 0.2, 0.012), 2))
    later = DAY + dt.timedelta(days=30)
    rows = [
        ("SPY", DAY, "call", 602.0, ts0, good_call, 3.0),  # ok
        ("SPY", DAY, "put", 620.0, ts0, 1.0, 1.0),  # below intrinsic
        ("SPY", DAY, "call", 590.0, ts0, 700.0, 1.0),  # above max
        ("SPY", DAY, "call", 600.0, ts0, 0.0, 1.0),  # bad input
        ("SPY", DAY, "call", 600.0, ts0 - 3600 * SEC, 1.0, 1.0),  # no underlying (before)
        ("SPY", DAY, "call", 600.0, ts0 + 20 * SEC, 1.0, 1.0),  # no underlying (stale)
        ("SPY", DAY, "call", 600.0, ts0 + 7200 * SEC, 1.0, 1.0),  # expired 0DTE after 16:00
        ("QQQ", later, "put", 500.0, ts0, 2.0, 1.0),  # no underlying (other symbol)
    ]
    out = enrich_option_trades(options(rows), stk, PARAMS, RULES)
    assert out.schema == OPTION_TRADES_GREEKS
    d = out.to_pydict()
    assert d["greeks_status"] == [
        "ok", "below_intrinsic", "above_max", "bad_input",
        "no_underlying", "no_underlying", "expired", "no_underlying",
    ]  # fmt: skip
    assert d["underlying_price"][:4] == [600.0] * 4 and d["underlying_price"][4] is None
    assert d["underlying_price"][6] == 601.0
    assert d["underlying_price_time"][0].value == ts0 - SEC
    assert abs(d["time_to_expiry"][0] - t) < 1e-15 and d["time_to_expiry"][6] < 0
    assert d["rate"] == [0.04] * 8 and d["dividend_yield"] == [0.012] * 8
    g = greeks(600.0, 602.0, t, 0.04, 0.012, d["iv"][0], True)
    assert d["delta"][0] == g["delta"] and d["gamma"][0] == g["gamma"]
    assert d["vega"][0] == g["vega"] and d["theta"][0] == g["theta"]
    assert abs(bsm_price(True, 600.0, 602.0, t, 0.04, d["iv"][0], 0.012) - good_call) < 1e-9
    assert d["dollar_value"][0] == good_call * 3.0 * 100
    assert d["dadvv"][0] == abs(g["delta"]) * 600.0 * 3.0 * 100
    assert d["gadvv"][0] == abs(g["gamma"]) * 600.0**2 * 3.0 * 100 * 0.01
    assert d["intrinsic_value"][:2] == [0.0, 20.0] and d["intrinsic_value"][2] == 10.0
    assert d["intrinsic_value"][4] is None and d["intrinsic_value"][6] == 1.0
    for col in ("iv", "delta", "gamma", "vega", "theta", "dadvv", "gadvv"):
        assert all(v is None for v in d[col][1:]), col
    assert d["dollar_value"][1] == 100.0
    counts = status_counts(out)
    assert counts == {"ok": 1, "no_underlying": 3, "expired": 1, "below_intrinsic": 1,
                      "above_max": 1, "bad_input": 1}  # fmt: skip
    pq.write_table(out, tmp_path / "g.parquet")
    assert pq.read_table(tmp_path / "g.parquet").schema == OPTION_TRADES_GREEKS


def test_gadvv_scale_multiplies_gadvv_only():
    ts0 = CLOSE - 86400 * SEC
    stk = stock([ts0], [600.0])
    rows = [("SPY", DAY + dt.timedelta(days=7), "put", 590.0, ts0, 2.5, 4.0)]
    a = enrich_option_trades(options(rows), stk, GreeksParams(0.04, 0.012, 100.0, 1.0, 5.0), RULES)
    b = enrich_option_trades(options(rows), stk, GreeksParams(0.04, 0.012, 100.0, 0.01, 5.0), RULES)
    assert a["greeks_status"][0].as_py() == "ok"
    assert (
        abs(b["gadvv"][0].as_py() - 0.01 * a["gadvv"][0].as_py()) <= 1e-12 * a["gadvv"][0].as_py()
    )
    assert a["dadvv"][0].as_py() == b["dadvv"][0].as_py()


def test_empty_table_and_single_row():
    out = enrich_option_trades(options([]), stock([], []), PARAMS, RULES)
    assert out.schema == OPTION_TRADES_GREEKS and out.num_rows == 0
    assert status_counts(out) == dict.fromkeys(status_counts(out), 0)
    one = options([("SPY", DAY, "call", 600.0, CLOSE - 60 * SEC, 0.5, 1.0)])
    out = enrich_option_trades(one, stock([CLOSE - 61 * SEC], [600.0]), PARAMS, RULES)
    assert out.schema == OPTION_TRADES_GREEKS and out.num_rows == 1
    assert out["greeks_status"][0].as_py() == "ok"


def test_seven_column_option_trades_get_null_participant_timestamp():
    one = options([("SPY", DAY, "call", 600.0, CLOSE - 60 * SEC, 0.5, 1.0)])
    one = one.drop_columns(["participant_timestamp"])
    out = enrich_option_trades(one, stock([CLOSE - 61 * SEC], [600.0]), PARAMS, RULES)
    assert out.schema == OPTION_TRADES_GREEKS and out["participant_timestamp"].null_count == 1
