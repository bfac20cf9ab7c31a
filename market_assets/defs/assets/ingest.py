# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""stock_trades and option_trades: Massive's daily flat files streamed into Parquet.

:func:`build_flat_file_asset` and :class:`IngestRun` are shared with the quote assets
(:mod:`.quotes`): opening the day's file, progress, reject quarantine, metadata.
"""

import dataclasses
import datetime as dt
import json
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

import dagster as dg
import pyarrow as pa

from market_assets.core.quality import PresentValues
from market_assets.defs.checks import check_specs, ingest_checks
from market_assets.defs.io_managers import BatchStream
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.io.parquet_store import ParquetStore, WriteResult
from market_assets.io.progress import ProgressReporter
from market_assets.io.reader import IngestError, ReadStats, Reject, TradeReader
from market_assets.io.sizes import MIB
from market_assets.io.source import OpenedFile, SourceError, flat_file_key
from market_assets.settings import Settings

# The setting naming what to keep, and the column it is matched on.
KEEP = {
    "stock_trades": ("ingest.stock_tickers", "ticker"),
    "option_trades": ("ingest.option_underlyings", "underlying"),
    "stock_quotes": ("quotes.tickers", "ticker"),
    "option_quotes": ("quotes.underlyings", "underlying"),
}


class Reader(Protocol):
    """What an ingest run needs of its reader."""

    stats: ReadStats

    @property
    def rows_in(self) -> int: ...

    def __iter__(self) -> Iterator[pa.RecordBatch]: ...


def build_ingest_asset(
    name: str, partitions_def: dg.PartitionsDefinition, description: str, source: str = "local"
) -> dg.AssetsDefinition:
    """An asset streaming one trades file for the partition's day into Parquet, its checks
    computed on the way; ``source`` (massive.source) only labels it in the UI."""
    return build_flat_file_asset(name, partitions_def, description, _TradeRun, source)


def build_flat_file_asset(
    name: str,
    partitions_def: dg.PartitionsDefinition,
    description: str,
    run: type["IngestRun"],
    source: str = "local",
) -> dg.AssetsDefinition:
    """An asset streaming the dataset ``name``'s flat file for the partition's day through
    ``run`` (its reader and what it makes of the rows) into Parquet, with its in-step
    checks (:func:`~market_assets.defs.checks.ingest_checks`)."""

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="raw",
        kinds={"parquet", "s3" if source == "s3" else "csv"},
        description=description,
        pool="ingest",
        check_specs=check_specs(name, partitions_def),
    )
    def _asset(
        context: dg.AssetExecutionContext, settings: SettingsResource, source: FlatFileSource
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        s = settings.settings
        day = dt.date.fromisoformat(context.partition_key)
        try:
            opened = source.open(name, day, log=context.log)
        except SourceError as e:
            raise dg.Failure(description=str(e)) from None
        ingest = run(
            name, day, opened, s, context.log, lambda: source.open(name, day, log=context.log)
        )
        context.log.info(
            f"{name} {day}: streaming {opened.name} ({opened.size:,} bytes), "
            f"keeping {', '.join(ingest.keep)}"
        )
        selected = {k.name for k in context.selected_asset_check_keys}
        stream = BatchStream(
            ingest.batches(),
            ingest.schema,
            {"source_key": ingest.key, "source_size": str(opened.size)},
            ingest.finalize,
            ingest_checks(name, selected, ingest.why_empty, s.checks),
        )
        # The IO manager writes the stream, feeding the checks, and swaps the partition in
        # only if no blocking check failed; then their results are reported here.
        yield dg.Output(stream)
        yield from stream.check_results

    return _asset


class IngestRun:
    """One ingest of a day's file: its reader, its rejects spooled to disk as they are
    found (then quarantined whole), and which configured names the file holds.

    A subclass says what the settings keep (:meth:`configured`), builds the reader
    (:meth:`open_reader`, setting ``schema``: that of the batches :meth:`batches` yields)
    and may derive other rows from the reader's (:meth:`rows`); ``noun`` names the file's
    rows in messages.
    """

    noun = "rows"
    schema: pa.Schema

    def __init__(
        self,
        name: str,
        day: dt.date,
        opened: OpenedFile,
        s: Settings,
        log: dg.DagsterLogManager,
        reopen: Callable[[], OpenedFile],
    ) -> None:
        self.name, self.day, self.opened, self.log = name, day, opened, log
        self.keep = self.configured(s)
        self.key = flat_file_key(name, day)
        self.setting, column = KEEP[name]
        self.present = None if "*" in self.keep else PresentValues(column, self.keep)
        self.spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.reader = self.open_reader(s, reopen)

    def configured(self, s: Settings) -> list[str]:
        """The tickers or underlyings the settings keep (``["*"]``: all)."""
        raise NotImplementedError

    def open_reader(self, s: Settings, reopen: Callable[[], OpenedFile]) -> Reader:
        """The reader of ``self.opened``, its rejects going to :meth:`spool_reject`."""
        raise NotImplementedError

    def progress(self, s: Settings) -> ProgressReporter:
        """The reader's progress callback: a run-log line every ingest.progress_interval_s."""
        return ProgressReporter(
            self.log.info, s.ingest.progress_interval_s, f"{self.name} {self.day}"
        )

    def spool_reject(self, r: Reject) -> None:
        self.spool.write(json.dumps(dataclasses.asdict(r) | {"file": self.opened.name}) + "\n")

    def _spooled(self) -> Iterator[dict[str, Any]]:
        self.spool.seek(0)
        for line in self.spool:
            yield json.loads(line)

    def rows(self) -> Iterator[pa.RecordBatch]:
        """The batches to store (the reader's, unless a subclass derives others)."""
        return iter(self.reader)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The batches to store, the configured names seen on the way."""
        for batch in self.rows():
            if self.present is not None:
                self.present.update(batch)
            yield batch

    def why_empty(self) -> str:
        """Why nothing was kept, for the non_empty check."""
        why = f"{self.name} is empty for {self.day}: "
        if self.reader.rows_in == 0:
            return why + f"{self.key} has no {self.noun} (0 rows read)"
        if self.present is not None:
            return why + f"none of {self.setting} ({', '.join(self.keep)}) is in {self.key}"
        return why + f"no row of {self.key} was kept ({self.reader.rows_in:,} read)"

    def finalize(
        self, store: ParquetStore, result: WriteResult | None, error: BaseException | None
    ) -> dict[str, Any]:
        """After the write: quarantine the rejects, name absent tickers, give metadata."""
        self.opened.close()
        with self.spool:
            rejects = store.write_rejects(self.name, str(self.day), self._spooled())
        absent = self.present.absent() if self.present is not None else []
        if absent:
            self.log.warning(f"{self.setting}: {', '.join(absent)} not in {self.key}")
        if error is not None:
            if isinstance(error, IngestError | SourceError):
                self.log.error(str(error))
            return {}
        md = self._metadata()
        if self.present is not None:
            md[f"absent_{KEEP[self.name][1]}s"] = ", ".join(absent)
        if rejects:
            md["rejects"] = dg.MetadataValue.path(f"{store.uri}/_rejects/{self.name}/dt={self.day}")
            self.log.warning(
                f"{self.reader.stats.rows_rejected} rejected rows (malformed or breaking a value "
                f"rule) quarantined in {rejects}"
            )
        return md

    def _metadata(self) -> dict[str, Any]:
        """Materialization metadata; subclasses add their own."""
        st, size = self.reader.stats, self.opened.size
        return {
            "source_key": self.key,
            "source_bytes": size,
            "rows_in": self.reader.rows_in,
            "rows_out": st.rows_kept,
            "rejected_rows": st.rows_rejected,
            "elapsed_seconds": round(st.elapsed_s, 3),
            "throughput_mb_s": round(size / 1e6 / max(st.elapsed_s, 1e-9), 1),
            "rows_per_second": round(st.rows_read / max(st.elapsed_s, 1e-9)),
        }


class _TradeRun(IngestRun):
    """stock_trades / option_trades: the file's rows as read (:class:`TradeReader`)."""

    noun = "trades"

    def configured(self, s: Settings) -> list[str]:
        trades = s.ingest
        return trades.stock_tickers if self.name == "stock_trades" else trades.option_underlyings

    def open_reader(self, s: Settings, reopen: Callable[[], OpenedFile]) -> TradeReader:
        self.trades = TradeReader(
            self.opened,
            self.name,
            day=self.day,
            keep=self.keep,
            block_size=int(s.ingest.block_size_mb * MIB),
            on_progress=self.progress(s),
            max_reject_fraction=s.ingest.max_reject_fraction,
            reopen=reopen,
            reject_sink=self.spool_reject,
        )
        self.schema = self.trades.schema
        return self.trades

    def _metadata(self) -> dict[str, Any]:
        return super()._metadata() | {"careful_reread": self.trades.careful_pass}
