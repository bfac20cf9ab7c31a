# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Asset checks, per daily partition, reading the stored partition from the warehouse.

Each check scans only the columns it needs, batch by batch (the duplicate checks group the
partition's key columns, fine for the configured tickers' trades). Checks whose failure
means the data is wrong are ``blocking`` with severity ERROR: in a run, downstream assets
of a failed check do not execute. The option-trade duplicate count is a WARN (see
:func:`option_exact_duplicates`).

Duplicate keys:

- stock trades: ``(ticker, sequence_number)``. Massive documents the SIP sequence number as
  increasing and unique per ticker within a day, so two rows sharing it are the same trade
  stored twice. ``(ticker, exchange, trf_id, id)`` is not a key: a correction repeats the
  id of the trade it corrects, with a new sequence number.
- option trades: OPRA flat files carry no trade id or sequence number, and genuinely
  distinct prints can be identical in every column (the real sample
  ``options_trades_example.csv.gz`` has 3 exact duplicate pairs among 62 rows, and
  Massive's own day aggregate counts all 62 transactions and their full volume). So exact
  duplicates are counted and reported; the check only warns when their share exceeds
  ``MAX_OPTION_EXACT_DUPLICATE_SHARE`` (a file loaded twice would give 50%).
"""

# No ``from __future__ import annotations``: dagster reads the check functions' context
# annotations at definition time and does not resolve string annotations.
import datetime as dt
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.core.enrich import status_counts
from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)
from market_assets.core.schemas import GREEKS_STATUSES
from market_assets.defs.resources import SettingsResource
from market_assets.io.parquet_store import ParquetStore, asset_path
from market_assets.settings import CheckSettings, Settings

STOCK_TRADE_KEY = ("ticker", "sequence_number")
OPTION_TRADE_COLUMNS = (
    "ticker",
    "sip_timestamp",
    "participant_timestamp",
    "exchange",
    "price",
    "size",
    "conditions",
    "correction",
)
PARSED_OPTION_COLUMNS = ("underlying", "expiration", "contract_type", "strike")
MAX_OPTION_EXACT_DUPLICATE_SHARE = 0.10
BATCH_ROWS = 262_144


# --- computations over a stored partition (no dagster) ------------------------------------


def duplicate_rows(dataset: ds.Dataset, key: Sequence[str]) -> tuple[int, int]:
    """``(rows, rows beyond the first of each key)`` of a dataset."""
    table = dataset.to_table(columns=list(key))
    if table.num_rows == 0:
        return 0, 0
    groups = table.group_by(list(key)).aggregate([])
    return table.num_rows, table.num_rows - groups.num_rows


def option_exact_duplicates(dataset: ds.Dataset) -> tuple[int, int, list[str]]:
    """``(rows, exact duplicate rows, up to 5 tickers having some)`` over every source column."""
    cols = [c for c in OPTION_TRADE_COLUMNS if c in dataset.schema.names]
    table = dataset.to_table(columns=cols)
    if table.num_rows == 0:
        return 0, 0, []
    if "conditions" in cols:
        # Lists cannot be group keys: the conditions as their comma-joined text.
        joined = pc.binary_join(pc.cast(table.column("conditions"), pa.list_(pa.string())), ",")
        table = table.set_column(cols.index("conditions"), "conditions", joined)
    groups = table.group_by(cols).aggregate([("ticker", "count", pc.CountOptions("all"))])
    counts = groups.column("ticker_count")
    dup_groups = groups.filter(pc.greater(counts, 1))
    dups = int(pc.sum(pc.subtract(dup_groups.column("ticker_count"), 1)).as_py() or 0)
    examples = pc.unique(dup_groups.column("ticker")).to_pylist()[:5]
    return table.num_rows, dups, examples


def unparsed_option_tickers(dataset: ds.Dataset) -> tuple[int, int, list[str]]:
    """``(rows, rows with a null underlying/expiration/contract_type/strike, examples)``."""
    rows = bad = 0
    examples: list[str] = []
    cols = ["ticker", *PARSED_OPTION_COLUMNS]
    for batch in dataset.to_batches(columns=cols, batch_size=BATCH_ROWS):
        rows += batch.num_rows
        missing = pc.is_null(batch.column(PARSED_OPTION_COLUMNS[0]))
        for c in PARSED_OPTION_COLUMNS[1:]:
            missing = pc.or_(missing, pc.is_null(batch.column(c)))
        n = int(pc.sum(missing).as_py() or 0)
        if n:
            bad += n
            if len(examples) < 5:
                examples += pc.filter(batch.column("ticker"), missing).to_pylist()[
                    : 5 - len(examples)
                ]
    return rows, bad, examples


@dataclass
class GreeksSummary:
    rows: int
    counts: dict[str, int]
    ok_bad_iv: int

    def share(self, status: str) -> float:
        return self.counts.get(status, 0) / self.rows if self.rows else 0.0


def greeks_summary(dataset: ds.Dataset) -> GreeksSummary:
    """Trades per greeks_status, and ``ok`` trades whose iv is not finite and positive."""
    counts: Counter[str] = Counter()
    rows = bad_iv = 0
    for batch in dataset.to_batches(columns=["greeks_status", "iv"], batch_size=BATCH_ROWS):
        rows += batch.num_rows
        status = batch.column("greeks_status")
        counts.update(status_counts(status))
        iv = batch.column("iv")
        good = pc.fill_null(pc.and_(pc.is_finite(iv), pc.greater(iv, 0.0)), False)
        bad_iv += int(pc.sum(pc.and_(pc.equal(status, "ok"), pc.invert(good))).as_py() or 0)
    return GreeksSummary(rows, dict(counts), bad_iv)


def greeks_share_violations(summary: GreeksSummary, bounds: CheckSettings) -> list[str]:
    """Why the status shares are outside ``[checks]`` (empty when within)."""
    out = []
    if summary.rows == 0:
        return ["option_trades_greeks has no rows"]
    ok = summary.share("ok")
    nu = summary.share("no_underlying")
    bad = summary.share("bad_input")
    if ok < bounds.min_ok_share:
        out.append(f"ok share {ok:.4%} < checks.min_ok_share {bounds.min_ok_share:.4%}")
    if nu > bounds.max_no_underlying_share:
        out.append(
            f"no_underlying share {nu:.4%} > checks.max_no_underlying_share "
            f"{bounds.max_no_underlying_share:.4%}"
        )
    if bad > bounds.max_bad_input_share:
        out.append(
            f"bad_input share {bad:.4%} > checks.max_bad_input_share {bounds.max_bad_input_share:.4%}"
        )
    unknown = sorted(set(summary.counts) - set(GREEKS_STATUSES))
    if unknown:
        out.append(f"unknown greeks_status values {unknown}")
    return out


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


def features_summary(
    dataset: ds.Dataset, day: dt.date, window: str, session: str
) -> FeaturesSummary:
    """Rows against the session's windows, the column contract, and infinities."""
    names = dataset.schema.names
    expected_cols = [*IDENTITY_COLUMNS, *FEATURE_NAMES]
    allowed = (expected_cols, [*expected_cols, *AGGRESSION_FEATURE_NAMES])
    columns_ok = names in allowed
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
        columns_ok=columns_ok,
        extra_columns=[c for c in names if c not in allowed[1]],
        missing_columns=[c for c in expected_cols if c not in names],
        infinite=dict(infinite),
    )


# --- dagster checks -----------------------------------------------------------------------


def _dataset(settings: Settings, asset: str, partition: str) -> ds.Dataset:
    return ParquetStore.from_settings(settings.storage).dataset(asset_path(asset), [partition])


def _non_empty_check(
    asset: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="non_empty",
        blocking=True,
        partitions_def=partitions_def,
        description=f"{asset} has at least one row on the trading day (ERROR, blocking).",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        rows = _dataset(settings.settings, asset, context.partition_key).count_rows()
        return dg.AssetCheckResult(
            passed=rows > 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows},
            description=None if rows else f"{asset} is empty for {context.partition_key}",
        )

    return _check


def build_asset_checks(
    settings: Settings, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """Every check of the graph for ``settings`` (one features check set per window)."""
    with warnings.catch_warnings():
        # Partitioned asset checks (one result per partition in the UI) are a preview feature.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return _build_asset_checks(settings, partitions_def)


def _build_asset_checks(
    settings: Settings, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    checks = [
        _non_empty_check("stock_trades", partitions_def),
        _non_empty_check("option_trades", partitions_def),
    ]

    @dg.asset_check(
        asset="stock_trades",
        name="no_duplicate_trades",
        blocking=True,
        partitions_def=partitions_def,
        description=(
            "No two rows share (ticker, sequence_number): the SIP sequence number is unique per "
            "ticker and day (ERROR, blocking)."
        ),
    )
    def stock_no_duplicates(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        rows, dups = duplicate_rows(
            _dataset(settings.settings, "stock_trades", context.partition_key), STOCK_TRADE_KEY
        )
        return dg.AssetCheckResult(
            passed=dups == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows, "duplicate_rows": dups, "key": ", ".join(STOCK_TRADE_KEY)},
        )

    @dg.asset_check(
        asset="option_trades",
        name="exact_duplicates",
        partitions_def=partitions_def,
        description=(
            "Counts option trades identical in every source column. OPRA files have no trade id "
            "and real distinct prints can repeat exactly, so this only warns above "
            f"{MAX_OPTION_EXACT_DUPLICATE_SHARE:.0%} (WARN)."
        ),
    )
    def option_duplicates(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        rows, dups, examples = option_exact_duplicates(
            _dataset(settings.settings, "option_trades", context.partition_key)
        )
        share = dups / rows if rows else 0.0
        return dg.AssetCheckResult(
            passed=share <= MAX_OPTION_EXACT_DUPLICATE_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows": rows,
                "exact_duplicate_rows": dups,
                "exact_duplicate_share": round(share, 6),
                "max_share": MAX_OPTION_EXACT_DUPLICATE_SHARE,
                "example_tickers": ", ".join(examples),
            },
        )

    @dg.asset_check(
        asset="option_trades",
        name="tickers_parsed",
        blocking=True,
        partitions_def=partitions_def,
        description="Every option ticker parsed: underlying, expiration, contract_type, strike non-null (ERROR, blocking).",
    )
    def option_tickers_parsed(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        rows, bad, examples = unparsed_option_tickers(
            _dataset(settings.settings, "option_trades", context.partition_key)
        )
        return dg.AssetCheckResult(
            passed=bad == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows, "unparsed_rows": bad, "examples": ", ".join(examples)},
        )

    @dg.asset_check(
        asset="option_trades_greeks",
        name="status_shares",
        blocking=True,
        partitions_def=partitions_def,
        description=(
            "greeks_status shares within [checks] (min_ok_share, max_no_underlying_share, "
            "max_bad_input_share) and iv finite and > 0 on every ok trade (ERROR, blocking)."
        ),
    )
    def greeks_status_shares(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        s = settings.settings
        summary = greeks_summary(_dataset(s, "option_trades_greeks", context.partition_key))
        problems = greeks_share_violations(summary, s.checks)
        if summary.ok_bad_iv:
            problems.append(f"{summary.ok_bad_iv} ok trades have an iv that is not finite and > 0")
        md: dict[str, object] = {"rows": summary.rows, "ok_trades_with_bad_iv": summary.ok_bad_iv}
        for status in GREEKS_STATUSES:
            md[f"share_{status}"] = round(summary.share(status), 6)
        md.update(
            {
                "min_ok_share": s.checks.min_ok_share,
                "max_no_underlying_share": s.checks.max_no_underlying_share,
                "max_bad_input_share": s.checks.max_bad_input_share,
            }
        )
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=md,
            description="; ".join(problems) or None,
        )

    checks += [stock_no_duplicates, option_duplicates, option_tickers_parsed, greeks_status_shares]
    checks += [
        _features_check(w, settings.features.session, partitions_def)
        for w in settings.features.windows
    ]
    return checks


def _features_check(
    window: str, session: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
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
        f = _dataset(settings.settings, asset, context.partition_key)
        summary = features_summary(f, day, window, session)
        problems = []
        if summary.rows != summary.expected_rows:
            problems.append(f"{summary.rows} rows, expected {summary.expected_rows}")
        if summary.missing_windows or summary.unexpected_windows or summary.duplicate_windows:
            problems.append(
                f"windows: {summary.missing_windows} missing, {summary.unexpected_windows} "
                f"unexpected, {summary.duplicate_windows} repeated"
            )
        if not summary.columns_ok:
            problems.append(
                f"columns differ from the contract (missing {summary.missing_columns[:5]}, "
                f"extra {summary.extra_columns[:5]}, or out of order)"
            )
        if summary.infinite:
            problems.append(f"infinite values in {sorted(summary.infinite)[:5]}")
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

    return _check
