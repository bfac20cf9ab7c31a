# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""daily_features_schedule: each trading morning, run the previous trading day.

Massive publishes a day's flat files by about 11:00 ET the next trading day, so the schedule
ticks at 11:30 ET on weekdays (``SCHEDULE_CRON`` in ``SCHEDULE_TIMEZONE``) and targets the
previous XNYS session: on the Monday after a Friday holiday that is Thursday. A tick on a
weekday that is itself a holiday is skipped (the session before it was already run on the
previous trading morning). A day that already has a queued, running or successful run of
the job (e.g. started by the sensor) is skipped too, so sensor and schedule can both be on.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from market_assets.core.calendar import NEW_YORK, NEW_YORK_TZ, is_trading_day, previous_trading_day
from market_assets.defs.jobs import DAILY_FEATURES_JOB
from market_assets.settings import Settings

SCHEDULE_NAME = "daily_features_schedule"
JOB_NAME = DAILY_FEATURES_JOB
# 11:30 ET on weekdays: half an hour after Massive's usual publication time.
SCHEDULE_CRON = "30 11 * * 1-5"
SCHEDULE_TIMEZONE = NEW_YORK_TZ

_NOT_FAILED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]


def target_session(tick: dt.datetime) -> dt.date | None:
    """The session a tick at ``tick`` runs: the previous XNYS session, or None when the
    tick's own New York date is not a trading day."""
    day = (tick if tick.tzinfo else tick.replace(tzinfo=dt.UTC)).astimezone(NEW_YORK).date()
    if not is_trading_day(day):
        return None
    return previous_trading_day(day)


def build_daily_schedule(
    settings: Settings,
    job_name: str = JOB_NAME,
    cron_schedule: str = SCHEDULE_CRON,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """The schedule for ``settings`` (days before partitions.start_date are never run)."""
    start = settings.partitions.start_date

    @dg.schedule(
        name=SCHEDULE_NAME,
        job_name=job_name,
        cron_schedule=cron_schedule,
        execution_timezone=SCHEDULE_TIMEZONE,
        default_status=default_status,
        description=(
            f"Runs {job_name} for the previous NYSE session at {cron_schedule} "
            f"({SCHEDULE_TIMEZONE}), after Massive publishes the files; skips holidays."
        ),
    )
    def daily_features_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        if tick is None:
            tick = dt.datetime.now(dt.UTC)
        target = target_session(tick)
        if target is None:
            day = tick.astimezone(NEW_YORK).date()
            return dg.SkipReason(f"{day} ({day:%A}) is not an NYSE trading day")
        if target < start:
            return dg.SkipReason(f"{target} is before partitions.start_date {start}")
        key = target.isoformat()
        runs = context.instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=job_name, tags={"dagster/partition": key}, statuses=_NOT_FAILED
            ),
            limit=1,
        )
        if runs:
            return dg.SkipReason(
                f"{key} already has a {runs[0].dagster_run.status.value.lower()} run "
                f"({runs[0].dagster_run.run_id})"
            )
        return dg.RunRequest(
            run_key=key,
            partition_key=key,
            tags={"market_assets/trigger": SCHEDULE_NAME},
        )

    return daily_features_schedule
