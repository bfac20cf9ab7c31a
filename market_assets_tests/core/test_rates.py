# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Treasury curve: yield conversion, interpolation per trade, carry-forward."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy.interpolate import interp1d

from market_assets.core.rates import (
    TENORS,
    TREASURY_YIELDS,
    MissingCurveError,
    TreasuryCurve,
    continuous_rate,
    curve_for_day,
    rate_at,
)

DAY = dt.date(2026, 11, 20)
# A published curve (percent), 2Y missing as Massive sometimes leaves a tenor null.
YIELDS = {
    "yield_1_month": 4.20,
    "yield_3_month": 4.10,
    "yield_6_month": 4.00,
    "yield_1_year": 3.80,
    "yield_2_year": None,
    "yield_3_year": 3.50,
    "yield_5_year": 3.60,
    "yield_7_year": 3.80,
    "yield_10_year": 4.00,
    "yield_20_year": 4.50,
    "yield_30_year": 4.60,
}


def test_bill_yields_convert_as_simple_interest_and_notes_as_semiannual():
    # by hand: 12 ln(1 + 0.042/12), 2 ln(1 + 0.04/2), 2 ln(1 + 0.046/2)
    assert continuous_rate(4.2, 1 / 12) == pytest.approx(12 * math.log(1.0035), rel=1e-14)
    assert continuous_rate(4.0, 0.5) == pytest.approx(2 * math.log(1.02), rel=1e-14)
    assert continuous_rate(4.6, 30) == pytest.approx(2 * math.log(1.023), rel=1e-14)
    assert float(continuous_rate(4.2, 1 / 12)) == pytest.approx(
        0.04192667, abs=1e-8
    )  # 4.2% -> 4.1927%


def test_both_conventions_agree_at_six_months():
    y = np.array([0.5, 4.0, 9.0])
    simple = np.log1p(y / 100 * 0.5) / 0.5
    np.testing.assert_allclose(continuous_rate(y, 0.5), simple, rtol=1e-15)
    np.testing.assert_allclose(continuous_rate(y, 0.5 + 1e-12), simple, rtol=1e-12)


def test_rates_at_the_tenors_are_the_converted_yields():
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    for name, tenor in TENORS.items():
        if YIELDS[name] is not None:
            assert curve.rates(tenor) == pytest.approx(continuous_rate(YIELDS[name], tenor))


def test_a_missing_tenor_is_interpolated_across():
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    r1, r3 = 2 * math.log(1 + 0.038 / 2), 2 * math.log(1 + 0.035 / 2)
    assert curve.rates(2.0) == pytest.approx(r1 + (r3 - r1) / 2, rel=1e-14)  # halfway 1Y..3Y


def test_rates_between_tenors_are_linear_in_time_by_hand():
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    # 45 days: a quarter of the way from 1M to 3M... t = 1/12 + (2/12)/4
    r1m = 12 * math.log(1 + 0.042 / 12)
    r3m = 4 * math.log(1 + 0.041 / 4)
    t = 1 / 12 + (2 / 12) / 4
    assert curve.rates(t) == pytest.approx(0.75 * r1m + 0.25 * r3m, rel=1e-14)


def test_rates_are_flat_outside_the_published_tenors():
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    r = curve.rates(np.array([0.0, 1 / 365, -0.1, 31.0, 100.0]))
    assert r[:3] == pytest.approx([12 * math.log(1 + 0.042 / 12)] * 3)
    assert r[3:] == pytest.approx([2 * math.log(1.023)] * 2)


def test_rates_match_scipy_linear_interpolation_with_flat_ends():
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    tenors = np.array([TENORS[k] for k, v in YIELDS.items() if v is not None])
    rates = np.array([continuous_rate(v, TENORS[k]) for k, v in YIELDS.items() if v is not None])
    ref = interp1d(
        tenors, rates, kind="linear", bounds_error=False, fill_value=(rates[0], rates[-1])
    )
    t = np.random.default_rng(3).uniform(-0.5, 35, 10_000)
    np.testing.assert_allclose(curve.rates(t), ref(t), rtol=1e-14, atol=0)


def test_a_curve_with_only_some_tenors_uses_those():
    curve = TreasuryCurve(DAY, DAY, {"yield_3_month": 4.0, "yield_10_year": 5.0})
    assert curve.rates(0.0) == pytest.approx(4 * math.log(1.01))
    assert curve.rates(50.0) == pytest.approx(2 * math.log(1.025))


def test_nan_time_to_expiry_gives_nan_rate():
    r = TreasuryCurve(DAY, DAY, YIELDS).rates(np.array([np.nan, 1.0]))
    assert math.isnan(r[0]) and math.isfinite(r[1])


def test_a_curve_without_yields_is_an_error():
    with pytest.raises(MissingCurveError, match="2026-11-20 has no yield"):
        TreasuryCurve(DAY, DAY, dict.fromkeys(TENORS)).rates(1.0)


def test_rate_at_repeats_a_constant_or_reads_the_curve():
    t = np.array([0.1, 2.0])
    np.testing.assert_array_equal(rate_at(0.04, t), [0.04, 0.04])
    curve = TreasuryCurve(DAY, DAY, YIELDS)
    np.testing.assert_array_equal(rate_at(curve, t), curve.rates(t))


def test_the_curve_setting_without_a_curve_is_a_clear_error():
    with pytest.raises(TypeError, match="needs the day's TreasuryCurve"):
        rate_at("curve", np.array([0.1]))  # type: ignore[arg-type]


# --- which published curve prices a day ---------------------------------------------------


def _row(date: str, level: float | None) -> dict:
    return {"date": date} | {k: level for k in TENORS}


def test_a_day_with_its_own_curve_is_not_carried_forward():
    rows = [_row("2026-11-19", 4.0), _row("2026-11-20", 4.1)]
    curve = curve_for_day(rows, DAY)
    assert curve is not None
    assert (curve.curve_date, curve.carried_forward) == (DAY, False)
    assert curve.yields["yield_10_year"] == 4.1


def test_a_weekend_or_holiday_carries_the_last_curve_forward():
    # Monday 2026-11-23 (say no publication): Friday's curve, not the earlier one, flagged.
    rows = [_row("2026-11-19", 4.0), _row("2026-11-20", 4.1), _row("2026-11-24", 9.9)]
    curve = curve_for_day(rows, dt.date(2026, 11, 23))
    assert curve is not None
    assert (curve.day, curve.curve_date, curve.carried_forward) == (
        dt.date(2026, 11, 23),
        DAY,
        True,
    )
    assert curve.yields["yield_1_month"] == 4.1


def test_a_row_with_every_yield_null_is_not_a_publication():
    rows = [_row("2026-11-19", 4.0), _row("2026-11-20", None)]
    curve = curve_for_day(rows, DAY)
    assert curve is not None and curve.curve_date == dt.date(2026, 11, 19)


def test_no_row_on_or_before_the_day_is_no_curve():
    assert curve_for_day([_row("2026-11-21", 4.0)], DAY) is None
    assert curve_for_day([], DAY) is None


def test_the_curve_round_trips_through_its_one_row_table():
    curve = TreasuryCurve(dt.date(2026, 11, 23), DAY, YIELDS)
    table = curve.to_table()
    assert table.schema == TREASURY_YIELDS and table.num_rows == 1
    assert table.column("carried_forward").to_pylist() == [True]
    back = TreasuryCurve.from_table(table)
    assert back == curve
    np.testing.assert_array_equal(back.rates([0.3, 7.5]), curve.rates([0.3, 7.5]))
