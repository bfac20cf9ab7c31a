# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""daily_features_schedule: the previous XNYS session, holidays skipped."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from market_assets.defs.definitions import build_definitions
from market_assets.defs.schedules import SCHEDULE_CRON, SCHEDULE_TIMEZONE, target_session
from market_assets.settings import load_settings

NY = ZoneInfo("America/New_York")


def _tick(config, when: dt.datetime, instance: dg.DagsterInstance | None = None):
    repo = build_definitions(load_settings(config)).get_repository_def()
    schedule = repo.get_schedule_def("daily_features_schedule")
    if instance is None:
        with dg.instance_for_test() as own:
            return _tick(config, when, own)
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=repo
    )
    data = schedule.evaluate_tick(ctx)
    return data.run_requests or [], data.skip_message


@pytest.mark.parametrize(
    ("tick_day", "target"),
    [
        (dt.date(2026, 11, 18), "2026-11-17"),  # Wednesday -> Tuesday
        (dt.date(2026, 11, 23), "2026-11-20"),  # Monday -> Friday
        (dt.date(2025, 11, 28), "2025-11-26"),  # Friday after Thanksgiving -> Wednesday
        (dt.date(2026, 9, 8), "2026-09-04"),  # Tuesday after Labor Day -> Friday
        (dt.date(2026, 1, 2), "2025-12-31"),  # first session of 2026 -> over New Year
    ],
)
def test_tick_targets_the_previous_session(project_config, tick_day, target):
    config = project_config(partitions={"start_date": "2025-01-02"})
    when = dt.datetime.combine(tick_day, dt.time(11, 30), NY)
    runs, skip = _tick(config, when)
    assert skip is None
    assert [(r.partition_key, r.run_key) for r in runs] == [(target, target)]
    assert runs[0].tags["market_assets/trigger"] == "daily_features_schedule"


@pytest.mark.parametrize(
    "holiday", [dt.date(2026, 11, 26), dt.date(2026, 12, 25), dt.date(2026, 9, 7)]
)
def test_tick_on_a_holiday_is_skipped(project_config, holiday):
    config = project_config()
    runs, skip = _tick(config, dt.datetime.combine(holiday, dt.time(11, 30), NY))
    assert runs == [] and "is not an NYSE trading day" in skip


def test_new_york_date_decides_not_utc(project_config):
    config = project_config(partitions={"start_date": "2025-01-02"})
    # 23:30 ET on Wednesday 2025-11-26 is Thursday (Thanksgiving) in UTC: still Wednesday's tick.
    when = dt.datetime(2025, 11, 27, 4, 30, tzinfo=dt.UTC)
    runs, skip = _tick(config, when)
    assert [r.partition_key for r in runs] == ["2025-11-25"]
    assert target_session(when) == dt.date(2025, 11, 25)


def test_days_before_start_date_are_skipped(project_config):
    config = project_config(partitions={"start_date": "2026-11-20"})
    runs, skip = _tick(config, dt.datetime.combine(dt.date(2026, 11, 20), dt.time(11, 30), NY))
    assert runs == [] and "before partitions.start_date" in skip


def test_a_day_already_run_is_skipped_but_a_failed_one_runs_again(project_config):
    config = project_config()
    when = dt.datetime.combine(dt.date(2026, 11, 23), dt.time(11, 30), NY)
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            build_definitions(load_settings(config)).resolve_job_def("daily_features_job"),
            tags={"dagster/partition": "2026-11-20"},
            status=dg.DagsterRunStatus.FAILURE,
        )
        assert [r.partition_key for r in _tick(config, when, instance)[0]] == ["2026-11-20"]
        instance.delete_run(run.run_id)
        instance.create_run_for_job(
            build_definitions(load_settings(config)).resolve_job_def("daily_features_job"),
            tags={"dagster/partition": "2026-11-20"},
            status=dg.DagsterRunStatus.SUCCESS,
        )
        runs, skip = _tick(config, when, instance)
        assert runs == [] and "already has a success run" in skip


def test_schedule_cron_and_timezone(project_config):
    repo = build_definitions(load_settings(project_config())).get_repository_def()
    schedule = repo.get_schedule_def("daily_features_schedule")
    assert schedule.cron_schedule == SCHEDULE_CRON == "30 11 * * 1-5"
    assert schedule.execution_timezone == SCHEDULE_TIMEZONE == "America/New_York"
    assert schedule.job_name == "daily_features_job"
