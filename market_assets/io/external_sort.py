# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Sort a stream of record batches by key columns in bounded memory (external merge sort).

Batches are gathered into runs of at most ``run_rows`` rows, each sorted in memory. A
stream that fits in one run is sorted and re-emitted without touching the disk; otherwise
every run is spilled to a temporary Arrow IPC file and the runs are merged, reading each a
slice at a time. The sort is stable (equal keys keep their input order) and nulls sort last.
Key columns may be strings or integers/timestamps.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RUN_ROWS = 262_144  # rows sorted in memory at once
MERGE_ROWS = 262_144  # rows held by the merge, over all runs
OUT_ROWS = 65_536  # rows per emitted batch
# Rows per batch of a spilled run: the merge reads each run at least a batch at a time, so
# with many runs (a dense day) larger batches would hold runs x batch rows, not MERGE_ROWS.
SPILL_BATCH_ROWS = 8_192
_MAX = np.iinfo(np.int64).max


def sorted_batches(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    keys: Sequence[str],
    run_rows: int = RUN_ROWS,
    merge_rows: int = MERGE_ROWS,
    tmp_dir: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """``batches`` re-emitted in ascending order of ``keys`` (stable, nulls last)."""
    for k in keys:
        t = schema.field(k).type
        if not (pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_timestamp(t)):
            raise TypeError(f"sort key {k!r} is {t}; only strings, integers, timestamps sort")
    sort_keys = [(k, "ascending") for k in keys]
    pending: list[pa.RecordBatch] = []
    rows = 0
    with tempfile.TemporaryDirectory(prefix="market-assets-sort-", dir=tmp_dir) as folder:
        runs: list[_Run] = []
        for batch in batches:
            if batch.num_rows:
                pending.append(batch)
                rows += batch.num_rows
            if rows >= run_rows:
                runs.append(_spill(_sorted(pending, schema, sort_keys), folder, len(runs)))
                pending, rows = [], 0
        last = _sorted(pending, schema, sort_keys)
        if not runs:
            yield from last.to_batches(max_chunksize=OUT_ROWS)
            return
        if last.num_rows:
            runs.append(_spill(last, folder, len(runs)))
        del last, pending
        yield from _merge(runs, schema, keys, max(1, merge_rows // len(runs)))


def _sorted(batches: list[pa.RecordBatch], schema: pa.Schema, sort_keys: list) -> pa.Table:
    table = pa.Table.from_batches(batches, schema=schema)
    return table.sort_by(sort_keys) if table.num_rows else table


@dataclass
class _Run:
    """A sorted run on disk and the distinct values of its string keys."""

    path: str
    rows: int
    values: dict[str, pa.Array]


def _spill(table: pa.Table, folder: str, i: int) -> _Run:
    path = os.path.join(folder, f"run-{i:05d}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=SPILL_BATCH_ROWS)
    values = {
        f.name: pc.unique(table.column(f.name)).drop_null()
        for f in table.schema
        if pa.types.is_string(f.type)
    }
    return _Run(path, table.num_rows, values)


class _Cursor:
    """Reads one run a slice at a time; ``buffer`` holds its rows not yet emitted."""

    def __init__(self, run: _Run, slice_rows: int) -> None:
        self.file = pa.OSFile(run.path, "rb")
        self.reader = pa.ipc.open_file(self.file)
        self.next_batch = 0
        self.slice_rows = slice_rows
        self.buffer: pa.Table | None = None

    def fill(self) -> bool:
        """Append up to ``slice_rows`` more rows to the buffer; False when the run is done."""
        parts = [] if self.buffer is None else [self.buffer]
        got = 0
        while got < self.slice_rows and self.next_batch < self.reader.num_record_batches:
            b = self.reader.get_batch(self.next_batch)
            self.next_batch += 1
            parts.append(pa.Table.from_batches([b]))
            got += b.num_rows
        if not got:
            return False
        self.buffer = pa.concat_tables(parts)
        return True

    def close(self) -> None:
        self.file.close()


def _codes(table: pa.Table, keys: Sequence[str], dictionaries: dict[str, pa.Array]) -> list:
    """Each key as int64 numpy codes that order like the key (nulls largest)."""
    out = []
    for k in keys:
        col = table.column(k)
        if k in dictionaries:
            col = pc.index_in(col, value_set=dictionaries[k])
        col = pc.fill_null(pc.cast(col, pa.int64()), _MAX)
        out.append(col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False))
    return out


def _before(codes: list[np.ndarray], bound: list[int]) -> np.ndarray:
    """Rows whose key tuple is strictly less than ``bound``."""
    less = np.zeros(codes[0].size, dtype=bool)
    equal = np.ones(codes[0].size, dtype=bool)
    for c, b in zip(codes, bound, strict=True):
        less |= equal & (c < b)
        equal &= c == b
    return less


def _merge(
    runs: list[_Run], schema: pa.Schema, keys: Sequence[str], slice_rows: int
) -> Iterator[pa.RecordBatch]:
    dictionaries = {
        k: pc.unique(pa.concat_arrays([r.values[k] for r in runs])).sort()
        for k in keys
        if pa.types.is_string(schema.field(k).type)
    }
    cursors = [_Cursor(r, slice_rows) for r in runs]
    reading = [c.fill() for c in cursors]  # False once a run has no more rows on disk
    try:
        while any(c.buffer is not None and c.buffer.num_rows for c in cursors):
            codes = [
                _codes(c.buffer, keys, dictionaries) if c.buffer is not None else None
                for c in cursors
            ]
            # Every buffered row below the smallest last buffered key of the runs still
            # reading is final: no run holds anything smaller further on. Once every run
            # is fully read, everything left is.
            lasts = [tuple(int(k[-1]) for k in codes[i]) for i in range(len(cursors)) if reading[i]]
            bound = list(min(lasts)) if lasts else None
            parts, part_codes = [], []
            for c, code in zip(cursors, codes, strict=True):
                if code is None or not c.buffer.num_rows:
                    continue
                # A prefix (the buffer is sorted).
                n = c.buffer.num_rows if bound is None else int(_before(code, bound).sum())
                if n:
                    parts.append(c.buffer.slice(0, n))
                    part_codes.append([k[:n] for k in code])
                    c.buffer = c.buffer.slice(n)
            if parts:
                merged = pa.concat_tables(parts)
                # Stable: equal keys keep the run order, then the order within the run.
                order = np.lexsort(
                    [np.concatenate(k) for k in reversed(list(zip(*part_codes, strict=True)))]
                )
                yield from merged.combine_chunks().take(order).to_batches(max_chunksize=OUT_ROWS)
            # The runs holding the bound read on: all their buffered rows equal it.
            for i, c in enumerate(cursors):
                if reading[i] and tuple(int(k[-1]) for k in codes[i]) == tuple(bound or ()):
                    reading[i] = c.fill()
    finally:
        for c in cursors:
            c.close()


def _check_filled(filled: np.ndarray, lo: int) -> None:
    """Every position of a range given a row (as many rows as positions: then none twice)."""
    if not filled.all():
        first = lo + int(np.argmin(filled))
        raise ValueError(
            f"position {first:,} got no row (another got two): the destinations are not a "
            "permutation"
        )


def permuted(
    chunks: Iterable[tuple[np.ndarray, dict[str, np.ndarray]]],
    n: int,
    bucket_rows: int = RUN_ROWS,
    max_buckets: int = 512,
    tmp_dir: str | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Numeric columns put at their destination positions (``chunks``: destinations and
    columns, every position of 0..n-1 exactly once), handed out in position order.

    A one-pass distribution on disk: the rows, gathered a bucket's worth at a time, are
    appended to the bucket file of their position range (``bucket_rows`` positions, at
    most ``max_buckets`` files), column after column, then each bucket is read back and
    its rows scattered into place. No comparison sort; memory holds about two buckets.
    """
    size = max(bucket_rows, -(-n // max_buckets), 1)
    if size >= 2**31:
        raise ValueError(f"{n:,} rows need more than {max_buckets} buckets")
    n_buckets = max(1, -(-n // size))
    dtypes: dict[str, np.dtype] = {}
    segments: list[list[int]] = [[] for _ in range(n_buckets)]  # rows per appended segment
    with tempfile.TemporaryDirectory(prefix="market-assets-permute-", dir=tmp_dir) as folder:
        paths = [os.path.join(folder, f"b{i:04d}") for i in range(n_buckets)]
        files = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed below)

        def spill(parts: list[dict[str, np.ndarray]]) -> None:
            """Append the gathered rows (a bucket's worth at most) to their bucket files."""
            run = {k: np.concatenate([p[k] for p in parts]) for k in dtypes}
            bucket = run["dest"] // size
            if n_buckets > 1:
                order = np.argsort(bucket.astype(np.int16), kind="stable")  # radix
                bucket = bucket[order]
                run = {k: v[order] for k, v in run.items()}
            run["dest"] -= bucket * size  # stored as int32 offsets into the bucket
            edges = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
            for a, b in zip(edges, np.append(edges[1:], len(bucket)), strict=True):
                i = int(bucket[a])
                for k, t in dtypes.items():
                    np.ascontiguousarray(run[k][a:b], t).tofile(files[i])
                segments[i].append(int(b - a))

        try:
            gathered: list[dict[str, np.ndarray]] = []
            rows = 0
            for dest, cols in chunks:
                if not len(dest):
                    continue
                dest = np.asarray(dest, np.int64)
                if not dtypes:
                    dtypes = {"dest": np.dtype(np.int32), **{k: v.dtype for k, v in cols.items()}}
                if dest.min() < 0 or dest.max() >= n:
                    raise ValueError(f"a destination outside 0..{n - 1:,}")
                gathered.append({"dest": dest, **cols})
                rows += len(dest)
                if rows >= size:
                    spill(gathered)
                    gathered, rows = [], 0
            if gathered:
                spill(gathered)
        finally:
            for f in files:
                f.close()
        for i in range(n_buckets):
            lo, hi = i * size, min(n, (i + 1) * size)
            if sum(segments[i]) != hi - lo:
                raise ValueError(f"{sum(segments[i]):,} rows for positions {lo:,}..{hi - 1:,}")
            if hi <= lo:
                continue
            raw = np.fromfile(paths[i], np.uint8)
            os.remove(paths[i])
            out = {k: np.empty(hi - lo, t) for k, t in dtypes.items() if k != "dest"}
            filled = np.zeros(hi - lo, bool)
            offset = 0
            for rows in segments[i]:
                seg = {}
                for k, t in dtypes.items():
                    nbytes = rows * t.itemsize
                    seg[k] = raw[offset : offset + nbytes].view(t)
                    offset += nbytes
                at = seg["dest"]
                filled[at] = True
                for k, col in out.items():
                    col[at] = seg[k]
            del raw
            _check_filled(filled, lo)
            for start in range(0, hi - lo, OUT_ROWS):
                yield {k: v[start : start + OUT_ROWS] for k, v in out.items()}
