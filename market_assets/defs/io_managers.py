# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The rotating Parquet IO manager: assets hand it lazy batch streams, it writes them
through :class:`ParquetStore` and loads partitions back as lazy datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from market_assets.io.parquet_store import ParquetStore, WriteResult, asset_path


@dataclass
class BatchStream:
    """A lazy stream of record batches for the IO manager to write.

    ``finalize(store, result, error)`` runs after the write (``result`` None on failure)
    and returns extra materialization metadata.
    """

    batches: Iterable[pa.RecordBatch]
    schema: pa.Schema
    file_metadata: dict[str, str] = field(default_factory=dict)
    finalize: (
        Callable[[ParquetStore, WriteResult | None, BaseException | None], dict[str, Any]] | None
    ) = None


def storage_path(context: dg.OutputContext | dg.InputContext) -> str:
    """Folder of the context's asset under the warehouse root."""
    return asset_path(context.asset_key.path[-1])


class ParquetIOManager(dg.ConfigurableIOManager):
    """Writes ``{root}/{asset}/dt=YYYY-MM-DD/part-NNNNN.parquet``; loads lazy datasets."""

    root: str
    s3_endpoint_url: str = ""
    row_group_rows: int = 131_072
    file_target_mb: float = 256

    def store(self) -> ParquetStore:
        return ParquetStore(
            self.root, self.row_group_rows, self.file_target_mb, self.s3_endpoint_url
        )

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if not context.has_partition_key:
            raise dg.Failure("ParquetIOManager stores daily-partitioned assets only")
        if isinstance(obj, pa.Table):
            obj = BatchStream(obj.to_batches(), obj.schema)
        if not isinstance(obj, BatchStream):
            raise dg.Failure(f"ParquetIOManager cannot store a {type(obj).__name__}")
        store = self.store()
        path = storage_path(context)
        try:
            result = store.write_partition(
                path, context.partition_key, obj.batches, obj.schema, obj.file_metadata
            )
        except BaseException as e:
            if obj.finalize:
                obj.finalize(store, None, e)
            raise
        extra = obj.finalize(store, result, None) if obj.finalize else {}
        context.add_output_metadata(
            {
                "rows": result.rows,
                "files": len(result.files),
                "bytes": result.bytes,
                "row_groups": result.row_groups,
                "write_seconds": round(result.elapsed_s, 3),
                "path": dg.MetadataValue.path(f"{store.uri}/{path}/dt={context.partition_key}"),
                **extra,
            }
        )

    def load_input(self, context: dg.InputContext) -> ds.Dataset:
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        return self.store().dataset(storage_path(context), keys)
