# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The live store's bounded reader: a day's rows in window order, a few at a time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from market_assets.io.live_store import LiveWindowStore, live_files, read_live_partition

DAY = dt.date(2026, 11, 20)
MIN = 60_000_000_000


def _rows(starts: list[int]) -> pa.Table:
    return pa.table(
        {
            "window_start": pa.array(starts, pa.timestamp("ns", "UTC")),
            "v": pa.array(np.asarray(starts, dtype=np.float64)),
        }
    )


def test_the_days_rows_come_back_in_window_order_in_bounded_batches(tmp_path):
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    base = 1_763_649_000_000_000_000
    # Written out of window order (a restart can fill an earlier hole): read in window order.
    for chunk in ([4, 5, 6, 7, 8, 9, 10, 11], [0, 1, 2], [3]):
        store.write("1m", _rows([base + i * MIN for i in chunk]))
    assert len(live_files(tmp_path, "1m", DAY)) == 3
    batches = list(read_live_partition(tmp_path, "1m", DAY, batch_rows=3))
    # Small files are gathered into batches of about batch_rows (never two batches' worth).
    assert all(3 <= b.num_rows < 6 for b in batches[:-1]) and len(batches) < 6
    starts = pa.Table.from_batches(batches)["window_start"].cast(pa.int64()).to_pylist()
    assert starts == [base + i * MIN for i in range(12)]


def test_a_day_without_live_output_reads_nothing(tmp_path):
    assert live_files(tmp_path, "5m", DAY) == []
    assert list(read_live_partition(tmp_path / "absent", "5m", DAY)) == []
