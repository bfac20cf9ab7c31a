# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Summary statistics of one sample, exactly as FEATURES.md defines them.

Everything is computed from the sorted sample, so a result does not depend on the order the
values arrive in (the batch assets and the live aggregator agree to the last bit). Only the
requested suffixes are computed. A statistic that FEATURES.md makes null is ``None``; a
value that comes out non-finite (NaN) is also ``None``.

Definitions that FEATURES.md leaves implicit, fixed here:

- ``stddev`` is computed like ``numpy.std(sorted_x, ddof=1)``; a sample whose minimum equals
  its maximum has ``stddev`` exactly 0.
- ``mode`` (Freedman-Diaconis): ``w = 2.0 * iqr * n ** (-1 / 3)`` (or
  ``3.5 * stddev * n ** (-1 / 3)`` when iqr is 0), bin edges ``e_i = min + i * w`` in float64,
  ``nbins = max(1, ceil((max - min) / w))``; a value belongs to the last bin ``i`` with
  ``e_i <= value``, clipped to ``nbins - 1`` (so the last bin also takes max); the mode is
  ``min + (i + 0.5) * w`` for the fullest bin, lowest ``i`` on ties.
- ``kde_peaks``: grid ``numpy.linspace(min - 3h, max + 3h, G)`` with
  ``h = stddev * (0.75 * n) ** -0.2``; densities ``d`` are those of
  ``scipy.stats.gaussian_kde(sorted_x, bw_method="silverman")`` at the grid; peaks are the
  interior points ``j`` (the two end points lie 3h outside the data, where the density is
  strictly monotone) with ``d[j] > d[j-1]``, ``d[j] >= d[j+1]`` and ``d[j] >= 0.01 * d.max()``.
  The density is first computed by linear binning and FFT convolution (or, for a small
  sample, by a direct sum) together with a rigorous error bound; only the grid points whose
  comparisons the bound cannot decide are re-evaluated, first by a direct sum with a much
  tighter bound and finally with scipy itself, so the count always equals the exact one.
  Two neighbouring points that hold exactly one peak whichever of them is higher (a
  symmetric top, as every two-value sample has) are counted without being ordered.
- ``bc``: see :func:`_boxcox_mle` (Newton steps on the concave profile likelihood).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import diptest
import numpy as np
import scipy.fft
from scipy import special, stats

SUFFIXES: tuple[str, ...] = (
    "total",
    "minimum",
    "maximum",
    "mean",
    "stddev",
    "skew",
    "kurtosis",
    "q1",
    "q2",
    "q3",
    "iqr",
    "mad",
    "cv",
    "mode",
    "bc",
    "dip_pval",
    "kde_peaks",
)
_KNOWN = frozenset(SUFFIXES)
_U = float(np.finfo(np.float64).eps) / 2  # unit roundoff
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Box-Cox transformed values above this overflow in scipy's own check (see boxcox_normmax).
_BC_YMAX = float(np.finfo(np.float64).max) / 10000
# Below this standard deviation of log(x), scipy's Box-Cox optimum is set by its rounding
# (differences up to 1e-5 seen at 0.06), so scipy itself is asked.
_BC_MIN_LOG_SD = 0.1


@dataclass(frozen=True)
class StatsOptions:
    """Knobs of the statistics that config controls (``[features]``)."""

    kde_grid: int = 512
    dip_method: str = "table"  # "table" | "bootstrap"
    dip_bootstrap_draws: int = 2000
    dip_seed: int = 20240101


def sorted_total(x: np.ndarray) -> float:
    """Sum of a sample in sorted order (what ``total`` is): independent of the input order."""
    return float(np.add.reduce(np.sort(x))) if x.size else 0.0


def describe(
    x: np.ndarray,
    suffixes: Sequence[str] = SUFFIXES,
    options: StatsOptions = StatsOptions(),  # noqa: B008 - frozen, immutable default
    *,
    overwrite_input: bool = False,
) -> dict[str, float | None]:
    """The requested statistics of a 1-D sample (FEATURES.md); ``None`` = null.

    ``overwrite_input``: ``x`` is the caller's own float64 copy and may be sorted in place
    (a 30-minute window's sample is millions of values; one copy fewer). Whatever the sample
    size, at most four more arrays of its size exist at once (Box-Cox's working set)."""
    want = set(suffixes)
    bad = want - _KNOWN
    if bad:
        raise ValueError(f"unknown statistic suffixes {sorted(bad)}; known: {', '.join(SUFFIXES)}")
    xs = np.asarray(x, dtype=np.float64).ravel()
    if overwrite_input and xs.flags.writeable and np.shares_memory(xs, x):
        xs.sort()
    else:
        xs = np.sort(xs)
    n = int(xs.size)
    out: dict[str, float | None] = {}
    if n == 0:
        for s in suffixes:
            out[s] = 0.0 if s == "total" else None
        return out

    mn = float(xs[0])
    mx = float(xs[-1])
    total = float(np.add.reduce(xs))
    mean = total / n  # what numpy.mean computes
    constant = mn == mx

    # Central moments, the way numpy.std / scipy.stats.skew form them.
    need_moments = want & {"stddev", "skew", "kurtosis", "cv", "mode", "bc", "kde_peaks"}
    sd: float | None = None
    m2 = m3 = m4 = 0.0
    if n >= 2 and need_moments:
        if constant:
            sd = 0.0
        else:
            third, fourth = bool(want & {"skew", "kurtosis"}), "kurtosis" in want

            def powers(part: slice) -> list[float]:
                # A block of the deviations at a time (a window's sample can be millions).
                d = np.subtract(xs[part], mean)
                d2 = np.multiply(d, d)
                out = [np.add.reduce(d2)]
                if third:
                    out.append(np.add.reduce(np.multiply(d2, d, out=d)))
                if fourth:
                    out.append(np.add.reduce(np.multiply(d2, d2, out=d2)))
                return out

            sums = _pairwise_sums(n, powers)
            ss = sums[0]
            sd = math.sqrt(ss / (n - 1))
            m2 = ss / n
            if third:
                m3 = sums[1] / n
            if fourth:
                m4 = sums[2] / n

    q = None
    if want & {"q1", "q2", "q3", "iqr", "mode"}:
        q = [_quantile_sorted(xs, p) for p in (0.25, 0.5, 0.75)]

    for s in suffixes:
        v: float | None
        if s == "total":
            v = total
        elif s == "minimum":
            v = mn
        elif s == "maximum":
            v = mx
        elif s == "mean":
            v = mean
        elif s == "stddev":
            v = sd
        elif s == "skew":
            v = None
            if n >= 3 and sd:
                v = math.sqrt((n - 1.0) * n) / (n - 2.0) * (m3 / m2**1.5)
        elif s == "kurtosis":
            v = None
            if n >= 4 and sd:
                v = 1.0 / (n - 2) / (n - 3) * ((n * n - 1.0) * m4 / m2**2.0 - 3 * (n - 1) ** 2.0)
        elif s in ("q1", "q2", "q3"):
            v = float(q[("q1", "q2", "q3").index(s)])
        elif s == "iqr":
            v = float(q[2] - q[0])
        elif s == "mad":
            dev = np.subtract(xs, _median_sorted(xs))
            v = float(np.median(np.abs(dev, out=dev), overwrite_input=True))
            del dev
        elif s == "cv":
            v = sd / abs(mean) if (sd is not None and mean != 0) else None
        elif s == "mode":
            v = _fd_mode(xs, q, sd)
        elif s == "bc":
            v = _boxcox_mle(xs) if (n >= 3 and mn > 0 and sd) else None
        elif s == "dip_pval":
            v = _dip_pval(xs, options) if n >= 4 else None
        else:  # kde_peaks
            v = 1.0 if (n == 1 or not sd) else float(kde_peak_count(xs, sd, options.kde_grid))
        if v is not None and not math.isfinite(v):
            v = None
        out[s] = v
    return out


def _quantile_sorted(xs: np.ndarray, p: float) -> float:
    """numpy.quantile(xs, p) (method "linear") of a sorted array, bit for bit."""
    n = xs.size
    v = (n - 1) * p
    if v >= n - 1:
        return float(xs[-1])
    i = math.floor(v)
    g = v - i
    a, b = float(xs[i]), float(xs[i + 1])
    diff = b - a
    return b - diff * (1 - g) if g >= 0.5 else a + diff * g


def _median_sorted(xs: np.ndarray) -> float:
    n = xs.size
    mid = n // 2
    if n % 2:
        return float(xs[mid])
    return float((xs[mid - 1] + xs[mid]) / 2.0)


# --- mode ---------------------------------------------------------------------------------


def _fd_mode(xs: np.ndarray, q: Sequence[float], sd: float | None) -> float:
    n = xs.size
    mn = float(xs[0])
    iqr = float(q[2] - q[0])
    if n == 1:
        return float(q[1])
    w = 2.0 * iqr * n ** (-1 / 3)
    if iqr == 0:
        w = 3.5 * sd * n ** (-1 / 3)
    if w == 0:
        return float(q[1])
    nbins = max(1, math.ceil((float(xs[-1]) - mn) / w))
    if nbins <= 4 * n + 16:
        i = _fullest_listed_bin(xs, mn, w, nbins)
    else:
        i = _fullest_occupied_bin(xs, mn, w, nbins)
    return mn + (i + 0.5) * w


_EDGE_BLOCK = 1 << 16  # bin edges placed per searchsorted call


def _fullest_listed_bin(xs: np.ndarray, mn: float, w: float, nbins: int) -> float:
    """Index of the fullest bin (lowest on ties) of sorted ``xs`` (bin i holds the values
    with ``e_i <= value < e_(i+1)``, ``e_i = mn + i * w``, the last bin the rest), from
    where each edge falls in ``xs``: memory is one block of edges, not one index per value."""
    best, best_count, below = 0, -1, 0
    for a in range(1, nbins, _EDGE_BLOCK):
        edges = mn + np.arange(a, min(a + _EDGE_BLOCK, nbins), dtype=np.float64) * w
        pos = np.searchsorted(xs, edges, side="left")
        counts = np.diff(pos, prepend=below)
        j = int(np.argmax(counts))
        if counts[j] > best_count:
            best, best_count = a - 1 + j, int(counts[j])
        below = int(pos[-1])
    if xs.size - below > best_count:
        best = nbins - 1
    return float(best)


def _fullest_occupied_bin(xs: np.ndarray, mn: float, w: float, nbins: int) -> float:
    """:func:`_fullest_listed_bin` for far more bins than values (mostly empty, too many to
    list): each value's bin from floor(), fixed where the float division landed on the
    wrong side of its edge, then the runs of equal bins counted (``xs`` is sorted)."""
    idx = np.subtract(xs, mn)
    idx /= w
    np.floor(idx, out=idx)
    edge = np.multiply(idx, w)
    edge += mn
    idx[xs < edge] -= 1
    np.add(idx, 1, out=edge)
    edge *= w
    edge += mn
    idx[xs >= edge] += 1
    del edge
    np.clip(idx, 0, nbins - 1, out=idx)
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    counts = np.diff(np.append(starts, xs.size))
    return float(idx[starts[int(np.argmax(counts))]])


# --- Box-Cox ------------------------------------------------------------------------------


def _boxcox_mle(xs: np.ndarray) -> float:
    """scipy.stats.boxcox_normmax(x, method="mle") of a sorted positive sample.

    scipy maximises the Box-Cox log-likelihood with Brent's method (about 25 evaluations).
    The likelihood is concave in lambda (Kouider and Chen 1995), so its maximiser is the one
    root of the derivative; here it is found by safeguarded Newton steps with analytic first
    and second derivatives (3 to 5 steps), to far below scipy's own tolerance. Where floating
    point cannot pin the optimum down to 1e-6 (a sample whose logs have a standard deviation
    under 0.1: its likelihood is so flat that scipy's Brent search stops where its rounding
    noise leads it, up to 1e-3 away), scipy's own answer is the reference, so scipy is asked.
    The same holds where the optimum is exactly 0 (logs symmetric about their mean, as in
    {1, 2, 2, 4}): scipy stops up to 4e-5 away. Elsewhere near 0, the two agree to 1e-6
    absolute rather than relative (scipy's tolerance is 1.5e-8 relative plus 1e-11 absolute,
    and its log-likelihood cancels x^lambda against 1).
    """
    z = np.log(xs)
    z -= np.add.reduce(z) / xs.size
    slope = _BoxCoxSlope(z)
    lmb = slope.root() if slope.zsd >= _BC_MIN_LOG_SD else math.nan
    del z, slope
    if not abs(lmb) >= 1e-7:  # NaN, or logs symmetric about their mean (see above)
        return _scipy_boxcox(xs)
    # scipy's last step: constrain lambda so the transformed extreme does not overflow.
    xmax, xmin = float(xs[-1]), float(xs[0])
    if xmin >= 1:
        x_treme = xmax
    elif xmax <= 1:
        x_treme = xmin
    else:
        x_treme = xmax if special.boxcox(xmax, lmb) > abs(special.boxcox(xmin, lmb)) else xmin
    with np.errstate(all="ignore"):
        if abs(special.boxcox(x_treme, lmb)) > _BC_YMAX:
            return _scipy_boxcox(xs)
    return lmb


def _scipy_boxcox(xs: np.ndarray) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(stats.boxcox_normmax(xs, method="mle"))


def _sum(a: np.ndarray) -> float:
    return float(np.add.reduce(a))


_SUM_BLOCK = 1 << 16  # values per block of a blockwise sum (numpy splits above 128)


def _pairwise_sums(n: int, leaf: Callable[[slice], Sequence[float]]) -> tuple[float, ...]:
    """Sums over the indices ``0..n-1`` of the terms ``leaf(slice)`` sums (with
    ``numpy.add.reduce``) for a block of them, added in the tree numpy's own pairwise
    summation builds for a whole array: blocks split at ``n2 = n // 2 - (n // 2) % 8`` until
    at most _SUM_BLOCK long. So the result is bit for bit ``numpy.add.reduce`` of the terms
    over the whole sample, while only one block of them exists at a time."""

    return _pairwise_tree(leaf, 0, n)


def _pairwise_tree(leaf: Callable[[slice], Sequence[float]], a: int, b: int) -> tuple[float, ...]:
    # A module-level function, not a closure: a recursive closure is a reference cycle that
    # would keep ``leaf`` (and the sample-sized arrays it reaches) alive until the next GC.
    if b - a <= _SUM_BLOCK:
        return tuple(float(v) for v in leaf(slice(a, b)))
    half = (b - a) // 2
    half -= half % 8
    left, right = _pairwise_tree(leaf, a, a + half), _pairwise_tree(leaf, a + half, b)
    return tuple(x + y for x, y in zip(left, right, strict=True))


# Horner coefficients of the series y = z sum_k t^k / (k+1)! and of its lambda-derivatives
# (k = 6 down to 0, 1 and 2: the terms that survive one and two derivatives).
_SERIES = [1.0 / math.factorial(k + 1) for k in range(6, -1, -1)]
_SERIES_1 = [k * (1.0 / math.factorial(k + 1)) for k in range(6, 0, -1)]
_SERIES_2 = [k * (k - 1) * (1.0 / math.factorial(k + 1)) for k in range(6, 1, -1)]


def _horner(out: np.ndarray, t: np.ndarray, coefs: list[float]) -> np.ndarray:
    """``out = (...(c0 t + c1) t + ...) + c_last``, in place."""
    out.fill(coefs[0])
    for c in coefs[1:]:
        out *= t
        out += c
    return out


class _BoxCoxSlope:
    """G' and G'' (see :meth:`at`) of centred logs ``z``. Each Newton step makes two passes
    over ``z`` a block at a time (the means, then the sums of products), so only ``z`` is
    held at the sample's size; the sums are numpy's own pairwise ones (:func:`_pairwise_sums`),
    the same numbers as spelling every temporary out over the whole sample."""

    def __init__(self, z: np.ndarray) -> None:
        self.z = z
        self.n = z.size
        self.zmax = float(max(-z[0], z[-1]))
        (zz,) = _pairwise_sums(self.n, lambda s: (np.add.reduce(z[s] * z[s]),))
        self.zsd = math.sqrt(zz / self.n)

    def root(self) -> float:
        """The lambda where G'(lambda) = 0, by Newton steps kept inside a bracket."""
        lo, hi = -math.inf, math.inf
        lmb = 0.0
        for _ in range(200):
            g1, g2 = self.at(lmb)
            if not (math.isfinite(g1) and math.isfinite(g2)):
                return math.nan
            if g1 > 0:
                hi = lmb
            elif g1 < 0:
                lo = lmb
            else:
                return lmb
            new = lmb - g1 / g2 if g2 > 0 else math.nan
            if not lo < new < hi:
                if math.isinf(lo) or math.isinf(hi):
                    new = lmb - math.copysign(max(1.0, abs(lmb)), g1)  # walk out to a bracket
                else:
                    new = 0.5 * (lo + hi)
            # Converging quadratically, a step this small leaves an error near its square.
            if abs(new - lmb) <= 1e-7 * max(1.0, abs(lmb)) and lo < new < hi:
                return new
            lmb = new
        return math.nan

    def at(self, lmb: float) -> tuple[float, float]:
        """G' and G'' at ``lmb`` for G = log sd(boxcox(w, lmb)), w = x / geometric mean(x).

        -boxcox_llf(lmb, x) = n G(lmb) + constant (scaling x only shifts the log-likelihood).
        With y = expm1(lmb z) / lmb and its lambda-derivatives y1, y2, G' = cov(y, y1) / var(y)
        and G'' = (var(y1) + cov(y, y2)) / var(y) - 2 G'^2; away from 0 the same follows from
        e = exp(lmb z) (scaled freely), without the 1/lmb cancellations.
        """
        if abs(lmb) * self.zmax <= 1e-3:
            return self._series(lmb)
        return self._exponential(lmb)

    def _series(self, lmb: float) -> tuple[float, float]:
        # Series in t = lmb z: y = z sum_k t^k / (k+1)!, so y1 and y2 are series too.
        z, n = self.z, self.n

        def terms(s: slice, second: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            zs = z[s]
            if lmb == 0.0:  # y = z, y1 = z z / 2, y2 = z z z / 3
                y, y1 = zs.copy(), np.multiply(0.5, zs) * zs
                y2 = zs * zs * zs / 3.0 if second else None
                return y, y1, y2
            t = np.multiply(lmb, zs)
            zz = zs * zs
            y = np.multiply(zs, _horner(np.empty_like(zs), t, _SERIES))
            y1 = np.multiply(zz, _horner(np.empty_like(zs), t, _SERIES_1))
            y2 = np.multiply(zz * zs, _horner(t, t.copy(), _SERIES_2)) if second else None
            return y, y1, y2

        def means(s: slice) -> tuple[float, float]:
            y, y1, _ = terms(s, False)
            return np.add.reduce(y), np.add.reduce(y1)

        sy, sy1 = _pairwise_sums(n, means)
        my, my1 = sy / n, sy1 / n

        def products(s: slice) -> tuple[float, ...]:
            d, e1, y2 = terms(s, True)
            d -= my
            e1 -= my1
            return (
                np.add.reduce(d * d),
                np.add.reduce(d * e1),
                np.add.reduce(e1 * e1),
                np.add.reduce(d * y2),
            )

        var, de1, e1e1, dy2 = _pairwise_sums(n, products)
        g1 = de1 / var
        return g1, (e1e1 + dy2) / var - 2.0 * g1 * g1

    def _exponential(self, lmb: float) -> tuple[float, float]:
        z, n = self.z, self.n
        near_one = abs(lmb) * self.zsd < 0.5
        # exp(t - max t) where exp(t) could overflow; t is monotone in z (sorted), so its
        # maximum is at an end.
        shift = float(np.multiply(lmb, z[[0, -1]]).max()) if abs(lmb) * self.zmax > 50.0 else None

        def terms(s: slice) -> tuple[np.ndarray, np.ndarray]:
            zs = z[s]
            t = np.multiply(lmb, zs)
            if near_one:
                v = np.expm1(t, out=t)  # centring exp(t) would lose digits around 1
                return v, np.multiply(zs, v + 1.0)
            if shift is not None:
                t -= shift
            v = np.exp(t, out=t)
            return v, np.multiply(zs, v)

        def means(s: slice) -> tuple[float, float]:
            v, ze = terms(s)
            return np.add.reduce(v), np.add.reduce(ze)

        sv, sze = _pairwise_sums(n, means)
        mv, mze = sv / n, sze / n

        # G = 1/2 log var(e) - log|lmb|: G' = cov(e, z e) / var(e) - 1 / lmb, and so on.
        def products(s: slice) -> tuple[float, ...]:
            d, ze = terms(s)
            d -= mv
            d_zze = np.add.reduce(d * (z[s] * ze))
            out = (np.add.reduce(d * d), np.add.reduce(d * ze), d_zze)
            ze -= mze
            return (*out, np.add.reduce(ze * ze))

        var, dze, d_zze, zczc = _pairwise_sums(n, products)
        r = dze / var
        c = zczc + d_zze
        return r - 1.0 / lmb, c / var - 2.0 * r * r + 1.0 / (lmb * lmb)


# --- dip test -----------------------------------------------------------------------------


def _dip_pval(xs: np.ndarray, options: StatsOptions) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if options.dip_method == "bootstrap":
            r = diptest.diptest(
                xs,
                sort_x=False,
                boot_pval=True,
                n_boot=options.dip_bootstrap_draws,
                seed=options.dip_seed,
                n_threads=1,
            )
        elif options.dip_method == "table":
            r = diptest.diptest(xs, sort_x=False)
        else:
            raise ValueError(
                f"dip_method must be 'table' or 'bootstrap', got {options.dip_method!r}"
            )
    return float(r[1])


# --- KDE peaks ----------------------------------------------------------------------------

_BIN_STEPS_PER_H = 32  # fine binning grid: at least this many steps per bandwidth
_TRUNC = 10.0  # kernel truncated at this many bandwidths in the binned pass
_DIRECT_PAIRS = 65_536  # up to this many (sample, grid point) pairs, densities are summed directly
_DIRECT_BLOCK = 1 << 18  # (sample, grid point) pairs per block of a direct sum


def kde_grid(xs: np.ndarray, sd: float, grid: int) -> tuple[np.ndarray, float]:
    """The evaluation grid of the KDE peak count and the bandwidth h (xs sorted, sd > 0)."""
    h = sd * (0.75 * xs.size) ** -0.2
    return np.linspace(float(xs[0]) - 3 * h, float(xs[-1]) + 3 * h, grid), h


def kde_peak_count(xs: np.ndarray, sd: float, grid: int = 512) -> int:
    """Peaks of scipy's silverman gaussian_kde of sorted ``xs`` on the FEATURES.md grid."""
    g, h = kde_grid(xs, sd, grid)
    return _KdePeaks(xs, sd, g, h).count()


_BIN_BLOCK = 1 << 18  # sample values binned per block


def _linear_binning(xs: np.ndarray, lo: float, step: float, m: int) -> np.ndarray:
    """Bin counts on the grid ``lo + j * step`` (j < m): each value adds 1 - t to the bin
    below it and t to the one above. Block by block, so the working arrays stay a few MB
    however large the sample; the summation order only moves the rounding that ``rel``
    already bounds."""
    c = np.zeros(m)
    for a in range(0, xs.size, _BIN_BLOCK):
        t = np.subtract(xs[a : a + _BIN_BLOCK], lo)
        t /= step
        k = np.floor(t)
        np.clip(k, 0, m - 2, out=k)
        t -= k
        bins = k.astype(np.intp)
        del k
        c += np.bincount(bins, 1.0 - t, minlength=m)
        bins += 1
        c += np.bincount(bins, t, minlength=m)
    return c


class _KdePeaks:
    """Interval densities [lower, upper] per grid point, refined on demand to exact values."""

    def __init__(self, xs: np.ndarray, sd: float, g: np.ndarray, h: float) -> None:
        self.xs, self.g, self.h = xs, g, h
        n = xs.size
        G = g.size
        lo, hi = float(g[0]), float(g[-1])
        big = abs(lo) + abs(hi)
        xabs = max(abs(float(xs[0])), abs(float(xs[-1])))
        # Position rounding (ours and scipy's whitening), in data units.
        self.rho = 16 * _U * big + 100 * _U * h
        # Relative difference between our h and scipy's kernel bandwidth (both rounded).
        self.eta = (
            16 * _U * (n + 30 + (abs(float(xs.mean())) + xabs) / sd) + 4 * (n * _U * xabs / sd) ** 2
        )
        self.rel = 4 * _U * (2 * n + 50)  # summation rounding, ours and scipy's
        self.level = np.zeros(G, dtype=np.int8)  # 0 binned, 1 direct sum, 2 scipy (exact)
        self._kde: stats.gaussian_kde | None = None
        if n * G <= _DIRECT_PAIRS:  # a small sample: summing directly is cheaper than binning
            self.lower, self.upper = np.empty(G), np.empty(G)
            self._direct(np.arange(G))
        else:
            self.lower, self.upper = self._binned(lo, hi)

    def _binned(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        xs, h, G = self.xs, self.h, self.g.size
        n = xs.size
        delta_g = (hi - lo) / (G - 1)
        r = max(1, math.ceil(delta_g * _BIN_STEPS_PER_H / h))
        step = delta_g / r
        m = r * (G - 1) + 1
        c = _linear_binning(xs, lo, step, m)
        half = math.ceil(_TRUNC * h / step)
        eps = step / h
        u = np.arange(-half, half + 1, dtype=np.float64) * eps
        w = np.maximum(np.abs(u) - eps, 1.0)
        kernels = np.empty((2, u.size))
        kernels[0] = np.exp(-0.5 * u * u) * _INV_SQRT_2PI  # phi
        kernels[1] = (w * w + 1.0) * np.exp(-0.5 * w * w) * _INV_SQRT_2PI  # sup |phi''| near u
        psi = kernels[1]
        size = scipy.fft.next_fast_len(m + 2 * half, real=True)
        # Both convolutions (density and error envelope) in one forward and one inverse FFT.
        spectra = scipy.fft.rfft(kernels, size, axis=-1) * scipy.fft.rfft(c, size)
        scale = 1.0 / (n * h)
        dens, env = scipy.fft.irfft(spectra, size, axis=-1)[:, half : half + r * G : r] * scale
        # FFT rounding: absolute, ~ u log2(N) sqrt(N) |c/n|_2 |kernel/h|_2 (generous constant).
        cn = float(np.sqrt(np.add.reduce(c * c))) / n
        fft_err = (
            8
            * _U
            * math.log2(size)
            * math.sqrt(size)
            * cn
            * float(np.sqrt(np.add.reduce(psi * psi)))
            / h
        )
        env = np.maximum(env, 0.0) + fft_err
        dens_hi = np.maximum(dens, 0.0) + fft_err
        bin_coef = step * step / (8 * h * h)  # linear-binning error per unit envelope
        coef = bin_coef + self.rho / h + 2 * self.eta
        trunc = 2 * math.exp(-0.5 * (_TRUNC - 2 * eps) ** 2) * _INV_SQRT_2PI / h
        err = 2 * (
            coef * env + self.rel * (dens_hi + bin_coef * env) + trunc + 2 * fft_err + 1e-300 / h
        )
        return dens - err, dens + err

    def _refine(self, idx: np.ndarray) -> None:
        idx = idx[self.level[idx] < 2]
        direct = idx[self.level[idx] == 0]
        exact = idx[self.level[idx] == 1]
        if direct.size:
            self._direct(direct)
        if exact.size:
            if self._kde is None:
                self._kde = stats.gaussian_kde(self.xs, bw_method="silverman")
            v = self._kde.evaluate(self.g[exact])
            self.lower[exact] = v
            self.upper[exact] = v
            self.level[exact] = 2

    def _direct(self, idx: np.ndarray) -> None:
        xs, h = self.xs, self.h
        n = xs.size
        rows = max(1, _DIRECT_BLOCK // n)  # grid points per block
        cols = min(n, _DIRECT_BLOCK)  # sample values per block
        for a in range(0, idx.size, rows):
            j = idx[a : a + rows]
            dens, env = np.zeros(j.size), np.zeros(j.size)
            for b in range(0, n, cols):
                u = (xs[None, b : b + cols] - self.g[j, None]) / h
                e = np.exp(-0.5 * u * u)
                dens += e.sum(axis=1)
                env += ((1.0 + u * u) * e).sum(axis=1)
            dens *= _INV_SQRT_2PI / (n * h)
            env *= _INV_SQRT_2PI / (n * h)
            err = 2 * ((self.rho / h + 2 * self.eta) * env * 1.01 + self.rel * dens + 1e-300 / h)
            self.lower[j] = dens - err
            self.upper[j] = dens + err
            self.level[j] = 1

    def count(self) -> int:
        G = self.g.size
        if G < 3:
            return 0
        inner = np.arange(1, G - 1)
        for _ in range(4 * G):
            lower, upper = self.lower, self.upper
            max_lo = float(lower.max())
            cand_max = np.flatnonzero(upper >= max_lo)
            exact_max = bool(np.all(self.level[cand_max] == 2))
            if exact_max:
                thr_lo = thr_hi = 0.01 * float(upper[cand_max].max())
            else:
                thr_lo = 0.01 * max_lo * (1 - 4 * _U)
                thr_hi = 0.01 * float(upper.max()) * (1 + 4 * _U)
            li, ui = lower[inner], upper[inner]
            t_pass = li >= thr_hi
            t_fail = ui < thr_lo
            t_amb = ~t_pass & ~t_fail
            l_true = li > upper[inner - 1]
            l_false = ui <= lower[inner - 1]
            r_true = li >= upper[inner + 1]
            r_false = ui < lower[inner + 1]
            # Neighbours j, j+1 both above the threshold, the density rising into j and
            # falling out of j+1, hold exactly one peak whichever of the two is higher (a
            # symmetric top between two grid points, as every two-value sample has): their
            # order need not be decided.
            pair = t_pass[:-1] & t_pass[1:] & l_true[:-1] & r_true[1:]
            pair &= ~r_true[:-1] & ~r_false[:-1]
            in_pair = np.concatenate((pair, [False])) | np.concatenate(([False], pair))
            alive = ~t_fail & ~l_false & ~r_false & ~in_pair
            amb = alive & (t_amb | ~l_true | ~r_true)
            if not amb.any():
                return int(np.count_nonzero(alive)) + int(np.count_nonzero(pair))
            need = [inner[alive & t_amb]]
            if (alive & t_amb).any() and not exact_max:
                need.append(cand_max)
            need.append(inner[alive & ~l_true] - 1)
            need.append(inner[alive & ~l_true])
            need.append(inner[alive & ~r_true])
            need.append(inner[alive & ~r_true] + 1)
            req = np.unique(np.concatenate(need))
            if not (self.level[req] < 2).any():
                raise AssertionError("KDE peak decision left undecided with exact densities")
            self._refine(req)
        raise AssertionError("KDE peak refinement did not converge")
