# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from market_assets.core.implausible_prices import (
    DayMedians,
    ImplausiblePriceScan,
    PlausibleRows,
    PriceRule,
    drop_implausible,
    implausible_mask,
    implausible_rows,
    level_price,
    price_levels,
    scan_implausible_prices,
    scan_implausible_prices_any_order,
)
from market_assets_tests.config_files import FIXTURES


def trades(*runs: tuple[str, list[float]]) -> pa.Table:
    return pa.table(
        {
            "ticker": [t for t, prices in runs for _ in prices],
            "price": [p for _, prices in runs for p in prices],
        }
    )


def walk(start: float, n: int, day_move: float, seed: int = 0) -> list[float]:
    """A ticker's day: n prints drifting by ``day_move`` (0.1 = +10%) with noise."""
    rng = np.random.default_rng(seed)
    drift = np.linspace(0, math.log1p(day_move), n)
    noise = np.cumsum(rng.normal(0, 0.0005, n))
    return np.round(start * np.exp(drift + noise), 2).tolist()


def test_a_print_at_1e12_is_found_with_its_row_and_the_median():
    spy = walk(600, 1000, 0.01)
    spy[400] = 1e12
    found = scan_implausible_prices([trades(("AAPL", walk(230, 500, -0.02)), ("SPY", spy))])
    assert (found.rows, found.tickers, found.implausible) == (1500, 2, 1)
    assert found.by_ticker == {"SPY": 1}
    [example] = found.examples
    assert (example.ticker, example.row, example.price) == ("SPY", 900, 1e12)
    assert example.median == pytest.approx(np.median(spy), rel=1e-3)


@pytest.mark.parametrize(
    ("ticker", "start", "move"),
    [
        ("SPY", 600, -0.10),  # a crash day
        ("SPY", 600, 0.12),
        ("BIOT", 1.20, 4.0),  # a small cap up 400% on news
        ("PNNY", 0.05, -0.8),  # a penny stock losing 80%
    ],
)
def test_real_looking_days_pass(ticker, start, move):
    found = scan_implausible_prices([trades((ticker, walk(start, 5000, move)))])
    assert found.implausible == 0 and found.examples == []


def test_sub_penny_ticks_within_a_cent_pass_even_far_apart_in_ratio():
    prices = [0.0003] * 50 + [0.0001, 0.0045, 0.009]  # 30x the median, but under a cent away
    assert scan_implausible_prices([trades(("SUBP", prices))]).implausible == 0
    assert scan_implausible_prices([trades(("SUBP", [*prices, 0.02]))]).by_ticker == {"SUBP": 1}


@pytest.mark.parametrize(
    ("price", "flagged"),
    [(6.0, True), (59.0, True), (65.0, False), (5400.0, False), (6100.0, True), (60000.0, True)],
)
def test_the_factor_is_ten_either_way(price, flagged):
    spy = [600.0] * 99 + [price]
    assert scan_implausible_prices([trades(("SPY", spy))]).implausible == int(flagged)
    assert implausible_mask(np.array(spy))[-1] == flagged


def test_a_tighter_rule_can_be_chosen():
    spy = [600.0] * 99 + [1000.0]
    assert scan_implausible_prices([trades(("SPY", spy))], PriceRule(factor=1.5)).implausible == 1
    with pytest.raises(ValueError, match="factor > 1"):
        PriceRule(factor=0.5)


def test_prices_that_are_not_positive_numbers_are_implausible():
    found = scan_implausible_prices([trades(("SPY", [600.0, 601.0, math.nan, 0.0, -1.0]))])
    assert found.implausible == 3
    assert [e.row for e in found.examples] == [2, 3, 4]


def test_the_scan_streams_runs_across_batches_and_agrees_with_the_in_memory_mask():
    rng = np.random.default_rng(7)
    runs = []
    for i, ticker in enumerate(["AAA", "BBB", "CCC", "SPY", "ZZZ"]):
        prices = np.array(walk(10.0 ** (i - 1), 20_000 + i, 0.05, seed=i))
        bad = rng.choice(len(prices), 5 + i, replace=False)
        prices[bad] *= rng.choice([1e-3, 0.05, 20.0, 1e6], len(bad))
        runs.append((ticker, prices.tolist()))
    table = trades(*runs)
    batches = table.to_batches(max_chunksize=7_777)  # runs cross batch boundaries
    found = scan_implausible_prices(batches, max_examples=1000)
    expected = {t: int(implausible_mask(np.array(p)).sum()) for t, p in runs}
    assert found.by_ticker == {t: n for t, n in expected.items() if n}
    assert found.implausible == sum(expected.values()) >= 5 + 6 + 7 + 8 + 9
    for e in found.examples:
        assert table.column("ticker")[e.row].as_py() == e.ticker
        assert table.column("price")[e.row].as_py() == e.price


def test_rows_of_several_tickers_in_any_order_are_judged_against_their_own_median():
    rng = np.random.default_rng(3)
    runs = [("SPY", walk(600, 3000, 0.02)), ("QQQ", walk(500, 2000, -0.03)), ("X", [1.0, 50.0])]
    runs[0][1][10] = 6.0
    runs[1][1][20] = 1e12
    runs[1][1][21] = math.nan
    table = trades(*runs)
    shuffled = table.take(rng.permutation(table.num_rows))
    marked = implausible_rows(shuffled.column("ticker"), shuffled.column("price").to_numpy())
    flagged = shuffled.filter(marked)
    assert sorted((r["ticker"], str(r["price"])) for r in flagged.to_pylist()) == [
        ("QQQ", "1000000000000.0"),
        ("QQQ", "nan"),
        ("SPY", "6.0"),
        ("X", "50.0"),  # two prints: the lower median is 1.0
    ]
    assert int(marked.sum()) == scan_implausible_prices([table]).implausible


def test_a_ticker_seen_again_after_another_is_an_error():
    unordered = trades(("SPY", [600.0]), ("AAPL", [230.0]), ("SPY", [601.0]))
    with pytest.raises(ValueError, match="not ordered by ticker: SPY appears again at row 2"):
        scan_implausible_prices([unordered])


def test_real_massive_sample_passes():
    table = pcsv.read_csv(FIXTURES / "stock_trades_sample.csv.gz")
    found = scan_implausible_prices([table.select(["ticker", "price"])])
    assert found.rows == 99 and found.implausible == 0


def test_memory_does_not_grow_with_the_number_of_trades():
    def day(n: int):
        for start in range(0, n, 100_000):
            yield pa.record_batch(
                {
                    "ticker": pa.array(["SPY"] * 100_000),
                    "price": pa.array(600 + np.arange(start, start + 100_000) % 500 / 100),
                }
            )

    peaks = []
    for n in (200_000, 2_000_000):
        tracemalloc.start()
        assert scan_implausible_prices(day(n)).implausible == 0
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]


def test_examples_carry_the_sip_time_of_the_print():
    spy = walk(600, 500, 0.01)
    spy[100] = 6e8
    table = trades(("SPY", spy)).append_column(
        "sip_timestamp", pa.array(np.arange(500) * 1_000 + 10**18, pa.timestamp("ns", "UTC"))
    )
    [example] = scan_implausible_prices([table]).examples
    assert (example.row, example.price, example.sip_timestamp) == (100, 6e8, 10**18 + 100_000)


def _several_tickers(seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    runs = []
    for i, ticker in enumerate(["AAA", "BBB", "SPY", "ZZZ"]):
        prices = np.array(walk(5.0 * 10**i, 3_000, 0.03, seed=i))
        bad = rng.choice(len(prices), 3 + i, replace=False)
        prices[bad] *= rng.choice([1e-3, 20.0, 1e6], len(bad))
        runs.append((ticker, prices.tolist()))
    table = trades(*runs)
    return table.append_column(
        "sip_timestamp", pa.array(np.arange(table.num_rows), pa.timestamp("ns", "UTC"))
    )


def test_rows_out_of_ticker_order_are_counted_exactly_in_two_passes():
    table = _several_tickers()
    ordered = scan_implausible_prices([table], max_examples=1000)
    shuffled = table.take(np.random.default_rng(1).permutation(table.num_rows))
    batches = shuffled.to_batches(max_chunksize=1_000)

    scan = ImplausiblePriceScan()
    for b in batches:
        scan.update(b)
    assert not scan.ordered and "not ordered by ticker" in scan.disorder

    found = scan_implausible_prices_any_order(lambda: iter(batches), max_examples=1000)
    assert (found.rows, found.tickers) == (table.num_rows, 4)
    assert found.by_ticker == ordered.by_ticker and found.implausible == ordered.implausible
    marked = shuffled.filter(implausible_rows(shuffled.column("ticker"), shuffled.column("price")))
    assert [(e.ticker, e.price, e.sip_timestamp) for e in sorted(found.examples, key=key)] == [
        (r["ticker"], r["price"], r["sip_timestamp"].value)
        for r in sorted(marked.to_pylist(), key=key)
    ]
    assert {e.row for e in ordered.examples} <= {int(e.sip_timestamp) for e in found.examples}
    for e in found.examples:
        assert shuffled.column("ticker")[e.row].as_py() == e.ticker
        assert shuffled.column("price")[e.row].as_py() == e.price
    # The most extreme first, in 0.1% levels (prices above 1e9 count at 1e9's level).
    levels = price_levels(np.array([e.price for e in found.examples]))
    medians = price_levels(np.array([e.median for e in found.examples]))
    far = np.abs(levels - medians)
    assert (np.diff(far) <= 0).all()
    few = scan_implausible_prices_any_order(lambda: iter(batches), max_examples=3)
    assert few.examples == found.examples[:3]


def key(e) -> tuple:
    return (e.ticker, e.price) if hasattr(e, "ticker") else (e["ticker"], e["price"])


def test_day_medians_fed_in_batches_mark_the_same_rows_as_the_whole_table():
    table = _several_tickers(seed=4)
    medians = DayMedians()
    for b in table.take(np.random.default_rng(2).permutation(table.num_rows)).to_batches(
        max_chunksize=500
    ):
        medians.update(b.column("ticker"), b.column("price"))
    marked = medians.implausible(table.column("ticker"), table.column("price"))
    assert (marked == implausible_rows(table.column("ticker"), table.column("price"))).all()
    for ticker, level in medians.median_levels().items():
        prices = table.filter(pc.equal(table.column("ticker"), ticker)).column("price")
        assert level_price(level) == pytest.approx(np.median(prices), rel=2e-3)
    kept, dropped = drop_implausible(table, medians)
    assert dropped == int(marked.sum()) == scan_implausible_prices([table]).implausible
    assert kept.num_rows == table.num_rows - dropped
    assert scan_implausible_prices([kept]).implausible == 0
    streamed = PlausibleRows(table.to_batches(max_chunksize=700), DayMedians.of([table]))
    assert pa.Table.from_batches(list(streamed)).equals(kept)
    assert streamed.dropped == dropped


def test_a_ticker_without_a_median_has_only_implausible_rows():
    medians = DayMedians()
    medians.update(pa.array(["SPY", "SPY"]), np.array([600.0, 601.0]))
    marked = medians.implausible(pa.array(["SPY", "XYZ"]), np.array([600.5, 10.0]))
    assert marked.tolist() == [False, True]


def test_day_medians_memory_does_not_grow_with_the_number_of_trades():
    def feed(n: int) -> None:
        medians = DayMedians()
        for start in range(0, n, 100_000):
            prices = 600 + np.arange(start, start + 100_000) % 5_000 / 100
            medians.update(pa.array(["SPY", "QQQ"] * 50_000), prices)
        assert set(medians.median_levels()) == {"SPY", "QQQ"}

    peaks = []
    for n in (200_000, 2_000_000):
        tracemalloc.start()
        feed(n)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]
