# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""``market-assets``: sample data, the demo run, and one-off materializations."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_assets.defs.jobs import DAILY_FEATURES_JOB

if TYPE_CHECKING:
    import dagster as dg

    from market_assets.defs.run_report import RunProgress
    from market_assets.settings import Settings

DEMO_DATE = "2026-11-20"
JOB = DAILY_FEATURES_JOB

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_YET = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = """\
exit codes:
  0    success (failed non-blocking WARN checks are listed but do not fail the command)
  1    failed: each failed step of the run is printed with its root cause (bad data,
       a source that cannot be read, a write error, a failed blocking check, ...)
  2    usage or configuration error, nothing was run: a bad argument or config.toml, a
       date that is not an NYSE trading day or is before partitions.start_date, an
       unknown asset name, missing or rejected S3 credentials
  3    not available yet, nothing was run: the day has not ended in New York, or its
       flat file does not exist (Massive publishes each day's files by about 11:00 ET
       the next trading day; or the day is missing from the local mirror)
  130  interrupted (Ctrl-C)
"""


class CliError(Exception):
    """A problem reported as one ``error:`` line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date as YYYY-MM-DD") from None


def _scale(s: str) -> str | int:
    if s in ("tiny", "demo", "large"):
        return s
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{s!r}: expected tiny, demo, large or a row count"
        ) from None
    if n <= 0:
        raise argparse.ArgumentTypeError("the row count must be positive")
    return n


# --- argument checks: each raises CliError with what is wrong and how to fix it -------------


def check_trading_day(day: dt.date) -> None:
    """Fail unless NYSE trades on ``day``; say why not and name the nearest trading days."""
    from market_assets.core.calendar import (
        closed_reason,
        next_trading_day,
        previous_trading_day,
        xnys,
    )

    cal = xnys()
    if not cal.first_session.date() <= day <= cal.last_session.date():
        return  # outside the calendar: the partition check says why
    reason = closed_reason(day)
    if reason:
        prev, nxt = previous_trading_day(day), next_trading_day(day)
        raise CliError(
            f"{day} is not an NYSE trading day ({reason}): the previous trading day is "
            f"{prev} ({prev:%A}), the next {nxt} ({nxt:%A})"
        )


def check_partition(
    day: dt.date, settings: Settings, partitions_def: dg.PartitionsDefinition
) -> str:
    """The partition key of ``day``; fails for a day before ``partitions.start_date`` or one
    whose partition does not exist yet."""
    from market_assets.core.calendar import NEW_YORK, next_trading_day

    check_trading_day(day)
    start = settings.partitions.start_date
    if day < start:
        raise CliError(
            f"{day} is before partitions.start_date = {start} (in {settings.path}), so it has "
            f"no partition; set partitions.start_date to {day} or earlier to include it"
        )
    key = day.isoformat()
    if partitions_def.has_partition_key(key):
        return key
    now = dt.datetime.now(NEW_YORK)
    if day >= now.date():
        when = "has not ended" if day == now.date() else "is in the future"
        try:
            due = f"; Massive publishes its files by about 11:00 ET on {next_trading_day(day)}"
        except Exception:  # beyond the calendar's last session
            due = ""
        raise CliError(
            f"{day} {when} in New York (now {now:%Y-%m-%d %H:%M} ET), so its partition does "
            f"not exist yet{due}",
            EXIT_NOT_YET,
        )
    raise CliError(f"{day} has no partition in {JOB}")


def asset_order(settings: Settings, names: list[str]) -> list[str]:
    """``names`` in graph order: ingest (trades, quotes), greeks, then features in
    ``features.windows`` order."""
    order = ["stock_trades", "stock_quotes", "option_trades", "option_quotes"]
    order += ["option_trades_greeks"] + [f"features_{w}" for w in settings.features.windows]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def check_assets(requested: list[str] | None, known: list[str]) -> list[str]:
    """The requested asset names (all when none are given); unknown names fail with the list
    of valid ones."""
    if not requested:
        return list(known)
    unknown = [n for n in requested if n not in known]
    if unknown:

        def named(n: str) -> str:
            close = difflib.get_close_matches(n, known, n=1)
            return f"{n!r} (did you mean {close[0]!r}?)" if close else repr(n)

        raise CliError(
            f"unknown asset{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(named(n) for n in unknown)}; valid assets: {', '.join(known)}"
        )
    return [n for n in known if n in requested]


def check_sources(settings: Settings, assets: list[str], day: dt.date) -> None:
    """Fail before any run when a selected ingest asset's flat file does not exist."""
    from market_assets.io.source import (
        DATASETS,
        AccessDenied,
        BadCredentials,
        FileNotPublished,
        SourceError,
        flat_file_key,
        store_from_settings,
    )

    datasets = [a for a in assets if a in DATASETS]
    if not datasets:
        return
    try:
        store = store_from_settings(settings.massive, os.environ)
        for name in datasets:
            key = flat_file_key(name, day)
            if not store.exists(key):
                store.open(key).close()  # raises the store's own FileNotPublished
    except FileNotPublished as e:
        hint = (
            f"\n  massive.local_root = {settings.massive.local_root}: copy the day's files into "
            "this mirror, or write a synthetic day with `market-assets sample --date "
            f"{day} --out {settings.massive.local_root}`"
            if settings.massive.source == "local"
            else ""
        )
        raise CliError(f"{e}{hint}", EXIT_NOT_YET) from None
    except (BadCredentials, AccessDenied) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except SourceError as e:
        raise CliError(str(e), EXIT_FAILED) from None


# --- commands --------------------------------------------------------------------------------


def cmd_sample(args: argparse.Namespace) -> int:
    from market_assets.devtools.sample_day import generate_day

    check_trading_day(args.date)
    started = time.monotonic()
    try:
        paths = generate_day(
            args.date, args.out, scale=args.scale, seed=args.seed, option_header=args.option_header
        )
    except ValueError as e:
        raise CliError(str(e)) from None
    for name, p in paths.items():
        print(f"{name:>14}: {p} ({Path(p).stat().st_size / 1e6:,.1f} MB)")
    print(
        f"generated {args.date} ({args.scale}, seed {args.seed}) in {time.monotonic() - started:.1f} s"
    )
    return EXIT_OK


def cmd_materialize(args: argparse.Namespace) -> int:
    """Materialize every asset (or a selection) for one partition in the local instance."""
    import dagster as dg

    from market_assets.defs.definitions import build_definitions
    from market_assets.defs.run_report import RunProgress, run_failures
    from market_assets.settings import load_settings

    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    settings = load_settings()
    defs = build_definitions(settings)
    graph_keys = defs.resolve_asset_graph().materializable_asset_keys
    known = asset_order(settings, [k.to_user_string() for k in graph_keys])
    assets = check_assets(args.assets, known)
    job = defs.resolve_job_def(JOB)
    key = check_partition(args.date, settings, job.partitions_def)
    check_sources(settings, assets, args.date)
    try:
        instance = dg.DagsterInstance.get()
    except dg.DagsterError as e:
        raise CliError(f"Dagster instance (DAGSTER_HOME): {e}") from None

    progress = RunProgress()
    run_id = str(uuid.uuid4())
    print(
        f"materializing {len(assets)} asset(s) for {key}: {', '.join(assets)} (run {run_id})",
        file=sys.stderr,
    )
    with _library_logs_to(progress):
        try:
            result = job.with_logger_defs({"progress": progress.logger_def()}).execute_in_process(
                instance=instance,
                partition_key=key,
                asset_selection=[dg.AssetKey(a) for a in assets] if args.assets else None,
                raise_on_error=False,
                run_id=run_id,
                run_config={"loggers": {"progress": {}}},
            )
        except dg.DagsterExecutionInterruptedError:
            raise KeyboardInterrupt from None
    print()
    print(f"Dagster instance: {instance.root_directory}   run: {result.run_id}")
    events = list(result.all_events)
    _print_outputs(events, settings, key)
    if not result.success:
        failures = run_failures(events)
        if any(f.interrupted for f in failures):
            print(f"interrupted: run {result.run_id} is marked failed", file=sys.stderr)
            return EXIT_INTERRUPTED
        for f in failures:
            print(f"error: {f.text(traceback=args.traceback)}", file=sys.stderr)
        if not failures:
            print("error: the run failed without a recorded cause", file=sys.stderr)
        print(
            f"(run {result.run_id}: every log line is in the Dagster UI, `make ui`)",
            file=sys.stderr,
        )
        if failures and all(f.not_published for f in failures):
            return EXIT_NOT_YET
        return EXIT_FAILED
    _print_preview(settings, key)
    return EXIT_OK


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: RunProgress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.line(record.name.rsplit(".", 1)[-1], record.getMessage())


@contextlib.contextmanager
def _library_logs_to(progress: RunProgress) -> Iterator[None]:
    """Show the project's own Python log lines (e.g. S3 retries) as progress lines."""
    handler, logger = _ProgressHandler(progress), logging.getLogger("market_assets")
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _print_outputs(events: list[Any], settings: Settings, key: str) -> None:
    """One line per materialized asset, then the asset checks' verdicts."""
    mats, checks = {}, []
    for node in events:
        if node.event_type_value == "ASSET_MATERIALIZATION":
            mat = node.event_specific_data.materialization
            mats[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
        elif node.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = node.event_specific_data
            checks.append((ev.asset_key.to_user_string(), ev.check_name, ev.passed))
    for name in asset_order(settings, list(mats)):
        md = mats[name]
        shown = {
            k: md[k]
            for k in ("rows", "files", "bytes", "rejected_rows", "elapsed_seconds")
            if k in md
        }
        # features_reconciliation: per window size, windows compared and differing.
        shown |= {
            k: v for k, v in md.items() if k.startswith(("windows_compared_", "windows_differing_"))
        }
        print(f"  {name:<22} dt={key}  {shown}  {md.get('path', '')}")
    if checks:
        failed = [f"{a}:{c}" for a, c, passed in checks if not passed]
        print(
            f"  asset checks: {len(checks) - len(failed)} of {len(checks)} passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )


def _print_preview(settings: Settings, key: str) -> None:
    from market_assets.defs.charts import PREVIEW_COLUMNS
    from market_assets.io.parquet_store import ParquetStore, asset_path

    store = ParquetStore.from_settings(settings.storage)
    for w in settings.features.windows:
        try:
            t = store.dataset(
                asset_path(f"features_{w}", settings.features.symbol), [key]
            ).to_table()
        except FileNotFoundError:
            continue
        print(f"\nfeatures_{w}: {t.num_rows} windows x {t.num_columns} columns; first rows:")
        print(t.select(list(PREVIEW_COLUMNS)).slice(0, 3).to_pandas().to_string(index=False))


_TRACEBACK_HELP = "show the full tracebacks behind error messages"


def build_parser() -> argparse.ArgumentParser:
    """The ``market-assets`` parser: one subparser per command, each setting ``func``."""
    parser = argparse.ArgumentParser(
        prog="market-assets",
        description="Sample data, the demo run, and one-off materializations.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--traceback", action="store_true", help=_TRACEBACK_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    # Subcommands accept --traceback too (SUPPRESS: an absent flag keeps the main default).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--traceback", action="store_true", default=argparse.SUPPRESS, help=_TRACEBACK_HELP
    )

    p = sub.add_parser(
        "sample",
        parents=[common],
        help="write a synthetic trading day in Massive's flat-file layout",
    )
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--out", type=Path, required=True, help="mirror root (bucket keys below it)")
    p.add_argument(
        "--scale", type=_scale, default="demo", help="tiny | demo | large | N stock trades"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--option-header",
        choices=["v7", "v8"],
        default="v7",
        help="v7: recent 7-column option trades header; v8: older 8-column one",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "materialize",
        parents=[common],
        help="materialize every asset for one trading day",
        description=(
            "Materialize every asset (or --assets) and its checks for one trading day in the\n"
            "local Dagster instance ($DAGSTER_HOME, default ./dagster_home), printing each\n"
            "step's start and finish with its elapsed time, then what was written."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--date", type=_date, default=_date(DEMO_DATE), help=f"YYYY-MM-DD (default {DEMO_DATE})"
    )
    p.add_argument("--assets", nargs="*", help="asset names (default: all)")
    p.set_defaults(func=cmd_materialize)

    from market_assets.live.replay import add_replay_parser

    add_replay_parser(sub, _date, parents=[common])
    from market_assets.live.command import add_live_parser

    add_live_parser(sub, parents=[common])

    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error argparse has printed (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    from market_assets.settings import ConfigError

    try:
        return args.func(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if args.traceback:
            raise
        print(
            f"error: unexpected {type(e).__name__}: {e} "
            f"(`market-assets --traceback {args.command} ...` shows where)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
