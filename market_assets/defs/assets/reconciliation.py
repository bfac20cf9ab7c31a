# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""features_reconciliation: how far the day's prelim (live) windows were from the final
(batch) ``features_<w>``, one report per window size both produce (``realtime.windows``
that are also in ``features.windows``), in the materialization's metadata.

The comparison is :func:`market_assets.core.reconcile.reconcile`, streamed over the batch
partition and the live store's files (:func:`market_assets.io.live_store.read_live_partition`).
A day without live output is not a report: the step logs why, records an observation with
the reason on the asset and materializes nothing (docs/reconciliation.md).
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from market_assets.core.calendar import NEW_YORK, window_ns, window_starts_ns
from market_assets.core.reconcile import Reconciliation, reconcile
from market_assets.defs.assets.features import features_key
from market_assets.defs.charts import chart_markdown, reconciliation_chart_png
from market_assets.defs.live import LIVE_ASSET
from market_assets.defs.resources import SettingsResource
from market_assets.io.live_store import live_files, read_live_partition
from market_assets.io.parquet_store import BOUNDED_SCAN_OPTIONS, ParquetStore, asset_path
from market_assets.settings import Settings

ASSET = "features_reconciliation"


def reconciled_windows(settings: Settings) -> list[str]:
    """The window sizes both live and the batch produce, in ``realtime.windows`` order."""
    return [w for w in settings.realtime.windows if w in settings.features.windows]


def _et(ns: int | None) -> str:
    if ns is None:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=NEW_YORK).strftime("%H:%M:%S ET")


def _num(v: float | None) -> str:
    return "null" if v is None else f"{v:.10g}"


def report_markdown(window: str, r: Reconciliation) -> str:
    """One window size's report: the counts, a table per family, the differing windows."""
    lines = [
        f"### {window}",
        "",
        f"{r.windows_compared} windows compared, **{r.windows_differing} differ** "
        f"({r.differing_with_gaps} of them with gaps); {r.windows_only_final} only in final "
        f"(no live row), {r.windows_only_prelim} only in prelim; {r.windows_with_gaps} prelim "
        f"windows with gaps; {r.late_dropped} trades dropped as late.",
        "",
        "| family | columns | windows differing | values on one side only "
        "| largest relative difference | where |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for f in r.families.values():
        where = f"{f.worst_column} at {_et(f.worst_window_start_ns)}" if f.worst_column else ""
        lines.append(
            f"| {f.family} | {f.columns} | {f.windows_differing} | {f.null_mismatches} "
            f"| {f.max_rel_diff:.3g} | {where} |"
        )
    for side, cols in (("final", r.columns_only_final), ("prelim", r.columns_only_prelim)):
        if cols:
            lines += ["", f"Only in {side} (not compared): {len(cols)} columns, e.g. {cols[0]}."]
    if r.examples:
        lines += [
            "",
            f"Differing windows (the first {len(r.examples)} of {r.windows_differing}):",
            "",
            "| window start | columns beyond tolerance | worst column | prelim | final | gaps |",
            "|---|---:|---|---:|---:|---:|",
        ]
        lines += [
            f"| {_et(e.window_start_ns)} | {e.columns} | {e.worst_column} | {_num(e.prelim)} "
            f"| {_num(e.final)} | {e.gaps} |"
            for e in r.examples
        ]
    return "\n".join(lines)


def _numbers(window: str, r: Reconciliation) -> dict[str, int | float]:
    """Per window size, as numbers (the UI plots them across partitions)."""
    return {
        f"windows_compared_{window}": r.windows_compared,
        f"windows_differing_{window}": r.windows_differing,
        f"windows_only_final_{window}": r.windows_only_final,
        f"windows_only_prelim_{window}": r.windows_only_prelim,
        f"windows_with_gaps_{window}": r.windows_with_gaps,
        f"late_dropped_{window}": r.late_dropped,
        f"max_rel_diff_{window}": r.max_rel_diff,
    }


def _skip_reason(s: Settings, windows: list[str], day: dt.date) -> str | None:
    """Why there is nothing to compare for ``day`` (None: there is)."""
    rt, f = s.realtime, s.features
    if rt.symbol != f.symbol:
        return (
            f"live follows realtime.symbol = {rt.symbol}, the batch features.symbol = "
            f"{f.symbol}: nothing to compare"
        )
    if not windows:
        return (
            f"no window size is in both realtime.windows {list(rt.windows)} and "
            f"features.windows {list(f.windows)}"
        )
    if not any(live_files(rt.output, w, day) for w in windows):
        sizes = ", ".join(f"window={w}" for w in windows)
        return (
            f"no live output for {day} under realtime.output = {rt.output} ({sizes}): "
            "`market-assets live` did not run that day, or wrote elsewhere"
        )
    return None


def build_reconciliation_asset(
    settings: Settings, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The ``features_reconciliation`` asset over the window sizes of ``settings``."""
    windows = reconciled_windows(settings)

    @dg.asset(
        name=ASSET,
        partitions_def=partitions_def,
        group_name="live",
        deps=[dg.AssetKey(features_key(w)) for w in windows] + [LIVE_ASSET],
        output_required=False,
        kinds={"parquet"},
        description=(
            "Prelim (live) against final (batch) feature windows of the day, per window size "
            "in both realtime.windows and features.windows: windows compared, differing "
            "(FEATURES.md tolerances), only on one side, with gaps, and the largest relative "
            "difference per feature family. A day without live output is skipped, with the "
            "reason as an observation (docs/reconciliation.md)."
        ),
    )
    def features_reconciliation(
        context: dg.AssetExecutionContext, settings: SettingsResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        s = settings.settings
        day = dt.date.fromisoformat(context.partition_key)
        sizes = reconciled_windows(s)
        reason = _skip_reason(s, sizes, day)
        if reason is not None:
            context.log.info(f"skipped: {reason}")
            yield dg.AssetObservation(
                asset_key=context.asset_key,
                partition=context.partition_key,
                metadata={"skipped": reason},
            )
            return
        store = ParquetStore.from_settings(s.storage)
        output = s.realtime.output
        sections, numbers, missing = [], {}, []
        for w in sizes:
            if not live_files(output, w, day):
                missing.append(w)
                continue
            final = store.dataset(asset_path(features_key(w), s.features.symbol), [str(day)])
            r = reconcile(
                final.to_batches(**BOUNDED_SCAN_OPTIONS), read_live_partition(output, w, day)
            )
            context.log.info(
                f"{w}: {r.windows_compared} windows compared, {r.windows_differing} differ, "
                f"{r.windows_only_final} only final, {r.windows_only_prelim} only prelim, "
                f"{r.windows_with_gaps} with gaps, largest relative difference "
                f"{r.max_rel_diff:.3g}"
            )
            png = reconciliation_chart_png(
                window_starts_ns(day, window_ns(w), s.features.session),
                window_ns(w),
                r.differing,
                r.gap_starts,
                title=f"{s.features.symbol} {w} {day}: prelim vs final",
            )
            chart = chart_markdown(png, alt=f"prelim vs final {w}")
            sections.append(report_markdown(w, r) + "\n\n" + chart)
            numbers.update(_numbers(w, r))
        if missing:
            sections.append(f"No live output for window size(s) {', '.join(missing)}.")
        yield dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md("\n\n".join(sections)),
                **numbers,
                "windows": ", ".join(w for w in sizes if w not in missing),
                "live_output": dg.MetadataValue.path(str(output)),
                "symbol": s.features.symbol,
            }
        )

    return features_reconciliation
