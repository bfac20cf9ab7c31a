# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Treasury curve through the official massive client, against a local HTTP server."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from market_assets.core.rates import MissingCurveError
from market_assets.io.treasury import (
    API_KEY_ENV,
    TreasuryFetchError,
    api_key_from_env,
    fetch_curve,
)
from market_assets_tests.treasury_server import PATH, curve_row, treasury_server

KEY = "test-key-not-secret"
# Thursday 2026-11-26 is Thanksgiving; Friday 2026-11-27 the bond market is open.
ROWS = [
    curve_row("2026-11-18", 4.00),
    curve_row("2026-11-19", 4.10),
    curve_row("2026-11-20", 4.20),
    curve_row("2026-11-23", 4.30),
    curve_row("2026-11-24", 4.40),
    curve_row("2026-11-25", 4.50),
    curve_row("2026-11-27", 4.70),
]


def test_a_published_day_gets_its_own_curve_through_every_page():
    with treasury_server(ROWS, page_size=2) as srv:
        curve = fetch_curve(dt.date(2026, 11, 24), srv.base_url, KEY, lookback_days=7)
    assert (curve.curve_date, curve.carried_forward) == (dt.date(2026, 11, 24), False)
    assert curve.yields["yield_1_month"] == 4.40
    assert curve.yields["yield_30_year"] == pytest.approx(4.40 + 10 * 0.05)
    # 2026-11-17..24 holds 5 rows: three pages of two, the later ones through next_url.
    assert len(srv.requests) == 3
    first = srv.requests[0]
    assert first[0] == PATH
    assert first[1]["date.gte"] == ["2026-11-17"] and first[1]["date.lte"] == ["2026-11-24"]
    assert [r[1].get("cursor") for r in srv.requests] == [None, ["2"], ["4"]]
    assert all(auth == f"Bearer {KEY}" for _, _, auth in srv.requests)


def test_a_weekend_carries_fridays_curve_forward():
    with treasury_server(ROWS) as srv:
        curve = fetch_curve(dt.date(2026, 11, 22), srv.base_url, KEY, lookback_days=7)
    assert curve.day == dt.date(2026, 11, 22)
    assert (curve.curve_date, curve.carried_forward) == (dt.date(2026, 11, 20), True)
    assert curve.yields["yield_1_month"] == 4.20


def test_a_holiday_carries_the_previous_curve_forward():
    with treasury_server(ROWS) as srv:
        curve = fetch_curve(dt.date(2026, 11, 26), srv.base_url, KEY, lookback_days=7)
    assert (curve.curve_date, curve.carried_forward) == (dt.date(2026, 11, 25), True)


def test_nothing_published_within_the_lookback_fails_naming_day_and_endpoint():
    with treasury_server(ROWS) as srv:
        with pytest.raises(MissingCurveError) as e:
            fetch_curve(dt.date(2026, 12, 10), srv.base_url, KEY, lookback_days=7)
    msg = str(e.value)
    assert "2026-12-10" in msg
    assert f"{srv.base_url}{PATH}?date.gte=2026-12-03&date.lte=2026-12-10" in msg
    assert "rates.lookback_days" in msg


def test_an_http_error_fails_naming_day_and_endpoint_without_the_key():
    with treasury_server(ROWS, fail_status=403) as srv:
        with pytest.raises(TreasuryFetchError) as e:
            fetch_curve(dt.date(2026, 11, 24), srv.base_url, KEY, lookback_days=7)
    msg = str(e.value)
    assert "2026-11-24" in msg and f"{srv.base_url}{PATH}" in msg and "simulated failure" in msg
    assert KEY not in msg


def test_a_server_error_is_retried_then_fails_clearly():
    with treasury_server(ROWS, fail_status=503) as srv:
        with pytest.raises(TreasuryFetchError, match="2026-11-24"):
            fetch_curve(dt.date(2026, 11, 24), srv.base_url, KEY, lookback_days=7, retries=2)
    assert len(srv.requests) == 3  # the first try and two retries


def test_the_key_is_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with treasury_server(ROWS) as srv:
        fetch_curve(dt.date(2026, 11, 24), srv.base_url, KEY, lookback_days=7)
    assert "2026-11-24" in caplog.text
    assert KEY not in caplog.text


def test_a_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(TreasuryFetchError, match=f"{API_KEY_ENV} is not set"):
        api_key_from_env()
    monkeypatch.setenv(API_KEY_ENV, KEY)
    assert api_key_from_env() == KEY
