# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from market_assets.io.parquet_store import _HOST, ParquetStore

SCHEMA = pa.schema([("ticker", pa.string()), ("x", pa.float64()), ("n", pa.int64())])


def batches(rows: int, size: int = 10_000, fail_after: int | None = None):
    for start in range(0, rows, size):
        if fail_after is not None and start >= fail_after:
            raise RuntimeError("source broke mid-stream")
        n = min(size, rows - start)
        yield pa.record_batch(
            [
                pa.array(["SPY"] * n),
                pa.array(np.random.default_rng(start).random(n)),
                pa.array(range(start, start + n)),
            ],
            schema=SCHEMA,
        )


def test_rows_rotate_into_parts_with_row_groups_and_metadata(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=16_384, file_target_mb=1)
    res = store.write_partition(
        "stock_trades", "2026-11-20", batches(300_000), SCHEMA, {"source_key": "k.csv.gz"}
    )
    part_dir = tmp_path / "stock_trades" / "dt=2026-11-20"
    files = sorted(p.name for p in part_dir.iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(len(files))] and len(files) > 1
    assert res.rows == 300_000 and len(res.files) == len(files)
    meta = pq.ParquetFile(part_dir / files[0])
    assert meta.metadata.row_group(0).num_rows == 16_384
    assert meta.metadata.row_group(0).column(1).compression == "ZSTD"
    md = store.read_metadata(str(part_dir / files[0]))
    assert (
        md["market_assets.schema_version"] == "1" and md["market_assets.source_key"] == "k.csv.gz"
    )
    t = store.dataset("stock_trades", ["2026-11-20"]).to_table()
    assert t.num_rows == 300_000 and sorted(t.column("n").to_pylist()) == list(range(300_000))
    # hive layout readable by any engine; staging folders are invisible
    assert ds.dataset(tmp_path / "stock_trades", partitioning="hive").count_rows() == 300_000


def test_failed_write_leaves_previous_partition_intact(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(50_000), SCHEMA)
    before = sorted((tmp_path / "a" / "dt=2026-11-20").iterdir())
    with pytest.raises(RuntimeError, match="broke mid-stream"):
        store.write_partition("a", "2026-11-20", batches(90_000, fail_after=40_000), SCHEMA)
    assert sorted((tmp_path / "a" / "dt=2026-11-20").iterdir()) == before
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 50_000
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["dt=2026-11-20"]  # no staging left


def test_rerun_replaces_the_partition(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(50_000), SCHEMA)
    store.write_partition("a", "2026-11-20", batches(7), SCHEMA)
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 7


def test_empty_stream_writes_an_empty_partition(tmp_path):
    store = ParquetStore(str(tmp_path))
    res = store.write_partition("a", "2026-11-20", iter(()), SCHEMA)
    assert res.rows == 0 and store.dataset("a", ["2026-11-20"]).schema.names == SCHEMA.names


def test_loading_a_missing_partition_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="2026-11-19 not materialized"):
        ParquetStore(str(tmp_path)).dataset("a", ["2026-11-19"])


def test_rejects_file_is_written_and_cleared(tmp_path):
    store = ParquetStore(str(tmp_path))
    path = store.write_rejects(
        "stock_trades", "2026-11-20", [{"line": 7, "reason": "price", "text": "x"}]
    )
    assert '"line": 7' in open(path).read()
    store.write_rejects("stock_trades", "2026-11-20", [])
    assert not (tmp_path / "_rejects" / "stock_trades" / "dt=2026-11-20").exists()


def test_s3_warehouse_root(s3_server):
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="warehouse")
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=s3_server,
        scheme="http",
        region="us-east-1",
    )
    store = ParquetStore(
        "s3://warehouse/prefix", row_group_rows=4096, file_target_mb=1, filesystem=fs
    )
    store.write_partition("a", "2026-11-20", batches(30_000), SCHEMA)
    store.write_partition("a", "2026-11-20", batches(20_000), SCHEMA)
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket="warehouse")["Contents"]
        if o["Key"].endswith(".parquet")
    ]
    assert keys == ["prefix/a/dt=2026-11-20/part-00000.parquet"]
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 20_000


def test_a_partition_is_staged_outside_the_assets_folder(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(5_000), SCHEMA)
    seen = []

    def watched():
        for i, b in enumerate(batches(30_000)):
            if i == 2:  # mid-write: the asset's folder holds only the finished partition
                seen.append(sorted(p.name for p in (tmp_path / "a").rglob("*")))
                seen.append(list((tmp_path / "_staging" / "a" / "dt=2026-11-20").iterdir()))
            yield b

    store.write_partition("a", "2026-11-20", watched(), SCHEMA)
    assert seen[0] == ["dt=2026-11-20", "part-00000.parquet"]
    assert len(seen[1]) == 1
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 30_000
    assert not list((tmp_path / "_staging").rglob("*.parquet"))


def test_a_staged_partition_not_committed_is_discarded(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(5_000), SCHEMA)
    with store.stage("a", "2026-11-20") as staged:
        staged.write(batches(7), SCHEMA)
        assert staged.dataset().count_rows() == 7  # the staged rows can be checked
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 5_000
    assert not list((tmp_path / "_staging").rglob("*.parquet"))


KILLED_WRITER = """
import sys, time
import numpy as np, pyarrow as pa
from market_assets.io.parquet_store import _HOST, ParquetStore
schema = pa.schema([("ticker", pa.string()), ("x", pa.float64()), ("n", pa.int64())])
def batches():
    for i in range(100):
        yield pa.record_batch([pa.array(["SPY"] * 10_000), pa.array(np.zeros(10_000)),
                               pa.array(range(10_000))], schema=schema)
        if i == 5:
            time.sleep(600)  # killed here, a part file half written
ParquetStore(sys.argv[1], row_group_rows=4096).write_partition("a", "2026-11-20", batches(), schema)
"""


def _killed_write(root) -> None:
    """Run a write of a/dt=2026-11-20 in another process and SIGKILL it mid-file."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root)])
    deadline = time.monotonic() + 60
    try:
        while not any(p.stat().st_size > 0 for p in root.glob("_staging/**/*.parquet")):
            assert time.monotonic() < deadline and proc.poll() is None, "writer never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_readers_never_see_a_killed_write_and_the_next_write_removes_it(tmp_path):
    import duckdb
    import polars as pl

    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(5_000), SCHEMA)
    store.write_partition("a", "2026-11-19", batches(3_000), SCHEMA)
    _killed_write(tmp_path)
    # Inside the asset's folder the half-written file would break every scan.
    half = next(tmp_path.glob("_staging/**/*.parquet"))
    shutil.copytree(tmp_path / "a", tmp_path / "copy" / "a")
    shutil.copy(half, tmp_path / "copy" / "a" / "dt=2026-11-20" / "part-99999.parquet")
    # How polars words it depends on how far the killed writer got (4 bytes or more).
    with pytest.raises(pl.exceptions.ComputeError, match="PAR1|footer"):
        pl.scan_parquet(tmp_path / "copy" / "a", hive_partitioning=True).collect()
    shutil.rmtree(tmp_path / "copy")

    assert ds.dataset(tmp_path / "a", partitioning="hive").count_rows() == 8_000
    lazy = pl.scan_parquet(tmp_path / "a", hive_partitioning=True)
    assert lazy.select(pl.len()).collect().item() == 8_000
    assert sorted(lazy.select("dt").unique().collect()["dt"].cast(str).to_list()) == [
        "2026-11-19",
        "2026-11-20",
    ]
    sql = f"SELECT count(*) FROM read_parquet('{tmp_path}/a/**/*.parquet', hive_partitioning=true)"
    assert duckdb.connect().execute(sql).fetchone()[0] == 8_000

    # The next write (any partition) removes the dead writer's staging folder.
    store.write_partition("a", "2026-11-19", batches(1_000), SCHEMA)
    assert not list((tmp_path / "_staging").rglob("*.parquet"))
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 5_000


def test_a_writer_killed_between_its_two_renames_gets_the_old_partition_put_back(tmp_path):
    store = ParquetStore(str(tmp_path), row_group_rows=4096)
    store.write_partition("a", "2026-11-20", batches(5_000), SCHEMA)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid = int(dead.stdout)
    # What a writer killed right after moving the old partition aside leaves behind.
    leftover = tmp_path / "_staging" / "a" / "dt=2026-11-20" / f"{'0' * 12}-{pid}-{_HOST}"
    leftover.mkdir(parents=True)
    (tmp_path / "a" / "dt=2026-11-20").rename(leftover / "old")
    assert store.remove_leftovers() == [str(leftover)]
    assert store.dataset("a", ["2026-11-20"]).count_rows() == 5_000
    assert not leftover.exists()


def test_a_running_writers_staging_is_left_alone(tmp_path):
    store = ParquetStore(str(tmp_path))
    running = tmp_path / "_staging" / "a" / "dt=2026-11-20" / f"{'0' * 12}-{os.getpid()}-{_HOST}"
    running.mkdir(parents=True)
    assert store.remove_leftovers() == [] and running.exists()


def test_row_groups_waiting_for_the_writer_thread_are_bounded_by_bytes(tmp_path, monkeypatch):
    # Wide rows (option_trades_classified: ~300 bytes) make a row group tens of MB: the
    # queue to the writer holds at most QUEUE_BYTES of them (always at least one).
    from market_assets.io import parquet_store

    store = ParquetStore(str(tmp_path), row_group_rows=16_384, file_target_mb=64)
    group_bytes = next(batches(16_384, size=16_384)).nbytes
    monkeypatch.setattr(parquet_store, "QUEUE_BYTES", int(group_bytes * 1.5))
    seen: list[int] = []
    write = parquet_store._RotatingWriter._write

    def slow_write(self, table):  # a slow disk: the producer runs ahead
        seen.append(self._queued_bytes)
        time.sleep(0.02)
        write(self, table)

    monkeypatch.setattr(parquet_store._RotatingWriter, "_write", slow_write)
    res = store.write_partition("stock_trades", "2026-11-20", batches(300_000), SCHEMA)
    assert res.rows == 300_000
    assert max(seen) <= group_bytes * 1.5 and max(seen) > 0  # one waiting, never two
