# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A three-day backfill whose steps run on two Celery workers (dagster-celery, Redis as the
broker, the PostgreSQL instance, the warehouse on S3) gives every partition the same rows
and values as a single-process run of the same days."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pyarrow as pa
import pytest
import yaml
from polars.testing import assert_frame_equal

from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore, asset_path
from market_assets.settings import config_path, load_settings
from market_assets_tests.config_files import REPO, write_config
from market_assets_tests.postgres_server import (  # noqa: F401  (fixture)
    PostgresServer,
    postgres_server,
)
from market_assets_tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)
from market_assets_tests.s3_server import FAKE_KEY_ID, FAKE_SECRET, REGION, S3Bucket
from market_assets_tests.waiting import log_tails, wait_until

BIN = Path(sys.executable).parent
DAYS = [dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)]
ASSETS = ["stock_trades", "option_trades", "option_trades_greeks", "features_30m"]
WORKERS = ("alpha", "beta")
MODULE = "market_assets.defs.celery_definitions"
BACKFILL_TIMEOUT_S = 240


def _start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGKILL each process started with start_new_session, its group and every process
    it started (run workers, the code server, Celery's pool processes)."""
    for proc in procs:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        except psutil.NoSuchProcess:
            family = []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=10)


def _partition(store: ParquetStore, asset: str, day: dt.date) -> tuple[pa.Schema, pl.DataFrame]:
    """One partition's schema and rows, the rows sorted on every column (the order rows
    are written in is not part of the content)."""
    table = store.dataset(asset_path(asset, "SPY"), [day.isoformat()]).to_table()
    frame = pl.from_arrow(table)
    return table.schema, frame.sort(frame.columns, nulls_last=True)


def _single_process_run(config: Path) -> None:
    """The same days, each as one run whose steps all run in this process."""
    job = build_definitions(load_settings(config)).resolve_job_def("daily_features_job")
    with dg.DagsterInstance.ephemeral() as instance:
        for day in DAYS:
            result = job.execute_in_process(instance=instance, partition_key=day.isoformat())
            assert result.success


@pytest.mark.slow
def test_backfill_on_two_celery_workers_equals_the_single_process_run(
    tmp_path: Path,
    project_config,
    monkeypatch: pytest.MonkeyPatch,
    s3_bucket: S3Bucket,
    postgres_server: PostgresServer,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
):
    for day in DAYS:
        generate_day(day, tmp_path / "massive", scale="tiny", seed=day.day)
    _, bucket, endpoint = s3_bucket
    graph = {"partitions": {"start_date": "2026-11-02"}, "features": {"windows": ["30m"]}}
    warehouse = f"s3://{bucket}/celery"
    config = project_config(**graph, storage={"root": warehouse, "s3_endpoint_url": endpoint})
    reference = write_config(
        tmp_path / "reference.toml",
        **graph,
        massive={"local_root": str(tmp_path / "massive")},
        storage={"root": str(tmp_path / "single_process")},
    )

    # What every host of the deployment has: the shared instance (dagster.postgres.yaml),
    # the config, the broker and backend, and the warehouse's S3 credentials.
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    db = postgres_server.create_database("celery_backfill")
    env_vars = {
        **db.env(),
        "DAGSTER_HOME": str(home),
        "MARKET_ASSETS_CONFIG": str(config),
        "DAGSTER_CELERY_BROKER_URL": redis_server.url(0),
        "DAGSTER_CELERY_BACKEND_URL": redis_server.url(1),
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env_vars.items():
        monkeypatch.setenv(k, v)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    logs = [tmp_path / f"worker-{w}.log" for w in WORKERS] + [tmp_path / "daemon.log"]
    procs: list[subprocess.Popen] = []
    try:
        # The commands docs/operations.md gives: one worker per host (here both on this one,
        # one pool process each), the daemon, then the backfill.
        for name, log in zip(WORKERS, logs, strict=False):
            worker = [
                str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                "-y", str(REPO / "dagster_home" / "celery.yaml"), "-n", name,
                "--", "--concurrency=1",
            ]  # fmt: skip
            procs.append(_start(worker, tmp_path, env, log))
        procs.append(
            _start([str(BIN / "dagster-daemon"), "run", "-m", MODULE], tmp_path, env, logs[-1])
        )
        for log in logs[:2]:
            wait_until(lambda log=log: " ready." in log.read_text(), 60, f"{log.name} ready", logs)
        backfill = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "backfill",
                "-m",
                MODULE,
                "-j",
                "daily_features_job",
                "--partitions",
                ",".join(d.isoformat() for d in DAYS),
                "--noprompt",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr

        # Meanwhile, the reference: the same days in one process, into a local warehouse.
        _single_process_run(reference)

        with dg.DagsterInstance.get() as instance:

            def finished() -> list[dg.DagsterRun] | None:
                runs = instance.get_runs()
                done = [r for r in runs if r.is_finished]
                return runs if len(runs) == len(DAYS) and len(done) == len(DAYS) else None

            runs = wait_until(finished, BACKFILL_TIMEOUT_S, "the backfill's three runs", logs)
            failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
            assert not failed, log_tails(logs) + "\n".join(
                str(e.message)
                for run_id in failed
                for e in instance.all_logs(run_id)
                if e.is_dagster_event and "FAILURE" in e.dagster_event.event_type_value
            )
            assert sorted(r.tags["dagster/partition"] for r in runs) == [
                d.isoformat() for d in DAYS
            ]

            # Every step of every run ran on a Celery worker, and both workers took steps.
            hosts = set()
            for run in runs:
                events = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event]
                succeeded = {
                    e.step_key for e in events if e.dagster_event.event_type_value == "STEP_SUCCESS"
                }
                on_workers = {}
                for e in events:
                    if e.dagster_event.event_type_value != "ENGINE_EVENT":
                        continue
                    data = e.dagster_event.engine_event_data
                    if "Celery worker" in (data.metadata or {}):
                        on_workers[e.step_key] = data.metadata["Celery worker"].value
                assert succeeded and set(on_workers) == succeeded, (succeeded, on_workers)
                hosts |= set(on_workers.values())
            assert {h.split("@", 1)[0] for h in hosts} == set(WORKERS), hosts
    finally:
        _stop(procs)

    # Every partition of every asset: the same rows with the same values (NaN equals NaN,
    # floats compared exactly).
    celery_store = ParquetStore(warehouse, s3_endpoint_url=endpoint)
    single_store = ParquetStore(str(tmp_path / "single_process"))
    for asset in ASSETS:
        for day in DAYS:
            got_schema, got = _partition(celery_store, asset, day)
            want_schema, want = _partition(single_store, asset, day)
            assert got.height > 0, (asset, day)
            assert got_schema.equals(want_schema), (asset, day, got_schema, want_schema)
            assert_frame_equal(got, want, check_exact=True)


def test_celery_definitions_are_the_same_graph_on_the_celery_executor(project_config):
    project_config(features={"windows": ["5m", "30m"]})
    from market_assets.defs import celery_definitions

    celery_defs = importlib.reload(celery_definitions).defs
    plain = build_definitions(load_settings(config_path()))
    job = celery_defs.resolve_job_def("daily_features_job")
    assert job.executor_def.name == "celery"
    assert plain.resolve_job_def("daily_features_job").executor_def.name == (
        "in_process_or_multiprocess"
    )
    assert set(celery_defs.resolve_asset_graph().get_all_asset_keys()) == set(
        plain.resolve_asset_graph().get_all_asset_keys()
    )
    # The executor and the workers' config read the broker and backend from the same variables.
    workers = yaml.safe_load((REPO / "dagster_home" / "celery.yaml").read_text())
    assert workers["execution"]["config"] == {
        "broker": {"env": celery_definitions.BROKER_ENV},
        "backend": {"env": celery_definitions.BACKEND_ENV},
    }
