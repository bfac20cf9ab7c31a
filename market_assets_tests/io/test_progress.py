# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import time

from market_assets.io.progress import ProgressReporter, format_progress
from market_assets.io.reader import ReadStats


def test_progress_line_has_bytes_percent_rate_rows_and_eta():
    s = ReadStats(
        source="f.csv.gz",
        bytes_total=200_000_000,
        bytes_read=50_000_000,
        rows_read=1_000_000,
        rows_kept=20_000,
    )
    s.started = time.monotonic() - 2.0
    line = format_progress(s)
    assert line.startswith("f.csv.gz: 50.0/200.0 MB (25.0%)")
    assert "25.0 MB/s" in line or "24.9 MB/s" in line
    assert "rows 1,000,000 parsed / 20,000 kept / 0 rejected" in line
    assert "ETA 6.0 s" in line or "ETA 6.1 s" in line


def test_reporter_logs_at_the_interval_and_at_the_end():
    lines: list[str] = []
    rep = ProgressReporter(lines.append, interval_s=3600, label="x", bar=False)
    s = ReadStats(source="f", bytes_total=10, bytes_read=5)
    rep(s)
    assert lines == []  # interval not reached
    s.finished = time.monotonic()
    s.bytes_read = 10
    rep(s)
    assert len(lines) == 1 and "(100.0%)" in lines[0]


def test_reporter_drives_a_progress_bar(capsys):
    rep = ProgressReporter(lambda _: None, interval_s=0.0, label="stock_trades", bar=True)
    s = ReadStats(source="f", bytes_total=10, bytes_read=5)
    rep(s)
    s.finished = time.monotonic()
    rep(s)
    assert rep._bar is None  # stopped at the end
