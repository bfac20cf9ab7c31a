# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Aggressor classification rate: our as-of NBBO join + classifier vs baselines, in one run.

A generated day of one underlying: 4,000 option contracts plus the stock, 6,000,000 NBBO
deltas and 2,000,000 trades, each file in ticker then time order as Massive writes them.
Measured (best of 3, one process, one pyarrow thread, inputs in memory): building the
quote index (once a day); classifying every trade (all output columns); our as-of join
alone (``QuoteIndex.asof``: ticker codes + lookup); and two baselines on the same data:
the bare lookup (``QuoteIndex.asof_codes`` on precomputed codes: one numpy
``searchsorted``, a floor) and pandas ``merge_asof(by="ticker")`` on frames already sorted
by time (the join only, its sort not timed). Also the NBBO-delta rate (``nbbo_deltas``
over the quotes in 128k-row batches, option schema), and the streamed day classifier of the
``option_trades_classified`` asset (``classify_day``: trades in stored time order, 64k-row
batches as the asset scans them, the quotes streamed once, the two permutations through
bucket files on disk as in the asset), checked equal to the one-call result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from market_assets.core.classify import ClassifyParams, QuoteIndex, classify
from market_assets.core.classify_day import classify_day
from market_assets.core.nbbo import NbboCarry, nbbo_deltas
from market_assets.devtools import bench
from market_assets.io.external_sort import permuted
from market_assets.io.parquet_store import SCAN_BATCH_ROWS

CONTRACTS, N_QUOTES, N_TRADES = 4_000, 6_000_000, 2_000_000
SESSION_NS = 390 * 60 * 1_000_000_000
T0 = 1_795_000_000_000_000_000  # a date in 2026, ns


def _tickers(n_rows: int, names: np.ndarray, rng: np.random.Generator) -> tuple:
    codes = np.sort(rng.integers(0, len(names), n_rows)).astype(np.int32)
    arr = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names)).cast(pa.string())
    return arr, codes


def generate(seed: int = 0) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    strikes = 450 + np.arange(CONTRACTS // 2) * 0.5
    names = np.array(
        sorted([f"O:SPY261120{cp}{round(k * 1000):08d}" for k in strikes for cp in "CP"] + ["SPY"])
    )
    mid0 = rng.uniform(0.05, 40.0, len(names))
    q_tick, q_code = _tickers(N_QUOTES, names, rng)
    # Within a ticker, times ascend (the files' order); a few repeat the previous ns.
    q_ts = T0 + rng.integers(0, SESSION_NS, N_QUOTES)
    q_ts = q_ts[np.lexsort((q_ts, q_code))]
    mid = np.round(mid0[q_code] * np.exp(rng.normal(0, 0.01, N_QUOTES)), 2)
    half = rng.choice([0.0, 0.01, 0.02, 0.05, -0.01], N_QUOTES, p=[0.02, 0.5, 0.3, 0.17, 0.01])
    quotes = pa.table(
        {
            "ticker": q_tick,
            "sip_timestamp": pa.array(q_ts).cast(pa.timestamp("ns", tz="UTC")),
            "bid_price": np.round(np.maximum(mid - half, 0.0), 2),
            "bid_size": rng.integers(1, 500, N_QUOTES).astype(np.float64),
            "ask_price": np.round(mid + half, 2),
            "ask_size": rng.integers(1, 500, N_QUOTES).astype(np.float64),
            "sequence_number": np.arange(N_QUOTES, dtype=np.int64),
        }
    )
    # Trades follow quotes (ages exponential, mean 20 ms), in the files' order as well.
    after = np.sort(rng.integers(0, N_QUOTES, N_TRADES))
    t_code = q_code[after]
    t_tick = pa.DictionaryArray.from_arrays(pa.array(t_code), pa.array(names)).cast(pa.string())
    t_ts = q_ts[after] + rng.exponential(20e6, N_TRADES).astype(np.int64)
    t_ts = t_ts[np.lexsort((t_ts, t_code))]
    offset = rng.choice([-0.06, -0.02, -0.01, 0, 0.01, 0.02, 0.06], N_TRADES)
    price = np.round(mid[after] + offset, 2)
    trades = pa.table(
        {
            "ticker": t_tick,
            "sip_timestamp": pa.array(t_ts).cast(pa.timestamp("ns", tz="UTC")),
            "price": np.maximum(price, 0.01),
            "size": rng.integers(1, 50, N_TRADES).astype(np.float64),
        }
    )
    return quotes, trades


def main() -> None:
    pa.set_cpu_count(1)  # one core: the target is a single-core rate
    quotes, trades = generate()
    params = ClassifyParams()

    def build() -> dict:
        with bench.Stopwatch() as sw:
            index = QuoteIndex(quotes)
        return {"seconds": sw.seconds, "index": index}

    built = bench.best_of(3, build)
    index = built["index"]

    def ours() -> dict:
        with bench.Stopwatch() as sw:
            out = classify(trades, index, params)
        return {"seconds": sw.seconds, "out": out}

    ran = bench.best_of(3, ours)
    out = ran["out"]

    t_ns = trades.column("sip_timestamp").cast(pa.int64()).to_numpy()
    t_code = (
        pa.compute.index_in(trades.column("ticker"), value_set=index.tickers)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )

    def bare() -> dict:
        with bench.Stopwatch() as sw:
            index.asof_codes(t_code, t_ns)
        return {"seconds": sw.seconds}

    floor = bench.best_of(3, bare)
    t_tickers = trades.column("ticker").combine_chunks()

    def join() -> dict:
        with bench.Stopwatch() as sw:
            index.asof(t_tickers, t_ns)
        return {"seconds": sw.seconds}

    joined = bench.best_of(3, join)

    qdf = quotes.select(["ticker", "sip_timestamp", "bid_price", "ask_price"]).to_pandas()
    tdf = trades.select(["ticker", "sip_timestamp", "price"]).to_pandas()
    qdf = qdf.sort_values("sip_timestamp", kind="stable", ignore_index=True)
    tdf = tdf.sort_values("sip_timestamp", kind="stable", ignore_index=True)

    def pandas_join() -> dict:
        with bench.Stopwatch() as sw:
            pd.merge_asof(tdf, qdf, on="sip_timestamp", by="ticker", allow_exact_matches=True)
        return {"seconds": sw.seconds}

    pandas = bench.best_of(3, pandas_join)

    def deltas() -> dict:
        with bench.Stopwatch() as sw:
            carry = NbboCarry.empty()
            for batch in quotes.to_batches(max_chunksize=131_072):
                _, carry = nbbo_deltas(batch, carry, options=True)
        return {"seconds": sw.seconds}

    streamed = bench.best_of(3, deltas)

    # The asset's path: greeks are stored by (underlying, time); the day streamed.
    by_time = trades.sort_by([("sip_timestamp", "ascending")])

    def scan(columns: list[str] | None) -> list[pa.RecordBatch]:
        table = by_time if columns is None else by_time.select(columns)
        return table.to_batches(max_chunksize=SCAN_BATCH_ROWS)

    def day() -> dict:
        with bench.Stopwatch() as sw:
            parts = list(
                classify_day(
                    scan, quotes.to_batches(max_chunksize=SCAN_BATCH_ROWS), params, permuted
                )
            )
        return {"seconds": sw.seconds, "out": parts}

    streamed_day = bench.best_of(3, day)
    day_out = pa.concat_tables(streamed_day["out"])
    day_equal = day_out.select(out.column_names).equals(classify(by_time, index, params))
    day_rate = N_TRADES / streamed_day["seconds"]

    rate = N_TRADES / ran["seconds"]
    sides = pa.compute.value_counts(out.column("aggressor_side")).to_pylist()
    reasons = pa.compute.value_counts(out.column("unknown_reason")).to_pylist()
    print(bench.machine())
    print(f"quotes: {N_QUOTES:,} NBBO deltas over {CONTRACTS + 1:,} tickers; trades: {N_TRADES:,}")
    rows = [
        ("quote index build (once a day)", f"{built['seconds']:.3f}", f"{N_QUOTES / built['seconds']:,.0f} quotes/s", "-"),
        ("ours: as-of join + classify, all columns", f"{ran['seconds']:.3f}", f"{rate:,.0f}", "1.00"),
        ("ours: as-of join alone (QuoteIndex.asof)", f"{joined['seconds']:.3f}", f"{N_TRADES / joined['seconds']:,.0f}", f"{ran['seconds'] / joined['seconds']:.2f}"),
        ("bare lookup on codes (one searchsorted)", f"{floor['seconds']:.3f}", f"{N_TRADES / floor['seconds']:,.0f}", f"{ran['seconds'] / floor['seconds']:.2f}"),
        ("pandas merge_asof by ticker (join only)", f"{pandas['seconds']:.3f}", f"{N_TRADES / pandas['seconds']:,.0f}", f"{ran['seconds'] / pandas['seconds']:.2f}"),
        ("one call incl. its index build (in memory)", f"{built['seconds'] + ran['seconds']:.3f}", f"{N_TRADES / (built['seconds'] + ran['seconds']):,.0f}", f"{ran['seconds'] / (built['seconds'] + ran['seconds']):.2f}"),
        ("streamed day incl. quote indexes (classify_day)", f"{streamed_day['seconds']:.3f}", f"{day_rate:,.0f}", f"{ran['seconds'] / streamed_day['seconds']:.2f}"),
    ]  # fmt: skip
    print(bench.format_table(("run", "seconds", "trades/s", "ours / run"), rows))
    print(
        f"NBBO deltas, options schema, 128k-row batches: {streamed['seconds']:.3f} s,"
        f" {N_QUOTES / streamed['seconds']:,.0f} quote rows/s"
    )
    print("sides:", {d["values"]: d["counts"] for d in sides})
    print("unknown reasons:", {d["values"]: d["counts"] for d in reasons})
    print(
        bench.format_checks(
            {
                "at least 2M trades/s": rate >= 2_000_000,
                "streamed day (its quote indexes included) at least 2M trades/s": day_rate
                >= 2_000_000,
                "streamed day within 1.25x of one call incl. its index build": streamed_day[
                    "seconds"
                ]
                <= 1.25 * (built["seconds"] + ran["seconds"]),
                "streamed day equals the one-call result": day_equal,
                "as-of join faster than pandas merge_asof": joined["seconds"] < pandas["seconds"],
            }
        )
    )


if __name__ == "__main__":
    main()
