# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The features assets' check, ``windows_and_columns``: declared in the features
multi-asset's ``check_specs`` and run inside its step, on each window size's staged rows
(a day's windows: a few hundred rows at most) before they replace the stored ones."""

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
from market_assets.core.prelim_final import QUALITY_NAMES
from market_assets.core.quality import RowCount
from market_assets.defs.io_managers import StreamCheck
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
    allowed = (
        [*expected_cols, *QUALITY_NAMES],
        [*expected_cols, *AGGRESSION_FEATURE_NAMES, *QUALITY_NAMES],
    )
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
        missing_columns=[c for c in allowed[0] if c not in names],
        infinite=dict(infinite),
    )


CHECK = "windows_and_columns"


def features_check_result(summary: FeaturesSummary, window: str) -> dg.AssetCheckResult:
    """The windows_and_columns result of one features_<window> partition."""
    problems = summary.problems()
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(f"features_{window}"),
        check_name=CHECK,
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


def features_check_specs(
    windows: list[str], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
    """The features multi-asset's ``check_specs``: windows_and_columns on every size."""
    with warnings.catch_warnings():
        # A partitions_def on an AssetCheckSpec is a preview feature.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                CHECK,
                asset=f"features_{w}",
                blocking=True,
                partitions_def=partitions_def,
                description=(
                    f"Exactly one row per {w} window of the features.session session, exactly "
                    "the identity columns + FEATURE_NAMES in order + the quality columns, and no "
                    "infinities (ERROR, blocking: judged before the rows replace the stored ones)."
                ),
            )
            for w in windows
        ]


def windows_and_columns_check(window: str, day: dt.date, session: str) -> StreamCheck:
    """The in-step check of ``features_<window>`` for ``day``: judged on the staged rows."""
    return StreamCheck(
        CHECK,
        True,
        RowCount(),
        lambda staged: features_check_result(
            features_summary(staged(), day, window, session), window
        ),
    )


def build_asset_checks(
    settings: Settings, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The graph's separate asset checks, each its own step: none at present, every check
    runs inside its asset's step (ingest and greeks: ``in_step``; features: above)."""
    return []
