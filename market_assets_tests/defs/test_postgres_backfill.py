# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A three-day backfill recorded in a real PostgreSQL server via dagster.postgres.yaml."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess

import dagster as dg
import pytest

from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.settings import load_settings
from market_assets_tests.config_files import REPO
from market_assets_tests.postgres_server import (  # noqa: F401  (fixture)
    PostgresServer,
    postgres_server,
)

DAYS = [dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)]
ASSETS = [
    "stock_trades",
    "option_trades",
    "stock_quotes",
    "option_quotes",
    "option_trades_greeks",
    "features_30m",
]


def _postgres_home(tmp_path, monkeypatch, server: PostgresServer, db_name: str) -> PostgresServer:
    """A DAGSTER_HOME whose dagster.yaml is dagster.postgres.yaml, on a fresh database."""
    db = server.create_database(db_name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    for k, v in db.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return db


@pytest.mark.slow
def test_three_day_backfill_is_recorded_in_postgres(
    tmp_path,
    project_config,
    monkeypatch,
    postgres_server,  # noqa: F811
):
    for day in DAYS:
        generate_day(day, tmp_path / "massive", scale="tiny", seed=day.day)
    config = project_config(partitions={"start_date": "2026-11-02"}, features={"windows": ["30m"]})
    db = _postgres_home(tmp_path, monkeypatch, postgres_server, "backfill_in_process")

    defs = build_definitions(load_settings(config))
    job = defs.resolve_job_def("daily_features_job")
    backfill_id = "pgtest"
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        for day in DAYS:  # one run per partition, as a backfill launches them
            result = job.execute_in_process(
                instance=instance,
                partition_key=day.isoformat(),
                tags={"dagster/backfill": backfill_id},
            )
            assert result.success
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert sorted(r.tags["dagster/partition"] for r in runs) == [d.isoformat() for d in DAYS]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        for asset in ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {
                d.isoformat() for d in DAYS
            }

    # The rows themselves, read straight from PostgreSQL.
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
        assert dict(cur.fetchall()) == {"SUCCESS": 3}
        cur.execute(
            "SELECT asset_key, partition, count(*) FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key, partition"
        )
        rows = cur.fetchall()
        assert sorted((k, p) for k, p, _ in rows) == sorted(
            (dg.AssetKey(a).to_string(), d.isoformat()) for a in ASSETS for d in DAYS
        )
        assert all(n == 1 for _, _, n in rows)
        cur.execute(
            "SELECT execution_status, count(*) FROM asset_check_executions GROUP BY execution_status"
        )
        # 12 checks a day (stock_trades 3, option_trades 3, the quote assets 2 each, greeks 1,
        # features_30m 1), all passed.
        assert dict(cur.fetchall()) == {"SUCCEEDED": 12 * len(DAYS)}


@pytest.mark.slow
def test_cli_backfill_queues_one_run_per_trading_day_in_postgres(
    tmp_path,
    project_config,
    monkeypatch,
    postgres_server,  # noqa: F811
):
    config = project_config(partitions={"start_date": "2026-11-02"})
    db = _postgres_home(tmp_path, monkeypatch, postgres_server, "backfill_cli")
    # The command docs/operations.md gives, over a weekend (no partitions on 14 and 15).
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "dagster"),
            "job",
            "backfill",
            "-w",
            "workspace.yaml",
            "-j",
            "daily_features_job",
            "--from",
            "2026-11-13",
            "--to",
            "2026-11-17",
            "--noprompt",
        ],
        cwd=REPO,
        env={**os.environ, "MARKET_ASSETS_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Launched backfill job" in proc.stdout
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted(r.tags["dagster/partition"] for r in runs) == [
            "2026-11-13",
            "2026-11-16",
            "2026-11-17",
        ]
        # Queued for the daemon, which starts at most two at once.
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}
        assert len({r.tags["dagster/backfill"] for r in runs}) == 1
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
        assert dict(cur.fetchall()) == {"QUEUED": 3}
