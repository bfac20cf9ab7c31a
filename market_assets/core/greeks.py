# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Vectorized Black-Scholes-Merton implied volatility and analytical greeks (vollib conventions).

Implied volatility follows vollib (``vollib.black_scholes_merton.implied_volatility``): the
trade is mapped to Black on the forward, ``F = S e^{(r-q)t}``, undiscounted price
``P = price e^{rt}``, and solved in Jaeckel's normalised form ``b(x, s)`` with
``x = ln(F/K)`` and total volatility ``s = sigma sqrt(t)``. Statuses, decided in this order:

- ``bad_input``: price, S or K not a finite positive number, or t, r or q not finite;
- ``expired``: ``t <= 0``;
- ``below_intrinsic``: ``P <= intrinsic of the forward`` (call ``max(F-K, 0)``, put
  ``max(K-F, 0)``). vollib raises BelowIntrinsic only for ``P < intrinsic`` and returns 0.0
  at exact equality; a zero time value has no positive volatility and no usable greeks, so
  the equality case is ``below_intrinsic`` here;
- ``above_max``: ``P >= F`` (call) or ``P >= K`` (put), exactly vollib's AboveMaximum;
- ``ok`` otherwise.

The bound tests use the same floating-point expressions as vollib so statuses agree with its
exceptions bit for bit. The solver works on the out-of-the-money equivalent (the time value
``P - intrinsic``, put-call parity on the forward), so deep in-the-money trades do not lose
their time value to cancellation: it solves ``b(-|x|, s) = (P - intrinsic) / sqrt(F K)``.
Initial guesses follow the four segments of Jaeckel's "Let's Be Rational" (split at the
inflection point ``s_c = sqrt(2|x|)`` and its tangent points), refined by safeguarded
third-order Householder steps on Jaeckel's per-segment objectives, bisecting whenever a step
leaves the bracket, until the step is below 1e-15 relative.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import erfcx, ndtr, ndtri

from market_assets.core.schemas import GREEKS_STATUSES

STATUS_CODES = {name: i for i, name in enumerate(GREEKS_STATUSES)}
OK = STATUS_CODES["ok"]
EXPIRED = STATUS_CODES["expired"]
BELOW_INTRINSIC = STATUS_CODES["below_intrinsic"]
ABOVE_MAX = STATUS_CODES["above_max"]
BAD_INPUT = STATUS_CODES["bad_input"]

_ONE_OVER_SQRT_TWO_PI = 0.3989422804014326779399460599343818684758586311649
_ONE_OVER_SQRT_TWO = 0.7071067811865475244008443621048490392848359376887
_HALF_SQRT_TWO_PI = 1.253314137315500251207882642405522626503493370305
_TWO_PI_OVER_SQRT_27 = 1.209199576156145233729385505094770488189377498728
_SQRT_THREE = 1.732050807568877293527446341505872366942805253810
_SQRT_TWO_PI = 2.506628274631000502415765284811045253006986740610
_SMALL_T = 2.0 * np.finfo(np.float64).eps ** (1.0 / 16.0)  # Jaeckel's tau, about 0.21
_STEP_TOL = 1e-15
_FINAL_STEP = 1e-6
_NOISE_TOL = 1e-11  # steps below this that stop contracting are round-off noise
_MAX_ITER = 60
_CHUNK = 1 << 16


# --- the normalised Black function for x <= 0 (the out-of-the-money side) ------------------


def _small_t_expansion(h: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b and b' for small t = s/2 and -10 <= h <= 0, by the series of Y(h+t) - Y(h-t) in t.

    The series is Peter Jaeckel's ("Let's Be Rational", 2013-2014; "Permission to use, copy,
    modify, and distribute this software is freely granted, provided that this notice is
    preserved."), accurate to machine precision for t < 0.21; here it is multiplied through
    by phi(h) so that ``a = 1 + h Phi(h)/phi(h)`` becomes ``A = phi(h) + h Phi(h)``.
    """
    h2 = h * h
    p = _ONE_OVER_SQRT_TWO_PI * np.exp(-0.5 * h2)
    A = p + h * ndtr(h)
    w = t * t
    e6 = (
        -89055 * p
        + 135135 * A
        + h2
        * (
            -82845 * p
            + 270270 * A
            + h2
            * (
                -20370 * p
                + 135135 * A
                + h2
                * (-1926 * p + 25740 * A + h2 * (-75 * p + 2145 * A + h2 * (-p + 78 * A + A * h2)))
            )
        )
    ) / 6227020800.0
    e5 = (
        -6555 * p
        + 10395 * A
        + h2
        * (
            -4680 * p
            + 17325 * A
            + h2 * (-840 * p + 6930 * A + h2 * (-52 * p + 990 * A + h2 * (-p + 55 * A + A * h2)))
        )
    ) / 39916800.0
    e4 = (
        -561 * p
        + 945 * A
        + h2 * (-285 * p + 1260 * A + h2 * (-33 * p + 378 * A + h2 * (-p + 36 * A + A * h2)))
    ) / 362880.0
    e3 = (-57 * p + 105 * A + h2 * (-18 * p + 105 * A + h2 * (-p + 21 * A + A * h2))) / 5040.0
    e2 = (-7 * p + 15 * A + h2 * (-p + 10 * A + A * h2)) / 120.0
    e1 = (-p + 3 * A + A * h2) / 6.0
    series = 2 * t * (A + w * (e1 + w * (e2 + w * (e3 + w * (e4 + w * (e5 + w * e6))))))
    ew = np.exp(-0.5 * w)
    return series * ew, p * ew  # fmt: skip


def black_and_vega(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jaeckel's normalised Black call ``b(x, s)`` and ``db/ds`` for ``x <= 0``, ``s >= 0``.

    ``b = Phi(x/s + s/2) e^{x/2} - Phi(x/s - s/2) e^{-x/2}``, evaluated without the
    cancellation of the direct formula: a series for small s, the scaled complementary error
    function (one exponential) in the body, the direct formula only where it is dominated by
    its first term.
    """
    x, s = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(s, dtype=np.float64))
    b = np.zeros(x.shape)
    bp = np.where(x == 0, _ONE_OVER_SQRT_TWO_PI, 0.0)
    pos = s > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        h = np.where(pos, x / np.where(pos, s, 1.0), -np.inf)
        t = 0.5 * s
        small = pos & (t < _SMALL_T) & (h >= -10.0)
        rest = pos & ~small
        direct = rest & (h + t > 0.85)
        body = rest & ~direct
        if small.any():
            i = np.flatnonzero(small)
            b[i], bp[i] = _small_t_expansion(h[i], t[i])
        if rest.any():
            i = np.flatnonzero(rest)
            hr, tr = h[i], t[i]
            bp[i] = _ONE_OVER_SQRT_TWO_PI * np.exp(-0.5 * (hr * hr + tr * tr))
        if direct.any():
            i = np.flatnonzero(direct)
            hd, td = h[i], t[i]
            bm = np.exp(0.5 * x[i])
            b[i] = ndtr(hd + td) * bm - ndtr(hd - td) / bm
        if body.any():
            i = np.flatnonzero(body)
            hb, tb = h[i], t[i]
            b[i] = (
                (0.5 * _SQRT_TWO_PI)
                * bp[i]
                * (erfcx(-_ONE_OVER_SQRT_TWO * (hb + tb)) - erfcx(-_ONE_OVER_SQRT_TWO * (hb - tb)))
            )
    return np.maximum(b, 0.0), bp


# --- the normalised solver ----------------------------------------------------------------


def _hermite(beta, b0, b1, s0, s1, v0, v1):
    """Cubic Hermite interpolation of s(b) between two points with slopes 1/v, clipped."""
    d = b1 - b0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip((beta - b0) / d, 0.0, 1.0)
        u2 = u * u
        u3 = u2 * u
        s = (
            (2 * u3 - 3 * u2 + 1) * s0
            + (u3 - 2 * u2 + u) * d / v0
            + (-2 * u3 + 3 * u2) * s1
            + (u3 - u2) * d / v1
        )
    lo, hi = np.minimum(s0, s1), np.maximum(s0, s1)
    bad = ~np.isfinite(s) | (s <= lo) | (s >= hi)
    return np.where(bad, lo + u * (hi - lo), s)


class _Start(NamedTuple):
    """Initial guesses and brackets of the solver, one row per trade."""

    s: np.ndarray  # initial total volatility
    left: np.ndarray  # bracket [left, right] known to hold the root
    right: np.ndarray
    # Objective per row: 0 = 1/ln(b) - 1/ln(beta), 1 = b - beta, 2 = ln((bmax-beta)/(bmax-b)).
    obj: np.ndarray


def normalised_implied_volatility(beta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Total volatility s with ``b(x, s) = beta`` for ``x <= 0`` and ``0 < beta < e^{x/2}``.

    Vectorized over the arrays; the iteration works only on the rows not yet converged.
    """
    beta = np.asarray(beta, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if beta.size == 0:
        return np.full(0, np.nan)
    bmax = np.exp(0.5 * x)
    beta = np.minimum(beta, np.nextafter(bmax, 0.0))
    return _iterate(beta, x, bmax, _initial_guesses(beta, x, bmax))


def _initial_guesses(beta: np.ndarray, x: np.ndarray, bmax: np.ndarray) -> _Start:
    """Jaeckel's four segments, split at the inflection point s_c and its tangent points:
    a guess, a bracket and an objective for each row."""
    n = beta.size
    s_c = np.sqrt(2.0 * np.abs(x))
    b_c, v_c = black_and_vega(x, s_c)
    lower = beta < b_c
    with np.errstate(divide="ignore", invalid="ignore"):
        s_l = s_c - b_c / v_c
        s_l = np.where(np.isfinite(s_l) & (s_l > 0), s_l, 0.5 * s_c)
        s_h = np.where(v_c > 0, s_c + (bmax - b_c) / v_c, s_c + 1.0)
    s2 = np.where(lower, s_l, s_h)  # the tangent point on beta's side of s_c
    b2, v2 = black_and_vega(x, s2)

    seg_a = lower & (beta < b2)  # far below: objective 1/ln b
    seg_b = lower & ~seg_a  # between s_l and s_c
    seg_d = ~lower & (beta > b2)  # far above: objective ln(bmax - b)
    seg_c = ~lower & ~seg_d  # between s_c and s_h

    start = _Start(np.empty(n), np.zeros(n), np.full(n, np.inf), np.ones(n, dtype=np.int8))
    s, s_left, s_right, obj = start
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if seg_a.any():
            i = np.flatnonzero(seg_a)
            s[i] = _guess_far_below(x[i], beta[i], b2[i], s2[i])
            s_right[i] = s2[i]
            obj[i] = 0
        if seg_b.any():
            i = np.flatnonzero(seg_b)
            s[i] = _hermite(beta[i], b2[i], b_c[i], s2[i], s_c[i], v2[i], v_c[i])
            s_left[i], s_right[i] = s2[i], s_c[i]
        if seg_c.any():
            i = np.flatnonzero(seg_c)
            s[i] = _hermite(beta[i], b_c[i], b2[i], s_c[i], s2[i], v_c[i], v2[i])
            s_left[i], s_right[i] = s_c[i], s2[i]
        if seg_d.any():
            i = np.flatnonzero(seg_d)
            s[i] = _guess_far_above(beta[i], b2[i], s2[i], bmax[i])
            s_left[i] = s2[i]
            obj[i] = np.where(beta[i] > 0.5 * bmax[i], 2, 1)
    return start


def _guess_far_below(x, beta, b_l, s_l):
    """Guess below the lower tangent point s_l (where ``b(x, s_l) = b_l``): the inverse of
    Jaeckel's lower asymptotic map ``f = 2 pi / sqrt(27) |x| Phi(-|x| / (sqrt(3) s))^3``,
    its value corrected to meet b at s_l; kept inside (0, s_l)."""
    z = np.abs(x) / (_SQRT_THREE * s_l)
    f_l = _TWO_PI_OVER_SQRT_27 * np.abs(x) * ndtr(-z) ** 3
    tt = beta / b_l
    f = beta + (f_l - b_l) * tt * tt
    f = np.where(f > 0, f, beta)
    guess = np.abs(x / (_SQRT_THREE * ndtri(np.cbrt(f / (_TWO_PI_OVER_SQRT_27 * np.abs(x))))))
    return np.where(np.isfinite(guess) & (guess > 0) & (guess < s_l), guess, 0.5 * s_l)


def _guess_far_above(beta, b_h, s_h, bmax):
    """Guess above the upper tangent point s_h (where ``b(x, s_h) = b_h``): the inverse of
    Jaeckel's upper map ``f = Phi(-s/2)``, interpolated towards ``bmax``; kept above s_h."""
    f_h = ndtr(-0.5 * s_h)
    span = bmax - b_h
    tt = (beta - b_h) / span
    f = (f_h * (1 - tt) + 0.5 * span * tt) * (1 - tt)
    guess = -2.0 * ndtri(f)
    return np.where(np.isfinite(guess) & (guess > s_h), guess, 2.0 * s_h)


def _iterate(beta: np.ndarray, x: np.ndarray, bmax: np.ndarray, start: _Start) -> np.ndarray:
    """Safeguarded Householder iteration from ``start``, on the rows not yet converged."""
    n = beta.size
    out = np.full(n, np.nan)
    s, s_left, s_right, obj = start
    idx = np.arange(n)
    ds_prev = np.full(n, np.inf)
    ln_beta = np.log(beta)
    for _ in range(_MAX_ITER):
        if idx.size == 0:
            break
        xi, si, bi, bmi = x[idx], s[idx], beta[idx], bmax[idx]
        b, bp = black_and_vega(xi, si)
        sl = np.where((b < bi) & (si > s_left[idx]), si, s_left[idx])
        sr = np.where((b > bi) & (si < s_right[idx]), si, s_right[idx])
        ds = _householder_step(obj[idx], xi, si, b, bp, bi, bmi, ln_beta[idx], sl, sr)
        ds = np.maximum(ds, -0.5 * si)
        dsa = np.abs(ds)
        done = (dsa <= _STEP_TOL * si) | (b == bi)
        done |= (dsa <= _NOISE_TOL * si) & (dsa >= 0.5 * ds_prev[idx])
        done |= (sr - sl) <= _STEP_TOL * si
        s_new = si + ds
        outside = ~done & ~((s_new > sl) & (s_new < sr))
        # A third-order step this small, taken inside the bracket after a previous step that
        # contracted, leaves an error of order (step)^4: far below double precision. Accept
        # it instead of iterating once more only to confirm.
        converged = ~outside & (dsa <= _FINAL_STEP * si) & (dsa < ds_prev[idx])
        done |= converged
        mid = np.where(np.isinf(sr), 2.0 * sl, 0.5 * (sl + sr))
        s_new = np.where(outside, mid, s_new)
        out[idx[done]] = s_new[done]
        keep = ~done
        idx = idx[keep]
        s[idx] = s_new[keep]
        s_left[idx] = sl[keep]
        s_right[idx] = sr[keep]
        ds_prev[idx] = np.where(outside[keep], np.inf, dsa[keep])
    if idx.size:  # did not meet the step tolerance: keep the best bracketed estimate
        out[idx] = s[idx]
    return out


def _householder_step(obj, x, s, b, bp, beta, bmax, ln_beta, sl, sr):
    """Third-order Householder step for Jaeckel's per-segment objective functions."""
    ds = np.empty_like(s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h = x / s
        b_halley = h * h / s - 0.25 * s  # b''/b'
        b_hh3 = b_halley * b_halley - 3.0 * (h / s) ** 2 - 0.25  # b'''/b'
        for k in (0, 1, 2):
            m = obj == k
            if not m.any():
                continue
            bk, bpk, bh, bh3 = b[m], bp[m], b_halley[m], b_hh3[m]
            if k == 0:
                ln_b = np.log(bk)
                lnbeta = ln_beta[m]
                bpob = bpk / bk
                newton = (lnbeta - ln_b) * ln_b / lnbeta / bpob
                halley = bh - bpob * (1 + 2 / ln_b)
                hh3 = (
                    bh3
                    + 2 * bpob * bpob * (1 + 3 / ln_b * (1 + 1 / ln_b))
                    - 3 * bh * bpob * (1 + 2 / ln_b)
                )
                bad = (bk <= 0) | (bpk <= 0)
            elif k == 1:
                newton = (beta[m] - bk) / bpk
                halley, hh3 = bh, bh3
                bad = bpk <= 0
            else:
                room = bmax[m] - bk
                gp = bpk / room
                newton = -np.log((bmax[m] - beta[m]) / room) / gp
                halley = bh + gp
                hh3 = bh3 + gp * (2 * gp + 3 * bh)
                bad = (room <= 0) | (bpk <= 0)
            step = newton * (1 + 0.5 * halley * newton) / (1 + newton * (halley + hh3 * newton / 6))
            # Where Householder misbehaves fall back to Newton, where that fails bisect.
            step = np.where(np.isfinite(step) & (step * newton >= 0), step, newton)
            mid = np.where(np.isinf(sr[m]), 2.0 * sl[m], 0.5 * (sl[m] + sr[m])) - s[m]
            ds[m] = np.where(bad | ~np.isfinite(step), mid, step)
    return ds


# --- public API -----------------------------------------------------------------------------


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def bounds_status(price, S, K, t, r, q, is_call) -> np.ndarray:
    """Status codes (GREEKS_STATUSES order) from the inputs and the no-arbitrage bounds."""
    price, S, K, t, r, q = np.broadcast_arrays(*(_f64(a) for a in (price, S, K, t, r, q)))
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), price.shape)
    status = np.full(price.shape, OK, dtype=np.int8)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(
            (price > 0)
            & np.isfinite(price)
            & (S > 0)
            & np.isfinite(S)
            & (K > 0)
            & np.isfinite(K)
            & np.isfinite(t)
            & np.isfinite(r)
            & np.isfinite(q)
        )
        expired = ~bad & (t <= 0)
        # Exactly vollib's expressions, so the bounds agree with its exceptions.
        undiscounted = price / np.exp(-r * t)
        F = S * np.exp((r - q) * t)
        intrinsic = np.abs(np.maximum(np.where(is_call, F - K, K - F), 0.0))
        below = undiscounted <= intrinsic
        above = undiscounted >= np.where(is_call, F, K)
    status[above] = ABOVE_MAX
    status[below] = BELOW_INTRINSIC
    status[expired] = EXPIRED
    status[bad] = BAD_INPUT
    return status


def implied_volatility(price, S, K, t, r, q, is_call) -> tuple[np.ndarray, np.ndarray]:
    """BSM implied volatility of each trade, vectorized; arguments broadcast.

    Returns ``(iv, status)``: iv is NaN unless status is ``ok`` (0); status codes index
    ``schemas.GREEKS_STATUSES``. The precise rules are in the module docstring.
    """
    price, S, K, t, r, q = np.broadcast_arrays(*(_f64(a) for a in (price, S, K, t, r, q)))
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), price.shape)
    status = bounds_status(price, S, K, t, r, q, is_call)
    iv = np.full(price.shape, np.nan)
    ok = np.flatnonzero(status.ravel() == OK)
    if ok.size:
        p, s0, k, tt, rr, qq = (a.ravel()[ok] for a in (price, S, K, t, r, q))
        c = is_call.ravel()[ok]
        undiscounted = p / np.exp(-rr * tt)
        F = s0 * np.exp((rr - qq) * tt)
        intrinsic = np.abs(np.maximum(np.where(c, F - k, k - F), 0.0))
        time_value = undiscounted - intrinsic
        x = np.log(F / k)
        beta = time_value / (np.sqrt(F) * np.sqrt(k))
        ax = -np.abs(x)
        # Chunks keep the temporaries of the iteration in cache.
        total = np.concatenate(
            [
                normalised_implied_volatility(beta[i : i + _CHUNK], ax[i : i + _CHUNK])
                for i in range(0, beta.size, _CHUNK)
            ]
        )
        iv.ravel()[ok] = total / np.sqrt(tt)
    return iv, status


def greeks(S, K, t, r, q, sigma, is_call) -> dict[str, np.ndarray]:
    """Analytical BSM delta, gamma, vega (per vol point) and theta (per day), as vollib's
    ``black_scholes_merton.greeks.analytical``; NaN where sigma is NaN."""
    S, K, t, r, q, sigma = np.broadcast_arrays(*(_f64(a) for a in (S, K, t, r, q, sigma)))
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), S.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sqrt_t = np.sqrt(t)
        d1 = (np.log(S / K) + ((r - q) + sigma * sigma / 2.0) * t) / (sigma * sqrt_t)
        d2 = d1 - sigma * sqrt_t
        eqt = np.exp(-q * t)
        ert = np.exp(-r * t)
        pdf_d1 = _ONE_OVER_SQRT_TWO_PI * np.exp(-0.5 * d1 * d1)
        n_d1, n_md1 = ndtr(d1), ndtr(-d1)
        n_d2, n_md2 = ndtr(d2), ndtr(-d2)
        delta = np.where(is_call, eqt * n_d1, -eqt * n_md1)
        gamma = eqt * pdf_d1 / (S * sigma * sqrt_t)
        vega = S * eqt * pdf_d1 * sqrt_t * 0.01
        first = (S * eqt * pdf_d1 * sigma) / (2 * sqrt_t)
        theta_call = -(first + (-q * S * eqt * n_d1) + r * K * ert * n_d2) / 365.0
        theta_put = (-first + (-q * S * eqt * n_md1) + r * K * ert * n_md2) / 365.0
        theta = np.where(is_call, theta_call, theta_put)
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta}
