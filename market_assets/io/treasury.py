# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Treasury curve of a day from Massive's REST API (``/fed/v1/treasury-yields``).

Fetched through the official client (``massive.RESTClient``), which follows ``next_url``
pages and retries 429/5xx responses. The API key comes from ``MASSIVE_API_KEY`` and is never
logged or put in an error message.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import asdict

from massive import RESTClient
from massive.exceptions import BadResponse
from urllib3.exceptions import HTTPError

from market_assets.core.rates import MissingCurveError, TreasuryCurve, curve_for_day

log = logging.getLogger("market_assets.io.treasury")

API_KEY_ENV = "MASSIVE_API_KEY"
ENDPOINT = "/fed/v1/treasury-yields"


class TreasuryFetchError(RuntimeError):
    """The Treasury-yields endpoint could not be read (HTTP error, refused connection, ...)."""


def api_key_from_env() -> str:
    """The Massive API key from the environment; a clear error when it is not set."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise TreasuryFetchError(
            f'{API_KEY_ENV} is not set: the Treasury curve (greeks.risk_free_rate = "curve") '
            f"is read from Massive's REST API {ENDPOINT} with that key"
        )
    return key


def fetch_curve(
    day: dt.date, base_url: str, api_key: str, lookback_days: int, retries: int = 3
) -> TreasuryCurve:
    """The curve pricing ``day``: published on ``day``, else the latest published in the
    ``lookback_days`` calendar days before it (carried forward).

    Raises :class:`MissingCurveError` when nothing was published in that span and
    :class:`TreasuryFetchError` when the endpoint cannot be read; both name the day and URL.
    """
    first = day - dt.timedelta(days=lookback_days)
    url = f"{base_url.rstrip('/')}{ENDPOINT}"
    span = f"date.gte={first.isoformat()}&date.lte={day.isoformat()}"
    client = RESTClient(api_key=api_key, base=base_url.rstrip("/"), retries=retries)
    try:
        rows = [
            asdict(r)
            for r in client.list_treasury_yields(
                date_gte=first.isoformat(),
                date_lte=day.isoformat(),
                sort="date",
                order="asc",
                limit=1000,
            )
        ]
    except BadResponse as e:
        raise TreasuryFetchError(
            f"Treasury curve for {day}: {url}?{span} answered with an error: {str(e)[:300]}"
        ) from None
    except HTTPError as e:  # refused, timed out, or still failing after the retries
        raise TreasuryFetchError(f"Treasury curve for {day}: {url}?{span} failed: {e}") from None
    curve = curve_for_day(rows, day)
    if curve is None:
        raise MissingCurveError(
            f"no Treasury curve published for {day} or in the {lookback_days} days before it "
            f"({url}?{span} returned {len(rows)} rows, none with a yield); "
            f'greeks.risk_free_rate = "curve" needs one: check the endpoint or raise '
            f"rates.lookback_days"
        )
    log.info(
        "Treasury curve for %s: published %s%s (%d rows fetched)",
        day,
        curve.curve_date,
        " (carried forward)" if curve.carried_forward else "",
        len(rows),
    )
    return curve
