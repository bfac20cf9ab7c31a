# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Killed runs are marked failed and free their run slot (dagster_home/dagster.yaml's
LocalProcessRunLauncher + run monitoring), under a real daemon and a real instance."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from market_assets.defs.run_monitor import (
    LocalProcessRunLauncher,
    RunWorker,
    process_is_gone,
    run_worker,
)
from market_assets_tests.config_files import REPO
from market_assets_tests.waiting import wait_until

BIN = Path(sys.executable).parent
SLEEPY = """
import time

import dagster as dg


@dg.op
def nap():
    time.sleep(600)


@dg.job(executor_def=dg.in_process_executor)
def sleepy():
    nap()


defs = dg.Definitions(jobs=[sleepy])
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml (SQLite storage in tmp_path) and a
    workspace whose one job sleeps for ten minutes."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: sleepy.py\n"
        "      location_name: sleepy\n"
    )
    # Create the SQLite storages once, here: a daemon and this test creating them at the same
    # moment can stamp alembic twice ("more than one head present").
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.event_log_storage.get_asset_records()
    return tmp_path


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(project / "dagster_home")}


def _instance(project: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(project / "dagster_home"))


def _wait_for(check: Callable[[], object], timeout: float, what: str, log: Path | None = None):
    return wait_until(check, timeout, what, [log] if log else [])


def _start_daemon(project: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=project,
            env=_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _submit_runs(instance: dg.DagsterInstance, workspace_yaml: Path, n: int) -> list[str]:
    """Create ``n`` runs of the ``sleepy`` job and submit them to the instance's run queue
    (what a UI launch or ``dagster job launch`` does)."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_yaml)])) as wpc:
        workspace = wpc.create_request_context()
        location = workspace.get_code_location("sleepy")
        repo = next(iter(location.get_repositories().values()))
        job = location.get_job(
            JobSubsetSelector(
                location_name="sleepy",
                repository_name=repo.name,
                job_name="sleepy",
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            job, {}, step_keys_to_execute=None, known_state=None, instance=instance
        )
        run_ids = []
        for _ in range(n):
            run = instance.create_run(
                job_name="sleepy",
                run_id=None,
                run_config={},
                resolved_op_selection=None,
                step_keys_to_execute=None,
                op_selection=None,
                status=None,
                root_run_id=None,
                parent_run_id=None,
                tags={},
                job_snapshot=job.job_snapshot,
                execution_plan_snapshot=plan.execution_plan_snapshot,
                parent_job_snapshot=None,
                remote_job_origin=job.get_remote_origin(),
                job_code_origin=job.get_python_origin(),
                asset_selection=None,
                asset_check_selection=None,
                asset_graph=repo.asset_graph,
            )
            instance.submit_run(run.run_id, workspace)
            run_ids.append(run.run_id)
    return run_ids


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    return records[0].event_log_entry.message if records else ""


# --- the process check ------------------------------------------------------------------------


def test_a_live_process_started_before_the_run_is_the_runs_own():
    me = psutil.Process()
    assert process_is_gone(RunWorker(os.getpid(), me.create_time() + 5)) is None


def test_an_exited_process_is_gone_even_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not waited for: a zombie until reaped.
    _wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 20, "zombie")
    worker = RunWorker(child.pid, time.time())
    assert "has exited" in process_is_gone(worker)
    child.wait()
    assert "no longer exists" in process_is_gone(worker)


def test_a_pid_reused_by_a_newer_process_counts_as_gone():
    # This process started long after a run that (say) reported RUN_START an hour ago.
    gone = process_is_gone(RunWorker(os.getpid(), time.time() - 3600))
    assert gone and "now belongs to a process started" in gone


# --- in-process runs (market-assets materialize, dagster asset materialize) -------------------


def test_a_killed_in_process_run_is_failed_by_dagsters_run_monitoring(project):
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    log = project / "execute.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-f", "sleepy.py", "-j", "sleepy"],
            cwd=project,
            env=_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with _instance(project) as instance:
            assert isinstance(instance.run_launcher, LocalProcessRunLauncher)
            run_id = _wait_for(
                lambda: next(
                    (
                        r.run_id
                        for r in instance.get_runs()
                        if r.status == dg.DagsterRunStatus.STARTED
                    ),
                    None,
                ),
                60,
                "the in-process run to start",
                log,
            )
            run = instance.get_run_by_id(run_id)
            worker = run_worker(instance, run_id)
            assert worker is not None and worker.pid == proc.pid
            alive = instance.run_launcher.check_run_worker_health(run)
            assert alive.status == WorkerStatus.RUNNING, alive

            _kill_group(proc)
            dead = instance.run_launcher.check_run_worker_health(run)
            assert dead.status == WorkerStatus.FAILED
            assert f"run process {proc.pid} no longer exists" in dead.msg
            # What the daemon's monitoring loop does with that answer.
            record = instance.get_run_record_by_id(run_id)
            monitor_started_run(instance, None, record, logging.getLogger("test"))
            assert _status(instance, run_id) == dg.DagsterRunStatus.FAILURE
            assert f"run process {proc.pid} no longer exists" in _failure_message(instance, run_id)
    finally:
        _kill_group(proc)


def test_a_run_on_another_machine_is_not_judged_by_a_local_pid(project):
    with _instance(project) as instance:
        run = instance.create_run_for_job(
            dg.GraphDefinition(name="g", node_defs=[]).to_job(name="remote_job")
        )
        instance.add_run_tags(run.run_id, {GRPC_INFO_TAG: json.dumps({"host": "10.9.8.7"})})
        # A RUN_START reported by "a process" whose pid is not on this machine.
        dead_here = subprocess.Popen([sys.executable, "-c", "pass"])
        dead_here.wait()
        _store_run_start(instance, run.run_id, dead_here.pid)
        run = instance.get_run_by_id(run.run_id)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.RUNNING
        assert "another machine" in health.msg


def _store_run_start(instance: dg.DagsterInstance, run_id: str, pid: int) -> None:
    from dagster._core.events import DagsterEvent
    from dagster._core.events.log import EventLogEntry

    run = instance.get_run_by_id(run_id)
    event = DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_START.value,
        job_name=run.job_name,
        message="Started (recorded by hand for the test).",
        pid=pid,
    )
    instance.handle_new_event(
        EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run_id,
            timestamp=time.time(),
            dagster_event=event,
        )
    )


# --- under the daemon ---------------------------------------------------------------------


@pytest.mark.slow
def test_runs_killed_with_their_daemon_are_failed_and_the_queue_moves_on(project):
    """SIGKILL of the daemon, its code server and both runs' processes (an OOM kill, a
    crashed ``dagster dev``): after a restart the two runs holding both slots
    (max_concurrent_runs = 2) are failed within 2 minutes and the queued run starts."""
    log = project / "daemon.log"
    daemon = _start_daemon(project, log)
    try:
        with _instance(project) as instance:
            first, second, queued = _submit_runs(instance, project / "workspace.yaml", 3)
            started = {first, second}
            _wait_for(
                lambda: all(_status(instance, r) == dg.DagsterRunStatus.STARTED for r in started),
                90,
                "two runs to start",
                log,
            )
            assert _status(instance, queued) == dg.DagsterRunStatus.QUEUED
            workers = {r: run_worker(instance, r) for r in started}
            assert all(w is not None for w in workers.values())

            _kill_group(daemon)
            killed_at = time.monotonic()
            for w in workers.values():
                _wait_for(lambda w=w: process_is_gone(w), 10, f"process {w.pid} to be gone")
            # Nothing marks them failed while no daemon runs: both slots stay taken.
            assert all(_status(instance, r) == dg.DagsterRunStatus.STARTED for r in started)

            daemon = _start_daemon(project, log)
            _wait_for(
                lambda: all(_status(instance, r) == dg.DagsterRunStatus.FAILURE for r in started),
                120 - (time.monotonic() - killed_at),
                "both killed runs to be marked FAILURE within 2 minutes of the kill",
                log,
            )
            for r in started:
                # Dead either way: gone, or a zombie its parent has not reaped yet (a race
                # with the killed group's teardown).
                message = _failure_message(instance, r)
                pid = workers[r].pid
                assert (
                    f"run process {pid} no longer exists" in message
                    or f"run process {pid} has exited (a zombie" in message
                ), message
            _wait_for(
                lambda: _status(instance, queued) == dg.DagsterRunStatus.STARTED,
                90,
                "the queued run to start in a freed slot",
                log,
            )
    finally:
        _kill_group(daemon)
