# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The rotating Parquet IO manager: assets hand it lazy batch streams, it writes them
through :class:`ParquetStore` and loads partitions back as lazy datasets.

An asset's in-step checks (:class:`StreamCheck`) are fed every batch as it is written
and judged on the staged partition before it is swapped in: when a blocking check fails
(an empty result, duplicate trades, ...) the partition is not replaced, the checks'
results are reported and the step fails, so the previous output stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

# The one internal import: a check evaluation event, reported from handle_output before the
# step fails (pinned dagster 1.13.27).
from dagster._core.events import DagsterEvent

from market_assets.core.quality import BatchAccumulator
from market_assets.io.parquet_store import ParquetStore, WriteResult, asset_path


@dataclass
class StreamCheck:
    """An asset check (declared in its asset's ``check_specs``) computed in one pass over
    the batches the asset writes.

    ``judge(staged)`` turns the accumulator's state into the check's result; ``staged``
    opens the staged partition, for a check that must fall back to counting over the
    written rows. ``selected`` says whether the run reports the result (a blocking check
    guards the swap either way).
    """

    name: str
    blocking: bool
    accumulator: BatchAccumulator
    judge: Callable[[Callable[[], ds.Dataset]], dg.AssetCheckResult]
    selected: bool = True

    def blocks(self, result: dg.AssetCheckResult) -> bool:
        """Whether ``result`` keeps the partition from being swapped in."""
        return (
            self.blocking and not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
        )


@dataclass
class BatchStream:
    """A lazy stream of record batches for the IO manager to write.

    ``finalize(store, result, error)`` runs after the write (``result`` None on failure)
    and returns extra materialization metadata. ``checks`` are fed every batch; after the
    write, ``check_results`` holds the selected checks' results for the asset to yield.
    """

    batches: Iterable[pa.RecordBatch]
    schema: pa.Schema
    file_metadata: dict[str, str] = field(default_factory=dict)
    finalize: (
        Callable[[ParquetStore, WriteResult | None, BaseException | None], dict[str, Any]] | None
    ) = None
    checks: Sequence[StreamCheck] = ()
    check_results: list[dg.AssetCheckResult] = field(default_factory=list)

    def fed(self) -> Iterator[pa.RecordBatch]:
        """The batches, each handed to every check on its way to the writer."""
        accumulators = [c.accumulator for c in self.checks]
        for batch in self.batches:
            for acc in accumulators:
                acc.update(batch)
            yield batch


class PartitionRejected(Exception):
    """Blocking checks failed on the staged partition: it was not swapped in."""


def storage_path(context: dg.OutputContext | dg.InputContext, features_symbol: str = "") -> str:
    """Folder of the context's asset under the warehouse root."""
    return asset_path(context.asset_key.path[-1], features_symbol)


def rejection_message(
    asset: str, partition: str, failed: Sequence[tuple[str, dg.AssetCheckResult]], kept: bool
) -> str:
    """Why a partition was not replaced, naming each failed check."""
    reasons = "; ".join(f"{name}: {r.description or 'failed'}" for name, r in failed)
    outcome = (
        "the previous partition is kept unchanged" if kept else "nothing was written for this day"
    )
    return (
        f"{asset} {partition} was not replaced: blocking check"
        f"{'s' if len(failed) > 1 else ''} failed ({reasons}); {outcome}."
    )


class ParquetIOManager(dg.ConfigurableIOManager):
    """Writes ``{root}/{asset}/dt=YYYY-MM-DD/part-NNNNN.parquet``; loads lazy datasets."""

    root: str
    s3_endpoint_url: str = ""
    row_group_rows: int = 131_072
    file_target_mb: float = 256
    # features.symbol: the features_<w> assets are stored per symbol.
    features_symbol: str = ""

    def store(self) -> ParquetStore:
        return ParquetStore(
            self.root, self.row_group_rows, self.file_target_mb, self.s3_endpoint_url
        )

    def handle_output(self, context: dg.OutputContext, obj: Any) -> Iterator[DagsterEvent]:
        if obj is None:
            return
        if not context.has_partition_key:
            raise dg.Failure("ParquetIOManager stores daily-partitioned assets only")
        if isinstance(obj, pa.Table):
            obj = BatchStream(obj.to_batches(), obj.schema)
        if not isinstance(obj, BatchStream):
            raise dg.Failure(f"ParquetIOManager cannot store a {type(obj).__name__}")
        store = self.store()
        path, key = storage_path(context, self.features_symbol), context.partition_key
        results: list[tuple[StreamCheck, dg.AssetCheckResult]] = []
        try:
            with store.stage(path, key) as staged:
                staged.write(obj.fed(), obj.schema, obj.file_metadata)
                results = [(c, c.judge(staged.dataset)) for c in obj.checks]
                failed = [(c.name, r) for c, r in results if c.blocks(r)]
                if failed:
                    kept = store.exists(path, key)
                    raise PartitionRejected(rejection_message(path, key, failed, kept))
                result = staged.commit()
        except PartitionRejected as e:
            if obj.finalize:
                obj.finalize(store, None, e)
            yield from _evaluation_events(context, [(c, r) for c, r in results if c.selected])
            raise dg.Failure(
                description=str(e),
                metadata={f"{c.name}_passed": r.passed for c, r in results},
            ) from None
        except BaseException as e:
            if obj.finalize:
                obj.finalize(store, None, e)
            raise
        obj.check_results = [r for c, r in results if c.selected]
        extra = obj.finalize(store, result, None) if obj.finalize else {}
        context.add_output_metadata(
            {
                "rows": result.rows,
                "files": len(result.files),
                "bytes": result.bytes,
                "row_groups": result.row_groups,
                "write_seconds": round(result.elapsed_s, 3),
                "path": dg.MetadataValue.path(f"{store.uri}/{path}/dt={key}"),
                **extra,
            }
        )

    def load_input(self, context: dg.InputContext) -> ds.Dataset:
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        return self.store().dataset(storage_path(context, self.features_symbol), keys)


def _evaluation_events(
    context: dg.OutputContext, results: Sequence[tuple[StreamCheck, dg.AssetCheckResult]]
) -> Iterator[DagsterEvent]:
    """The checks' results as evaluation events of the running step: the UI shows which
    check failed and why, though the step fails before the asset could yield them."""
    step = context.step_context
    for _, result in results:
        yield DagsterEvent.asset_check_evaluation(step, result.to_asset_check_evaluation(step))
