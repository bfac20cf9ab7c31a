# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from market_assets.core.option_symbols import parse_option_tickers


def test_tickers_parse_from_the_right_whatever_the_root():
    tickers = [
        "O:SPY230327P00390000",
        "O:A261120C00012500",
        "O:GOOG1270115C01500000",
        "O:SPXW261120P05800000",
    ]
    table, ok = parse_option_tickers(pa.array(tickers))
    assert ok.to_pylist() == [True] * 4
    assert table.to_pylist() == [
        {
            "underlying": "SPY",
            "expiration": dt.date(2023, 3, 27),
            "contract_type": "put",
            "strike": 390.0,
        },
        {
            "underlying": "A",
            "expiration": dt.date(2026, 11, 20),
            "contract_type": "call",
            "strike": 12.5,
        },
        {
            "underlying": "GOOG1",
            "expiration": dt.date(2027, 1, 15),
            "contract_type": "call",
            "strike": 1500.0,
        },
        {
            "underlying": "SPXW",
            "expiration": dt.date(2026, 11, 20),
            "contract_type": "put",
            "strike": 5800.0,
        },
    ]


def test_malformed_tickers_and_impossible_dates_are_flagged_not_guessed():
    bad = ["SPY", "O:SPY230327X00390000", "O:SPY230230C00001000", "O:SPY2303271P0039000", None]
    table, ok = parse_option_tickers(pa.array(bad))
    assert ok.to_pylist() == [False] * 5
    assert table.column("underlying").null_count == 5


def test_repeated_tickers_in_any_mix_get_each_rows_own_parse():
    tickers = ["O:SPY230327P00390000", None, "O:BAD", "O:A261120C00012500"]
    mixed = [tickers[i] for i in (3, 0, 0, 1, 2, 0, 3, 2, 1)]
    one_by_one = [parse_option_tickers(pa.array([t], pa.string())) for t in mixed]
    table, ok = parse_option_tickers(pa.chunked_array([mixed[:4], mixed[4:]], pa.string()))
    assert ok.to_pylist() == [o.to_pylist()[0] for _, o in one_by_one]
    assert table.to_pylist() == [t.to_pylist()[0] for t, _ in one_by_one]
