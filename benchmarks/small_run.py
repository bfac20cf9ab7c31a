# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Whole-graph runs of one generated day, the way users start them: wall time against
`market-assets materialize` in the same run.

For each scale (default ``tiny``: about 3,000 stock trades) it runs, each in a fresh
DAGSTER_HOME (the project's dagster.yaml) and warehouse, in turn:

  (a) dagster asset materialize --select '*' --partition DAY      (the default executor:
      every step in the run's process)
  (b) the same with run config execution.config.multiprocess     (a process per step:
      Dagster's default before, the choice for a bigger host)
  (c) market-assets materialize --date DAY                        (the baseline)

and reports the best wall time of ``--repeat`` rounds, its ratio to (c), the CPU seconds
(user + system of the command and every process it waited for) over the wall time, i.e.
the cores used on average, the peak RSS, and the load average before each round (the
machine is shared: a busy one only adds time). Target (issue 11): (a) under 15 s on a
tiny day on 2 cores.

    .venv/bin/python benchmarks/small_run.py [--scales tiny demo] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from market_assets.devtools import bench

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAY = bench.DAY
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
RUNS = {
    "(a) dagster asset materialize": [
        str(BIN / "dagster"),
        *("asset", "materialize", "-m", "market_assets.defs.definitions"),
        *("--select", "*", "--partition", str(DAY)),
    ],
    "(b) ... multiprocess, max_concurrent 2": [
        str(BIN / "dagster"),
        *("asset", "materialize", "-m", "market_assets.defs.definitions"),
        *("--select", "*", "--partition", str(DAY)),
        *("--config-json", json.dumps(MULTIPROCESS)),
    ],
    "(c) market-assets materialize": [
        str(BIN / "market-assets"),
        *("materialize", "--date", str(DAY)),
    ],
}
BASELINE = "(c) market-assets materialize"
TARGET_S = 15.0


@dataclass
class Run:
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    load: float


def measure(work: Path, name: str, mirror: Path) -> Run:
    """One run of ``RUNS[name]`` in a fresh DAGSTER_HOME and warehouse."""
    run_dir = work / "small_run" / re.sub(r"\W+", "_", name).strip("_")
    shutil.rmtree(run_dir, ignore_errors=True)
    home = run_dir / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    config = bench.write_run_config(REPO / "config.toml", run_dir, mirror)
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKET_ASSETS_CONFIG": str(config)}
    load = os.getloadavg()[0]
    with (run_dir / "run.log").open("w") as log, bench.Stopwatch() as sw:
        proc = subprocess.Popen(
            RUNS[name], cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{name} failed; see {run_dir / 'run.log'}")
    return Run(sw.seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, load)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", nargs="+", default=["tiny"])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best one counts)")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    work = bench.work_dir(__file__)
    print(bench.machine())
    targets: dict[str, bool] = {}
    for scale in args.scales:
        mirror = bench.sample_day(work, scale)
        runs: dict[str, list[Run]] = {n: [] for n in args.runs}
        for i in range(max(1, args.repeat)):
            for name in args.runs:  # interleaved, so drifting load hits every run alike
                r = measure(work, name, mirror)
                runs[name].append(r)
                print(f"  {scale} round {i + 1}: {name}: {r.seconds:.1f} s (load {r.load:.2f})")
        best = {n: min(rs, key=lambda r: r.seconds) for n, rs in runs.items()}
        base = best.get(BASELINE)
        header = ["run", "best s", "x (c)", "CPU s", "cores used", "peak RSS MB", "load"]
        rows = [
            [
                name,
                f"{r.seconds:.1f}",
                f"{r.seconds / base.seconds:.2f}" if base else "-",
                f"{r.cpu_s:.1f}",
                f"{r.cpu_s / r.seconds:.2f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.load:.2f}",
            ]
            for name, r in best.items()
        ]
        print(f"\n{scale} day, best of {args.repeat}:\n" + bench.format_table(header, rows))
        loads = [r.load for rs in runs.values() for r in rs]
        print(f"  load average (1 min) before the runs: {min(loads):.2f}-{max(loads):.2f}")
        first = next(iter(RUNS))
        if scale == "tiny" and first in best:
            s = best[first].seconds
            targets[f"tiny day, {first}: under {TARGET_S:.0f} s ({s:.1f} s)"] = s < TARGET_S
    if targets:
        print(bench.format_checks(targets))


if __name__ == "__main__":
    main()
