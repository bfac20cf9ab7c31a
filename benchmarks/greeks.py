# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Implied volatility + greeks: our vectorized solver vs vollib per trade, in one run.

1,000,000 realistic SPY trades (spot ~600, strikes +-15%, expiries 0DTE..2y, BSM prices with
a smile, rounded to the cent); vollib runs per trade on a 20,000-trade subsample.
"""

from __future__ import annotations

import numpy as np
from vollib.black_scholes_merton import black_scholes_merton as vollib_price
from vollib.black_scholes_merton.greeks import analytical
from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv

from market_assets.core.bsm import bsm_price
from market_assets.core.greeks import greeks, implied_volatility
from market_assets.devtools import bench

R, Q = 0.04, 0.012
N, SUB = 1_000_000, 20_000


def generate(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    S = 600.0 * np.exp(rng.normal(0, 0.003, n))
    K = np.round(600.0 * np.exp(rng.uniform(-0.15, 0.15, n)))
    minutes_left = rng.uniform(1, 390, n) / (365 * 24 * 60)  # 0DTE
    days = rng.choice([1, 2, 3, 7, 14, 30, 60, 90, 180, 365, 730], n) / 365
    t = np.where(rng.random(n) < 0.4, minutes_left, days)
    m = np.log(K / S) / np.sqrt(np.maximum(t, 1 / 365))
    sigma = 0.14 + 0.35 * m * m - 0.08 * m  # smile with skew
    is_call = rng.random(n) < 0.5
    price = np.maximum(np.round(bsm_price(is_call, S, K, t, R, sigma, Q), 2), 0.01)
    return price, S, K, t, is_call


def main() -> None:
    price, S, K, t, is_call = generate(N)
    with bench.Stopwatch() as ours:
        iv, status = implied_volatility(price, S, K, t, R, Q, is_call)
        ok = status == 0
        g = greeks(S[ok], K[ok], t[ok], R, Q, iv[ok], is_call[ok])
    ours_s = ours.seconds
    ours_rate = N / ours_s

    sub = np.random.default_rng(1).choice(N, SUB, replace=False)
    ref = np.full(SUB, np.nan)
    with bench.Stopwatch() as vollib:
        for j, i in enumerate(sub):
            flag = "c" if is_call[i] else "p"
            try:
                v = vollib_iv(price[i], S[i], K[i], t[i], R, Q, flag)
            except Exception:  # BelowIntrinsic / AboveMaximum
                continue
            ref[j] = v
            for fn in (analytical.delta, analytical.gamma, analytical.vega, analytical.theta):
                fn(flag, S[i], K[i], t[i], R, v, Q)
    vollib_s = vollib.seconds
    vollib_rate = SUB / vollib_s

    max_diff, well_posed = 0.0, 0
    for j, i in enumerate(sub):
        v = ref[j]
        if np.isnan(v):
            continue
        flag = "c" if is_call[i] else "p"
        repriced = vollib_price(flag, S[i], K[i], t[i], R, v, Q)
        vega = analytical.vega(flag, S[i], K[i], t[i], R, v, Q) * 100
        if abs(repriced - price[i]) <= 1e-10 * price[i] and vega * 1e-6 > 1e-10 * price[i]:
            well_posed += 1
            max_diff = max(max_diff, abs(iv[i] - v))
    reprice = np.abs(bsm_price(is_call[ok], S[ok], K[ok], t[ok], R, iv[ok], Q) - price[ok])
    print(bench.machine())
    print(f"trades: {N:,}  ok: {ok.sum():,}  statuses: {np.bincount(status, minlength=6).tolist()}")
    print(f"ours:   {ours_s:.3f} s  -> {ours_rate:,.0f} trades/s (IV + greeks)")
    print(f"vollib: {vollib_s:.3f} s for {SUB:,} -> {vollib_rate:,.0f} trades/s (IV + greeks)")
    print(f"speed ratio (ours / vollib): {ours_rate / vollib_rate:.1f}x")
    print(f"max |IV - vollib IV| on {well_posed:,} well-posed trades: {max_diff:.3e}")
    print(f"max relative repricing error of ok trades: {(reprice / price[ok]).max():.3e}")
    print(bench.format_checks({"at least 40x vollib": ours_rate >= 40 * vollib_rate}))
    del g


if __name__ == "__main__":
    main()
