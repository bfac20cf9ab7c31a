# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Memory benchmark on the path users run: `dagster asset materialize` of one ingest asset
with every ticker, its checks included, on generated 3M- and 12M-row days.

For each day and asset (stock_trades with ingest.stock_tickers = ["*"], option_trades with
ingest.option_underlyings = ["*"]) it runs

    dagster asset materialize --select ASSET --partition 2026-11-20

in a subprocess with its own DAGSTER_HOME and config.toml, and measures:
  - peak RSS of the largest process of the run's process tree (the step runs in the
    command's process with the default executor, in a child with the multiprocess one):
    the ``ru_maxrss`` os.wait4 returns for the command (the
    largest of it and every descendant it waited for) and each process's VmHWM read from
    /proc while the tree runs, whichever is larger;
  - peak RSS of the whole tree (the sum over its processes, sampled every 0.1 s);
  - the step's wall time from the run's event log (STEP_START to STEP_SUCCESS): the run
    without Dagster's start-up, as a ratio to `gzip -dc FILE > /dev/null` timed in the same
    run.

``--assets features`` measures the features step instead (the one multi-asset that writes
every configured window size, its checks included): the day's stock_trades, option_trades
and option_trades_greeks are materialized first in the same instance (not measured), then

    dagster asset materialize --select features_1m,features_5m,... --partition 2026-11-20

is measured the same way; its rows are the symbol's stock plus option trades read, and it
has no gzip baseline (its input is Parquet). What grows with a denser day is the sample
values of the longest open window (exact window statistics need them all: 8 bytes a stock
trade, up to 32 an option trade) and one batch's trades ahead of the watermark.

``--assets option_trades_greeks`` measures the greeks step the same way (its stock_trades
and option_trades prepared first; its rows are the option trades). It holds one run of the
external sort of the option trades and, per batch, the underlyings' rows within the
staleness limit before its trades.

Days are generated once (`market-assets sample --scale N --seed 1`, through
``devtools.bench.sample_day``) and cached in benchmarks/_work/mirror-N, as for ingest.py.

    .venv/bin/python benchmarks/memory.py [--scales 3000000 12000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from market_assets.devtools import bench
from market_assets.io.source import flat_file_key

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAY = bench.DAY


# --- the process tree ----------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def _tree(root: int) -> list[int]:
    children, out, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB, zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeSampler(threading.Thread):
    """Samples a process tree's RSS until stopped: the peak of the sum over its processes
    and the largest single process's high-water mark."""

    def __init__(self, root: int, interval_s: float = 0.1):
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self.peak_sum_kb = 0
        self.peak_process_kb = 0
        self.processes: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            total = 0
            for pid in _tree(self.root):
                rss, hwm = _status_kb(pid)
                total += rss
                self.peak_process_kb = max(self.peak_process_kb, hwm)
                self.processes.add(pid)
            self.peak_sum_kb = max(self.peak_sum_kb, total)
            self._done.wait(self.interval_s)

    def stop(self) -> None:
        self._done.set()
        self.join()


# --- one measurement -----------------------------------------------------------------------


@dataclass
class Measurement:
    asset: str
    scale: str
    rows: int
    source_mb: float
    step_s: float
    total_s: float
    gzip_s: float
    peak_process_mb: float
    peak_tree_mb: float
    processes: int
    checks: str

    @property
    def ratio(self) -> float:
        return self.step_s / self.gzip_s


def gzip_seconds(path: Path) -> float:
    with bench.Stopwatch() as sw:
        subprocess.run(["bash", "-c", f"gzip -dc '{path}' > /dev/null"], check=True)
    return sw.seconds


def step_events(home: Path, asset: str) -> tuple[float, dict, list[tuple[str, bool]]]:
    """The step's wall time, its materialization metadata and its checks' results, from
    the run's event log."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        start = end = None
        metadata: dict = {}
        checks = []
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None or ev.step_key != asset:
                continue
            if ev.event_type_value == "STEP_START":
                start = rec.timestamp
            elif ev.event_type_value == "STEP_SUCCESS":
                end = rec.timestamp
            elif ev.event_type_value == "ASSET_MATERIALIZATION":
                mat = ev.event_specific_data.materialization
                metadata = {k: v.value for k, v in mat.metadata.items()}
            elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
                d = ev.event_specific_data
                checks.append((d.check_name, d.passed))
        if start is None or end is None:
            raise RuntimeError(f"run {run.run_id}: no successful {asset} step")
        return end - start, metadata, checks


FEATURES = "features"  # the features multi-asset's step
GREEKS = "option_trades_greeks"
DERIVED = (FEATURES, GREEKS)  # steps that read Parquet: inputs prepared first, no gzip baseline


def _selection(config: Path, asset: str) -> str:
    if asset != FEATURES:
        return asset
    windows = tomllib.loads(config.read_text())["features"]["windows"]
    return ",".join(f"features_{w}" for w in windows)


def _inputs(config: Path, asset: str) -> list[str]:
    """The assets a derived step reads for this config: for the features, quotes and
    classified trades too when ``features.aggression`` is on; for the greeks, stock_quotes
    with ``greeks.underlying_price = "nbbo_mid"``."""
    cfg = tomllib.loads(config.read_text())
    if asset == GREEKS:
        nbbo_mid = cfg["greeks"].get("underlying_price") == "nbbo_mid"
        return ["stock_trades", "option_trades"] + (["stock_quotes"] if nbbo_mid else [])
    assets = ["stock_trades", "option_trades", "option_trades_greeks"]
    if cfg["features"].get("aggression"):
        assets += ["stock_quotes", "option_quotes", "option_trades_classified"]
    return assets


def _prepare_inputs(env: dict, config: Path, asset: str, log: Path) -> None:
    """A derived step's inputs for the day, materialized once before the measured run."""
    cmd = [str(BIN / "market-assets"), "materialize", "--date", str(DAY), "--assets"]
    cmd += _inputs(config, asset)
    with log.open("w") as out:
        subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)


def measure(work: Path, asset: str, scale: str, mirror: Path) -> Measurement:
    """One `dagster asset materialize` run, in its own DAGSTER_HOME and config."""
    run_dir = work / "memory" / f"{asset}-{scale}"
    shutil.rmtree(run_dir, ignore_errors=True)
    home = run_dir / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    config = bench.write_run_config(
        REPO / "config.toml", run_dir, mirror, stock_tickers='["*"]', option_underlyings='["*"]'
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKET_ASSETS_CONFIG": str(config)}
    if asset in DERIVED:
        _prepare_inputs(env, config, asset, run_dir / "prepare.log")
    cmd = [str(BIN / "dagster"), "asset", "materialize", "--select", _selection(config, asset)]
    cmd += ["--partition", str(DAY), "-m", "market_assets.defs.definitions"]
    with (run_dir / "run.log").open("w") as log, bench.Stopwatch() as sw:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed; see {run_dir / 'run.log'}")
    step_s, md, checks = step_events(home, asset)
    if asset == FEATURES:
        rows = int(md.get("underlying_trades_in", 0)) + int(md.get("option_trades_in", 0))
        source_mb, gzip_s = 0.0, float("nan")
    elif asset == GREEKS:
        rows, source_mb, gzip_s = int(md.get("rows", 0)), 0.0, float("nan")
    else:
        source = mirror / flat_file_key(asset, DAY)
        rows, source_mb, gzip_s = int(md.get("rows", 0)), source.stat().st_size / 1e6, 0.0
        gzip_s = gzip_seconds(source)
    # ru_maxrss can only err high (a forked child starts with its parent's RSS); VmHWM is
    # each process's own, read while it ran.
    peak_kb = max(usage.ru_maxrss, sampler.peak_process_kb)
    shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
    return Measurement(
        asset=asset,
        scale=scale,
        rows=rows,
        source_mb=source_mb,
        step_s=step_s,
        total_s=sw.seconds,
        gzip_s=gzip_s,
        peak_process_mb=peak_kb / 1024,
        peak_tree_mb=sampler.peak_sum_kb / 1024,
        processes=len(sampler.processes),
        checks=", ".join(f"{n} {'ok' if p else 'FAILED'}" for n, p in checks),
    )


def best(runs: list[Measurement]) -> Measurement:
    """Fastest step and fastest gzip of the repeats; the largest memory of all of them."""
    out = min(runs, key=lambda m: m.step_s)
    out.gzip_s = min(m.gzip_s for m in runs)
    out.peak_process_mb = max(m.peak_process_mb for m in runs)
    out.peak_tree_mb = max(m.peak_tree_mb for m in runs)
    return out


def report(results: list[Measurement]) -> None:
    header = ["asset", "rows", "gzip MB", "step s", "gzip -dc s", "x gzip", "total s"]
    header += ["peak RSS MB", "tree MB"]
    rows = [
        [
            m.asset,
            f"{m.rows:,}",
            f"{m.source_mb:.0f}",
            f"{m.step_s:.2f}",
            f"{m.gzip_s:.2f}",
            f"{m.ratio:.2f}",
            f"{m.total_s:.1f}",
            f"{m.peak_process_mb:.0f}",
            f"{m.peak_tree_mb:.0f}",
        ]
        for m in results
    ]
    print("\n" + bench.format_table(header, rows))
    for m in results:
        print(f"  {m.asset} {m.scale}: {m.processes} processes; checks: {m.checks}")
    targets: dict[str, bool] = {}
    for asset in dict.fromkeys(m.asset for m in results):
        runs = [m for m in results if m.asset == asset]
        for m in runs:
            targets[f"{asset} {m.rows:,} rows: peak RSS < 600 MB"] = m.peak_process_mb < 600
        if len(runs) > 1:
            grow = runs[-1].peak_process_mb / runs[0].peak_process_mb - 1
            name = f"{asset}: {runs[-1].rows:,} rows within +15% of {runs[0].rows:,} ({grow:+.1%})"
            targets[name] = grow <= 0.15
        for m in runs if asset not in DERIVED else []:
            name = f"{asset} {m.rows:,} rows: step <= 1.2 x gzip -dc ({m.ratio:.2f})"
            targets[name] = m.ratio <= 1.2
    print(bench.format_checks(targets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", nargs="+", default=["3000000", "12000000"])
    parser.add_argument("--assets", nargs="+", default=["stock_trades", "option_trades"])
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement")
    args = parser.parse_args()
    work = bench.work_dir(__file__)
    mirrors = {s: bench.sample_day(work, s) for s in args.scales}
    print(bench.machine())
    results = []
    for asset in args.assets:
        for scale in args.scales:
            runs = [measure(work, asset, scale, mirrors[scale]) for _ in range(args.repeat)]
            results.append(best(runs))
            m = results[-1]
            print(
                f"  {asset} {scale}: step {m.step_s:.2f} s ({m.ratio:.2f}x gzip -dc), "
                f"peak RSS {m.peak_process_mb:.0f} MB",
                flush=True,
            )
    report(results)


if __name__ == "__main__":
    main()
