# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from market_assets.core.calendar import day_bounds_ns
from market_assets.core.schemas import OPTION_TRADES, STOCK_TRADES
from market_assets.core.trade_rules import find_violations

DAY = dt.date(2026, 11, 20)
OPEN_NS = 1795185000000000000  # 2026-11-20 09:30 ET
NAN, INF = float("nan"), float("inf")


def stock_trades(prices, sizes=None, times=None) -> pa.Table:
    n = len(prices)
    rows = {
        "ticker": ["SPY"] * n,
        "sip_timestamp": times if times is not None else [OPEN_NS + i for i in range(n)],
        "price": prices,
        "size": sizes if sizes is not None else [100.0] * n,
    }
    return pa.table({f.name: pa.array(rows.get(f.name, [None] * n), f.type) for f in STOCK_TRADES})


def reasons(table: pa.Table, day: dt.date = DAY) -> dict[int, str]:
    v = find_violations(table, day)
    return dict(zip(v.rows.tolist(), v.reasons.to_pylist(), strict=True))


def test_clean_trades_pass_and_an_implausible_price_is_not_a_rule_violation():
    assert reasons(stock_trades([600.5, 0.0001, 1e12, 5e-324])) == {}


@pytest.mark.parametrize(
    ("price", "shown"), [(NAN, "nan"), (INF, "inf"), (-INF, "-inf"), (0.0, "0"), (-600.5, "-600.5")]
)
def test_price_must_be_a_finite_number_above_zero(price, shown):
    assert reasons(stock_trades([600.0, price])) == {
        1: f"price: {shown} is not a finite number above 0"
    }


@pytest.mark.parametrize(("size", "shown"), [(0.0, "0"), (-5.0, "-5"), (NAN, "nan"), (INF, "inf")])
def test_size_must_be_a_finite_number_above_zero(size, shown):
    assert reasons(stock_trades([600.0, 600.0], sizes=[100.0, size])) == {
        1: f"size: {shown} is not a finite number above 0"
    }


def test_sip_time_must_fall_on_the_partition_day_in_new_york():
    start, end = day_bounds_ns(DAY)
    assert start == 1795150800000000000  # 2026-11-20 00:00 EST
    times = [0, start - 1, start, end - 1, end]
    got = reasons(stock_trades([600.0] * 5, times=times))
    assert got == {
        0: "sip_timestamp: 0 (1969-12-31 19:00:00.000000000-0500) is not on 2026-11-20 "
        "(00:00-24:00 New York time)",
        1: f"sip_timestamp: {start - 1} (2026-11-19 23:59:59.999999999-0500) is not on "
        "2026-11-20 (00:00-24:00 New York time)",
        4: f"sip_timestamp: {end} (2026-11-21 00:00:00.000000000-0500) is not on "
        "2026-11-20 (00:00-24:00 New York time)",
    }


@pytest.mark.parametrize(("day", "hours"), [(dt.date(2026, 3, 8), 23), (dt.date(2026, 11, 1), 25)])
def test_the_day_is_23_or_25_hours_when_the_clocks_change(day, hours):
    start, end = day_bounds_ns(day)
    assert (end - start) / 3_600e9 == hours


def test_a_row_breaking_several_rules_names_them_all():
    got = reasons(stock_trades([-1.0], sizes=[0.0], times=[0]))
    assert got[0].startswith("price: -1 is not a finite number above 0; size: 0 is not a ")
    assert "; sip_timestamp: 0 (" in got[0]


def test_missing_values_break_the_rules():
    got = reasons(stock_trades([None, 600.0], sizes=[1.0, None]))
    assert got == {
        0: "price: missing is not a finite number above 0",
        1: "size: missing is not a finite number above 0",
    }


def test_option_trades_follow_the_same_rules_and_a_zero_strike_is_impossible():
    n = 4
    rows = {
        "ticker": ["O:SPY261120C00600000"] * 3 + ["O:SPY261120C00000000"],
        "underlying": ["SPY"] * n,
        "expiration": [DAY] * n,
        "contract_type": ["call"] * n,
        "strike": [600.0, 600.0, 600.0, 0.0],
        "sip_timestamp": [OPEN_NS, 0, OPEN_NS, OPEN_NS],
        "price": [1.5, 1.5, -1.5, 1.5],
        "size": [1.0] * n,
    }
    t = pa.table({f.name: pa.array(rows.get(f.name, [None] * n), f.type) for f in OPTION_TRADES})
    got = reasons(t)
    assert sorted(got) == [1, 2, 3]
    assert got[1].startswith("sip_timestamp: 0 ")
    assert got[2] == "price: -1.5 is not a finite number above 0"
    assert got[3] == "strike: 0 is not a finite number above 0"


def test_record_batches_and_chunked_tables_give_the_same_rows():
    table = pa.concat_tables([stock_trades([600.0, 0.0]), stock_trades([NAN, 600.0])])
    assert table.column("price").num_chunks == 2
    assert reasons(table) == reasons(table.combine_chunks().to_batches()[0])
    assert sorted(reasons(table)) == [1, 2]
