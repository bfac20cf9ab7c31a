# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Greeks priced with the Treasury curve: each trade's rate at its own time to expiry."""

import dataclasses
import datetime as dt

import numpy as np
import pyarrow.compute as pc

from market_assets.core.bsm import bsm_price
from market_assets.core.enrich import enrich_option_trades
from market_assets.core.rates import TENORS, TreasuryCurve
from market_assets_tests.core.test_enrich import CLOSE, DAY, PARAMS, RULES, SEC, options, stock

CURVE = TreasuryCurve(DAY, DAY, {k: 3.0 + 0.2 * i for i, k in enumerate(TENORS)})


def _trades():
    ts0 = CLOSE - 3600 * SEC
    stk = stock([ts0 - SEC], [600.0])
    rows = []
    for days in (0, 10, 45, 200, 400, 800):
        exp = DAY + dt.timedelta(days=days)
        t = (3600 + days * 86400) / (365 * 86400)
        r = float(CURVE.rates(t))
        price = float(np.round(bsm_price(True, 600.0, 600.0, t, r, 0.2, 0.012), 2))
        rows.append(("SPY", exp, "call", 600.0, ts0, price, 1.0))
    rows.append(("SPY", None, "call", 600.0, ts0, 1.0, 1.0))  # no expiration: no t, no rate
    return options(rows), stk


def test_each_trade_gets_the_curve_rate_at_its_time_to_expiry():
    opts, stk = _trades()
    out = enrich_option_trades(opts, stk, dataclasses.replace(PARAMS, rate=CURVE), RULES)
    t = out.column("time_to_expiry").to_numpy(zero_copy_only=False)
    rate = out.column("rate").to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(rate[:-1], CURVE.rates(t[:-1]))
    assert rate[0] == rate[1] == CURVE.rates(0.0)  # flat below 1M (0 and 10 days)
    assert len(set(rate[1:-1].tolist())) == 5  # beyond that, a rate per expiry
    assert out.column("rate")[6].as_py() is None
    assert out.column("greeks_status").to_pylist() == ["ok"] * 6 + ["bad_input"]


def test_ivs_reprice_the_trades_at_their_own_rate():
    opts, stk = _trades()
    out = enrich_option_trades(opts, stk, dataclasses.replace(PARAMS, rate=CURVE), RULES)
    ok = out.filter(pc.equal(out.column("greeks_status"), "ok"))
    col = lambda n: ok.column(n).to_numpy()  # noqa: E731
    model = bsm_price(
        True, col("underlying_price"), col("strike"), col("time_to_expiry"), col("rate"),
        col("iv"), col("dividend_yield"),
    )  # fmt: skip
    np.testing.assert_allclose(model, col("price"), rtol=1e-9)


def test_a_constant_rate_is_unchanged():
    opts, stk = _trades()
    out = enrich_option_trades(opts, stk, PARAMS, RULES)
    assert out.column("rate").to_pylist() == [PARAMS.rate] * 7
