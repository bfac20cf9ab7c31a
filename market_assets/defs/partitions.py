# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Daily partitions over NYSE trading days: weekends and XNYS holidays are excluded."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from market_assets.core.calendar import NEW_YORK_TZ, xnys


def trading_day_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    """One partition per XNYS session from ``start_date``; keys are ``YYYY-MM-DD``.

    A day's partition exists once the day has ended in New York (Massive publishes the
    files the next morning; the sensor waits for them).
    """
    cal = xnys()
    weekdays = pd.bdate_range(max(pd.Timestamp(start_date), cal.first_session), cal.last_session)
    sessions = set(cal.sessions_in_range(weekdays[0], weekdays[-1]))
    holidays = [d.to_pydatetime() for d in weekdays if d not in sessions]
    return dg.DailyPartitionsDefinition(
        start_date=start_date.isoformat(),
        timezone=NEW_YORK_TZ,
        exclusions=["0 0 * * 6", "0 0 * * 0", *holidays],
    )
