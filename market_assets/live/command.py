# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The ``market-assets live`` command line (the run itself: :mod:`market_assets.live.run`)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

API_KEY_ENV = "MASSIVE_API_KEY"
EXIT_AUTH = 2


def _hhmm(s: str) -> dt.time:
    try:
        return dt.datetime.strptime(s, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a time as HH:MM (ET)") from None


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date as YYYY-MM-DD") from None


def _seconds(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number of seconds") from None
    if not v > 0:
        raise argparse.ArgumentTypeError("expected a positive number of seconds")
    return v


def run_stats(pipeline: Any) -> dict[str, Any]:
    """What ``--stats-json`` writes: the counters, the sustained trades/s and the latency
    quantiles (seconds) of a finished run."""
    c = pipeline.counters
    span = (
        c.last_frame_done_at - c.first_frame_at
        if c.first_frame_at is not None and c.last_frame_done_at is not None
        else None
    )
    return {
        "day": pipeline.day.isoformat(),
        "frames": c.frames,
        "stock_trades": c.stock_trades,
        "option_trades": c.option_trades,
        "stock_quotes": c.stock_quotes,
        "option_quotes": c.option_quotes,
        "late_dropped": c.late_dropped,
        "duplicates": c.duplicates,
        "malformed": dict(c.malformed),
        "rejected": dict(c.rejected),
        "windows_written": c.windows_written,
        "windows_skipped": c.windows_skipped,
        "gaps": c.gaps,
        "seconds": span,
        "trades_per_s": c.trades_per_s,
        "close_latency": c.close_latency.summary(),
        "queue_wait": c.queue_wait.summary(),
    }


def add_live_parser(sub: Any, parents: list[argparse.ArgumentParser] = ()) -> None:  # type: ignore[assignment]
    """Register ``market-assets live`` on the CLI's subparsers (``parents``: the options
    every command shares)."""
    p = sub.add_parser(
        "live",
        parents=list(parents),
        help="live prelim windows of realtime.symbol from Massive's WebSocket feed",
        description=(
            "Stream realtime.symbol's stock and option trades (and, with features.aggression, "
            "quotes) from realtime.feed, compute the windows of realtime.windows as the batch "
            "does and write each closed window to realtime.output/window=<w>/dt=<day>/ "
            f"(quality = prelim). The API key is read from ${API_KEY_ENV}."
        ),
    )
    p.add_argument(
        "--date",
        type=_date,
        help="the trading day followed (default: today in New York); trades of other days "
        "are dropped. Pass the replayed day against market-assets replay",
    )
    p.add_argument("--until", type=_hhmm, help="stop once the watermark passes HH:MM (ET)")
    p.add_argument("--idle-exit", type=_seconds, metavar="S", help="stop after S s without data")
    p.add_argument("--feed", help="override realtime.feed (e.g. 127.0.0.1:8765)")
    p.add_argument(
        "--option-contracts",
        choices=("snapshot", "all"),
        help="override realtime.option_contracts (all: T.* on the options socket)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="ws:// instead of wss:// (the replay server)"
    )
    p.add_argument(
        "--view",
        choices=("auto", "on", "off"),
        default="auto",
        help="the terminal view (auto: when stdout is a terminal)",
    )
    p.add_argument("--metrics-port", type=int, help="override realtime.metrics_port (0: off)")
    p.add_argument(
        "--stats-json",
        metavar="PATH",
        help="at exit, write the run's counts, trades/s and latency quantiles as JSON to PATH",
    )
    p.set_defaults(func=cmd_live)


def cmd_live(args: argparse.Namespace) -> int:
    from market_assets.live.feed import FeedAuthError
    from market_assets.live.run import LiveOptions, LivePipeline, LiveSetupError, run_live
    from market_assets.settings import load_settings

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    settings = load_settings()
    changes: dict[str, Any] = {}
    if args.feed:
        changes["feed"] = args.feed
    if args.insecure:
        changes["secure"] = False
    if args.option_contracts:
        changes["option_contracts"] = args.option_contracts
    if changes:
        rt = settings.realtime.model_copy(update=changes)
        settings = settings.model_copy(update={"realtime": rt})
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        print(f"error: set {API_KEY_ENV} to your Massive API key", file=sys.stderr)
        return EXIT_AUTH
    view = args.view == "on" or (args.view == "auto" and sys.stdout.isatty())
    options = LiveOptions(
        until=args.until,
        idle_exit_s=args.idle_exit,
        view=view,
        metrics_port=args.metrics_port,
        day=args.date,
    )

    async def main() -> LivePipeline:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_live(settings, api_key, options, stop)

    try:
        pipeline = asyncio.run(main())
    except FeedAuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_AUTH
    except LiveSetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    c = pipeline.counters
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(run_stats(pipeline), indent=2) + "\n")
    rejected = ", ".join(f"{n} {rule}" for rule, n in sorted(c.rejected.items())) or "0"
    print(
        f"live {settings.realtime.symbol} {pipeline.day}: {c.windows_written} windows written "
        f"to {settings.realtime.output} ({c.stock_trades:,} stock + {c.option_trades:,} option "
        f"trades, {c.option_quotes:,} option quotes, {c.late_dropped} late, {c.duplicates} "
        f"duplicates, {sum(c.malformed.values())} malformed, rejected by a value rule: "
        f"{rejected}, {c.gaps} gaps)",
        flush=True,
    )
    return 0
