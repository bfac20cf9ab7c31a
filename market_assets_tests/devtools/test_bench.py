# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The benchmark helpers measure what they claim: child RSS, timing, cached days, tables."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from market_assets.devtools import bench


def test_child_peak_rss_counts_the_memory_the_child_touched() -> None:
    small = bench.run_child([sys.executable, "-c", "print('hi')"])
    big = bench.run_child([sys.executable, "-c", "b = b'x' * (200 << 20); print(len(b))"])
    assert small.stdout.strip() == "hi"
    assert big.stdout.strip() == str(200 << 20)
    assert small.peak_rss_mb < 100
    assert big.peak_rss_mb >= small.peak_rss_mb + 190
    assert big.seconds > 0


def test_child_peak_rss_includes_the_processes_it_waited_for() -> None:
    grandchild = "b = b'x' * (200 << 20)"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    run = bench.run_child([sys.executable, "-c", code])
    assert run.peak_rss_mb >= 190


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = b"x" * (300 << 20)  # the parent is large when it spawns the child
    code = "from market_assets.devtools import bench; print(bench.peak_rss_mb())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(run.stdout) < 250
    del ballast


def test_failed_child_raises_with_its_stderr() -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        bench.run_child([sys.executable, "-c", "import sys; sys.exit('no input file')"])
    assert err.value.returncode == 1
    assert "no input file" in err.value.stderr


def test_uncaptured_stdout_is_discarded() -> None:
    run = bench.run_child([sys.executable, "-c", "print('x' * 1000)"], capture_stdout=False)
    assert run.stdout == ""


def test_best_of_keeps_the_fastest_time_and_the_highest_peak() -> None:
    runs = iter(
        [
            {"seconds": 3.0, "peak_rss_mb": 100.0, "run": 1},
            {"seconds": 1.0, "peak_rss_mb": 90.0, "run": 2},
            {"seconds": 2.0, "peak_rss_mb": 120.0, "run": 3},
        ]
    )
    best = bench.best_of(3, lambda: next(runs))
    assert best == {"seconds": 1.0, "peak_rss_mb": 120.0, "run": 2}


def test_stopwatch_times_its_block() -> None:
    with bench.Stopwatch() as sw:
        time.sleep(0.05)
    elapsed = sw.seconds
    time.sleep(0.02)
    assert 0.05 <= elapsed < 1.0
    assert sw.seconds == elapsed  # stopped at the end of the block


def test_sample_day_is_generated_once_then_reused(tmp_path: Path) -> None:
    said: list[str] = []
    root = bench.sample_day(tmp_path, "200", say=said.append)
    again = bench.sample_day(tmp_path, 200, say=said.append)
    assert root == again == tmp_path / "mirror-200"
    assert len(said) == 2  # "generating ..." and "done" once, nothing the second time
    key = "us_stocks_sip/trades_v1/2026/11/2026-11-20.csv.gz"
    assert (root / key).stat().st_size > 0
    assert bench.sample_day(tmp_path, 200, seed=2, say=said.append).name == "mirror-200-seed2"


def test_table_aligns_text_left_and_numbers_right() -> None:
    table = bench.format_table(["run", "seconds"], [("gzip", "3.85"), ("ours, all", "12.10")])
    assert table.splitlines() == [
        "run        seconds",
        "gzip          3.85",
        "ours, all    12.10",
    ]
    assert bench.format_checks({"fast": True, "small": False}) == ("  [PASS] fast\n  [FAIL] small")


def test_run_config_points_at_the_runs_mirror_and_warehouse_and_keeps_the_rest(tmp_path):
    from market_assets.devtools.bench import write_run_config
    from market_assets.settings import load_settings

    repo = Path(__file__).resolve().parents[2]
    path = write_run_config(
        repo / "config.toml", tmp_path, tmp_path / "mirror", stock_tickers='["*"]'
    )
    s = load_settings(path)
    assert str(s.massive.local_root) == str(tmp_path / "mirror")
    assert s.ingest.stock_tickers == ["*"]
    assert str(s.storage.root) == str(tmp_path / "warehouse")
