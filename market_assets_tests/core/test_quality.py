# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The one-pass quality accumulators against pyarrow's group_by over the whole table."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from market_assets.core.quality import (
    OPTION_TRADE_COLUMNS,
    STOCK_TRADE_KEY,
    GreeksStatusShares,
    PresentValues,
    RunDuplicateCounter,
    UnparsedOptionTickers,
    count_duplicates,
)
from market_assets.core.schemas import TS


def stock_rows(rng: np.random.Generator, tickers: list[str], per_ticker: int, dup_share: float):
    """A ticker-ordered stock table; each ticker's sequence numbers rise with a few repeats
    (some adjacent, some far apart) and a few rows out of order."""
    parts = []
    for t in sorted(tickers):
        n = int(rng.integers(1, per_ticker))
        seq = np.cumsum(rng.integers(1, 50, n))
        repeat = rng.random(n) < dup_share
        seq[repeat] = seq[rng.integers(0, n, repeat.sum())]
        swap = rng.integers(0, n, max(1, n // 500))
        seq[swap], seq[swap[::-1]] = seq[swap[::-1]], seq[swap]
        parts.append(pa.table({"ticker": [t] * n, "sequence_number": pa.array(seq, pa.int64())}))
    return pa.concat_tables(parts)


def batches_of(table: pa.Table, rng: np.random.Generator) -> Iterator[pa.RecordBatch]:
    """``table`` cut at random places (batches of 1 row up to a few thousand)."""
    start = 0
    while start < table.num_rows:
        n = int(rng.choice([1, 2, 7, 300, 4000]))
        yield from table.slice(start, n).to_batches()
        start += n


def counted(counter: RunDuplicateCounter, table: pa.Table, rng) -> RunDuplicateCounter:
    for batch in batches_of(table, rng):
        counter.update(batch)
    return counter


def counted_with_recount(counter: RunDuplicateCounter, table: pa.Table, rng) -> tuple[int, int]:
    """Feed ``table`` in random batches; the duplicates found, plus the runs the counter
    left to recount counted over their rows (as the check does over the written rows)."""
    counted(counter, table, rng)
    got = counter.result()
    again = table.filter(pc.is_in(table.column("ticker"), pa.array(sorted(counter.recount))))
    assert counter.recount_rows == again.num_rows
    return got.rows, got.duplicates + count_duplicates(again, counter.columns).duplicates


@pytest.mark.parametrize("seed", range(8))
def test_stock_duplicates_counted_per_run_match_a_whole_table_group_by(seed):
    rng = np.random.default_rng(seed)
    tickers = [f"T{i:03d}" for i in range(int(rng.integers(1, 40)))] + ["SPY"]
    table = stock_rows(rng, tickers, per_ticker=3000, dup_share=[0.0, 0.001, 0.05][seed % 3])
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    rows, dups = counted_with_recount(counter, table, rng)
    assert counter.ordered
    want = count_duplicates(table, STOCK_TRADE_KEY)
    assert (rows, dups) == (want.rows, want.duplicates)
    assert rows == table.num_rows
    assert set(counter.count.examples) <= set(table.column("ticker").to_pylist())


def test_a_run_going_back_in_time_across_batches_is_left_to_recount():
    ticks = ["A"] * 6 + ["B"] * 3
    seq = [1, 2, 3, 4, 2, 5, 1, 1, 2]  # A goes back to 2 (a repeat), B has a tie
    table = pa.table({"ticker": ticks, "sequence_number": pa.array(seq, pa.int64())})
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    for batch in table.to_batches(max_chunksize=3):
        counter.update(batch)
    got = counter.result()
    assert counter.recount == {"A"} and counter.recount_rows == 6
    assert (got.rows, got.duplicates, got.examples) == (9, 1, ["B"])
    # Inside one batch, the same run is counted where it lies.
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    counter.update(table.to_batches()[0])
    assert counter.result().duplicates == 2 and not counter.recount


def option_table(rows: list[tuple]) -> pa.Table:
    names = list(OPTION_TRADE_COLUMNS)
    cols = list(zip(*rows, strict=True))
    types = [pa.string(), TS, TS, pa.int32(), pa.float64(), pa.float64()]
    types += [pa.list_(pa.int32()), pa.int32()]
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, cols, types, strict=True)})


def test_option_exact_duplicates_need_every_column_equal_and_tell_lists_from_nulls():
    c = "O:SPY261120C00600000"
    p = "O:SPY261120P00600000"
    rows = [
        (c, 1, None, 300, 1.0, 1.0, [209], 0),
        (c, 1, None, 300, 1.0, 1.0, [209], 0),  # duplicate
        (c, 1, None, 300, 1.0, 1.0, [209, 1], 0),  # other conditions
        (c, 1, None, 300, 1.0, 1.0, None, 0),  # null conditions
        (c, 1, None, 300, 1.0, 1.0, None, 0),  # duplicate of the null one
        (c, 1, None, 300, 1.0, 1.0, [], 0),  # empty is not null
        (c, 1, None, 301, 1.0, 1.0, [209], 0),  # other exchange
        (c, 2, None, 300, 1.0, 1.0, [209], 0),  # other time
        (p, 2, None, 300, 1.0, 1.0, [209], 0),  # other contract, same values
        (p, 2, None, 300, 1.0, 2.0, [209], 0),  # other size
    ]
    table = option_table(rows)
    for size in (1, 2, 3, 10):
        counter = RunDuplicateCounter(OPTION_TRADE_COLUMNS, "sip_timestamp")
        for b in table.to_batches(max_chunksize=size):
            counter.update(b)
        got = counter.result()
        assert (got.rows, got.duplicates, got.examples) == (10, 2, [c])
    assert count_duplicates(table, OPTION_TRADE_COLUMNS).duplicates == 2


def test_option_duplicates_found_when_a_contract_is_not_in_time_order():
    c = "O:SPY261120C00600000"
    rows = [(c, t, None, 300, 1.0, 1.0, [209], 0) for t in (5, 3, 9, 3, 5, 1)]
    table = option_table(rows + [("O:SPY261120P00600000", 1, None, 300, 1.0, 1.0, [209], 0)])
    counter = RunDuplicateCounter(OPTION_TRADE_COLUMNS, "sip_timestamp")
    counter.update(table.to_batches()[0])
    assert counter.result().duplicates == 2 and not counter.recount  # counted where it lies
    # The last run may go on in the next batch: it is left to recount over its rows.
    counter = RunDuplicateCounter(OPTION_TRADE_COLUMNS, "sip_timestamp")
    counter.update(table.slice(0, 6).to_batches()[0])
    assert counter.result().duplicates == 0
    assert counter.recount == {c} and counter.recount_rows == 6


def test_a_ticker_coming_back_after_its_run_is_detected():
    a = pa.table({"ticker": ["A", "A", "B"], "sequence_number": pa.array([1, 2, 1], pa.int64())})
    back = pa.table({"ticker": ["A"], "sequence_number": pa.array([1], pa.int64())})
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    counter.update(a.to_batches()[0])
    assert counter.ordered
    counter.update(back.to_batches()[0])
    assert not counter.ordered and counter.count.rows == 4
    with pytest.raises(RuntimeError, match="not ordered by ticker"):
        counter.result()
    # Out of order inside one batch too.
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    counter.update(pa.concat_tables([a, back]).combine_chunks().to_batches()[0])
    assert not counter.ordered


def test_memory_is_bounded_by_a_batch_not_by_the_day_nor_the_largest_ticker():
    """4M rows, one ticker 3M of them: the counter holds a few rows, not 24 MB of keys."""
    counter = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    names = np.array([f"T{i:04d}" for i in range(100)] + ["ZZZ"])
    tickers = np.repeat(names, [10_000] * 100 + [3_000_000])
    seq = np.concatenate([np.arange(10_000)] * 100 + [np.arange(3_000_000)]) * 3
    seq[-2] = seq[-3]  # one repeat, at the very end of the big run
    batch_rows = 65_536
    base = pa.total_allocated_bytes()
    peak = 0
    for start in range(0, len(tickers), batch_rows):
        t, s = tickers[start : start + batch_rows], seq[start : start + batch_rows]
        counter.update(pa.record_batch({"ticker": t, "sequence_number": s}))
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert counter.count.rows == 4_000_000
    assert counter.result().duplicates == 1 and not counter.recount
    assert peak < 6_000_000  # a batch or two in flight


def test_unparsed_option_tickers_are_counted_with_examples():
    acc = UnparsedOptionTickers()
    good = ["O:SPY261120C00600000", "SPY", 1, "call", 600.0]
    bad = ["O:BROKEN", None, None, None, None]
    for rows in ([good, bad], [good] * 3, [bad]):
        cols = list(zip(*rows, strict=True))
        acc.update(
            pa.record_batch(
                {
                    "ticker": cols[0],
                    "underlying": pa.array(cols[1], pa.string()),
                    "expiration": pa.array(cols[2], pa.date32()),
                    "contract_type": pa.array(cols[3], pa.string()),
                    "strike": pa.array(cols[4], pa.float64()),
                }
            )
        )
    assert (acc.rows, acc.unparsed, acc.examples) == (6, 2, ["O:BROKEN", "O:BROKEN"])


@pytest.mark.parametrize(
    ("statuses", "iv", "problem"),
    [
        (["ok"] * 95 + ["below_intrinsic"] * 4 + ["no_underlying"], [0.2] * 95 + [None] * 5, None),
        (["ok"] * 70 + ["expired"] * 30, [0.2] * 70 + [None] * 30, "ok share 70.0000%"),
        (["ok"] * 90 + ["no_underlying"] * 10, [0.2] * 90 + [None] * 10, "no_underlying share"),
        (["ok"] * 99 + ["bad_input"], [0.2] * 99 + [None], "bad_input share"),
        (["ok"] * 100, [0.2] * 98 + [float("nan"), 0.0], "2 ok trades have an iv"),
        (["ok"] * 100, [0.2] * 99 + [float("inf")], "1 ok trades have an iv"),
        (["ok"] * 99 + ["mystery"], [0.2] * 100, "unknown greeks_status values ['mystery']"),
    ],
)
def test_greeks_status_shares_and_iv(statuses, iv, problem):
    acc = GreeksStatusShares()
    for i in range(0, len(statuses), 30):
        acc.update(
            pa.record_batch(
                {
                    "greeks_status": statuses[i : i + 30],
                    "iv": pa.array(iv[i : i + 30], pa.float64()),
                }
            )
        )
    problems = acc.violations(0.80, 0.05, 0.001)
    assert acc.rows == len(statuses)
    assert (problem is None) == (not problems)
    if problem:
        assert any(problem in p for p in problems)
    assert GreeksStatusShares().violations(0.8, 0.05, 0.001) == ["option_trades_greeks has no rows"]


def test_configured_tickers_absent_from_the_file_are_named():
    acc = PresentValues("ticker", ["spy", "QQQ", "ZZZZ"])
    acc.update(pa.record_batch({"ticker": ["AAPL", "QQQ", "QQQ"]}))
    acc.update(pa.record_batch({"ticker": pa.array([], pa.string())}))
    assert acc.absent() == ["SPY", "ZZZZ"]
