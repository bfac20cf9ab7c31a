# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""stock_trades and option_trades: Massive's daily flat files streamed into Parquet."""

import dataclasses
import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from typing import Any

import dagster as dg

from market_assets.defs.io_managers import BatchStream
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.io.parquet_store import ParquetStore, WriteResult
from market_assets.io.progress import ProgressReporter
from market_assets.io.reader import IngestError, Reject, TradeReader
from market_assets.io.sizes import MIB
from market_assets.io.source import SourceError, flat_file_key


def build_ingest_asset(
    name: str, partitions_def: dg.PartitionsDefinition, description: str, source: str = "local"
) -> dg.AssetsDefinition:
    """An asset streaming one dataset's file for the partition's day into Parquet;
    ``source`` (massive.source) only labels it in the UI."""

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="raw",
        kinds={"parquet", "s3" if source == "s3" else "csv"},
        description=description,
        pool="ingest",
    )
    def _asset(
        context: dg.AssetExecutionContext, settings: SettingsResource, source: FlatFileSource
    ) -> dg.Output:
        s = settings.settings
        day = dt.date.fromisoformat(context.partition_key)
        key = flat_file_key(name, day)
        try:
            opened = source.open(name, day, log=context.log)
        except SourceError as e:
            raise dg.Failure(description=str(e)) from None
        keep = s.ingest.stock_tickers if name == "stock_trades" else s.ingest.option_underlyings
        # Every malformed row is spooled to disk as it is found, then quarantined whole.
        spool = tempfile.TemporaryFile("w+", encoding="utf-8")

        def spool_reject(r: Reject) -> None:
            spool.write(json.dumps(dataclasses.asdict(r) | {"file": opened.name}) + "\n")

        def spooled() -> Iterator[dict[str, Any]]:
            spool.seek(0)
            for line in spool:
                yield json.loads(line)

        context.log.info(
            f"{name} {day}: streaming {opened.name} ({opened.size:,} bytes), keeping {', '.join(keep)}"
        )
        reader = TradeReader(
            opened,
            name,
            keep=keep,
            block_size=int(s.ingest.block_size_mb * MIB),
            on_progress=ProgressReporter(
                context.log.info, s.ingest.progress_interval_s, f"{name} {day}"
            ),
            max_reject_fraction=s.ingest.max_reject_fraction,
            reopen=lambda: source.open(name, day, log=context.log),
            reject_sink=spool_reject,
        )

        def finalize(
            store: ParquetStore, result: WriteResult | None, error: BaseException | None
        ) -> dict[str, Any]:
            opened.close()
            with spool:
                rejects_path = store.write_rejects(name, context.partition_key, spooled())
            st = reader.stats
            if error is not None:
                if isinstance(error, IngestError | SourceError):
                    context.log.error(str(error))
                return {}
            md: dict[str, Any] = {
                "source_key": key,
                "source_bytes": opened.size,
                "rows_in": reader.rows_in,
                "rows_out": st.rows_kept,
                "rejected_rows": st.rows_rejected,
                "elapsed_seconds": round(st.elapsed_s, 3),
                "throughput_mb_s": round(opened.size / 1e6 / max(st.elapsed_s, 1e-9), 1),
                "rows_per_second": round(st.rows_read / max(st.elapsed_s, 1e-9)),
                "careful_reread": reader.careful_pass,
            }
            if rejects_path:
                md["rejects"] = dg.MetadataValue.path(
                    f"{store.uri}/_rejects/{name}/dt={context.partition_key}"
                )
                context.log.warning(
                    f"{st.rows_rejected} malformed rows quarantined in {rejects_path}"
                )
            return md

        return dg.Output(
            BatchStream(
                reader,
                reader.schema,
                {"source_key": key, "source_size": str(opened.size)},
                finalize,
            )
        )

    return _asset
