# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Sorting a batch stream in bounded memory: same rows as an in-memory stable sort, whether
it fits in one run or is spilled and merged; temporary files are removed."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from market_assets.io.external_sort import sorted_batches

KEYS = ["underlying", "sip_timestamp"]


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    u = rng.choice(["SPY", "QQQ", "AAPL", "SPYG", None], n).tolist()
    ts = rng.integers(0, 40, n)  # many equal keys: the order among them must be kept
    return pa.table(
        {
            "underlying": pa.array(u, pa.string()),
            "sip_timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC"), mask=rng.random(n) < 0.02),
            "row": np.arange(n),
            "conditions": pa.array(
                [[int(i)] for i in rng.integers(0, 60, n)], pa.list_(pa.int32())
            ),
        }
    )


def _sorted(table: pa.Table, **kw) -> pa.Table:
    rng = np.random.default_rng(0)
    batches = table.to_batches(max_chunksize=int(rng.integers(1, 300)))
    out = list(sorted_batches(batches, table.schema, KEYS, **kw))
    return pa.Table.from_batches(out, schema=table.schema)


@pytest.mark.parametrize("seed", range(6))
def test_spilled_and_merged_runs_equal_a_stable_in_memory_sort(seed) -> None:
    table = _table(3000, seed)
    expected = table.sort_by([(k, "ascending") for k in KEYS])
    rng = np.random.default_rng(seed)
    got = _sorted(table, run_rows=int(rng.integers(50, 900)), merge_rows=int(rng.integers(1, 500)))
    assert got.equals(expected)


def test_a_stream_that_fits_one_run_is_sorted_in_memory(tmp_path) -> None:
    table = _table(500, 9)
    got = _sorted(table, run_rows=10_000, tmp_dir=str(tmp_path))
    assert got.equals(table.sort_by([(k, "ascending") for k in KEYS]))
    assert list(tmp_path.iterdir()) == []


def test_spill_files_are_removed_when_done_or_abandoned(tmp_path) -> None:
    table = _table(2000, 3)
    stream = sorted_batches(
        table.to_batches(max_chunksize=100), table.schema, KEYS, run_rows=300, tmp_dir=str(tmp_path)
    )
    next(stream)
    (folder,) = tmp_path.iterdir()
    assert len(os.listdir(folder)) == 7  # 2000 rows in runs of 300
    stream.close()
    assert list(tmp_path.iterdir()) == []
    assert (
        sum(
            b.num_rows
            for b in sorted_batches(
                table.to_batches(), table.schema, KEYS, 300, tmp_dir=str(tmp_path)
            )
        )
        == 2000
    )
    assert list(tmp_path.iterdir()) == []


def test_empty_stream_and_unsortable_keys() -> None:
    table = _table(0, 1)
    assert list(sorted_batches([], table.schema, KEYS)) == []
    with pytest.raises(TypeError, match="conditions"):
        list(sorted_batches(table.to_batches(), table.schema, ["conditions"]))
