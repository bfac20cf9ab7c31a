# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Ingest benchmark: our streaming ingest against `gzip -dc` and other tools, in one run.

On a generated day (default: the `large` scale, >= 5M stock trades) it times, each in its
own process so peak RSS is its own:
  (a) gzip -dc FILE > /dev/null                      the baseline
  (b) our ingest, all tickers -> Parquet
  (c) our ingest, SPY only -> Parquet
  (d) polars scan_csv(...).sink_parquet
  (e) pandas.read_csv in chunks -> Parquet
and prints each time as a ratio to (a), rows/s and peak RSS. It also ingests a 1M-row day
to show peak RSS stays flat as the input grows.

    .venv/bin/python benchmarks/ingest.py [--scale large] [--skip-slow]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from market_assets.devtools import bench
from market_assets.io.source import flat_file_key

WORK = bench.work_dir(__file__)
DAY = bench.DAY
KEY = flat_file_key("stock_trades", DAY)


def run_one(mode: str, path: Path, out: Path) -> dict:
    """Runs in a child process: one measurement (imports excluded), printed as JSON."""
    if mode in ("ours_all", "ours_spy"):
        from market_assets.io.parquet_store import ParquetStore
        from market_assets.io.reader import TradeReader
        from market_assets.io.sizes import DEFAULT_BLOCK_SIZE
        from market_assets.io.source import LocalStore
    elif mode == "polars":
        import polars as pl
    else:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
    clock = bench.Stopwatch()
    rows = 0
    if mode in ("ours_all", "ours_spy"):
        store = LocalStore(path.parent)
        opened = store.open(path.name)
        keep = ["*"] if mode == "ours_all" else ["SPY"]
        # As the asset does: reopen lets a malformed file be re-read carefully.
        reader = TradeReader(
            opened,
            "stock_trades",
            day=DAY,
            keep=keep,
            block_size=DEFAULT_BLOCK_SIZE,
            reopen=lambda: store.open(path.name),
        )
        res = ParquetStore(str(out)).write_partition(
            "stock_trades", str(DAY), reader, reader.schema
        )
        rows = reader.stats.rows_read
        kept = res.rows
    elif mode == "polars":
        lf = pl.scan_csv(
            path, schema_overrides={"conditions": pl.String, "id": pl.String, "size": pl.Float64}
        )
        lf.sink_parquet(out / "polars.parquet", compression="zstd")
        kept = rows = pl.scan_parquet(out / "polars.parquet").select(pl.len()).collect().item()
    elif mode == "pandas":
        writer = None
        for chunk in pd.read_csv(path, chunksize=500_000, dtype={"conditions": str, "id": str}):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out / "pandas.parquet", table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += len(chunk)
        writer.close()
        kept = rows
    else:
        raise ValueError(mode)
    return {
        "mode": mode,
        "seconds": clock.seconds,
        "rows": rows,
        "kept": kept,
        "peak_rss_mb": bench.peak_rss_mb(),
    }


def measure(mode: str, path: Path) -> dict:
    """One measurement of ``mode`` in a fresh process (``gzip -dc`` timed from outside)."""
    if mode == "gzip":
        run = bench.run_child(["gzip", "-dc", str(path)], capture_stdout=False)
        return {
            "mode": mode,
            "seconds": run.seconds,
            "rows": None,
            "kept": None,
            "peak_rss_mb": run.peak_rss_mb,
        }
    out = Path(tempfile.mkdtemp(dir=WORK))
    try:
        run = bench.run_child([sys.executable, __file__, "--one", mode, str(path), str(out)])
        return json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="large")
    parser.add_argument(
        "--small-scale", default="1000000", help="day used for the RSS-growth check"
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip pandas")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, path, out = args.one
        print(json.dumps(run_one(mode, Path(path), Path(out))))
        return

    path = bench.sample_day(WORK, args.scale) / KEY
    small = bench.sample_day(WORK, args.small_scale) / KEY
    size_mb = path.stat().st_size / 1e6
    print(
        f"\ninput: {path} ({size_mb:,.0f} MB compressed), {bench.machine()}, best of {args.repeat}"
    )
    modes = ["gzip", "ours_all", "ours_spy", "polars"] + ([] if args.skip_slow else ["pandas"])
    results = {
        m: bench.best_of(1 if m == "pandas" else args.repeat, lambda m=m: measure(m, path))
        for m in modes
    }
    base = results["gzip"]["seconds"]
    labels = {
        "gzip": "(a) gzip -dc > /dev/null",
        "ours_all": "(b) ours, all tickers",
        "ours_spy": "(c) ours, SPY only",
        "polars": "(d) polars sink_parquet",
        "pandas": "(e) pandas chunked",
    }
    rows_total = results["ours_all"]["rows"]
    table = [
        (
            labels[m],
            f"{r['seconds']:.2f}",
            f"{r['seconds'] / base:.2f}",
            f"{rows_total / r['seconds']:,.0f}" if rows_total else "",
            f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else "-",
        )
        for m, r in results.items()
    ]
    print()
    print(bench.format_table(["run", "seconds", "x gzip -dc", "rows/s", "peak RSS MB"], table))
    small_r = measure("ours_all", small)
    print(
        f"\nrows: {rows_total:,} read; SPY kept {results['ours_spy']['kept']:,}\n"
        f"peak RSS, ours all tickers: {small_r['peak_rss_mb']:,.0f} MB on {small_r['rows']:,} rows vs "
        f"{results['ours_all']['peak_rss_mb']:,.0f} MB on {rows_total:,} rows"
    )
    checks = {
        "all tickers <= 1.2 x gzip -dc": results["ours_all"]["seconds"] <= 1.2 * base,
        "all tickers faster than polars": results["ours_all"]["seconds"]
        < results["polars"]["seconds"],
        "SPY only <= 0.8 x gzip -dc": results["ours_spy"]["seconds"] <= 0.8 * base,
        "peak RSS < 600 MB": results["ours_all"]["peak_rss_mb"] < 600,
        f"RSS flat from {small_r['rows']:,} rows (within 25%)": results["ours_all"]["peak_rss_mb"]
        <= 1.25 * small_r["peak_rss_mb"],
    }
    print(bench.format_checks(checks))


if __name__ == "__main__":
    main()
