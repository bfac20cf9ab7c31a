# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Quote-ingest benchmark: SPY option quotes from a whole-market option-quotes file.

A generated ``quotes_v1`` option file (default 30M rows over ~200 underlyings in ticker
order, SPY 5% of the rows; cached under benchmarks/_work) is read, each measurement in
its own process so peak RSS is its own:
  (a) gzip -dc FILE > /dev/null                     the baseline (whole file)
  (b) our reader, SPY -> Arrow batches (ISA-L decoder, the default)
  (c) ISA-L (the reader's decoder, 1 thread) decompressing the whole file
  (d) rapidgzip, 2 threads, decompressing the whole file (the alternative decoder;
      compare with (c): the reader's floor is decompressing the prefix up to SPY's end)
  (e) the option_quotes asset for SPY: Dagster materializes it (reader -> NBBO deltas ->
      the atomic Parquet writer, with its checks); its step's time from the run's event
      log (STEP_START to STEP_SUCCESS; Dagster's start-up is not in it)
  (f) (e) on a file a third the size (memory must not grow with the file)
Times are ratios to (a); the target is (e) <= 0.5 with flat peak RSS.

    .venv/bin/python benchmarks/quotes.py [--rows 30000000] [--repeat 3]

rapidgzip is optional (``pip install rapidgzip``): without it (d) is left out.
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
REPO = Path(__file__).resolve().parents[1]
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
    from market_assets.io.quote_reader import QuoteReader, open_gzip
    from market_assets.io.source import LocalStore

    if mode == "asset":
        return run_asset(path, out)
    store = LocalStore(path.parent)
    clock = bench.Stopwatch()
    if mode in ("rapidgzip", "isal-dc"):
        if mode == "rapidgzip":
            import rapidgzip

            f = rapidgzip.open(str(path), parallelization=2)
        else:
            f = open_gzip(store.open(path.name).stream)
        with f:
            while f.read(4 << 20):
                pass
        return {"mode": mode, "seconds": clock.seconds, "peak_rss_mb": bench.peak_rss_mb()}
    reader = QuoteReader(store.open(path.name), "option_quotes", keep=["SPY"])
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


def run_asset(path: Path, out: Path) -> dict:
    """The option_quotes asset for SPY, materialized as `market-assets materialize --assets
    option_quotes` does (the project's definitions, daily_features_job) over a mirror
    holding ``path`` as the day's file; the step's own time from the event log."""
    import dagster as dg

    from market_assets.defs.definitions import build_definitions
    from market_assets.defs.jobs import DAILY_FEATURES_JOB
    from market_assets.io.source import flat_file_key
    from market_assets.settings import load_settings

    mirror = out / "massive"
    key = mirror / flat_file_key("option_quotes", bench.DAY)
    key.parent.mkdir(parents=True)
    key.symlink_to(path.resolve())
    config = bench.write_run_config(REPO / "config.toml", out, mirror)
    job = build_definitions(load_settings(config)).resolve_job_def(DAILY_FEATURES_JOB)
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance,
        partition_key=bench.DAY.isoformat(),
        asset_selection=[dg.AssetKey("option_quotes")],
    )
    times = {
        e.dagster_event.event_type_value: e.timestamp
        for e in instance.all_logs(result.run_id)
        if e.dagster_event is not None
    }
    [mat] = result.asset_materializations_for_node("option_quotes")
    md = {k: v.value for k, v in mat.metadata.items()}
    return {
        "mode": "asset",
        "seconds": times["STEP_SUCCESS"] - times["STEP_START"],
        "kept": md["rows_out"],
        "quote_rows": md["quote_rows"],
        "lines_seen": md["rows_in"],
        "compressed_read": md["source_bytes_read"],
        "size": md["source_bytes"],
        "stopped_early": md["stopped_early"],
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
    small_name = f"option_quotes asset, SPY, {args.rows // 3:,}-row file"
    runs = [
        ("gzip -dc (whole file)", "gzip", big),
        ("our reader, SPY -> Arrow (isal)", "isal", big),
        ("isal -dc, 1 thread (whole file)", "isal-dc", big),
        ("rapidgzip -dc, 2 threads (whole file)", "rapidgzip", big),
        ("option_quotes asset, SPY (deltas -> Parquet)", "asset", big),
        (small_name, "asset", small),
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
                f"{r['quote_rows']:,}" if "quote_rows" in r else "",
                f"{read / r['size']:.0%}" if read else "100%",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
    print(f"\n{args.rows:,} option quotes, {big.stat().st_size / 1e6:,.0f} MB gzip; best of "
          f"{args.repeat}; machine: {bench.machine()}")  # fmt: skip
    header = ["run", "s", "vs gzip -dc", "rows out", "SPY quotes", "gz read", "peak MiB"]
    print(bench.format_table(header, rows))
    ours, small_r = results["option_quotes asset, SPY (deltas -> Parquet)"], results[small_name]
    reader = results["our reader, SPY -> Arrow (isal)"]
    checks = {
        "option_quotes asset, SPY <= 0.5x gzip -dc": ours["seconds"] <= 0.5 * base,
        "reader SPY -> Arrow <= 0.5x gzip -dc": reader["seconds"] <= 0.5 * base,
        "peak RSS flat (3x the file: < 1.25x the memory)": ours["peak_rss_mb"]
        < 1.25 * small_r["peak_rss_mb"],
    }
    if "rapidgzip -dc, 2 threads (whole file)" in results:
        rapid = results["rapidgzip -dc, 2 threads (whole file)"]["seconds"]
        isal = results["isal -dc, 1 thread (whole file)"]["seconds"]
        print(f"rapidgzip (2 threads) / isal (1 thread), whole file: {rapid / isal:.2f}x")
    print(bench.format_checks(checks))


if __name__ == "__main__":
    main()
