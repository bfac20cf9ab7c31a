# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt

import pandas as pd

from market_assets.core.calendar import (
    closed_reason,
    expiry_ns,
    is_trading_day,
    next_trading_day,
    previous_trading_day,
    session_bounds_ns,
    window_starts_ns,
)
from market_assets.defs.partitions import trading_day_partitions


def test_partitions_skip_weekends_and_holidays():
    keys = trading_day_partitions(dt.date(2025, 6, 30)).get_partition_keys()
    # Independence Day 2025 is a Friday holiday; the weekend after is skipped too.
    assert keys[:5] == ["2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03", "2025-07-07"]
    assert "2025-11-27" not in keys  # Thanksgiving
    assert "2025-11-28" in keys  # early close, still a session
    assert "2025-12-25" not in keys
    assert all(pd.Timestamp(k).day_of_week < 5 for k in keys)


def test_early_close_day_session_ends_at_13_et():
    day = dt.date(2026, 11, 27)
    assert is_trading_day(day)
    start, end = session_bounds_ns(day)
    assert pd.Timestamp(start, tz="UTC").tz_convert("America/New_York").strftime("%H:%M") == "09:30"
    assert pd.Timestamp(end, tz="UTC").tz_convert("America/New_York").strftime("%H:%M") == "13:00"
    assert len(window_starts_ns(day, 60 * 10**9)) == 210


def test_regular_and_extended_grids():
    day = dt.date(2026, 11, 20)
    for minutes, rows in [(1, 390), (5, 78), (15, 26), (30, 13)]:
        assert len(window_starts_ns(day, minutes * 60 * 10**9)) == rows
    assert len(window_starts_ns(day, 60 * 10**9, "extended")) == 960


def test_previous_trading_day_skips_holidays_and_weekends():
    assert previous_trading_day(dt.date(2026, 11, 27)) == dt.date(2026, 11, 25)
    assert previous_trading_day(dt.date(2026, 11, 23)) == dt.date(2026, 11, 20)


def test_expiry_is_16_new_york_across_dst():
    assert pd.Timestamp(expiry_ns(dt.date(2026, 7, 17)), tz="UTC").hour == 20  # EDT
    assert pd.Timestamp(expiry_ns(dt.date(2026, 12, 18)), tz="UTC").hour == 21  # EST


def test_closed_days_say_why_and_where_the_next_session_is():
    assert closed_reason(dt.date(2026, 11, 21)) == "Saturday"
    assert closed_reason(dt.date(2026, 11, 26)) == "holiday: Thanksgiving"
    assert closed_reason(dt.date(2025, 1, 9)) == "market closure"  # national day of mourning
    assert closed_reason(dt.date(2026, 11, 27)) is None  # early close, still a session
    assert next_trading_day(dt.date(2026, 11, 25)) == dt.date(2026, 11, 27)
    assert next_trading_day(dt.date(2026, 11, 20)) == dt.date(2026, 11, 23)
