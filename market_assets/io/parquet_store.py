# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The one place Parquet is written: rotated part files, atomic partition replacement.

Layout: ``{root}/{asset_path}/dt=YYYY-MM-DD/part-NNNNN.parquet`` (hive style). A partition
is staged under ``{root}/_staging/{asset_path}/dt=.../{writer}/new``, outside every asset's
folder, so no reader of a dataset (pyarrow, polars, DuckDB, pandas) ever sees a half-written
file. :meth:`ParquetStore.stage` lets the caller look at the staged rows (run checks on
them) and decide: ``commit()`` swaps the partition in, anything else discards it, so a
failed, rejected or interrupted write leaves the previous partition as it was. A writer
killed before it could clean up leaves its staging folder behind; the next write removes
it (and puts back a partition it had moved aside). Batches are written by a separate
thread through a bounded queue, so parsing and compression overlap.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from market_assets.core.schemas import SCHEMA_VERSION
from market_assets.io.arrow_memory import release_unused_arrow_memory
from market_assets.io.sizes import MIB
from market_assets.settings import StorageSettings

# Columns with few distinct values: dictionary-encoded. Others are plain (dictionaries of
# timestamps or prices only cost time).
DICTIONARY_COLUMNS = (
    "ticker",
    "underlying",
    "contract_type",
    "greeks_status",
    "symbol",
    "window",
    "exchange",
    "tape",
)
STATISTICS_COLUMNS = (
    "ticker",
    "underlying",
    "expiration",
    "contract_type",
    "strike",
    "sip_timestamp",
    "greeks_status",
    "symbol",
    "window_start",
)
SCAN_BATCH_ROWS = 65_536
# Read one row group at a time, on the calling thread: the scanner's defaults (pre-buffering
# whole files, reading ahead up to 16 batches on every core) hold hundreds of MB for a day.
BOUNDED_SCAN_OPTIONS = {
    "batch_size": SCAN_BATCH_ROWS,
    "batch_readahead": 1,
    "fragment_readahead": 1,
    "use_threads": False,
    "fragment_scan_options": ds.ParquetFragmentScanOptions(pre_buffer=False),
}
_END = object()
QUEUE_BYTES = 64 << 20  # row groups waiting for the writer thread, at most (bytes)
STAGING = "_staging"
# A staging folder's name: who writes it, so that a later write can tell a leftover of a
# dead writer from a write still running.
_WRITER = re.compile(r"^(?P<uid>[0-9a-f]{12})-(?P<pid>[0-9]+)-(?P<host>.+)$")
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def asset_path(asset: str, symbol: str | None = None) -> str:
    """An asset's folder under the warehouse root: its name, except that ``features_<w>``
    of ``symbol`` lives under ``features/symbol=<S>/window=<w>`` (one hive-partitioned
    features table, [dt, symbol, window] as SPEC has it, so several symbols coexist)."""
    if asset.startswith("features_"):
        if not symbol:
            raise ValueError(f"{asset}: the features path needs the symbol")
        return f"features/symbol={symbol}/window={asset.removeprefix('features_')}"
    return asset


@dataclass
class WriteResult:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    row_groups: int = 0
    elapsed_s: float = 0.0


class ParquetStore:
    """A Parquet warehouse rooted at a local path or an ``s3://bucket/prefix`` URI."""

    def __init__(
        self,
        root: str,
        row_group_rows: int = 131_072,
        file_target_mb: float = 256,
        s3_endpoint_url: str = "",
        filesystem: pafs.FileSystem | None = None,
    ):
        self.uri = root
        self.row_group_rows = row_group_rows
        self.file_target_bytes = int(file_target_mb * MIB)
        if filesystem is not None:
            self.fs, self.root = filesystem, root.removeprefix("s3://").rstrip("/")
        elif root.startswith("s3://"):
            kwargs = {}
            if s3_endpoint_url:
                kwargs["endpoint_override"] = s3_endpoint_url
                kwargs["scheme"] = s3_endpoint_url.split("://", 1)[0]
            self.fs = pafs.S3FileSystem(**kwargs)
            self.root = root.removeprefix("s3://").rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), root.rstrip("/")
        self.is_s3 = isinstance(self.fs, pafs.S3FileSystem)

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> ParquetStore:
        """The warehouse of config.toml's ``[storage]``."""
        return cls(
            storage.root, storage.row_group_rows, storage.file_target_mb, storage.s3_endpoint_url
        )

    # -- paths ---------------------------------------------------------------------------
    def partition_dir(self, asset_path: str, partition: str) -> str:
        return f"{self.root}/{asset_path}/dt={partition}"

    def exists(self, asset_path: str, partition: str) -> bool:
        info = self.fs.get_file_info(self.partition_dir(asset_path, partition))
        return info.type == pafs.FileType.Directory and bool(
            self._files(self.partition_dir(asset_path, partition))
        )

    def _files(self, directory: str) -> list[str]:
        sel = pafs.FileSelector(directory, allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(sel) if i.path.endswith(".parquet"))

    # -- write ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, asset_path: str, partition: str) -> Iterator[StagedPartition]:
        """Stage one partition outside the dataset; it replaces the stored partition only
        when the caller calls ``commit()``, and is removed otherwise (also on error)."""
        self.remove_leftovers()
        staged = StagedPartition(self, asset_path, partition)
        try:
            yield staged
        finally:
            if not staged.committed:
                with contextlib.suppress(Exception):
                    self.fs.delete_dir(staged.directory)

    def write_partition(
        self,
        asset_path: str,
        partition: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write ``batches`` as the whole of one partition, replacing it atomically."""
        with self.stage(asset_path, partition) as staged:
            staged.write(batches, schema, metadata)
            return staged.commit()

    def remove_leftovers(self) -> list[str]:
        """Remove the staging folders of writers that died on this host (a killed run),
        putting back a partition one had moved aside; returns the folders removed."""
        removed = []
        selector = pafs.FileSelector(f"{self.root}/{STAGING}", allow_not_found=True, recursive=True)
        for info in self.fs.get_file_info(selector):
            name = info.path.rsplit("/", 1)[-1]
            parent = info.path.rsplit("/", 2)[-2] if info.path.count("/") >= 2 else ""
            found = _WRITER.match(name)
            if info.type != pafs.FileType.Directory or not found or not parent.startswith("dt="):
                continue
            if found["host"] != _HOST or _alive(int(found["pid"])):
                continue
            relative = info.path[len(f"{self.root}/{STAGING}/") :].rsplit("/", 1)[0]
            final = f"{self.root}/{relative}"
            old = f"{info.path}/old"
            if (
                self.fs.get_file_info(old).type == pafs.FileType.Directory
                and self.fs.get_file_info(final).type == pafs.FileType.NotFound
            ):
                self.fs.move(old, final)  # killed between moving the old one out and the new in
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_dir(info.path)
            removed.append(info.path)
        return removed

    # -- read ----------------------------------------------------------------------------
    def dataset(
        self, asset_path: str, partitions: Iterable[str], schema: pa.Schema | None = None
    ) -> ds.Dataset:
        """A lazy dataset over the given partitions (nothing is read until scanned)."""
        files: list[str] = []
        missing = []
        for p in partitions:
            fs_ = self._files(self.partition_dir(asset_path, p))
            if not fs_:
                missing.append(p)
            files.extend(fs_)
        if missing:
            where = f"{self.uri}/{asset_path}"
            raise FileNotFoundError(
                f"{where}: partition(s) {', '.join(missing)} not materialized; materialize them first"
            )
        return ds.dataset(files, schema=schema, format="parquet", filesystem=self.fs)

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a small file (a chart) at ``{root}/{relative}``, replacing it whole;
        returns its URI."""
        path = f"{self.root}/{relative}"
        directory = path.rsplit("/", 1)[0]
        self.fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/_tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, path)
        return f"s3://{path}" if self.is_s3 else path

    def read_metadata(self, path: str) -> dict[str, str]:
        with self.fs.open_input_file(path) as f:
            md = pq.ParquetFile(f).schema_arrow.metadata or {}
        return {k.decode(): v.decode() for k, v in md.items()}

    def write_rejects(
        self, asset_path: str, partition: str, rows: Iterable[Mapping[str, object]]
    ) -> str | None:
        """Replace the partition's reject file (JSON lines) with ``rows``, streamed; remove
        it when there are none."""
        directory = f"{self.root}/_rejects/{asset_path}/dt={partition}"
        path = f"{directory}/rejects.jsonl"
        self.fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/_rejects-{uuid.uuid4().hex[:8]}.jsonl"
        n = 0
        with self.fs.open_output_stream(tmp) as out:
            for r in rows:
                out.write((json.dumps(r) + "\n").encode())
                n += 1
        if not n:
            with contextlib.suppress(Exception):
                self.fs.delete_dir(directory)
            return None
        self.fs.move(tmp, path)
        return path


class StagedPartition:
    """A partition written under ``{root}/_staging/``: invisible to readers of the dataset
    until :meth:`commit` swaps it in."""

    def __init__(self, store: ParquetStore, asset_path: str, partition: str):
        self.store = store
        self.asset_path, self.partition = asset_path, partition
        self.final = store.partition_dir(asset_path, partition)
        writer = f"{uuid.uuid4().hex[:12]}-{os.getpid()}-{_HOST}"
        self.directory = f"{store.root}/{STAGING}/{asset_path}/dt={partition}/{writer}"
        self.new = f"{self.directory}/new"
        self.result: WriteResult | None = None
        self.committed = False

    def write(
        self,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write every batch into the staged partition (at least one file, even empty)."""
        started = time.monotonic()
        self.store.fs.create_dir(self.new, recursive=True)
        file_meta = {
            "market_assets.schema_version": SCHEMA_VERSION,
            "market_assets.asset": self.asset_path,
            "market_assets.partition": self.partition,
            **{f"market_assets.{k}": str(v) for k, v in (metadata or {}).items()},
        }
        schema = schema.with_metadata(
            {**(schema.metadata or {}), **{k.encode(): v.encode() for k, v in file_meta.items()}}
        )
        store = self.store
        writer = _RotatingWriter(
            store, self.new, schema, store.row_group_rows, store.file_target_bytes
        )
        writer.run(batches)
        if writer.result.rows == 0 and not writer.result.files:
            writer.open_empty()
        self.result = writer.result
        self.result.elapsed_s = time.monotonic() - started
        return self.result

    def dataset(self) -> ds.Dataset:
        """The staged rows, as a lazy dataset."""
        files = [f for f in (self.result.files if self.result else []) if f.endswith(".parquet")]
        return ds.dataset(files, format="parquet", filesystem=self.store.fs)

    def commit(self) -> WriteResult:
        """Replace the stored partition with the staged one; returns the final files."""
        if self.result is None:
            raise RuntimeError("nothing staged: write() first")
        started = time.monotonic()
        self._swap_in()
        self.committed = True
        with contextlib.suppress(Exception):
            self.store.fs.delete_dir(self.directory)
        res = self.result
        res.files = [f.replace(self.new, self.final) for f in res.files]
        res.elapsed_s += time.monotonic() - started
        return res

    def _swap_in(self) -> None:
        fs = self.store.fs
        if self.store.is_s3:
            # S3 has no rename: the old partition stays until every new file is complete,
            # then objects are replaced. Readers may briefly see the partition empty.
            for f in self.store._files(self.final):
                fs.delete_file(f)
            for f in self.store._files(self.new):
                fs.copy_file(f, f"{self.final}/{f.rsplit('/', 1)[1]}")
            return
        # Two renames; the old partition waits in the staging folder until the new one is
        # in place (a writer killed in between gets it put back by the next write).
        old = f"{self.directory}/old"
        moved = fs.get_file_info(self.final).type != pafs.FileType.NotFound
        if moved:
            fs.move(self.final, old)
        try:
            fs.create_dir(self.final.rsplit("/", 1)[0], recursive=True)
            fs.move(self.new, self.final)
        except BaseException:
            if moved:
                fs.move(old, self.final)
            raise


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _RotatingWriter:
    """Accumulates batches into row groups of ``row_group_rows`` and rotates part files
    at ``file_target_bytes``, writing on a background thread."""

    def __init__(
        self, store: ParquetStore, directory: str, schema: pa.Schema, rg_rows: int, target: int
    ):
        self.store, self.directory, self.schema = store, directory, schema
        self.rg_rows, self.target = rg_rows, target
        self.result = WriteResult()
        self._writer: pq.ParquetWriter | None = None
        self._sink = None
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        # Row groups of wide rows (option_trades_classified: ~40 MB each) are queued by
        # size too, so the queue holds at most QUEUE_BYTES (and always at least one).
        self._queued_bytes = 0
        self._room = threading.Condition()
        self._error: BaseException | None = None
        dict_cols = [c for c in DICTIONARY_COLUMNS if c in schema.names]
        stats_cols = [c for c in STATISTICS_COLUMNS if c in schema.names]
        self._writer_kwargs = dict(
            compression="zstd",
            compression_level=1,
            use_dictionary=dict_cols,
            # min/max only where queries filter (row-group pruning); elsewhere they cost ~10%.
            write_statistics=stats_cols or False,
            write_batch_size=65_536,
        )

    def run(self, batches: Iterable[pa.RecordBatch]) -> None:
        thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        thread.start()
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        try:
            for batch in batches:
                if self._error:
                    break
                if batch.num_rows == 0:
                    continue
                if batch.schema != self.schema:
                    batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= self.rg_rows:
                    table = pa.Table.from_batches(pending, schema=self.schema)
                    self._put(table.slice(0, self.rg_rows))
                    rest = table.slice(self.rg_rows)
                    pending = rest.to_batches() if rest.num_rows else []
                    pending_rows = rest.num_rows
                    del table, rest
                    release_unused_arrow_memory()
            if pending_rows and not self._error:
                self._put(pa.Table.from_batches(pending, schema=self.schema))
        finally:
            self._queue.put(_END)
            thread.join()
        if self._error:
            raise self._error

    def _put(self, table: pa.Table) -> None:
        size = table.nbytes
        with self._room:
            while self._queued_bytes and self._queued_bytes + size > QUEUE_BYTES:
                if self._error:
                    return
                self._room.wait(0.5)
            self._queued_bytes += size
        while True:
            if self._error:
                return
            try:
                self._queue.put((table, size), timeout=0.5)
                return
            except queue.Full:
                continue

    def _taken(self, size: int) -> None:
        with self._room:
            self._queued_bytes -= size
            self._room.notify()

    def _drain(self) -> None:
        try:
            while (item := self._queue.get()) is not _END:
                table, size = item
                self._taken(size)
                if self._error:
                    continue
                self._write(table)
                del table, item  # not held while waiting for the next
            self._close()
        except BaseException as e:  # surfaced on the producer thread
            self._error = e
            with contextlib.suppress(Exception):
                self._close()
            # keep draining so the producer never blocks
            while (item := self._queue.get()) is not _END:
                self._taken(item[1])

    def _open(self) -> None:
        path = f"{self.directory}/part-{len(self.result.files):05d}.parquet"
        self._sink = self.store.fs.open_output_stream(path)
        self._writer = pq.ParquetWriter(self._sink, self.schema, **self._writer_kwargs)
        self.result.files.append(path)

    def open_empty(self) -> None:
        self._open()
        self._close()

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open()
        self._writer.write_table(table, row_group_size=self.rg_rows)
        self.result.rows += table.num_rows
        self.result.row_groups += 1
        if self._sink.tell() >= self.target:
            self._close()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.result.bytes += self._sink.tell()
            self._sink.close()
            self._writer = None
            self._sink = None
