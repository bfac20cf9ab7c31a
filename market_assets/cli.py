# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""``market-assets``: sample data, the demo run, and one-off materializations."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

DEMO_DATE = "2026-11-20"


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


def cmd_sample(args: argparse.Namespace) -> int:
    from market_assets.devtools.sample_day import generate_day

    started = time.monotonic()
    paths = generate_day(
        args.date, args.out, scale=args.scale, seed=args.seed, option_header=args.option_header
    )
    for name, p in paths.items():
        print(f"{name:>14}: {p} ({Path(p).stat().st_size / 1e6:,.1f} MB)")
    print(
        f"generated {args.date} ({args.scale}, seed {args.seed}) in {time.monotonic() - started:.1f} s"
    )
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    """Materialize every asset (or a selection) for one partition in the local instance."""
    import dagster as dg

    from market_assets.defs.charts import PREVIEW_COLUMNS
    from market_assets.defs.definitions import build_definitions
    from market_assets.io.parquet_store import ParquetStore, asset_path
    from market_assets.settings import load_settings

    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    settings = load_settings()
    defs = build_definitions(settings)
    key = args.date.isoformat()
    job = defs.resolve_job_def("daily_features_job")
    instance = dg.DagsterInstance.get()
    selection = [dg.AssetKey(a) for a in args.assets] if args.assets else None
    result = job.execute_in_process(
        instance=instance,
        partition_key=key,
        asset_selection=selection,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    print()
    print(f"Dagster instance: {instance.root_directory}   run: {result.run_id}")
    ok = result.success
    order = ["stock_trades", "option_trades", "option_trades_greeks"] + [
        f"features_{w}" for w in settings.features.windows
    ]
    mats, checks = {}, []
    for node in result.all_node_events:
        if node.event_type_value == "ASSET_MATERIALIZATION":
            mat = node.event_specific_data.materialization
            mats[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
        elif node.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = node.event_specific_data
            checks.append((ev.asset_key.to_user_string(), ev.check_name, ev.passed))
    for name in sorted(mats, key=lambda n: order.index(n) if n in order else len(order)):
        md = mats[name]
        shown = {
            k: md[k]
            for k in ("rows", "files", "bytes", "rejected_rows", "elapsed_seconds")
            if k in md
        }
        print(f"  {name:<22} dt={key}  {shown}  {md.get('path', '')}")
    if checks:
        failed = [f"{a}:{c}" for a, c, passed in checks if not passed]
        print(
            f"  asset checks: {len(checks) - len(failed)} of {len(checks)} passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    if not ok:
        for ev in result.all_events:
            if ev.is_step_failure:
                print(
                    f"FAILED {ev.step_key}: {ev.step_failure_data.error.message.strip()}",
                    file=sys.stderr,
                )
        return 1
    store = ParquetStore.from_settings(settings.storage)
    for w in settings.features.windows:
        try:
            t = store.dataset(asset_path(f"features_{w}"), [key]).to_table()
        except FileNotFoundError:
            continue
        print(f"\nfeatures_{w}: {t.num_rows} windows x {t.num_columns} columns; first rows:")
        print(t.select(list(PREVIEW_COLUMNS)).slice(0, 3).to_pandas().to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="market-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a synthetic trading day in Massive's flat-file layout")
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

    p = sub.add_parser("materialize", help="materialize every asset for one trading day")
    p.add_argument("--date", type=_date, default=_date(DEMO_DATE))
    p.add_argument("--assets", nargs="*", help="asset names (default: all)")
    p.set_defaults(func=cmd_materialize)

    from market_assets.live.replay import add_replay_parser

    add_replay_parser(sub, _date)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # clear one-line errors for config and input problems
        from market_assets.settings import ConfigError

        if isinstance(e, ConfigError | ValueError | FileNotFoundError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
