# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Hash-partitioned duplicate counting: exact over rows in any order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from market_assets.core.quality import (
    OPTION_TRADE_COLUMNS,
    STOCK_TRADE_KEY,
    RunDuplicateCounter,
    count_duplicates,
)
from market_assets.core.schemas import TS
from market_assets.io.spill import count_duplicates_spilled, partition_count


def test_tickers_coming_back_are_counted_exactly_across_their_runs(tmp_path):
    rng = np.random.default_rng(7)
    n = 200_000
    # Tickers shuffled in runs of 1-50 rows: every ticker comes back many times, and
    # sequence numbers repeat across its runs.
    tickers = np.array([f"T{i:02d}" for i in range(30)])
    run_len = rng.integers(1, 50, n // 10)
    run_tick = tickers[rng.integers(0, len(tickers), len(run_len))]
    ticker = np.repeat(run_tick, run_len)[:n]
    seq = rng.integers(0, 60_000, len(ticker))
    table = pa.table({"ticker": ticker, "sequence_number": pa.array(seq, pa.int64())})
    batches = table.to_batches(max_chunksize=8192)

    ordered = RunDuplicateCounter(STOCK_TRADE_KEY, "sequence_number")
    for b in batches:
        ordered.update(b)
    assert not ordered.ordered  # detected: the caller must count over the written rows

    want = count_duplicates(table, STOCK_TRADE_KEY)
    assert want.duplicates > 10_000
    got = count_duplicates_spilled(
        batches, STOCK_TRADE_KEY, "sequence_number", partitions=7, directory=tmp_path
    )
    assert (got.rows, got.duplicates) == (want.rows, want.duplicates)
    assert not list(tmp_path.iterdir())  # the spill is removed


def test_option_rows_loaded_twice_are_all_duplicates(tmp_path):
    n = 5_000
    rng = np.random.default_rng(3)
    once = pa.table(
        {
            "ticker": np.repeat([f"O:SPY261120C00{600 + i}000" for i in range(50)], n // 50),
            "sip_timestamp": pa.array(np.arange(n), TS),
            "participant_timestamp": pa.nulls(n, TS),
            "exchange": pa.array(rng.integers(300, 320, n), pa.int32()),
            "price": rng.random(n),
            "size": rng.integers(1, 9, n).astype(float),
            "conditions": pa.array([[209]] * n, pa.list_(pa.int32())),
            "correction": pa.array([0] * n, pa.int32()),
        }
    )
    twice = pa.concat_tables([once, once])
    got = count_duplicates_spilled(
        twice.to_batches(max_chunksize=1000), OPTION_TRADE_COLUMNS, "sip_timestamp", 4, tmp_path
    )
    assert (got.rows, got.duplicates) == (2 * n, n)
    assert len(got.examples) == 5


def test_partitions_grow_with_the_rows():
    assert partition_count(0) == 1
    assert partition_count(1_000_000) == 1
    assert partition_count(12_000_001) == 13


def test_rows_with_a_null_ticker_meet_whatever_batch_they_come_in(tmp_path):
    table = pa.table(
        {
            "ticker": pa.array(["B", None, "A", None, "C", None], pa.string()),
            "sequence_number": pa.array([1, 7, 1, 7, 1, 8], pa.int64()),
        }
    )
    got = count_duplicates_spilled(
        table.to_batches(max_chunksize=2), STOCK_TRADE_KEY, "sequence_number", 16, tmp_path
    )
    assert (got.rows, got.duplicates) == (6, 1)
