# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""option_trades_greeks: implied volatility and greeks for every option trade."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.enrich import GreeksParams, enrich_option_trades
from market_assets.core.implausible_prices import DayMedians, PlausibleRows
from market_assets.core.quality import GreeksStatusShares
from market_assets.core.rates import TreasuryCurve
from market_assets.core.schemas import GREEKS_STATUSES, NBBO_INPUT_COLUMNS, OPTION_TRADES_GREEKS
from market_assets.core.underlying import StreamedAsof, eligible_trade_rows, nbbo_mid_rows
from market_assets.defs.checks import check_specs, status_shares_check
from market_assets.defs.checks.in_step import price_rule
from market_assets.defs.io_managers import BatchStream
from market_assets.defs.resources import SettingsResource
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.external_sort import sorted_batches
from market_assets.io.parquet_store import BOUNDED_SCAN_OPTIONS, ParquetStore, WriteResult

ORDER = ("underlying", "sip_timestamp")
# Option trades sorted in memory at once, and held by the merge of the sorted runs: half the
# external sort's default, since the greeks step also holds a batch being priced and the
# writer's row groups.
SORT_RUN_ROWS = 131_072
UNDERLYING_COLUMNS = [
    "ticker",
    "sip_timestamp",
    "sequence_number",
    "price",
    "conditions",
    "correction",
]


def build_greeks_asset(
    partitions_def: dg.PartitionsDefinition, rate_curve: bool = False, nbbo_mid: bool = False
) -> dg.AssetsDefinition:
    """``rate_curve``: greeks.risk_free_rate = "curve", read from the treasury_yields input;
    ``nbbo_mid``: greeks.underlying_price = "nbbo_mid", the underlying's NBBO mid from the
    stock_quotes input instead of its last trade."""
    curve_in = {"treasury_yields": dg.AssetIn()} if rate_curve else {}
    quotes_in = {"stock_quotes": dg.AssetIn()} if nbbo_mid else {}

    @dg.asset(
        name="option_trades_greeks",
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="derived",
        kinds={"parquet", "numpy"},
        ins={
            "option_trades": dg.AssetIn(),
            "stock_trades": dg.AssetIn(),
            **curve_in,
            **quotes_in,
        },
        description=(
            "option_trades + the underlying price as of each trade, time to expiry, BSM implied "
            "volatility from the trade price, delta/gamma/vega/theta, intrinsic value, dollar "
            "value, dadvv and gadvv, and a greeks_status per trade."
        ),
        check_specs=check_specs("option_trades_greeks", partitions_def),
    )
    def option_trades_greeks(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        option_trades: ds.Dataset,
        stock_trades: ds.Dataset,
        **extra: ds.Dataset,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        s = settings.settings
        params = GreeksParams(
            rate=_rate(s.greeks.risk_free_rate, extra.get("treasury_yields")),
            dividend_yield=s.greeks.dividend_yield,
            contract_multiplier=s.greeks.contract_multiplier,
            gadvv_scale=s.features.gadvv_scale,
            max_underlying_staleness_s=s.greeks.max_underlying_staleness_s,
        )
        rules = load_condition_rules(s.conditions.rules_file or None, s.conditions.overrides)
        underlyings = pc.field("ticker").isin(_underlyings(option_trades))
        # Prints far from their ticker's day median never price an option (the rule of
        # stock_trades' plausible_prices check): a first pass over the prices finds each
        # underlying's median, the as-of join is fed the rest.
        prices = stock_trades.to_batches(
            columns=["ticker", "price"], filter=underlyings, **BOUNDED_SCAN_OPTIONS
        )
        plausible = PlausibleRows(
            stock_trades.to_batches(
                columns=UNDERLYING_COLUMNS, filter=underlyings, **BOUNDED_SCAN_OPTIONS
            ),
            DayMedians.of(prices, price_rule(s.checks)),
        )
        # The option trades are sorted by (underlying, sip_timestamp) first (bounded external
        # sort; the order the output is stored in), so the underlying rows, stored by (ticker,
        # time), are merged in as they stream: only the few seconds before each batch's
        # trades (greeks.max_underlying_staleness_s) are held, not the underlyings' day.
        staleness_ns = int(round(params.max_underlying_staleness_s * 1e9))
        if nbbo_mid:
            # The mid of the underlying's NBBO in force when Normal, no older than
            # greeks.max_underlying_staleness_s (docs/classification.md).
            quotes = extra["stock_quotes"].to_batches(
                columns=list(NBBO_INPUT_COLUMNS), filter=underlyings, **BOUNDED_SCAN_OPTIONS
            )
            asof = StreamedAsof(quotes, nbbo_mid_rows, staleness_ns)
        else:
            asof = StreamedAsof(
                plausible, lambda t, symbols: eligible_trade_rows(t, rules, symbols), staleness_ns
            )
        # Fed every written batch by the IO manager: the status_shares check and the metadata.
        shares = GreeksStatusShares()

        def batches() -> Iterator[pa.RecordBatch]:
            options = option_trades.to_batches(**{**BOUNDED_SCAN_OPTIONS, "batch_size": 131_072})
            for batch in sorted_batches(
                options,
                option_trades.schema,
                ORDER,
                run_rows=SORT_RUN_ROWS,
                merge_rows=SORT_RUN_ROWS,
            ):
                table = pa.Table.from_batches([batch])
                index = asof.index_for(table.column("underlying"), table.column("sip_timestamp"))
                yield from enrich_option_trades(table, index, params, rules).to_batches()
            if not asof.in_order:
                context.log.warning(
                    "the underlying rows are not in (ticker, sip_timestamp) order (a partition "
                    "written by another tool?): they were read whole instead of streamed"
                )
            if plausible.dropped:
                context.log.warning(
                    f"{plausible.dropped:,} implausible underlying print(s) left out of the "
                    "as-of prices"
                )

        def finalize(
            store: ParquetStore, result: WriteResult | None, error: BaseException | None
        ) -> dict[str, Any]:
            if result is None:
                return {}
            md: dict[str, Any] = {
                "underlying_price": "nbbo_mid" if nbbo_mid else "trade",
                "underlying_trades_read"
                if not nbbo_mid
                else "underlying_quotes_read": asof.rows_read,
                "underlying_rows_peak_held": asof.peak_held,
                "underlying_in_time_order": asof.in_order,
                "underlying_implausible_excluded": plausible.dropped,
                "elapsed_seconds": round(result.elapsed_s, 3),
                "rows_per_second": round(shares.rows / max(result.elapsed_s, 1e-9)),
            }
            for status in GREEKS_STATUSES:
                md[f"share_{status}"] = round(shares.share(status), 6)
                md[f"count_{status}"] = shares.counts.get(status, 0)
            return md

        check = status_shares_check(s.checks, shares)
        check.selected = bool(context.selected_asset_check_keys)
        # Stored by (underlying, sip_timestamp), so one symbol's trades stream in time order.
        stream = BatchStream(batches(), OPTION_TRADES_GREEKS, {}, finalize, [check])
        # Written by the IO manager, swapped in only if status_shares passes.
        yield dg.Output(stream)
        yield from stream.check_results

    return option_trades_greeks


def _underlyings(option_trades: ds.Dataset) -> pa.Array:
    """The distinct underlyings of the day's option trades, read one row group at a time."""
    seen: set[str] = set()
    for batch in option_trades.to_batches(columns=["underlying"], **BOUNDED_SCAN_OPTIONS):
        seen.update(pc.unique(batch.column(0)).drop_null().to_pylist())
    return pa.array(sorted(seen), pa.string())


def _rate(setting: float | str, treasury_yields: ds.Dataset | None) -> float | TreasuryCurve:
    if setting != "curve":
        return float(setting)
    if treasury_yields is None:
        raise dg.Failure(
            'greeks.risk_free_rate = "curve" but the definitions were loaded with a constant '
            "rate (no treasury_yields input): reload the definitions"
        )
    return TreasuryCurve.from_table(treasury_yields.to_table())
