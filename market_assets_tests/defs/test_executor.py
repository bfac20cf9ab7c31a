# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The runs' executor: `dagster asset materialize` of a whole day runs every step in the
run's own process (no process start per step); a process per step is a run-config choice.
Real `dagster` command, real instance in tmp_path."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.settings import load_settings

DAY = dt.date(2026, 11, 20)
REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
# features_reconciliation runs too (and skips: no live output on a generated day).
STEPS = {
    "stock_trades",
    "option_trades",
    "stock_quotes",
    "option_quotes",
    "option_trades_greeks",
    "features",
    "features_reconciliation",
}


def _materialize_all(tmp_path: Path, config: Path, *extra: str) -> dg.DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKET_ASSETS_CONFIG": str(config)}
    cmd = [str(DAGSTER), "asset", "materialize", "-m", "market_assets.defs.definitions"]
    cmd += ["--select", "*", "--partition", DAY.isoformat(), *extra]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dg.DagsterInstance.from_config(str(home))


def _steps(instance: dg.DagsterInstance) -> tuple[dict[str, int], list]:
    """Each step's process id, and the check evaluations, of the instance's one run."""
    (run,) = instance.get_runs()
    pids, checks = {}, []
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            pids[event.step_key] = event.pid
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            checks.append(event.event_specific_data)
    return pids, checks


@pytest.fixture
def tiny_day(tmp_path, project_config) -> Path:
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    return project_config(partitions={"start_date": "2026-11-02"}, features={"windows": ["30m"]})


def test_a_whole_day_from_dagster_asset_materialize_runs_every_step_in_one_process(
    tmp_path, tiny_day
):
    with _materialize_all(tmp_path, tiny_day) as instance:
        pids, checks = _steps(instance)
    assert set(pids) == STEPS
    assert len(set(pids.values())) == 1
    assert len(checks) == 12 and all(c.passed for c in checks)  # 2 per quote asset


@pytest.mark.slow
def test_a_process_per_step_is_a_run_config_choice(tmp_path, tiny_day):
    config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    with _materialize_all(tmp_path, tiny_day, "--config-json", json.dumps(config)) as instance:
        pids, checks = _steps(instance)
    assert set(pids) == STEPS
    assert len(set(pids.values())) == len(STEPS)
    assert len(checks) == 12 and all(c.passed for c in checks)  # 2 per quote asset


def test_the_daily_job_takes_either_executor_config(project_config):
    defs = build_definitions(load_settings(project_config()))
    for job in (
        defs.resolve_job_def("daily_features_job"),
        defs.resolve_implicit_global_asset_job_def(),
    ):
        assert job.executor_def.name == "in_process_or_multiprocess"
        for mode in ({}, {"in_process": {}}, {"multiprocess": {"max_concurrent": 2}}):
            run_config = {"execution": {"config": mode}} if mode else {}
            assert dg.validate_run_config(job, run_config) is not None
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(job, {"execution": {"config": {"threads": {}}}})
