# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Live windows on disk (io.live_store): each window written once, across restarts, and
read back in window order a few at a time."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from market_assets.core.schemas import TS
from market_assets.io import live_store
from market_assets.io.live_store import (
    LiveWindowStore,
    WrittenRanges,
    live_files,
    partition_dir,
    read_live_partition,
)

DAY = dt.date(2026, 11, 20)
M = 60_000_000_000


def _rows(starts: list[int]) -> pa.Table:
    return pa.table({"window_start": pa.array(starts, pa.int64()).cast(TS), "x": starts})


def test_a_window_is_written_once_even_when_closed_again_after_a_restart(tmp_path: Path) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    assert store.write("1m", _rows([0, M, 2 * M])) is not None and store.last_rows == 3
    again = LiveWindowStore(tmp_path, DAY, ["1m"])  # a restart reads the files' names
    assert again.last_end_ns("1m", M) == 3 * M
    assert again.write("1m", _rows([M, 2 * M])) is None and again.last_rows == 0
    assert again.write("1m", _rows([2 * M, 3 * M, 4 * M])) is not None and again.last_rows == 2
    folder = partition_dir(tmp_path, "1m", DAY)
    starts = pq.ParquetDataset(folder).read()["x"].to_pylist()
    assert sorted(starts) == [0, M, 2 * M, 3 * M, 4 * M]


def test_written_ranges_answer_in_any_order_with_overlaps() -> None:
    ranges = [(10, 20), (0, 5), (30, 30), (12, 40), (50, 60)]
    r = WrittenRanges(ranges[:2])
    for a, b in ranges[2:]:
        r.add(a, b)
    for start in range(-2, 65):
        assert r.holds(start) == any(a <= start <= b for a, b in ranges), start


def test_a_days_files_are_merged_into_one_and_a_restart_still_skips_its_windows(
    tmp_path: Path,
) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    for i in range(5):
        store.write("1m", _rows([2 * i * M, (2 * i + 1) * M]))
    merged = store.compact()["1m"]
    folder = partition_dir(tmp_path, "1m", DAY)
    assert [p.name for p in folder.iterdir()] == [merged.name] == [f"day-0-{9 * M}.parquet"]
    assert pq.read_table(merged)["x"].to_pylist() == [i * M for i in range(10)]
    again = LiveWindowStore(tmp_path, DAY, ["1m"])
    assert again.write("1m", _rows([9 * M, 10 * M])) is not None and again.last_rows == 1
    # A compaction stopped after its rename: the merged parts are deleted at the next start.
    (folder / f"part-{2 * M}-{3 * M}.parquet").write_bytes(merged.read_bytes())
    LiveWindowStore(tmp_path, DAY, ["1m"])
    assert sorted(p.name for p in folder.iterdir()) == [
        f"day-0-{9 * M}.parquet",
        f"part-{10 * M}-{10 * M}.parquet",
    ]
    assert LiveWindowStore(tmp_path, DAY, ["1m"]).compact()["1m"].name == f"day-0-{10 * M}.parquet"


def test_the_days_rows_come_back_in_window_order_in_bounded_batches(tmp_path: Path) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    base = 1_763_649_000_000_000_000
    # Written out of window order (a restart can fill an earlier hole): read in window order.
    for chunk in ([4, 5, 6, 7, 8, 9, 10, 11], [0, 1, 2], [3]):
        store.write("1m", _rows([base + i * M for i in chunk]))
    assert len(live_files(tmp_path, "1m", DAY)) == 3
    batches = list(read_live_partition(tmp_path, "1m", DAY, batch_rows=3))
    # Small files are gathered into batches of about batch_rows (never two batches' worth).
    assert all(3 <= b.num_rows < 6 for b in batches[:-1]) and len(batches) < 6
    starts = pa.Table.from_batches(batches)["window_start"].cast(pa.int64()).to_pylist()
    assert starts == [base + i * M for i in range(12)]


def test_a_compacted_day_reads_each_window_once(tmp_path: Path) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    for chunk in ([0, 1], [2, 3], [4]):
        store.write("1m", _rows([i * M for i in chunk]))
    store.compact()
    starts = pa.Table.from_batches(list(read_live_partition(tmp_path, "1m", DAY)))
    assert starts["x"].to_pylist() == [i * M for i in range(5)]


def test_a_part_left_inside_a_merged_files_range_is_not_read_twice(tmp_path: Path) -> None:
    # A compaction stopped between renaming the merged file and deleting its parts.
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([0, M]))
    store.write("1m", _rows([2 * M]))
    store.compact()
    folder = partition_dir(tmp_path, "1m", DAY)
    pq.write_table(_rows([M, 2 * M]), folder / f"part-{M}-{2 * M}.parquet")
    assert [p.name for p in live_files(tmp_path, "1m", DAY)] == [f"day-0-{2 * M}.parquet"]
    rows = pa.Table.from_batches(list(read_live_partition(tmp_path, "1m", DAY)))
    assert rows["x"].to_pylist() == [0, M, 2 * M]


def test_a_day_without_live_output_reads_nothing(tmp_path: Path) -> None:
    assert live_files(tmp_path, "5m", DAY) == []
    assert list(read_live_partition(tmp_path / "absent", "5m", DAY)) == []


def test_rows_around_an_earlier_runs_file_never_overlap_it(tmp_path: Path) -> None:
    # A second run (say with a window size added) fills the holes on both sides of what
    # the first wrote: one file per side, so files in name order are in window order.
    LiveWindowStore(tmp_path, DAY, ["1m"]).write("1m", _rows([4 * M, 5 * M]))
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([i * M for i in (0, 1, 2, 3, 4, 5, 6)]))
    assert store.last_rows == 5
    names = [p.name for p in live_files(tmp_path, "1m", DAY)]
    assert names == [
        f"part-0-{3 * M}.parquet",
        f"part-{4 * M}-{5 * M}.parquet",
        f"part-{6 * M}-{6 * M}.parquet",
    ]
    read = pa.Table.from_batches(list(read_live_partition(tmp_path, "1m", DAY)))
    assert read["x"].to_pylist() == [i * M for i in range(7)]
    merged = store.compact()["1m"]
    assert pq.read_table(merged)["x"].to_pylist() == [i * M for i in range(7)]
    assert LiveWindowStore(tmp_path, DAY, ["1m"]).last_end_ns("1m", M) == 7 * M


def test_an_earlier_merged_file_left_by_a_stopped_compaction_is_not_read_twice(
    tmp_path: Path,
) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([0, M]))
    store.write("1m", _rows([2 * M]))
    first = store.compact()["1m"]
    kept = first.read_bytes()
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([3 * M]))
    store.compact()
    first.write_bytes(kept)  # the second compaction stopped before deleting it
    read = pa.Table.from_batches(list(read_live_partition(tmp_path, "1m", DAY)))
    assert read["x"].to_pylist() == [0, M, 2 * M, 3 * M]
    LiveWindowStore(tmp_path, DAY, ["1m"])  # the next start deletes it
    assert [p.name for p in partition_dir(tmp_path, "1m", DAY).iterdir()] == [
        f"day-0-{3 * M}.parquet"
    ]


def test_files_of_runs_with_other_columns_are_named_not_mixed(tmp_path: Path, caplog) -> None:
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([0, M]))
    store.write("1m", _rows([2 * M]).append_column("extra", pa.array([1.0])))
    with pytest.raises(ValueError, match=r"part-0-.*part-.*only in the second: \['extra'\]"):
        list(read_live_partition(tmp_path, "1m", DAY))
    with caplog.at_level(logging.WARNING):
        assert store.compact() == {}
    assert "not merged" in caplog.text and len(live_files(tmp_path, "1m", DAY)) == 2


def test_a_merge_is_written_a_row_group_at_a_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(live_store, "COMPACT_ROW_GROUP", 4)
    store = LiveWindowStore(tmp_path, DAY, ["1m"])
    store.write("1m", _rows([i * M for i in range(9)]))  # an earlier day's worth in one file
    store.write("1m", _rows([9 * M, 10 * M]))
    merged = store.compact()["1m"]
    meta = pq.ParquetFile(merged).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 3]
    assert pq.read_table(merged)["x"].to_pylist() == [i * M for i in range(11)]
