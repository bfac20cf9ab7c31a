# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Treasury curve as a risk-free rate per trade.

Massive's ``/fed/v1/treasury-yields`` publishes, per date, the Treasury par yields at constant
maturity (1M .. 30Y) in percent, on a bond-equivalent basis (semiannual compounding).

- Conversion to a continuously compounded rate, with ``y = yield / 100`` and ``T`` the tenor
  in years: bills up to six months are quoted on the bond-equivalent basis of simple interest
  over the term, so ``r = ln(1 + y T) / T``; longer tenors are semiannual bond-equivalent
  yields, so ``r = 2 ln(1 + y / 2)`` (the two agree at ``T = 1/2``). The par yield is taken
  as the zero yield of its tenor (no bootstrap): exact for bills, a few basis points off at
  10Y and beyond on a sloped curve.
- Interpolation: linear in time to expiry (years) on those continuous rates between the
  published tenors; flat below the shortest and above the longest published tenor. A tenor
  the day does not publish (null) is left out; a day with no tenor at all is no curve.
- Carry-forward: a day without a published curve (weekend, bond-market holiday, not yet
  published) uses the latest curve published before it within a lookback, flagged
  ``carried_forward`` with its ``curve_date``; nothing within the lookback is an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Massive's field name -> tenor in years.
TENORS: dict[str, float] = {
    "yield_1_month": 1 / 12,
    "yield_3_month": 3 / 12,
    "yield_6_month": 6 / 12,
    "yield_1_year": 1.0,
    "yield_2_year": 2.0,
    "yield_3_year": 3.0,
    "yield_5_year": 5.0,
    "yield_7_year": 7.0,
    "yield_10_year": 10.0,
    "yield_20_year": 20.0,
    "yield_30_year": 30.0,
}

# One row per partition: the day, the curve used for it, and the published yields (percent).
TREASURY_YIELDS = pa.schema(
    [
        ("date", pa.date32()),
        ("curve_date", pa.date32()),
        ("carried_forward", pa.bool_()),
        *[(name, pa.float64()) for name in TENORS],
    ]
)


class MissingCurveError(LookupError):
    """No Treasury curve was published within the lookback before a day."""


def continuous_rate(yield_percent: np.ndarray | float, tenor: np.ndarray | float) -> np.ndarray:
    """Continuously compounded rate of a published yield (percent) at ``tenor`` (years):
    simple interest over the term up to six months, semiannual compounding beyond."""
    y = np.asarray(yield_percent, dtype=np.float64) / 100.0
    T = np.asarray(tenor, dtype=np.float64)
    simple = np.log1p(y * np.minimum(T, 0.5)) / np.minimum(T, 0.5)
    return np.where(T <= 0.5, simple, 2.0 * np.log1p(y / 2.0))


@dataclass(frozen=True)
class TreasuryCurve:
    """One published curve: ``yields`` maps Massive's field names to percent (None: not
    published); ``day`` is the day it prices, ``curve_date`` the day it was published."""

    day: dt.date
    curve_date: dt.date
    yields: Mapping[str, float | None]

    @property
    def carried_forward(self) -> bool:
        return self.curve_date != self.day

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Published tenors (years, ascending) and their continuous rates."""
        pts = [(TENORS[k], v) for k, v in self.yields.items() if k in TENORS and v is not None]
        if not pts:
            raise MissingCurveError(f"the Treasury curve dated {self.curve_date} has no yield")
        pts.sort()
        tenors = np.array([p[0] for p in pts], dtype=np.float64)
        return tenors, continuous_rate(np.array([p[1] for p in pts], dtype=np.float64), tenors)

    def rates(self, t: np.ndarray | float) -> np.ndarray:
        """Continuous rate at each time to expiry ``t`` (years): linear between tenors, flat
        outside them; NaN where ``t`` is NaN."""
        tenors, r = self.knots()
        return np.interp(np.asarray(t, dtype=np.float64), tenors, r)

    def to_table(self) -> pa.Table:
        """The curve as a one-row ``TREASURY_YIELDS`` table."""
        row = {
            "date": [self.day],
            "curve_date": [self.curve_date],
            "carried_forward": [self.carried_forward],
        }
        row |= {k: [self.yields.get(k)] for k in TENORS}
        return pa.table(row, schema=TREASURY_YIELDS)

    @classmethod
    def from_table(cls, table: pa.Table) -> TreasuryCurve:
        """The curve of a one-row ``TREASURY_YIELDS`` table (as :meth:`to_table` writes)."""
        if table.num_rows != 1:
            raise ValueError(f"expected one Treasury curve row, got {table.num_rows}")
        row = table.to_pylist()[0]
        return cls(row["date"], row["curve_date"], {k: row.get(k) for k in TENORS})


def _published(row: Mapping[str, object]) -> bool:
    return any(row.get(k) is not None for k in TENORS)


def curve_for_day(rows: Iterable[Mapping[str, object]], day: dt.date) -> TreasuryCurve | None:
    """The curve that prices ``day``: the latest published row dated on or before it.

    ``rows`` are Massive's records (``date`` as YYYY-MM-DD or a date, yields in percent); a
    row with every tenor null is not a publication. None when no row qualifies."""
    best: tuple[dt.date, Mapping[str, object]] | None = None
    for row in rows:
        raw = row.get("date")
        if raw is None or not _published(row):
            continue
        d = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
        if d <= day and (best is None or d > best[0]):
            best = (d, row)
    if best is None:
        return None
    d, row = best
    yields: dict[str, float | None] = {}
    for k in TENORS:
        v = row.get(k)
        yields[k] = None if v is None else float(v)  # type: ignore[arg-type]
    return TreasuryCurve(day, d, yields)


def rate_at(rate: float | TreasuryCurve, t: np.ndarray) -> np.ndarray:
    """Per-trade continuous rates: a constant rate repeated, or the curve at each ``t``."""
    if isinstance(rate, TreasuryCurve):
        return rate.rates(t)
    if isinstance(rate, str):  # the setting "curve" handed on without fetching the curve
        raise TypeError(
            f'risk-free rate {rate!r}: greeks.risk_free_rate = "curve" needs the day\'s '
            "TreasuryCurve (market_assets.io.treasury.fetch_curve), not the setting itself"
        )
    return np.full(np.shape(t), float(rate))
