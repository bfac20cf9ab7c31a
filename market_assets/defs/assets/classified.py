# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""option_trades_classified: every greeked option trade with its aggressor side.

option_trades_greeks (read twice, in its stored order: underlying, then time) and
option_quotes (NBBO deltas in ticker order) -> :func:`market_assets.core.classify_day.
classify_day`: a ticker-order merge of the trades (put in ticker order by a counting
permutation on disk, numeric columns only) with the quotes, then the rules on the trades in
their stored order, the joined rows put back in that order by a second permutation on disk.
Memory holds a quote batch, the trades of its tickers and a permutation bucket, never the
day's quotes. The rows are
option_trades_greeks' rows, unchanged and in the same order, with ``CLASSIFICATION_COLUMNS``
appended (docs/classification.md); so the features read them in time order as before.

In the graph when ``features.aggression = true`` (the features then read the side from
here). Checks in the step: every trade kept (ERROR, blocking) and the classification's
quality (Unknown shares by reason, NBBO states, ages; WARN above
``checks.max_unknown_share``).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from market_assets.core.classification_quality import ClassificationStats
from market_assets.core.classify import ClassifyParams
from market_assets.core.classify_day import DayClassifier, NotInTickerOrder, classify_day
from market_assets.core.quality import RowCount
from market_assets.core.schemas import NBBO_INPUT_COLUMNS, OPTION_TRADES_CLASSIFIED
from market_assets.defs.checks.in_step import classified_checks, classified_specs
from market_assets.defs.io_managers import BatchStream
from market_assets.defs.resources import SettingsResource
from market_assets.io.external_sort import permuted, sorted_batches
from market_assets.io.parquet_store import BOUNDED_SCAN_OPTIONS, ParquetStore, WriteResult

NAME = "option_trades_classified"


def build_classified_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The asset; ``definitions`` adds it when features.aggression is on."""

    @dg.asset(
        name=NAME,
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="derived",
        kinds={"parquet", "numpy"},
        ins={"option_trades_greeks": dg.AssetIn(), "option_quotes": dg.AssetIn()},
        description=(
            "option_trades_greeks, unchanged and in the same order, + the aggressor side of "
            "each trade against the option NBBO in force at its SIP time (buy/sell at or "
            "beyond the touch, else unknown with a reason), the NBBO snapshot, its age, the "
            "staleness limit used, the tick size and the offsets from mid and touch."
        ),
        check_specs=classified_specs(partitions_def),
    )
    def option_trades_classified(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        option_trades_greeks: ds.Dataset,
        option_quotes: ds.Dataset,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        s = settings.settings
        params = ClassifyParams()
        expected = option_trades_greeks.count_rows()
        clf = DayClassifier(params)

        def scan(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
            return option_trades_greeks.to_batches(columns=columns, **BOUNDED_SCAN_OPTIONS)

        def quotes(sort: bool) -> Any:
            rows = option_quotes.to_batches(
                columns=list(NBBO_INPUT_COLUMNS), **BOUNDED_SCAN_OPTIONS
            )
            if not sort:
                return rows
            schema = option_quotes.schema
            narrow = pa.schema([schema.field(c) for c in NBBO_INPUT_COLUMNS])
            return sorted_batches(rows, narrow, ["ticker"])

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal clf
            out = classify_day(scan, quotes(False), params, permuted, clf)
            reason = None
            try:
                first = next(out, None)  # the whole join runs before the first row
            except NotInTickerOrder as e:
                reason = str(e)
            if reason is not None:
                # Outside the except block: the first attempt's frames (its bucket files on
                # disk, its join's rows) are released before the second starts.
                del out
                context.log.warning(f"{reason}; sorting option_quotes by ticker first")
                clf = DayClassifier(params)
                out = classify_day(scan, quotes(True), params, permuted, clf)
                first = next(out, None)
            if first is not None:
                yield from first.to_batches()
            for table in out:
                yield from table.to_batches()

        stats = ClassificationStats()

        def finalize(
            store: ParquetStore, result: WriteResult | None, error: BaseException | None
        ) -> dict[str, Any]:
            if result is None:
                return {}
            pooled = clf.pooled_limits_us()
            return {
                "option_quotes_read": clf.quote_rows,
                "pooled_staleness_limit_us": pooled[True],
                "tickers_with_own_limit": clf.own_limit_count,
                "elapsed_seconds": round(result.elapsed_s, 3),
                "rows_per_second": round(stats.rows / max(result.elapsed_s, 1e-9)),
                **stats.metadata(),
            }

        checks = classified_checks(s.checks, expected, stats, RowCount())
        for c in checks:
            c.selected = dg.AssetCheckKey(dg.AssetKey(NAME), c.name) in (
                context.selected_asset_check_keys
            )
        stream = BatchStream(batches(), OPTION_TRADES_CLASSIFIED, {}, finalize, checks)
        yield dg.Output(stream)
        yield from stream.check_results

    return option_trades_classified
