# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Ingest progress: periodic log lines, and a rich progress bar on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from market_assets.io.reader import ReadStats


def format_progress(s: ReadStats) -> str:
    """``label: 120.0/448.0 MB (26.8%) 210.3 MB/s, rows 1,234,567 parsed / 45,678 kept, ETA 1.6 s``."""
    mb, total = s.bytes_read / 1e6, s.bytes_total / 1e6
    elapsed = max(s.elapsed_s, 1e-9)
    rate = mb / elapsed
    pct = 100.0 * s.bytes_read / s.bytes_total if s.bytes_total else 100.0
    eta = (total - mb) / rate if rate > 0 else float("nan")
    return (
        f"{s.source}: {mb:,.1f}/{total:,.1f} MB ({pct:.1f}%) {rate:,.1f} MB/s, "
        f"rows {s.rows_read:,} parsed / {s.rows_kept:,} kept / {s.rows_rejected:,} rejected, "
        f"ETA {eta:,.1f} s"
    )


class ProgressReporter:
    """Callable for :class:`TradeReader`'s ``on_progress``: logs every ``interval_s`` and,
    when stderr is a terminal, drives a rich progress bar."""

    def __init__(
        self, log: Callable[[str], None], interval_s: float, label: str, bar: bool | None = None
    ):
        self.log, self.interval_s, self.label = log, interval_s, label
        self._last = time.monotonic()
        self._bar = None
        self._task = None
        if bar if bar is not None else sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[rows]}"),
                TimeRemainingColumn(),
                transient=False,
            )

    def __call__(self, s: ReadStats) -> None:
        if self._bar is not None:
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=s.bytes_total, rows="")
            self._bar.update(
                self._task,
                completed=s.bytes_read,
                rows=f"{s.rows_read:,} rows / {s.rows_kept:,} kept",
            )
        now = time.monotonic()
        done = s.finished is not None
        if done or now - self._last >= self.interval_s:
            self._last = now
            self.log(format_progress(s))
        if done and self._bar is not None:
            self._bar.stop()
            self._bar = None
