# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Live (prelim) feature windows on disk: ``{output}/window=<w>/dt=<day>/part-<a>-<b>.parquet``.

Each batch of closed windows is one small Parquet file written under a hidden temporary
name and renamed into place (a reader never sees half a file), named after the first and
last window start it holds (ns since the epoch). Those names are how a restarted ``live``
knows which windows are on disk: a window is written at most once per day.
(The batch warehouse's :mod:`market_assets.io.parquet_store` replaces whole partitions;
live appends one file per close instead.)

When a run ends, :meth:`LiveWindowStore.compact` merges each partition's files into one,
``day-<a>-<b>.parquet`` (1s windows would otherwise leave 23,400 files a day): written
under a temporary name and renamed, then the merged files are deleted. A reader listing
the folder in the moment between the two can see a window twice (``window_start`` is
unique per window: dedupe on it to be exact); a restart after a crash in that moment
deletes the leftover ``part-`` files inside a ``day-`` file's range.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_log = logging.getLogger(__name__)
_PART = re.compile(r"^(part|day)-(\d+)-(\d+)\.parquet$")
COMPACT_ROW_GROUP = 4096  # rows per row group of a merged file
# A few rows of many columns: dictionaries and per-column statistics would cost more than
# the data (window_start's are kept, for readers' filters).
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": False,
    "write_statistics": ["window_start"],
}


def partition_dir(output: Path, window: str, day: dt.date) -> Path:
    return Path(output) / f"window={window}" / f"dt={day.isoformat()}"


def _files(folder: Path) -> list[tuple[int, int, Path]]:
    """The partition's files as (first, last window start, path), by first start."""
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _PART.match(p.name)
        if m:
            out.append((int(m.group(2)), int(m.group(3)), p))
    return sorted(out)


def _ranges(folder: Path) -> list[tuple[int, int]]:
    return [(a, b) for a, b, _ in _files(folder)]


READ_BATCH_ROWS = 4_096


def live_files(output: Path, window: str, day: dt.date) -> list[Path]:
    """The day's written files of one window size, in window order (by their first window
    start). A ``part-`` file inside a merged ``day-`` file's range (a compaction caught
    between its rename and its deletes) is left out, so no window is read twice."""
    files = _files(partition_dir(output, window, day))
    stale = set(_merged_parts(files))
    return [p for _, _, p in files if p not in stale]


def read_live_partition(
    output: Path, window: str, day: dt.date, batch_rows: int = READ_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The day's live rows of one window size in ``window_start`` order, in batches of
    about ``batch_rows`` rows (nothing when live wrote none). Live writes a small file per
    close until the run compacts them, so the rows of consecutive files are gathered into
    one batch; memory holds at most one batch more than ``batch_rows``."""
    held: list[pa.RecordBatch] = []
    rows = 0
    files = live_files(output, window, day)
    first: tuple[Path, pa.Schema] | None = None
    for path in files:
        with pq.ParquetFile(path) as f:
            schema = f.schema_arrow.remove_metadata()
            if first is None:
                first = (path, schema)
            elif schema != first[1]:
                raise ValueError(_schema_difference(first[0], first[1], path, schema))
            for batch in f.iter_batches(batch_size=batch_rows):
                held.append(batch)
                rows += batch.num_rows
                if rows >= batch_rows:
                    yield _one_batch(held)
                    held, rows = [], 0
    if held:
        yield _one_batch(held)


def _schema_difference(a: Path, sa: pa.Schema, b: Path, sb: pa.Schema) -> str:
    only_a = sorted(set(sa.names) - set(sb.names))
    only_b = sorted(set(sb.names) - set(sa.names))
    what = (
        f"columns only in the first: {only_a[:5]}, only in the second: {only_b[:5]}"
        if only_a or only_b
        else "the same columns with other types or order"
    )
    return (
        f"live files of one partition differ ({a} and {b}: {what}); they were written by runs "
        "with other settings (features.aggression?): move one run's files aside"
    )


def _one_batch(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _merged_parts(files: list[tuple[int, int, Path]]) -> list[Path]:
    """The files already merged into a ``day-`` file: the ``part-`` files inside its range,
    and an earlier ``day-`` file inside a later one's (a second compaction stopped before
    deleting what it merged)."""
    merged = [(a, b) for a, b, p in files if p.name.startswith("day-")]

    def inside(a: int, b: int, day: bool) -> bool:
        return any(x <= a and b <= y and (not day or (x, y) != (a, b)) for x, y in merged)

    return [p for a, b, p in files if inside(a, b, p.name.startswith("day-"))]


def _finish_compaction(folder: Path) -> None:
    """Delete ``part-`` files inside a ``day-`` file's range: a compaction stopped between
    renaming the merged file and deleting what it merged."""
    for p in _merged_parts(_files(folder)):
        p.unlink(missing_ok=True)


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

    @property
    def last(self) -> int:
        """The latest window start any range reaches."""
        return self._max_end[-1]

    def starts_between(self, a: int, b: int) -> bool:
        """Whether a range begins strictly between window starts ``a`` and ``b``."""
        i = bisect.bisect_right(self._starts, a)
        return i < len(self._starts) and self._starts[i] < b

    def holds(self, start: int) -> bool:
        """Whether a range holds ``start``: among the ranges starting at or before it, the
        one reaching furthest reaches it."""
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._max_end[i] >= start

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __getitem__(self, i: int) -> tuple[int, int]:
        return self.ranges[i]


def _runs(rows: list[int], starts: list[int], written: WrittenRanges) -> list[list[int]]:
    """``rows`` (their window ``starts`` ascending) cut wherever a written range begins
    between two consecutive ones."""
    out: list[list[int]] = []
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        if i and not written.starts_between(starts[i - 1], start):
            out[-1].append(row)
        else:
            out.append([row])
    return out


class LiveWindowStore:
    """Writes one day's closed windows, each at most once."""

    def __init__(self, output: Path, day: dt.date, windows: list[str]) -> None:
        self.output = Path(output)
        self.day = day
        for w in windows:
            _finish_compaction(partition_dir(self.output, w, day))
        self.written = {
            w: WrittenRanges(_ranges(partition_dir(self.output, w, day))) for w in windows
        }
        self.last_written: list[int] = []  # positions of the rows the latest write() wrote

    @property
    def last_rows(self) -> int:
        """How many rows the latest :meth:`write` put on disk."""
        return len(self.last_written)

    def last_end_ns(self, window: str, window_ns: int) -> int | None:
        """End of the latest window of this size already on disk (None: nothing yet)."""
        r = self.written.get(window)
        return r.last + window_ns if r else None

    def is_written(self, window: str, start_ns: int) -> bool:
        r = self.written.get(window)
        return r is not None and r.holds(start_ns)

    def write(self, window: str, rows: pa.Table) -> Path | None:
        """Write the rows (one per window, ``window_start`` ascending) not on disk yet;
        returns the (last) file written, or None when every row was written before
        (``last_written``: the positions of the rows written). Rows on both sides of a file already on disk
        (a run filling holes around an earlier run's windows) go into one file per side,
        so no two files' ranges overlap and the files in name order are in window order."""
        starts = pc.cast(rows.column("window_start"), pa.int64()).to_pylist()
        written = self.written.setdefault(window, WrittenRanges())
        keep = [i for i, s in enumerate(starts) if not written.holds(s)]
        self.last_written = keep
        final = None
        for run in _runs(keep, [starts[i] for i in keep], written):
            final = self._write_file(
                window, rows.take(pa.array(run)), starts[run[0]], starts[run[-1]]
            )
        return final

    def _write_file(self, window: str, rows: pa.Table, first: int, last: int) -> Path:
        folder = partition_dir(self.output, window, self.day)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{first}-{last}.parquet"
        tmp = folder / f".tmp-{final.name}"
        with open(tmp, "wb") as f:
            pq.write_table(rows, f, **_WRITE_OPTIONS)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.written[window].add(first, last)
        return final

    def compact(self) -> dict[str, Path]:
        """Merge each window size's files of the day into one ``day-<a>-<b>.parquet``
        (streamed: row groups of up to ``COMPACT_ROW_GROUP`` rows); returns the merged
        files. Files of differing schemas (runs with other settings) are left as they are."""
        out = {}
        for window in self.written:
            folder = partition_dir(self.output, window, self.day)
            files = _files(folder)
            if len(files) < 2:
                continue
            schemas = {pq.read_schema(p).remove_metadata() for _, _, p in files}
            if len(schemas) != 1:
                _log.warning(
                    "%s: not merged: its files were written with %d different column sets "
                    "(runs with other settings)",
                    folder,
                    len(schemas),
                )
                continue
            final = folder / f"day-{files[0][0]}-{max(b for _, b, _ in files)}.parquet"
            tmp = folder / f".tmp-{final.name}"
            with open(tmp, "wb") as f:
                writer = pq.ParquetWriter(f, schemas.pop(), **_WRITE_OPTIONS)
                # A row group at a time: an earlier run's merged file can hold the whole day.
                pending: list[pa.RecordBatch] = []
                rows = 0
                for _, _, p in files:
                    with pq.ParquetFile(p) as part:
                        for batch in part.iter_batches(batch_size=COMPACT_ROW_GROUP):
                            pending.append(batch)
                            rows += batch.num_rows
                            if rows >= COMPACT_ROW_GROUP:
                                writer.write_table(
                                    pa.Table.from_batches(pending),
                                    row_group_size=COMPACT_ROW_GROUP,
                                )
                                pending, rows = [], 0
                if pending:
                    writer.write_table(
                        pa.Table.from_batches(pending), row_group_size=COMPACT_ROW_GROUP
                    )
                writer.close()
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            for _, _, p in files:
                if p != final:
                    p.unlink(missing_ok=True)
            out[window] = final
        return out


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
            current = _files(ddir)
            stale = set(_merged_parts(current))
            current = [(a, b, p) for a, b, p in current if p not in stale]
            files = [p for _, _, p in current]
            rows = sum(pq.read_metadata(p).num_rows for p in files)
            end = max((b for _, b, _ in current), default=None)
            last = dt.datetime.fromtimestamp(end / 1e9, tz=dt.UTC) if end is not None else None
            out.append(
                LivePartition(wdir.name.removeprefix("window="), day, len(files), rows, last)
            )
    return out
