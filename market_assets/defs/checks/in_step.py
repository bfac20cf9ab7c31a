# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Checks that run inside their asset's step: declared in the asset's ``check_specs``,
fed the batches as the IO manager writes them (one pass, memory bounded by one ticker's
run, see :mod:`market_assets.core.quality`) and judged on the staged partition before it
replaces the stored one. Checks whose failure means the data is wrong are ``blocking`` with
severity ERROR: the partition is not swapped in and the run fails. The option-trade
duplicate count is a WARN (see ``exact_duplicates`` below).

Implausible prices (stock trades, ``plausible_prices``): prints more than
``checks.implausible_price_factor`` times from their ticker's day median
(:mod:`market_assets.core.implausible_prices`, docs/data_quality.md). They are valid values,
so they are stored; the greeks and the features leave them out by the same rule. The check
reports every one (count per ticker, the most extreme with their time, price and median)
as a WARN, and fails ERROR, blocking, when they are more than
``checks.max_implausible_share`` of the day's rows: then the file itself is suspect and the
previous partition is kept.

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

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass

import dagster as dg
import pyarrow.compute as pc
import pyarrow.dataset as ds

from market_assets.core.calendar import NEW_YORK
from market_assets.core.classification_quality import DATA_REASONS, ClassificationStats
from market_assets.core.implausible_prices import (
    ImplausiblePrices,
    ImplausiblePriceScan,
    PriceRule,
    scan_implausible_prices_any_order,
)
from market_assets.core.quality import (
    OPTION_TRADE_COLUMNS,
    STOCK_TRADE_KEY,
    BatchAccumulator,
    DuplicateCount,
    GreeksStatusShares,
    NbboStateCounts,
    RowCount,
    RunDuplicateCounter,
    UnparsedOptionTickers,
)
from market_assets.core.schemas import GREEKS_STATUSES
from market_assets.defs.io_managers import StreamCheck
from market_assets.io.spill import count_duplicates_spilled, partition_count
from market_assets.settings import CheckSettings

MAX_OPTION_EXACT_DUPLICATE_SHARE = 0.10
REPLAY_BATCH_ROWS = 262_144
PRICE_EXAMPLES = 20  # implausible prints shown in the check's metadata

Staged = Callable[[], ds.Dataset]
Judge = Callable[[Staged], dg.AssetCheckResult]


@dataclass(frozen=True)
class CheckInfo:
    """What the UI shows of a check before it runs."""

    name: str
    blocking: bool
    description: str


def _non_empty(asset: str) -> CheckInfo:
    return CheckInfo(
        "non_empty", True, f"{asset} has at least one row on the trading day (ERROR, blocking)."
    )


CHECKS: dict[str, tuple[CheckInfo, ...]] = {
    "stock_trades": (
        _non_empty("stock_trades"),
        CheckInfo(
            "no_duplicate_trades",
            True,
            "No two rows share (ticker, sequence_number): the SIP sequence number is unique per "
            "ticker and day (ERROR, blocking).",
        ),
        CheckInfo(
            "plausible_prices",
            True,
            "No print more than checks.implausible_price_factor times above or below its "
            "ticker's median price of the day. Such prints are reported (WARN) and left out of "
            "the greeks and features; above checks.max_implausible_share of the rows the check "
            "fails (ERROR, blocking).",
        ),
    ),
    "option_trades": (
        _non_empty("option_trades"),
        CheckInfo(
            "exact_duplicates",
            False,
            "Counts option trades identical in every source column. OPRA files have no trade id "
            "and real distinct prints can repeat exactly, so this only warns above "
            f"{MAX_OPTION_EXACT_DUPLICATE_SHARE:.0%} (WARN).",
        ),
        CheckInfo(
            "tickers_parsed",
            True,
            "Every option ticker parsed: underlying, expiration, contract_type, strike non-null "
            "(ERROR, blocking).",
        ),
    ),
    **{
        asset: (
            _non_empty(asset),
            CheckInfo(
                "nbbo_states",
                False,
                "Shares of the day's NBBO rows that are Locked (bid == ask), Crossed (bid > ask) "
                "or Invalid (a zero or missing side) at most checks.max_nbbo_locked_share, "
                "max_nbbo_crossed_share and max_nbbo_invalid_share (WARN).",
            ),
        )
        for asset in ("stock_quotes", "option_quotes")
    },
    "option_trades_greeks": (
        CheckInfo(
            "status_shares",
            True,
            "greeks_status shares within [checks] (min_ok_share, max_no_underlying_share, "
            "max_bad_input_share) and iv finite and > 0 on every ok trade (ERROR, blocking).",
        ),
    ),
    "option_trades_classified": (
        CheckInfo(
            "all_trades_kept",
            True,
            "As many rows as option_trades_greeks: every trade kept, classified or not (ERROR, "
            "blocking).",
        ),
        CheckInfo(
            "classification_quality",
            False,
            "Share of trades Unknown for lack of a usable NBBO (no quote, stale, locked, "
            "crossed, invalid, bad trade; inside the spread not counted) at most "
            "checks.max_unknown_share (WARN). Metadata: the share of each side and Unknown "
            "reason, of each state of the NBBO in force, and the NBBO age p50/p90/p99.",
        ),
    ),
}


def check_specs(asset: str, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The ``check_specs`` of ``asset``: one result per partition in the UI."""
    with warnings.catch_warnings():
        # A partitions_def on an AssetCheckSpec is a preview feature.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                info.name,
                asset=asset,
                blocking=info.blocking,
                description=info.description,
                partitions_def=partitions_def,
            )
            for info in CHECKS[asset]
        ]


def _stream_check(
    asset: str, name: str, accumulator: BatchAccumulator, judge: Judge
) -> StreamCheck:
    info = next(i for i in CHECKS[asset] if i.name == name)
    return StreamCheck(info.name, info.blocking, accumulator, judge)


# --- the checks ----------------------------------------------------------------------------


def non_empty_check(asset: str, why_empty: Callable[[], str]) -> StreamCheck:
    """At least one row; ``why_empty()`` explains an empty result (e.g. which configured
    tickers are not in the file)."""
    rows = RowCount()

    def judge(_staged: Staged) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name="non_empty",
            passed=rows.rows > 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows.rows},
            description=None if rows.rows else why_empty(),
        )

    return _stream_check(asset, "non_empty", rows, judge)


def _duplicates(counter: RunDuplicateCounter, staged: Staged) -> tuple[DuplicateCount, str]:
    """The counter's result, completed over the staged rows where it could not count in one
    pass (runs out of time order, or rows not in ticker order: exact hash-partitioned
    counting spilled to disk); and how it was counted."""
    if not counter.ordered:
        parts = partition_count(counter.count.rows)
        rows = staged().to_batches(columns=counter.columns, batch_size=REPLAY_BATCH_ROWS)
        found = count_duplicates_spilled(rows, counter.columns, counter.order, parts)
        return found, f"hash-partitioned over {parts} spill file(s): rows not in ticker order"
    found = counter.result()
    if not counter.recount:
        return found, "per ticker run"
    names = sorted(counter.recount)
    rows = staged().to_batches(
        columns=counter.columns,
        filter=pc.field(counter.run_column).isin(names),
        batch_size=REPLAY_BATCH_ROWS,
    )
    parts = partition_count(counter.recount_rows)
    again = count_duplicates_spilled(rows, counter.columns, counter.order, parts)
    found.add(again.duplicates, again.examples)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return found, (
        f"per ticker run; {len(names)} run(s) out of time order counted again from the "
        f"written rows ({shown})"
    )


def stock_duplicates_check() -> StreamCheck:
    """No two stock trades share (ticker, sequence_number)."""
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, order="sequence_number")

    def judge(staged: Staged) -> dg.AssetCheckResult:
        found, how = _duplicates(counter, staged)
        return dg.AssetCheckResult(
            check_name="no_duplicate_trades",
            passed=found.duplicates == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": found.rows,
                "duplicate_rows": found.duplicates,
                "key": ", ".join(STOCK_TRADE_KEY),
                "example_tickers": ", ".join(found.examples),
                "counted": how,
            },
        )

    return _stream_check("stock_trades", "no_duplicate_trades", counter, judge)


def price_rule(checks: CheckSettings) -> PriceRule:
    """The implausible-price rule of ``[checks]``: the one the check, the greeks and the
    features apply."""
    return PriceRule(factor=checks.implausible_price_factor)


def _new_york(ns: int | None) -> str:
    if ns is None:
        return "-"
    t = dt.datetime.fromtimestamp(ns // 10**9, NEW_YORK)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 10**9:09d} ET"


def _price_examples(found: ImplausiblePrices) -> str:
    rows = [
        f"| {e.ticker} | {_new_york(e.sip_timestamp)} | {e.price:.10g} | {e.median:.6g} | {e.row} |"
        for e in found.examples
    ]
    return "\n".join(
        ["| ticker | sip_timestamp | price | day median | row |", "|---|---|---|---|---|", *rows]
    )


def _by_ticker(found: ImplausiblePrices, most: int = 50) -> str:
    shown = [f"{t}: {n:,}" for t, n in list(found.by_ticker.items())[:most]]
    more = len(found.by_ticker) - len(shown)
    return ", ".join(shown) + (f", ... ({more:,} more tickers)" if more > 0 else "")


def plausible_prices_check(checks: CheckSettings) -> StreamCheck:
    """Stock prints far from their ticker's day median: reported, a failure above the share."""
    rule = price_rule(checks)
    scan = ImplausiblePriceScan(rule, PRICE_EXAMPLES)

    def judge(staged: Staged) -> dg.AssetCheckResult:
        if scan.ordered:
            found, how = scan.result(), "one pass, per ticker run"
        else:
            columns = ["ticker", "price", "sip_timestamp"]
            found = scan_implausible_prices_any_order(
                lambda: staged().to_batches(columns=columns, batch_size=REPLAY_BATCH_ROWS),
                rule,
                PRICE_EXAMPLES,
            )
            how = f"two passes over the written rows ({scan.disorder})"
        share = found.implausible / found.rows if found.rows else 0.0
        limit = checks.max_implausible_share
        description = None
        if found.implausible:
            worst = found.examples[0]
            description = (
                f"{found.implausible:,} implausible print(s) ({share:.4%} of {found.rows:,} rows; "
                f"more than {rule.factor:g}x from their ticker's day median): "
                f"{_by_ticker(found, 10)}; e.g. {worst.ticker} at "
                f"{_new_york(worst.sip_timestamp)}: {worst.price:.10g} against a median of "
                f"{worst.median:.6g}. "
                + (
                    f"That is more than checks.max_implausible_share ({limit:.4%})."
                    if share > limit
                    else "Greeks and features leave them out."
                )
            )
        return dg.AssetCheckResult(
            check_name="plausible_prices",
            passed=found.implausible == 0,
            severity=dg.AssetCheckSeverity.ERROR if share > limit else dg.AssetCheckSeverity.WARN,
            metadata={
                "rows": found.rows,
                "tickers": found.tickers,
                "implausible_rows": found.implausible,
                "implausible_share": round(share, 8),
                "max_implausible_share": limit,
                "factor": rule.factor,
                "by_ticker": _by_ticker(found),
                "examples": dg.MetadataValue.md(_price_examples(found)),
                "counted": how,
            },
            description=description,
        )

    return _stream_check("stock_trades", "plausible_prices", scan, judge)


def option_duplicates_check() -> StreamCheck:
    """Option trades identical in every source column: a warning above the share."""
    counter = RunDuplicateCounter(OPTION_TRADE_COLUMNS, order="sip_timestamp")

    def judge(staged: Staged) -> dg.AssetCheckResult:
        found, how = _duplicates(counter, staged)
        share = found.duplicates / found.rows if found.rows else 0.0
        return dg.AssetCheckResult(
            check_name="exact_duplicates",
            passed=share <= MAX_OPTION_EXACT_DUPLICATE_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows": found.rows,
                "exact_duplicate_rows": found.duplicates,
                "exact_duplicate_share": round(share, 6),
                "max_share": MAX_OPTION_EXACT_DUPLICATE_SHARE,
                "example_tickers": ", ".join(found.examples),
                "counted": how,
            },
        )

    return _stream_check("option_trades", "exact_duplicates", counter, judge)


def tickers_parsed_check() -> StreamCheck:
    """Every option ticker parsed into underlying, expiration, contract_type and strike."""
    acc = UnparsedOptionTickers()

    def judge(_staged: Staged) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name="tickers_parsed",
            passed=acc.unparsed == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": acc.rows,
                "unparsed_rows": acc.unparsed,
                "examples": ", ".join(acc.examples),
            },
        )

    return _stream_check("option_trades", "tickers_parsed", acc, judge)


def status_shares_check(bounds: CheckSettings, shares: GreeksStatusShares) -> StreamCheck:
    """greeks_status shares within ``[checks]`` and a real iv on every ok trade."""

    def judge(_staged: Staged) -> dg.AssetCheckResult:
        problems = shares.violations(
            bounds.min_ok_share, bounds.max_no_underlying_share, bounds.max_bad_input_share
        )
        md: dict[str, object] = {"rows": shares.rows, "ok_trades_with_bad_iv": shares.ok_bad_iv}
        md.update({f"share_{s}": round(shares.share(s), 6) for s in GREEKS_STATUSES})
        md.update(
            {
                "min_ok_share": bounds.min_ok_share,
                "max_no_underlying_share": bounds.max_no_underlying_share,
                "max_bad_input_share": bounds.max_bad_input_share,
            }
        )
        return dg.AssetCheckResult(
            check_name="status_shares",
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=md,
            description="; ".join(problems) or None,
        )

    return _stream_check("option_trades_greeks", "status_shares", shares, judge)


def nbbo_limits(bounds: CheckSettings) -> dict[str, float]:
    """The ``[checks]`` bound on each NBBO state's share of a day's quote rows."""
    return {
        "Locked": bounds.max_nbbo_locked_share,
        "Crossed": bounds.max_nbbo_crossed_share,
        "Invalid": bounds.max_nbbo_invalid_share,
    }


def nbbo_states_check(asset: str, bounds: CheckSettings) -> StreamCheck:
    """Locked, crossed and invalid NBBO shares within ``[checks]``: a warning above them."""
    states = NbboStateCounts()
    limits = nbbo_limits(bounds)

    def judge(_staged: Staged) -> dg.AssetCheckResult:
        problems = states.violations(limits)
        md: dict[str, object] = {"rows": states.rows}
        md.update({f"share_{s.lower()}": round(states.share(s), 6) for s in states.counts})
        md.update({f"max_{s.lower()}_share": v for s, v in limits.items()})
        return dg.AssetCheckResult(
            check_name="nbbo_states",
            passed=not problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=md,
            description="; ".join(problems) or None,
        )

    return _stream_check(asset, "nbbo_states", states, judge)


def ingest_checks(
    asset: str, selected: Collection[str], why_empty: Callable[[], str], bounds: CheckSettings
) -> list[StreamCheck]:
    """The in-step checks of an ingest asset; ``selected`` names those the run reports."""
    checks = [non_empty_check(asset, why_empty)]
    if asset == "stock_trades":
        checks += [stock_duplicates_check(), plausible_prices_check(bounds)]
    elif asset in ("stock_quotes", "option_quotes"):
        checks += [nbbo_states_check(asset, bounds)]
    else:
        checks += [option_duplicates_check(), tickers_parsed_check()]
    for c in checks:
        c.selected = c.name in selected
    return checks


def classified_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The ``check_specs`` of option_trades_classified."""
    return check_specs("option_trades_classified", partitions_def)


def classified_checks(
    bounds: CheckSettings, expected_rows: int, stats: ClassificationStats, rows: RowCount
) -> list[StreamCheck]:
    """option_trades_classified's in-step checks: every one of ``expected_rows`` trades
    kept, and the Unknown shares within ``checks.max_unknown_share``."""

    def kept(_staged: Staged) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name="all_trades_kept",
            passed=rows.rows == expected_rows,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows.rows, "option_trades_greeks_rows": expected_rows},
            description=None
            if rows.rows == expected_rows
            else f"{rows.rows:,} rows written, option_trades_greeks has {expected_rows:,}",
        )

    def quality(_staged: Staged) -> dg.AssetCheckResult:
        share = stats.data_unknown_share
        ok = share <= bounds.max_unknown_share
        by_reason = ", ".join(
            f"{r} {stats.share(stats.reasons, r):.2%}" for r in DATA_REASONS if stats.reasons.get(r)
        )
        return dg.AssetCheckResult(
            check_name="classification_quality",
            passed=ok,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                **stats.metadata(),
                "unknown_without_usable_nbbo_share": round(share, 6),
                "max_unknown_share": bounds.max_unknown_share,
            },
            description=None
            if ok
            else (
                f"{share:.2%} of trades Unknown without a usable NBBO ({by_reason}) > "
                f"checks.max_unknown_share {bounds.max_unknown_share:.2%}"
            ),
        )

    asset = "option_trades_classified"
    return [
        _stream_check(asset, "all_trades_kept", rows, kept),
        _stream_check(asset, "classification_quality", stats, quality),
    ]
