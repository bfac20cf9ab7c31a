# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Run monitoring that sees dead run processes: killed runs are failed and free their slot.

Dagster's run-monitoring daemon (``run_monitoring`` in dagster.yaml) fails a STARTED run
only when the run launcher can check the run worker's health, and the DefaultRunLauncher
cannot. A run whose process was SIGKILLed together with the code server that launched it
(an OOM kill, ``kill -9`` of ``dagster dev``, a reboot), or an in-process run
(``market-assets materialize``, ``dagster asset materialize``) that was killed, then stays
STARTED forever and holds one of the queue's ``max_concurrent_runs`` slots.

:class:`LocalProcessRunLauncher` is the DefaultRunLauncher plus that health check: the
run's process is the one that wrote its RUN_START event (its pid is on the event); the run
is dead when no process has that pid any more, the process is a zombie, or the pid now
belongs to a process started after the event (a reused pid). Runs whose process may be on
another machine (a remote code server, or an in-process run recorded in a shared
PostgreSQL instance) are reported RUNNING: a pid means nothing across hosts.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.tags import GRPC_INFO_TAG

# How much later than its RUN_START event a process may seem to have started and still be
# the run's own (create times are derived from boot time and the wall clock, both coarse).
# Generous on purpose: failing a live run is worse than missing a pid reused within a minute.
PID_REUSE_SLACK_S = 60.0

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})


@dataclass(frozen=True)
class RunWorker:
    """The process that started a run: its pid and when it reported RUN_START."""

    pid: int
    started_at: float


def run_worker(instance: DagsterInstance, run_id: str) -> RunWorker | None:
    """The process of the run's latest RUN_START event, or None before the run started."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    if pid is None:
        return None
    return RunWorker(pid=int(pid), started_at=float(entry.timestamp))


def runs_on_this_host(instance: DagsterInstance, run: DagsterRun) -> bool:
    """Whether the run's process is on this machine, so its pid can be checked here.

    A run launched through a code server ran where that server is (a Unix socket or a
    loopback/own host name is this machine); any other run is local when the instance is
    SQLite, which only processes on one machine share.
    """
    grpc_info = run.tags.get(GRPC_INFO_TAG)
    if grpc_info:
        try:
            info = json.loads(grpc_info)
        except ValueError:
            return False
        if info.get("socket"):
            return True
        host = str(info.get("host") or "")
        return host in _LOCAL_HOSTS or host in {socket.gethostname(), socket.getfqdn()}
    return isinstance(instance.run_storage, SqliteRunStorage)


def process_is_gone(worker: RunWorker) -> str | None:
    """Why ``worker``'s process no longer runs, or None while it does."""
    try:
        proc = psutil.Process(worker.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"run process {worker.pid} has exited (a zombie not yet reaped)"
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return f"run process {worker.pid} no longer exists (killed or crashed)"
    except psutil.AccessDenied:
        return None  # it exists; another user's process cannot be inspected further
    if created > worker.started_at + PID_REUSE_SLACK_S:
        return (
            f"run process {worker.pid} no longer exists: that pid now belongs to a process "
            f"started {created - worker.started_at:.0f} s after the run started"
        )
    return None


def check_run_process(instance: DagsterInstance, run: DagsterRun) -> CheckRunHealthResult:
    """RUNNING unless the run's process is known to be gone (then FAILED, saying why)."""
    if not runs_on_this_host(instance, run):
        return CheckRunHealthResult(
            WorkerStatus.RUNNING, "the run's process is on another machine; not checked"
        )
    worker = run_worker(instance, run.run_id)
    if worker is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event yet")
    gone = process_is_gone(worker)
    if gone:
        return CheckRunHealthResult(WorkerStatus.FAILED, gone, run_worker_id=str(worker.pid))
    return CheckRunHealthResult(
        WorkerStatus.RUNNING, f"run process {worker.pid} is alive", run_worker_id=str(worker.pid)
    )


class LocalProcessRunLauncher(DefaultRunLauncher):
    """The DefaultRunLauncher with a worker health check, so run monitoring fails dead runs.

    Configure it in dagster.yaml as ``run_launcher: {module: market_assets.defs.run_monitor,
    class: LocalProcessRunLauncher}`` with ``run_monitoring: {enabled: true}``.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return check_run_process(self._instance, run)
