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

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")


def partition_dir(output: Path, window: str, day: dt.date) -> Path:
    return Path(output) / f"window={window}" / f"dt={day.isoformat()}"


READ_BATCH_ROWS = 4_096


def live_files(output: Path, window: str, day: dt.date) -> list[Path]:
    """The day's written files of one window size, in window order (by their first window
    start; a window is written at most once, so the files do not overlap)."""
    folder = partition_dir(output, window, day)
    if not folder.is_dir():
        return []
    found = [(m, p) for p in folder.iterdir() if (m := _PART.match(p.name))]
    return [p for m, p in sorted(found, key=lambda mp: (int(mp[0][1]), int(mp[0][2])))]


def read_live_partition(
    output: Path, window: str, day: dt.date, batch_rows: int = READ_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The day's live rows of one window size in ``window_start`` order, in batches of
    about ``batch_rows`` rows (nothing when live wrote none). Live writes a small file per
    close, so the rows of consecutive files are gathered into one batch (fewer, larger
    batches for the reader); memory holds at most one batch more than ``batch_rows``."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for path in live_files(output, window, day):
        with pq.ParquetFile(path) as f:
            for batch in f.iter_batches(batch_size=batch_rows):
                held.append(batch)
                rows += batch.num_rows
                if rows >= batch_rows:
                    yield _one_batch(held)
                    held, rows = [], 0
    if held:
        yield _one_batch(held)


def _one_batch(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _ranges(folder: Path) -> list[tuple[int, int]]:
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _PART.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return sorted(out)


class LiveWindowStore:
    """Writes one day's closed windows, each at most once."""

    def __init__(self, output: Path, day: dt.date, windows: list[str]) -> None:
        self.output = Path(output)
        self.day = day
        self.written = {w: _ranges(partition_dir(self.output, w, day)) for w in windows}

    def last_end_ns(self, window: str, window_ns: int) -> int | None:
        """End of the latest window of this size already on disk (None: nothing yet)."""
        r = self.written.get(window)
        return r[-1][1] + window_ns if r else None

    def is_written(self, window: str, start_ns: int) -> bool:
        return any(a <= start_ns <= b for a, b in self.written.get(window, ()))

    def write(self, window: str, rows: pa.Table) -> Path | None:
        """Write the rows (one per window, ``window_start`` ascending) not on disk yet;
        returns the file, or None when every row was written before."""
        starts = pc.cast(rows.column("window_start"), pa.int64()).to_pylist()
        keep = [not self.is_written(window, s) for s in starts]
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
        self.written.setdefault(window, []).append((starts[0], starts[-1]))
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
