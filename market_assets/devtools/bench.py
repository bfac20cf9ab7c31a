# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Helpers the benchmark scripts share (``benchmarks/*.py``): timing, peak RSS of a child
process, generated sample days cached between runs, and result tables.

Only the benchmarks import this module; the runtime (core, io, defs) never does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from market_assets.devtools.sample_day import DATASETS, generate_day
from market_assets.io.source import flat_file_key

# The trading day the benchmarks generate and compute (a Friday with a monthly expiry).
DAY = dt.date(2026, 11, 20)


def work_dir(script: str | Path) -> Path:
    """``_work/`` beside a benchmark script (git-ignored), created if missing."""
    work = Path(script).resolve().parent / "_work"
    work.mkdir(exist_ok=True)
    return work


def machine() -> str:
    """Cores, 1-minute load average and date: a timing means little without them."""
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {dt.date.today()}"


class Stopwatch:
    """Wall-clock seconds of a block: ``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.end: float | None = None

    def __enter__(self) -> Stopwatch:
        self.start, self.end = time.perf_counter(), None
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds from the start to the end of the block (to now while it runs)."""
        return (time.perf_counter() if self.end is None else self.end) - self.start


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started its program, in MiB.

    On Linux this is ``VmHWM``: ``ru_maxrss`` would also count the parent's memory at the
    fork, which exec carries over (a child spawned by a 2 GB parent reports 2 GB).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _maxrss_mb(maxrss: int) -> float:
    return maxrss / (1 << 20) if sys.platform == "darwin" else maxrss / 1024


# Runs the command as the child of a small process, so that the command's ru_maxrss (which
# includes the RSS of whatever forked it) is not inflated by the benchmark's own memory.
_LAUNCHER = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(out, "w") as f:
    json.dump({"seconds": seconds, "maxrss": usage.ru_maxrss}, f)
sys.exit(min(255, abs(os.waitstatus_to_exitcode(status))))
"""


@dataclass(frozen=True)
class ChildRun:
    """One child process: wall seconds, peak RSS (MiB) and its output."""

    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(
    cmd: Sequence[str],
    *,
    capture_stdout: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ChildRun:
    """Run ``cmd`` to completion: its wall time and peak RSS, the largest of the process and
    of any descendants it waited for (e.g. a Dagster run's step processes).

    A small launcher process starts ``cmd`` (so the peak is the command's own, see
    ``_LAUNCHER``) and times it from spawn to exit. Output goes to temporary files, not
    pipes, so a chatty child never blocks; with ``capture_stdout=False`` stdout goes to
    /dev/null. Raises CalledProcessError (with the output) when the command fails.
    """
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        result = Path(tmp) / "run.json"
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(result), *cmd],
            stdout=out if capture_stdout else subprocess.DEVNULL,
            stderr=err,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        if proc.returncode or not result.exists():
            raise subprocess.CalledProcessError(proc.returncode, list(cmd), stdout, stderr)
        measured = json.loads(result.read_text())
    return ChildRun(measured["seconds"], _maxrss_mb(measured["maxrss"]), stdout, stderr)


def best_of(repeat: int, measure: Callable[[], dict]) -> dict:
    """Run ``measure`` ``repeat`` times; the fastest result (by its ``seconds``: timing noise
    on a shared machine only adds time), with ``peak_rss_mb`` the highest of all runs (memory
    is not noise: the worst run counts)."""
    runs = [measure() for _ in range(max(1, repeat))]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    peaks = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb") is not None]
    best["peak_rss_mb"] = max(peaks) if peaks else None
    return best


def sample_day(
    work: Path,
    scale: str | int,
    *,
    day: dt.date = DAY,
    seed: int = 1,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Root of a mirror holding a generated day (``market-assets sample``), generated on the
    first call and reused after (``work/mirror-<scale>``; ``-seed<S>`` unless seed 1)."""
    scale = int(scale) if str(scale).isdigit() else scale
    root = work / (f"mirror-{scale}" + ("" if seed == 1 else f"-seed{seed}"))
    say = say or (lambda msg: print(msg, flush=True))
    if not all((root / flat_file_key(d, day)).exists() for d in DATASETS):
        say(f"generating a {scale} day under {root} ...")
        with Stopwatch() as sw:
            generate_day(day, root, scale=scale, seed=seed)
        say(f"  done in {sw.seconds:.0f} s")
    return root


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned, each as
    wide as its widest cell; cells are printed with ``str`` (format numbers beforehand)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines)


def format_checks(checks: Mapping[str, bool]) -> str:
    """``[PASS]``/``[FAIL]`` lines for named targets."""
    return "\n".join(f"  [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in checks.items())


def write_run_config(template: Path, run_dir: Path, mirror: Path, **extra: str) -> Path:
    """``template`` (the project's config.toml) with this run's mirror, warehouse and start
    date, and each ``key = value`` line of ``extra`` replaced; written to run_dir/config.toml."""
    text = template.read_text()
    changes = {
        "local_root": f'"{mirror}"',
        "root": f'"{run_dir / "warehouse"}"',
        "start_date": '"2026-11-02"',
        **extra,
    }
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if n != 1:
            raise ValueError(f"{template}: expected one {key} line, found {n}")
    path = run_dir / "config.toml"
    path.write_text(text)
    return path
