# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""NYSE trading days and session bounds (exchange-calendars XNYS)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import exchange_calendars as xc
import numpy as np
import pandas as pd

NEW_YORK_TZ = "America/New_York"  # the exchange time zone (XNYS)
NEW_YORK = ZoneInfo(NEW_YORK_TZ)
EXTENDED_OPEN = dt.time(4, 0)
EXTENDED_CLOSE = dt.time(20, 0)


_WINDOW_RE = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def window_ns(window: str) -> int:
    """Length of a window string such as ``5m`` in nanoseconds."""
    m = _WINDOW_RE.match(window)
    if not m:
        raise ValueError(f"window {window!r} is not a number followed by s, m or h (e.g. '5m')")
    return int(m.group(1)) * _UNIT_NS[m.group(2)]


def xnys() -> xc.ExchangeCalendar:
    return xc.get_calendar("XNYS")


def is_trading_day(day: dt.date) -> bool:
    return bool(xnys().is_session(pd.Timestamp(day)))


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Sessions from start to end inclusive."""
    return [d.date() for d in xnys().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))]


def previous_trading_day(day: dt.date) -> dt.date:
    """The last session strictly before ``day``."""
    return (
        xnys()
        .date_to_session(pd.Timestamp(day - dt.timedelta(days=1)), direction="previous")
        .date()
    )


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.tz_convert("UTC").value)


def day_bounds_ns(day: dt.date) -> tuple[int, int]:
    """[00:00, 24:00) of ``day`` in New York time, in ns since the epoch (UTC): 23 or 25
    hours on the days the clocks change."""
    start = dt.datetime.combine(day, dt.time(0), NEW_YORK)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), NEW_YORK)
    return _ns(pd.Timestamp(start)), _ns(pd.Timestamp(end))


def session_bounds_ns(day: dt.date, session: str = "regular") -> tuple[int, int]:
    """[start, end) of the day's session in ns since the epoch, UTC.

    regular: the exchange open to its close (13:00 ET on early-close days);
    extended: 04:00 to 20:00 ET (early closes do not shorten the extended session).
    """
    if not is_trading_day(day):
        raise ValueError(f"{day} is not an NYSE trading day")
    if session == "regular":
        cal = xnys()
        ts = pd.Timestamp(day)
        return _ns(cal.session_open(ts)), _ns(cal.session_close(ts))
    if session == "extended":
        start = dt.datetime.combine(day, EXTENDED_OPEN, NEW_YORK)
        end = dt.datetime.combine(day, EXTENDED_CLOSE, NEW_YORK)
        return _ns(pd.Timestamp(start)), _ns(pd.Timestamp(end))
    raise ValueError(f"unknown session {session!r}: expected 'regular' or 'extended'")


def window_starts_ns(day: dt.date, window_ns: int, session: str = "regular") -> np.ndarray:
    """Clock-aligned window starts (ns, UTC) covering the session, as int64.

    Windows are aligned in New York local time (a 5m window starts at :00, :05, ...); a
    window that straddles the session start or end is kept, clipped by the caller if needed.
    """
    start, end = session_bounds_ns(day, session)
    midnight = day_bounds_ns(day)[0]
    first = midnight + ((start - midnight) // window_ns) * window_ns
    return np.arange(first, end, window_ns, dtype=np.int64)


def expiry_ns(expiration: dt.date) -> int:
    """16:00 America/New_York on the expiration date, in ns since the epoch."""
    return _ns(pd.Timestamp(dt.datetime.combine(expiration, dt.time(16), NEW_YORK)))


def next_trading_day(day: dt.date) -> dt.date:
    """The first session strictly after ``day``."""
    return xnys().date_to_session(pd.Timestamp(day + dt.timedelta(days=1)), direction="next").date()


def closed_reason(day: dt.date) -> str | None:
    """Why NYSE does not trade on ``day`` ("Saturday", "holiday: Thanksgiving", "market
    closure"), or None on a trading day."""
    if day.weekday() >= 5:
        return f"{day:%A}"
    if is_trading_day(day):
        return None
    ts = pd.Timestamp(day)
    names = xnys().regular_holidays.holidays(ts, ts, return_name=True)
    return f"holiday: {names.iloc[0]}" if len(names) else "market closure"
