# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Black-Scholes-Merton European prices, vectorized over numpy arrays (vollib's conventions)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def bsm_price(
    is_call: np.ndarray | bool,
    S: np.ndarray | float,
    K: np.ndarray | float,
    t: np.ndarray | float,
    r: np.ndarray | float,
    sigma: np.ndarray | float,
    q: np.ndarray | float,
) -> np.ndarray:
    """BSM price with continuous dividend yield q; argument order follows vollib
    (flag, S, K, t, r, sigma, q). ``t`` in years, ``sigma`` annualized."""
    S, K, t, r, sigma, q = (np.asarray(a, dtype=np.float64) for a in (S, K, t, r, sigma, q))
    sqrt_t = np.sqrt(t)
    vol = sigma * sqrt_t
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * t) / vol
    d2 = d1 - vol
    fwd_df = S * np.exp(-q * t)
    k_df = K * np.exp(-r * t)
    call = fwd_df * ndtr(d1) - k_df * ndtr(d2)
    put = k_df * ndtr(-d2) - fwd_df * ndtr(-d1)
    return np.where(np.asarray(is_call, dtype=bool), call, put)
