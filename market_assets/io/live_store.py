# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Live (prelim) feature windows on disk: ``{output}/window=<w>/dt=<day>/part-<a>-<b>.parquet``.

Each batch of closed windows is one small Parquet file written under a hidden temporary
name and renamed into place (a reader never sees half a file), named after the first and
last window start it holds (ns since the epoch). Those names are how a restarted ``live``
knows which windows are on disk: a window is written at most once per day.
(The batch warehouse's :mod:`market_assets.io.parquet_store` replaces whole partitions;
live appends one file per close instead.)
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")


def partition_dir(output: Path, window: str, day: dt.date) -> Path:
    return Path(output) / f"window={window}" / f"dt={day.isoformat()}"


def _ranges(folder: Path) -> list[tuple[int, int]]:
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _PART.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return sorted(out)


class WrittenRanges:
    """The window-start ranges ``[first, last]`` of a partition's files: is a window in
    one? A binary search (files start in order; a restart may add overlapping ones)."""

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self._index(sorted(ranges or []))

    def _index(self, ranges: list[tuple[int, int]]) -> None:
        self.ranges = ranges
        self._starts = [a for a, _ in ranges]
        self._max_end = []  # the largest last start of ranges[: i + 1]
        for _, b in ranges:
            self._max_end.append(max(b, self._max_end[-1]) if self._max_end else b)

    def add(self, first: int, last: int) -> None:
        if self._starts and first < self._starts[-1]:  # out of order (rare): re-index
            self._index(sorted([*self.ranges, (first, last)]))
            return
        self.ranges.append((first, last))
        self._starts.append(first)
        self._max_end.append(max(last, self._max_end[-1]) if self._max_end else last)

    def holds(self, start: int) -> bool:
        """Whether a range holds ``start``: among the ranges starting at or before it, the
        one reaching furthest reaches it."""
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._max_end[i] >= start

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __getitem__(self, i: int) -> tuple[int, int]:
        return self.ranges[i]


class LiveWindowStore:
    """Writes one day's closed windows, each at most once."""

    def __init__(self, output: Path, day: dt.date, windows: list[str]) -> None:
        self.output = Path(output)
        self.day = day
        self.written = {
            w: WrittenRanges(_ranges(partition_dir(self.output, w, day))) for w in windows
        }
        self.last_rows = 0  # rows the latest write() put on disk

    def last_end_ns(self, window: str, window_ns: int) -> int | None:
        """End of the latest window of this size already on disk (None: nothing yet)."""
        r = self.written.get(window)
        return max(b for _, b in r.ranges) + window_ns if r else None

    def is_written(self, window: str, start_ns: int) -> bool:
        r = self.written.get(window)
        return r is not None and r.holds(start_ns)

    def write(self, window: str, rows: pa.Table) -> Path | None:
        """Write the rows (one per window, ``window_start`` ascending) not on disk yet;
        returns the file, or None when every row was written before (``last_rows``: the
        rows written)."""
        starts = pc.cast(rows.column("window_start"), pa.int64()).to_pylist()
        keep = [not self.is_written(window, s) for s in starts]
        self.last_rows = sum(keep)
        if not any(keep):
            return None
        if not all(keep):
            rows = rows.filter(pa.array(keep))
            starts = [s for s, k in zip(starts, keep, strict=True) if k]
        folder = partition_dir(self.output, window, self.day)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{starts[0]}-{starts[-1]}.parquet"
        tmp = folder / f".tmp-{final.name}"
        with open(tmp, "wb") as f:
            pq.write_table(rows, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.written.setdefault(window, WrittenRanges()).add(starts[0], starts[-1])
        return final


@dataclass(frozen=True)
class LivePartition:
    """One ``window=<w>/dt=<day>`` folder of live output."""

    window: str
    day: dt.date
    files: int
    rows: int
    last_window_start: dt.datetime | None


def live_partitions(output: Path) -> list[LivePartition]:
    """Every live output partition under ``output`` (reads only Parquet footers)."""
    out: list[LivePartition] = []
    root = Path(output)
    if not root.is_dir():
        return out
    for wdir in sorted(root.glob("window=*")):
        for ddir in sorted(wdir.glob("dt=*")):
            try:
                day = dt.date.fromisoformat(ddir.name.removeprefix("dt="))
            except ValueError:
                continue
            files = [p for p in ddir.iterdir() if _PART.match(p.name)]
            rows = sum(pq.read_metadata(p).num_rows for p in files)
            ranges = _ranges(ddir)
            last = dt.datetime.fromtimestamp(ranges[-1][1] / 1e9, tz=dt.UTC) if ranges else None
            out.append(
                LivePartition(wdir.name.removeprefix("window="), day, len(files), rows, last)
            )
    return out
