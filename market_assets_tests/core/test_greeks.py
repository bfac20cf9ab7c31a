# Copyright (c) James Kassemi, SC, US. All rights reserved.
import numpy as np
import pytest
from py_lets_be_rational.exceptions import AboveMaximumException, BelowIntrinsicException
from vollib.black_scholes_merton import black_scholes_merton as vollib_price
from vollib.black_scholes_merton.greeks import analytical
from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv
from vollib.helpers.exceptions import PriceIsAboveMaximum, PriceIsBelowIntrinsic

from market_assets.core.bsm import bsm_price
from market_assets.core.greeks import STATUS_CODES, greeks, implied_volatility
from market_assets.core.schemas import GREEKS_STATUSES

R, Q = 0.04, 0.012
MINUTE = 1.0 / (365 * 24 * 60)
# vollib 1.0.11 raises lets_be_rational's exceptions; older releases raised vollib.helpers'.
BELOW = (BelowIntrinsicException, PriceIsBelowIntrinsic)
ABOVE = (AboveMaximumException, PriceIsAboveMaximum)


def _trades(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Random and edge-case trades: 0DTE minutes before the close, deep ITM/OTM, long-dated,
    tiny prices, prices one cent above intrinsic, some outside the bounds."""
    rng = np.random.default_rng(seed)
    S = 600.0 * np.exp(rng.normal(0, 0.02, n))
    K = np.round(S * np.exp(rng.uniform(-0.5, 0.5, n)))
    kind = rng.integers(0, 4, n)
    t = np.where(
        kind == 0,
        rng.integers(1, 60, n) * MINUTE,  # 0DTE: minutes before the close
        np.where(
            kind == 1, rng.uniform(1, 7, n) / 365, np.exp(rng.uniform(np.log(0.02), np.log(3), n))
        ),
    )
    is_call = rng.random(n) < 0.5
    sigma = rng.uniform(0.05, 2.0, n)
    price = np.round(bsm_price(is_call, S, K, t, R, sigma, Q), 2)
    F = S * np.exp((R - Q) * t)
    intrinsic = np.where(is_call, np.maximum(F - K, 0), np.maximum(K - F, 0)) * np.exp(-R * t)
    edge = rng.integers(0, 6, n)
    price = np.where(edge == 0, 0.01, price)  # tiny prices
    price = np.where(edge == 1, np.ceil(intrinsic * 100) / 100 + 0.01, price)  # a cent above
    price = np.where(edge == 2, np.floor(intrinsic * 100) / 100 - 0.01, price)  # below
    price = np.maximum(price, 0.01)
    return price, S, K, t, is_call


def _vollib(price, S, K, t, is_call):
    out = []
    for p, s, k, tt, c in zip(price, S, K, t, is_call, strict=True):
        try:
            out.append(vollib_iv(p, s, k, tt, R, Q, "c" if c else "p"))
        except BELOW:
            out.append("below_intrinsic")
        except ABOVE:
            out.append("above_max")
    return out


def test_iv_matches_vollib_and_every_ok_trade_reprices():
    price, S, K, t, is_call = _trades(2500, seed=11)
    iv, status = implied_volatility(price, S, K, t, R, Q, is_call)
    ref = _vollib(price, S, K, t, is_call)
    well_posed = 0
    for i, v in enumerate(ref):
        if isinstance(v, str):
            assert GREEKS_STATUSES[status[i]] == v, (i, v, status[i])
            continue
        flag = "c" if is_call[i] else "p"
        assert GREEKS_STATUSES[status[i]] == "ok", (i, v)
        repriced = vollib_price(flag, S[i], K[i], t[i], R, v, Q)
        vega = analytical.vega(flag, S[i], K[i], t[i], R, v, Q) * 100
        if abs(repriced - price[i]) <= 1e-10 * price[i] and vega * 1e-6 > 1e-10 * price[i]:
            well_posed += 1
            assert abs(iv[i] - v) <= 1e-9, (i, iv[i], v)
    assert well_posed > 1200
    ok = status == STATUS_CODES["ok"]
    assert ok.sum() > 1500 and (status == STATUS_CODES["below_intrinsic"]).sum() > 100
    ours = bsm_price(is_call[ok], S[ok], K[ok], t[ok], R, iv[ok], Q)
    np.testing.assert_array_less(np.abs(ours - price[ok]), 1e-9 * price[ok])
    assert np.isnan(iv[~ok]).all()


def test_greeks_match_vollib_analytical():
    price, S, K, t, is_call = _trades(1500, seed=12)
    iv, status = implied_volatility(price, S, K, t, R, Q, is_call)
    ok = np.flatnonzero(status == STATUS_CODES["ok"])
    g = greeks(S[ok], K[ok], t[ok], R, Q, iv[ok], is_call[ok])
    for j, i in enumerate(ok):
        flag = "c" if is_call[i] else "p"
        for name in ("delta", "gamma", "vega", "theta"):
            want = getattr(analytical, name)(flag, S[i], K[i], t[i], R, iv[i], Q)
            assert g[name][j] == pytest.approx(want, rel=1e-9, abs=1e-300), (name, i)


def test_zero_dte_minutes_before_close_and_long_dated():
    S, K = 600.0, np.array([590.0, 598.0, 600.0, 602.0, 610.0])
    for t in (1 * MINUTE, 5 * MINUTE, 2.0):
        for c in (True, False):
            price = np.round(bsm_price(c, S, K, t, R, 0.25, Q), 2) + 0.01
            iv, status = implied_volatility(price, S, K, t, R, Q, c)
            for i in range(K.size):
                v = _vollib([price[i]], [S], [K[i]], [t], [c])[0]
                if isinstance(v, str):
                    assert GREEKS_STATUSES[status[i]] == v
                else:
                    assert status[i] == 0 and abs(iv[i] - v) <= 1e-9
            ok = status == 0
            np.testing.assert_allclose(
                bsm_price(c, S, K[ok], t, R, iv[ok], Q), price[ok], rtol=1e-9
            )


def test_deep_itm_short_dated_a_hair_above_intrinsic_reprices():
    # Time value of a fraction of a cent on a 100-point-ITM option seconds before expiry: the
    # solve runs on the out-of-the-money equivalent, so no cancellation against intrinsic.
    S, K = 600.0, np.array([300.0, 450.0, 500.0, 590.0])
    for secs in (10, 60, 600):
        t = secs / (365 * 24 * 3600)
        F = S * np.exp((R - Q) * t)
        intrinsic = (F - K) * np.exp(-R * t)
        for hair in (1e-9, 1e-6, 1e-3):
            price = intrinsic + hair
            iv, status = implied_volatility(price, S, K, t, R, Q, True)
            assert (status == 0).all()
            assert (iv > 0).all()
            np.testing.assert_allclose(bsm_price(True, S, K, t, R, iv, Q), price, rtol=1e-12)
            # The time value itself reprices: the put with the same strike (parity).
            put = bsm_price(False, S, K, t, R, iv, Q)
            np.testing.assert_allclose(put, hair, rtol=1e-6, atol=1e-11)
            ref = _vollib(price, [S] * 4, K, [t] * 4, [True] * 4)
            for i, v in enumerate(ref):
                assert not isinstance(v, str)
                if v > 0:
                    assert abs(v - iv[i]) <= 1e-9 * max(1.0, v)


def test_bound_statuses_and_equality_rules():
    S, K, t = 600.0, 550.0, 0.1
    F = S * np.exp((R - Q) * t)
    df = np.exp(-R * t)
    intrinsic = (F - K) * df
    cases = [
        (intrinsic - 0.01, True, "below_intrinsic"),
        (S, True, "above_max"),  # undiscounted price >= forward
        (K * df * 1.01, False, "above_max"),  # undiscounted price >= strike
        (0.0, True, "bad_input"),
        (-1.0, False, "bad_input"),
    ]
    for price, c, want in cases:
        iv, status = implied_volatility(price, S, K, t, R, Q, c)
        assert GREEKS_STATUSES[int(status)] == want and np.isnan(iv)
        if want != "bad_input":
            assert _vollib([price], [S], [K], [t], [c])[0] == want
    # Exactly at intrinsic on the forward (zero time value): vollib returns 0.0 there; no
    # positive volatility exists, so we say below_intrinsic.
    S2, K2 = 600.0, 500.0  # with r = q = 0 the forward is S and the discount is 1
    iv, status = implied_volatility(100.0, S2, K2, 0.5, 0.0, 0.0, True)
    assert GREEKS_STATUSES[int(status)] == "below_intrinsic" and np.isnan(iv)
    assert vollib_iv(100.0, S2, K2, 0.5, 0.0, 0.0, "c") == 0.0
    iv, status = implied_volatility(100.0 + 1e-9, S2, K2, 0.5, 0.0, 0.0, True)
    assert GREEKS_STATUSES[int(status)] == "ok" and iv > 0


def test_bad_input_and_expired():
    price = np.array([1.0, 1.0, 1.0, 1.0, np.nan, 1.0, 10.0])
    S = np.array([600.0, -1.0, 600.0, 600.0, 600.0, np.nan, 600.0])
    K = np.array([600.0, 600.0, 0.0, 600.0, 600.0, 600.0, 600.0])
    t = np.array([0.0, 0.1, 0.1, -0.001, 0.1, 0.1, 0.1])
    iv, status = implied_volatility(price, S, K, t, R, Q, True)
    names = [GREEKS_STATUSES[s] for s in status]
    assert names == ["expired", "bad_input", "bad_input", "expired", "bad_input", "bad_input", "ok"]
    assert np.isnan(iv[:6]).all() and iv[6] > 0


def test_empty_and_scalar_inputs():
    iv, status = implied_volatility(
        np.array([]), np.array([]), np.array([]), np.array([]), R, Q, True
    )
    assert iv.size == 0 and status.size == 0
    iv, status = implied_volatility(5.0, 600.0, 600.0, 0.1, R, Q, True)
    assert iv.shape == () and int(status) == 0
    g = greeks(600.0, 600.0, 0.1, R, Q, np.nan, True)
    assert all(np.isnan(v) for v in g.values())
