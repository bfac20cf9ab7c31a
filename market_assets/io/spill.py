# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Exact duplicate counting over rows in any order, in bounded memory: the rows' key
columns are hash-partitioned into temporary Arrow files, then each partition is counted
on its own (rows sharing a key always land in the same partition).

The fallback of :class:`market_assets.core.quality.RunDuplicateCounter` when a partition's
rows turn out not to be ordered by ticker.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.quality import DuplicateCount, count_duplicates

# Rows per partition: a partition's keys and their group_by table fit in tens of MB.
ROWS_PER_PARTITION = 1_000_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def partition_count(rows: int, rows_per_partition: int = ROWS_PER_PARTITION) -> int:
    """Partitions for ``rows`` so that each holds about ``rows_per_partition``."""
    return max(1, math.ceil(rows / rows_per_partition))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads similar keys over every partition."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def partition_of(batch: pa.RecordBatch, ticker: str, order: str, partitions: int) -> np.ndarray:
    """Partition of each row, from its ``ticker`` text and its ``order`` number (a column
    every duplicate shares, e.g. the sequence number)."""
    encoded = pc.dictionary_encode(batch.column(ticker))
    # One hash per distinct ticker, the same in every batch; a null ticker hashes to 0.
    crc = [zlib.crc32(v.encode()) for v in encoded.dictionary.to_pylist()] + [0]
    codes = pc.fill_null(encoded.indices, len(crc) - 1).to_numpy(zero_copy_only=False)
    h = np.asarray(crc, dtype=np.uint64)[codes]
    col = batch.column(order)
    if not pa.types.is_integer(col.type):
        col = col.view(pa.int64())
    values = pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return (_mix(h * _GOLDEN ^ values.view(np.uint64)) % np.uint64(partitions)).astype(np.int64)


def count_duplicates_spilled(
    batches: Iterable[pa.RecordBatch],
    columns: Sequence[str],
    order: str,
    partitions: int,
    directory: str | Path | None = None,
    ticker: str = "ticker",
) -> DuplicateCount:
    """Exact :func:`count_duplicates` of ``columns`` over ``batches`` in any order, holding
    one partition at a time (``partitions`` of them, spilled under ``directory``)."""
    total = DuplicateCount()
    with tempfile.TemporaryDirectory(prefix="dup-spill-", dir=directory) as tmp:
        paths = [Path(tmp) / f"part-{i:05d}.arrow" for i in range(partitions)]
        writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                keys = batch.select(list(columns))
                part = partition_of(keys, ticker, order, partitions)
                by_part = np.argsort(part, kind="stable")
                bounds = np.searchsorted(part[by_part], np.arange(partitions + 1))
                for p in np.flatnonzero(np.diff(bounds)):
                    rows = keys.take(pa.array(by_part[bounds[p] : bounds[p + 1]]))
                    if p not in writers:
                        writers[p] = pa.ipc.new_stream(str(paths[p]), keys.schema)
                    writers[p].write_batch(rows)
        finally:
            for w in writers.values():
                w.close()
        for p in sorted(writers):
            with pa.memory_map(str(paths[p])) as source:
                found = count_duplicates(pa.ipc.open_stream(source).read_all(), columns)
            total.rows += found.rows
            total.add(found.duplicates, found.examples)
    return total
