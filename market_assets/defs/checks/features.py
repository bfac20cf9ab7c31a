# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The features assets' check, a separate asset check reading the stored partition (a
day's windows: a few hundred rows at most)."""

# No ``from __future__ import annotations``: dagster reads the check functions' context
# annotations at definition time and does not resolve string annotations.
import datetime as dt
import warnings
from collections import Counter
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)
from market_assets.defs.resources import SettingsResource
from market_assets.io.parquet_store import ParquetStore, asset_path
from market_assets.settings import Settings

BATCH_ROWS = 262_144


@dataclass
class FeaturesSummary:
    rows: int
    expected_rows: int
    missing_windows: int
    unexpected_windows: int
    duplicate_windows: int
    columns_ok: bool
    extra_columns: list[str]
    missing_columns: list[str]
    infinite: dict[str, int]

    def problems(self) -> list[str]:
        """What breaks the contract; empty when nothing does."""
        out = []
        if self.rows != self.expected_rows:
            out.append(f"{self.rows} rows, expected {self.expected_rows}")
        if self.missing_windows or self.unexpected_windows or self.duplicate_windows:
            out.append(
                f"windows: {self.missing_windows} missing, {self.unexpected_windows} "
                f"unexpected, {self.duplicate_windows} repeated"
            )
        if not self.columns_ok:
            out.append(
                f"columns differ from the contract (missing {self.missing_columns[:5]}, "
                f"extra {self.extra_columns[:5]}, or out of order)"
            )
        if self.infinite:
            out.append(f"infinite values in {sorted(self.infinite)[:5]}")
        return out


def features_summary(
    dataset: ds.Dataset, day: dt.date, window: str, session: str
) -> FeaturesSummary:
    """Rows against the session's windows, the column contract, and infinities."""
    names = dataset.schema.names
    expected_cols = [*IDENTITY_COLUMNS, *FEATURE_NAMES]
    allowed = (expected_cols, [*expected_cols, *AGGRESSION_FEATURE_NAMES])
    expected = window_starts_ns(day, window_ns(window), session)
    starts_parts: list[np.ndarray] = []
    infinite: Counter[str] = Counter()
    floats = [f.name for f in dataset.schema if pa.types.is_floating(f.type)]
    read = ["window_start", *floats] if "window_start" in names else floats
    rows = 0
    for batch in dataset.to_batches(columns=read, batch_size=BATCH_ROWS):
        rows += batch.num_rows
        if "window_start" in names:
            ws = pc.cast(batch.column("window_start"), pa.int64())
            starts_parts.append(ws.to_numpy(zero_copy_only=False))
        for c in floats:
            n = int(pc.sum(pc.is_inf(batch.column(c))).as_py() or 0)
            if n:
                infinite[c] += n
    starts = np.concatenate(starts_parts) if starts_parts else np.array([], dtype=np.int64)
    unique = np.unique(starts)
    return FeaturesSummary(
        rows=rows,
        expected_rows=len(expected),
        missing_windows=int(np.setdiff1d(expected, unique).size),
        unexpected_windows=int(np.setdiff1d(unique, expected).size),
        duplicate_windows=int(len(starts) - len(unique)),
        columns_ok=names in allowed,
        extra_columns=[c for c in names if c not in allowed[1]],
        missing_columns=[c for c in expected_cols if c not in names],
        infinite=dict(infinite),
    )


def features_check_result(summary: FeaturesSummary) -> dg.AssetCheckResult:
    """The windows_and_columns result of one stored features partition."""
    problems = summary.problems()
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": summary.rows,
            "expected_rows": summary.expected_rows,
            "missing_windows": summary.missing_windows,
            "duplicate_windows": summary.duplicate_windows,
            "columns_ok": summary.columns_ok,
            "infinite_values": sum(summary.infinite.values()),
        },
        description="; ".join(problems) or None,
    )


def features_check(
    window: str, session: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    """``windows_and_columns`` on ``features_<window>``."""
    asset = f"features_{window}"

    @dg.asset_check(
        asset=asset,
        name="windows_and_columns",
        blocking=True,
        partitions_def=partitions_def,
        description=(
            f"Exactly one row per {window} window of the {session} session, exactly the identity "
            "columns + FEATURE_NAMES in order, and no infinities (ERROR, blocking)."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        day = dt.date.fromisoformat(context.partition_key)
        store = ParquetStore.from_settings(settings.settings.storage)
        stored = store.dataset(
            asset_path(asset, settings.settings.features.symbol), [context.partition_key]
        )
        return features_check_result(features_summary(stored, day, window, session))

    return _check


def build_asset_checks(
    settings: Settings, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The graph's separate asset checks: one per features window (the ingest and greeks
    checks run inside their assets' steps, see ``in_step``)."""
    with warnings.catch_warnings():
        # Partitioned asset checks (one result per partition in the UI) are a preview feature.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return [
            features_check(w, settings.features.session, partitions_def)
            for w in settings.features.windows
        ]
