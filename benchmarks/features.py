# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Benchmark: one SPY day's features for 1m, 5m, 15m and 30m windows vs a straightforward
per-window reference (numpy/scipy per statistic, scipy gaussian_kde on the grid, diptest,
scipy boxcox_normmax).

Run: .venv/bin/python benchmarks/features.py [--stock N] [--options N] [--ref-windows K]

The day is synthesized directly (U-shaped trade times, lognormal sizes, heavy-tailed dadvv
and gadvv). The headline is the path the features asset runs: the day streamed in time
order, 65,536 trades a batch, through one WindowAggregator for all four window sizes
("shared"). Per window size, the time of its rows from the day prepared once is also shown.
The reference is far too slow for a whole day, so it is timed on K random windows per window
size and extrapolated to the day (the output says so); its results on those windows are
compared with ours.
"""

from __future__ import annotations

import argparse
import time
import warnings

import diptest
import numpy as np
import pyarrow as pa
import scipy.stats as st

from market_assets.core import schemas
from market_assets.core.aggregator import WindowAggregator, aggregate_in_time_order
from market_assets.core.calendar import window_ns
from market_assets.core.feature_names import FEATURE_NAMES
from market_assets.core.windows import OptionTrades, StockTrades, window_grid, window_rows
from market_assets.devtools.bench import DAY
from market_assets.io.condition_rules import load_condition_rules

WINDOWS = ("1m", "5m", "15m", "30m")


def _times(rng: np.random.Generator, n: int, start: int, end: int) -> np.ndarray:
    # U-shaped intraday intensity: Beta(0.6, 0.6) over the session
    u = rng.beta(0.6, 0.6, n)
    return np.sort(start + (u * (end - start - 1)).astype(np.int64))


def synth_day(n_stock: int, n_opt: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """A regular-session SPY day: stock trades and greeked option trades as Arrow tables."""
    rng = np.random.default_rng(seed)
    starts = window_grid(DAY, "1m", "regular")
    start, end = int(starts[0]), int(starts[-1]) + window_ns("1m")
    ts = _times(rng, n_stock, start, end)
    price = 600.0 * np.exp(np.cumsum(rng.normal(0, 2e-5, n_stock)))
    size = np.round(rng.lognormal(3.5, 1.4, n_stock)) + 1
    pool = [[], [37], [12], [14, 41], [37, 41], [16], [53], [10]]
    which = rng.choice(len(pool), n_stock, p=[0.55, 0.25, 0.02, 0.06, 0.08, 0.01, 0.02, 0.01])
    conditions = pa.array([pool[i] for i in which], schemas.CONDITIONS)
    correction = np.where(rng.random(n_stock) < 0.0005, 1, 0).astype(np.int32)
    null_ts = pa.nulls(n_stock, schemas.TS)
    stock = pa.table(
        {
            "ticker": pa.array(["SPY"] * n_stock),
            "sip_timestamp": pa.array(ts).cast(schemas.TS),
            "participant_timestamp": null_ts,
            "price": price,
            "size": size,
            "exchange": pa.array(rng.integers(1, 20, n_stock).astype(np.int32)),
            "conditions": conditions,
            "correction": pa.array(correction),
            "sequence_number": np.arange(n_stock, dtype=np.int64),
            "id": pa.array(np.arange(n_stock).astype(str)),
            "tape": pa.array(np.full(n_stock, 2, np.int32)),
            "trf_id": pa.nulls(n_stock, pa.int32()),
            "trf_timestamp": null_ts,
        },
        schema=schemas.STOCK_TRADES,
    )

    ots = _times(rng, n_opt, start, end)
    is_call = rng.random(n_opt) < 0.55
    s = np.interp(ots, ts, price)
    strike = np.round(s * np.exp(rng.normal(0, 0.02, n_opt)))
    osize = np.round(rng.lognormal(1.5, 1.3, n_opt)) + 1
    intrinsic = np.where(is_call, np.maximum(s - strike, 0), np.maximum(strike - s, 0))
    oprice = np.round(intrinsic + rng.lognormal(0.0, 1.0, n_opt) * 0.5, 2)
    oprice = np.where(rng.random(n_opt) < 0.01, np.maximum(intrinsic - 0.05, 0.01), oprice)
    delta = np.clip(np.abs(rng.normal(0.45, 0.25, n_opt)), 0.001, 0.999)
    gamma = rng.lognormal(-3.5, 1.0, n_opt)
    status = rng.choice(
        np.array(list(schemas.GREEKS_STATUSES), dtype=object),
        n_opt,
        p=[0.95, 0.01, 0.005, 0.02, 0.01, 0.005],
    )
    ok = status == "ok"
    nan = np.full(n_opt, np.nan)
    ocorr = np.where(rng.random(n_opt) < 0.0005, 1, 0).astype(np.int32)
    opt = pa.table(
        {
            "ticker": pa.array(["O:SPY261120C00600000"] * n_opt),
            "underlying": pa.array(["SPY"] * n_opt),
            "expiration": pa.array([DAY] * n_opt, pa.date32()),
            "contract_type": pa.array(np.where(is_call, "call", "put")),
            "strike": strike,
            "sip_timestamp": pa.array(ots).cast(schemas.TS),
            "participant_timestamp": pa.nulls(n_opt, schemas.TS),
            "price": oprice,
            "size": osize,
            "exchange": pa.array(rng.integers(1, 20, n_opt).astype(np.int32)),
            "conditions": pa.array([[]] * n_opt, schemas.CONDITIONS),
            "correction": pa.array(ocorr),
            "underlying_price": s,
            "underlying_price_time": pa.array(ots).cast(schemas.TS),
            "time_to_expiry": np.full(n_opt, 0.01),
            "rate": np.full(n_opt, 0.04),
            "dividend_yield": np.full(n_opt, 0.012),
            "iv": np.where(ok, 0.2, nan),
            "delta": np.where(ok, delta, nan),
            "gamma": np.where(ok, gamma, nan),
            "vega": nan,
            "theta": nan,
            "intrinsic_value": intrinsic,
            "dollar_value": oprice * osize * 100,
            "dadvv": np.where(ok, delta * s * osize * 100, nan),
            "gadvv": np.where(ok, gamma * s * s * osize * 100, nan),
            "greeks_status": pa.array(status.astype(str)),
        },
        schema=schemas.OPTION_TRADES_GREEKS,
    )
    return stock, opt


# --- the straightforward reference ---------------------------------------------------------


def _ref_stats(x: np.ndarray, suffixes: list[str]) -> dict[str, float | None]:
    n = len(x)
    out: dict[str, float | None] = {}
    sd = float(np.std(x, ddof=1)) if n >= 2 else None
    for s in suffixes:
        v = None
        if s == "total":
            v = float(np.sum(x))
        elif n == 0:
            v = None
        elif s == "minimum":
            v = float(np.min(x))
        elif s == "maximum":
            v = float(np.max(x))
        elif s == "mean":
            v = float(np.mean(x))
        elif s == "stddev":
            v = sd
        elif s == "skew":
            v = float(st.skew(x, bias=False)) if n >= 3 and sd else None
        elif s == "kurtosis":
            v = float(st.kurtosis(x, fisher=True, bias=False)) if n >= 4 and sd else None
        elif s in ("q1", "q2", "q3"):
            v = float(np.quantile(x, {"q1": 0.25, "q2": 0.5, "q3": 0.75}[s]))
        elif s == "iqr":
            v = float(np.quantile(x, 0.75) - np.quantile(x, 0.25))
        elif s == "mad":
            v = float(st.median_abs_deviation(x))
        elif s == "cv":
            v = sd / abs(np.mean(x)) if sd is not None and np.mean(x) != 0 else None
        elif s == "mode":
            iqr = np.quantile(x, 0.75) - np.quantile(x, 0.25)
            w = 2.0 * iqr * n ** (-1 / 3) if iqr > 0 else 3.5 * (sd or 0.0) * n ** (-1 / 3)
            if w == 0 or n == 1:
                v = float(np.median(x))
            else:
                nb = max(1, int(np.ceil((x.max() - x.min()) / w)))
                idx = np.clip(np.floor((x - x.min()) / w), 0, nb - 1)
                vals, cnt = np.unique(idx, return_counts=True)
                v = float(x.min() + (vals[np.argmax(cnt)] + 0.5) * w)
        elif s == "bc":
            if n >= 3 and x.min() > 0 and sd:
                v = float(st.boxcox_normmax(x, method="mle"))
        elif s == "dip_pval":
            v = float(diptest.diptest(x)[1]) if n >= 4 else None
        elif s == "kde_peaks":
            if n == 1 or not sd:
                v = 1.0
            else:
                h = sd * (0.75 * n) ** -0.2
                g = np.linspace(x.min() - 3 * h, x.max() + 3 * h, 512)
                d = st.gaussian_kde(x, bw_method="silverman")(g)
                m = d[1:-1]
                v = float(np.sum((m > d[:-2]) & (m >= d[2:]) & (m >= 0.01 * d.max())))
        out[s] = v
    return out


def _ref_prepare(stock: pa.Table, opt: pa.Table, rules) -> dict[str, np.ndarray]:
    """Whole-day numpy columns for the reference (the synthetic day is already time-sorted)."""
    ok = opt["greeks_status"].to_numpy(zero_copy_only=False) == "ok"
    call = opt["contract_type"].to_numpy(zero_copy_only=False) == "call"
    return {
        "ts": stock["sip_timestamp"].cast(pa.int64()).to_numpy(),
        "keep": (stock["correction"].to_numpy() == 0) & rules.mask(stock["conditions"], "volume"),
        "dv": stock["price"].to_numpy() * stock["size"].to_numpy(),
        "ots": opt["sip_timestamp"].cast(pa.int64()).to_numpy(),
        "okc": ok & call & (opt["correction"].to_numpy() == 0),
        "okp": ok & ~call & (opt["correction"].to_numpy() == 0),
        "dadvv": opt["dadvv"].to_numpy(),
        "gadvv": opt["gadvv"].to_numpy(),
    }


def _ref_window(day: dict[str, np.ndarray], w0: int, w1: int) -> dict[str, float | None]:
    """Features of one window, straightforwardly: slice, then numpy/scipy per statistic."""
    a, b = np.searchsorted(day["ts"], [w0, w1])
    oa, ob = np.searchsorted(day["ots"], [w0, w1])
    okc, okp = day["okc"][oa:ob], day["okp"][oa:ob]
    samples = {
        "underlying_dollar_value": day["dv"][a:b][day["keep"][a:b]],
        "puts_dadvv": day["dadvv"][oa:ob][okp],
        "puts_gadvv": day["gadvv"][oa:ob][okp],
        "calls_dadvv": day["dadvv"][oa:ob][okc],
        "calls_gadvv": day["gadvv"][oa:ob][okc],
    }
    out: dict[str, float | None] = {}
    for prefix, x in samples.items():
        names = [f for f in FEATURE_NAMES if f.startswith(prefix + "_")]
        res = _ref_stats(x, [f[len(prefix) + 1 :] for f in names])
        out.update({f: res[f[len(prefix) + 1 :]] for f in names})
    return out


def _shared(stock: pa.Table, opt: pa.Table, rules) -> dict[str, pa.Table]:
    """All window sizes from one time-ordered stream of the day (the features asset's path)."""
    agg = WindowAggregator("SPY", WINDOWS, DAY, "regular", rules)
    parts: dict[str, list[pa.Table]] = {w: [] for w in WINDOWS}
    stream = aggregate_in_time_order(
        agg, stock.to_batches(max_chunksize=65_536), opt.to_batches(max_chunksize=65_536)
    )
    for closed in stream:
        for w, t in closed.items():
            parts[w].append(t)
    return {w: pa.concat_tables(p) for w, p in parts.items()}


def _mismatches(table: pa.Table, picks, refs) -> int:
    bad = 0
    for i, r in zip(picks, refs, strict=True):
        for k, v in r.items():
            got = table.column(k)[int(i)].as_py()
            if (v is None) != (got is None):
                bad += 1
            elif v is not None:
                tol = 1e-6 if k.endswith("_bc") else 1e-9
                if k.endswith(("_kde_peaks", "_mode")):
                    tol = 1e-12
                if abs(got - v) > tol * max(1.0, abs(v)):
                    bad += 1
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stock", type=int, default=1_000_000)
    ap.add_argument("--options", type=int, default=1_000_000)
    ap.add_argument("--ref-windows", type=int, default=3, help="reference windows per size")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rules = load_condition_rules()
    t = time.perf_counter()
    stock, opt = synth_day(args.stock, args.options)
    print(
        f"synthesized {stock.num_rows:,} stock + {opt.num_rows:,} option trades "
        f"in {time.perf_counter() - t:.1f}s"
    )
    t, cpu = time.perf_counter(), time.process_time()
    shared = _shared(stock, opt, rules)
    shared_s, shared_cpu = time.perf_counter() - t, time.process_time() - cpu
    t = time.perf_counter()
    s_trades = StockTrades.from_arrow(stock, "SPY", rules).ordered()
    o_trades = OptionTrades.from_arrow(opt, "SPY").ordered()
    prep = time.perf_counter() - t
    print(f"the day prepared once (filtered, per-trade values, ordered): {prep:.2f}s")
    rng = np.random.default_rng(11)
    ours_total = ref_total = 0.0
    print(
        f"{'window':>6} {'rows':>5} {'ours s':>8} {'ref s (extrap.)':>16} {'ratio':>7} {'checked':>8}"
    )
    for w in WINDOWS:
        starts = window_grid(DAY, w, "regular")
        wns = window_ns(w)
        t = time.perf_counter()
        table = window_rows(s_trades, o_trades, starts, wns, "SPY", w)
        ours = time.perf_counter() - t
        assert table.equals(shared[w]), f"{w}: the shared path's rows differ"
        pick = rng.choice(starts.size, min(args.ref_windows, starts.size), replace=False)
        t = time.perf_counter()
        day = _ref_prepare(stock, opt, rules)
        ref_prep = time.perf_counter() - t
        t = time.perf_counter()
        refs = [_ref_window(day, int(starts[i]), int(starts[i]) + wns) for i in pick]
        ref = ref_prep + (time.perf_counter() - t) / len(pick) * starts.size
        bad = _mismatches(table, pick, refs)
        ours_total += ours
        ref_total += ref
        print(
            f"{w:>6} {starts.size:>5} {ours:>8.2f} {ref:>16.1f} {ref / ours:>7.1f}x "
            f"{'ok' if not bad else f'{bad} diff'}"
        )
    print(
        f"all four sizes: {prep + ours_total:.2f} s from the day prepared once; "
        f"shared streamed path (the asset's) {shared_s:.2f} s ({shared_cpu:.2f} s CPU), "
        "same rows; reference "
        f"{ref_total:.0f} s per day (extrapolated from {args.ref_windows} random windows per "
        f"size): {ref_total / shared_s:.0f}x faster"
    )


if __name__ == "__main__":
    main()
