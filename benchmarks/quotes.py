# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Quote-ingest benchmark: SPY option quotes from a whole-market option-quotes file.

A generated ``quotes_v1`` option file (default 30M rows over ~200 underlyings in ticker
order, SPY 5% of the rows; cached under benchmarks/_work) is read, each measurement in
its own process so peak RSS is its own:
  (a) gzip -dc FILE > /dev/null                     the baseline (whole file)
  (b) our reader, SPY -> Arrow batches (ISA-L decoder, the default)
  (c) rapidgzip, 2 threads, decompressing the whole file (the alternative decoder; the
      reader uses ISA-L, which (b) includes, because this measured slower)
  (d) our reader, SPY -> Parquet (ParquetStore, the only writer)
  (e) our reader, SPY, on a file a third the size (memory must not grow with the file)
Times are ratios to (a); the target is (b)/(d) <= 0.5 with flat peak RSS.

    .venv/bin/python benchmarks/quotes.py [--rows 30000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

from market_assets.devtools import bench
from market_assets.devtools.quote_files import roots, write_option_quotes

WORK = bench.work_dir(__file__)
SPY_SHARE = 0.05


def quote_file(rows: int) -> Path:
    """The generated file of ``rows`` option quotes (generated once, then reused)."""
    path = WORK / f"option_quotes-{rows}.csv.gz"
    if not path.exists():
        names = roots(200)
        weight = SPY_SHARE * (len(names) - 1) / (1 - SPY_SHARE)
        print(f"generating {rows:,} option quotes over {len(names)} roots ...", flush=True)
        with bench.Stopwatch() as sw:
            write_option_quotes(path, rows, names, weights={"SPY": weight}, contracts_per_root=400)
        print(f"  done in {sw.seconds:.0f} s ({path.stat().st_size / 1e6:,.0f} MB)", flush=True)
    return path


def run_one(mode: str, path: Path, out: Path) -> dict:
    """Runs in a child process: one measurement (imports excluded), printed as JSON."""
    from market_assets.io.parquet_store import ParquetStore
    from market_assets.io.quote_reader import QuoteReader
    from market_assets.io.source import LocalStore

    store = LocalStore(path.parent)
    clock = bench.Stopwatch()
    if mode == "rapidgzip":
        import rapidgzip

        with rapidgzip.open(str(path), parallelization=2) as f:
            while f.read(4 << 20):
                pass
        return {"mode": mode, "seconds": clock.seconds, "peak_rss_mb": bench.peak_rss_mb()}
    reader = QuoteReader(store.open(path.name), "option_quotes", keep=["SPY"])
    if mode == "parquet":
        kept = (
            ParquetStore(str(out))
            .write_partition("option_quotes", "2025-11-20", reader, reader.schema)
            .rows
        )
    else:
        kept = sum(b.num_rows for b in reader)
    return {
        "mode": mode,
        "seconds": clock.seconds,
        "kept": kept,
        "lines_seen": reader.stats.rows_read,
        "compressed_read": reader.bytes_read,
        "size": reader.source.size,
        "stopped_early": reader.stopped_early,
        "peak_rss_mb": bench.peak_rss_mb(),
    }


def measure(mode: str, path: Path) -> dict:
    """One measurement of ``mode`` in a fresh process (``gzip -dc`` timed from outside)."""
    if mode == "gzip":
        run = bench.run_child(["gzip", "-dc", str(path)], capture_stdout=False)
        return {"mode": mode, "seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb}
    out = Path(tempfile.mkdtemp(dir=WORK))
    try:
        run = bench.run_child([sys.executable, __file__, "--one", mode, str(path), str(out)])
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["peak_rss_mb"] = run.peak_rss_mb
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=30_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, path, out = args.one
        print(json.dumps(run_one(mode, Path(path), Path(out))))
        return

    big, small = quote_file(args.rows), quote_file(args.rows // 3)
    print(f"machine: {bench.machine()}", flush=True)
    results = {}
    runs = [
        ("gzip -dc (whole file)", "gzip", big),
        ("ours SPY -> Arrow (isal)", "isal", big),
        ("rapidgzip -dc, 2 threads (whole file)", "rapidgzip", big),
        ("ours SPY -> Parquet (isal)", "parquet", big),
        (f"ours SPY -> Arrow (isal), {args.rows // 3:,}-row file", "isal", small),
    ]
    if importlib.util.find_spec("rapidgzip") is None:  # optional: pip install rapidgzip
        runs = [r for r in runs if r[1] != "rapidgzip"]
    for name, mode, path in runs:
        results[name] = bench.best_of(args.repeat, lambda m=mode, p=path: measure(m, p))
        print(f"  {name}: {results[name]['seconds']:.2f} s", flush=True)
    base = results["gzip -dc (whole file)"]["seconds"]
    rows = []
    for name, r in results.items():
        read = r.get("compressed_read")
        rows.append(
            [
                name,
                f"{r['seconds']:.2f}",
                f"{r['seconds'] / base:.2f}x",
                f"{r['kept']:,}" if "kept" in r else "",
                f"{read / r['size']:.0%}" if read else "100%",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
    print(f"\n{args.rows:,} option quotes, {big.stat().st_size / 1e6:,.0f} MB gzip; best of "
          f"{args.repeat}; machine: {bench.machine()}")  # fmt: skip
    print(bench.format_table(["run", "s", "vs gzip -dc", "SPY rows", "gz read", "peak MiB"], rows))
    ours = results["ours SPY -> Parquet (isal)"]
    small_r = results[f"ours SPY -> Arrow (isal), {args.rows // 3:,}-row file"]
    big_r = results["ours SPY -> Arrow (isal)"]
    print(
        bench.format_checks(
            {
                "SPY -> Arrow <= 0.5x gzip -dc": big_r["seconds"] <= 0.5 * base,
                "SPY -> Parquet <= 0.5x gzip -dc": ours["seconds"] <= 0.5 * base,
                "peak RSS flat (3x the file: < 1.25x the memory)": big_r["peak_rss_mb"]
                < 1.25 * small_r["peak_rss_mb"],
            }
        )
    )


if __name__ == "__main__":
    main()
