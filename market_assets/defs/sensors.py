# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""new_trading_day_sensor: run a trading day as soon as all of its flat files are published.

Each tick lists only the keys after the cursor's day (``list_keys(prefix, start_after=...)``:
on S3 that is ``list_objects_v2`` with ``StartAfter`` and pagination), so the cost of a tick
does not grow with the bucket. A day is requested once every dataset the graph reads
(``REQUIRED_DATASETS``, and ``QUOTE_DATASETS`` when quotes.enabled) has its file, with ``run_key`` = the date, so the sensor never runs
a day twice; the cursor is the last date requested.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable

import dagster as dg

from market_assets.core.calendar import NEW_YORK, is_trading_day
from market_assets.defs.jobs import DAILY_FEATURES_JOB
from market_assets.io.source import (
    DATASETS,
    FlatFileStore,
    SourceError,
    day_for_key,
    flat_file_key,
    store_from_settings,
)
from market_assets.settings import Settings

SENSOR_NAME = "new_trading_day_sensor"
JOB_NAME = DAILY_FEATURES_JOB
# The files every asset of daily_features_job needs (greeks and features derive from these).
REQUIRED_DATASETS: tuple[str, ...] = ("stock_trades", "option_trades")
QUOTE_DATASETS: tuple[str, ...] = ("stock_quotes", "option_quotes")  # with quotes.enabled


def required_datasets(settings: Settings) -> tuple[str, ...]:
    """The datasets a day needs before it is run: the trades, and the quotes when enabled."""
    return REQUIRED_DATASETS + (QUOTE_DATASETS if settings.quotes.enabled else ())


# Seconds between ticks: files land once a day, so a few minutes of latency is plenty.
MINIMUM_INTERVAL_S = 300
# At most this many days are requested per tick (a first tick over a full mirror catches up
# over several ticks instead of submitting hundreds of runs at once).
MAX_RUNS_PER_TICK = 25


def _days_after(store: FlatFileStore, dataset: str, after: dt.date) -> set[dt.date]:
    """Days with a file of ``dataset`` strictly after ``after`` (lists only newer keys)."""
    prefix = DATASETS[dataset] + "/"
    days = set()
    for key in store.list_keys(prefix, start_after=flat_file_key(dataset, after)):
        day = day_for_key(key)
        if day is not None and day > after:
            days.add(day)
    return days


def ready_days(
    store: FlatFileStore,
    after: dt.date,
    datasets: Iterable[str] = REQUIRED_DATASETS,
    limit: int = MAX_RUNS_PER_TICK,
    before: dt.date | None = None,
) -> tuple[list[dt.date], list[tuple[dt.date, list[str]]]]:
    """Trading days after ``after`` (and before ``before``) whose files of every dataset
    exist, in order.

    Returns ``(ready, waiting)``: ``ready`` stops before the first trading day that has some
    but not all of its files (that day is still being published, and the cursor must not
    pass it), and holds at most ``limit`` days; ``waiting`` lists such days with the
    datasets still missing.
    """
    found = {name: _days_after(store, name, after) for name in datasets}
    every = set().union(*found.values()) if found else set()
    ready: list[dt.date] = []
    waiting: list[tuple[dt.date, list[str]]] = []
    for day in sorted(every):
        if not is_trading_day(day) or (before is not None and day >= before):
            continue
        missing = [name for name, days in found.items() if day not in days]
        if missing:
            waiting.append((day, missing))
            break
        if len(ready) < limit:
            ready.append(day)
    return ready, waiting


def build_new_trading_day_sensor(
    settings: Settings,
    job_name: str = JOB_NAME,
    store_factory: Callable[[], FlatFileStore] | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The sensor for ``settings`` (source, partitions.start_date).

    ``store_factory`` defaults to the ``[massive]`` store, built at each tick so S3
    credentials are read from the environment then, not when definitions load.
    """
    start = settings.partitions.start_date
    datasets = required_datasets(settings)

    def make_store() -> FlatFileStore:
        if store_factory is not None:
            return store_factory()
        return store_from_settings(settings.massive, os.environ)

    @dg.sensor(
        name=SENSOR_NAME,
        job_name=job_name,
        minimum_interval_seconds=MINIMUM_INTERVAL_S,
        default_status=default_status,
        description=(
            f"Requests {job_name} for each new trading day once its files "
            f"({', '.join(datasets)}) are all in the source (run_key = the date; cursor = last "
            "date requested)."
        ),
    )
    def new_trading_day_sensor(context: dg.SensorEvaluationContext):
        # The cursor is the last day requested; before the first request, the day before
        # partitions.start_date, so listing starts at the first partition.
        after = (
            dt.date.fromisoformat(context.cursor)
            if context.cursor
            else start - dt.timedelta(days=1)
        )
        after = max(after, start - dt.timedelta(days=1))
        try:
            # A day's partition exists once the day has ended in New York.
            today = dt.datetime.now(NEW_YORK).date()
            ready, waiting = ready_days(
                make_store(), after, datasets, limit=MAX_RUNS_PER_TICK, before=today
            )
        except SourceError as e:
            return dg.SkipReason(f"cannot list the source: {e}")
        for day, missing in waiting:
            context.log.info(
                f"{day}: waiting for {', '.join(missing)} (the other files are present)"
            )
        if not ready:
            why = (
                f"{waiting[0][0]} is waiting for {', '.join(waiting[0][1])}"
                if waiting
                else f"no new trading day with all files after {after.isoformat()}"
            )
            return dg.SkipReason(why)
        context.update_cursor(ready[-1].isoformat())
        return [
            dg.RunRequest(
                run_key=day.isoformat(),
                partition_key=day.isoformat(),
                tags={"market_assets/trigger": SENSOR_NAME},
            )
            for day in ready
        ]

    return new_trading_day_sensor
