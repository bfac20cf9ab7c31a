# Copyright (c) James Kassemi, SC, US. All rights reserved.
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.nbbo import NbboCarry, nbbo_delta_stream, nbbo_deltas
from market_assets.core.schemas import OPTION_QUOTES, STOCK_QUOTES

CALL = "O:SPY261120C00600000"


def quotes(rows: list[tuple], seq: bool = True) -> pa.Table:
    """rows: (ticker, sip ns, bid, bid size, ask, ask size)."""
    cols = list(zip(*rows, strict=True))
    data = {
        "ticker": pa.array(cols[0], pa.string()),
        "bid_price": pa.array(cols[2], pa.float64()),
        "bid_size": pa.array(cols[3], pa.float64()),
        "ask_price": pa.array(cols[4], pa.float64()),
        "ask_size": pa.array(cols[5], pa.float64()),
        "sip_timestamp": pa.array(cols[1], pa.int64()),
    }
    if seq:
        data["sequence_number"] = pa.array(range(len(rows)), pa.int64())
    return pa.table(data)


def test_states_normal_locked_crossed_and_invalid_for_a_zero_or_missing_side():
    t, _ = nbbo_deltas(
        quotes(
            [
                ("A", 1, 10.0, 1, 10.1, 1),
                ("B", 1, 10.0, 1, 10.0, 1),
                ("C", 1, 10.2, 1, 10.1, 1),
                ("D", 1, 0.0, 0, 10.1, 1),
                ("E", 1, 10.0, 1, None, None),
                ("F", 1, 10.0, 0, 10.1, 1),
            ]
        )
    )
    assert t.column("nbbo_state").to_pylist() == [
        "Normal",
        "Locked",
        "Crossed",
        "Invalid",
        "Invalid",
        "Invalid",
    ]
    assert t.column("ask_price").to_pylist()[4] is None  # a missing side stays null


def test_only_changes_of_bid_ask_sizes_or_state_are_kept_per_ticker():
    rows = [
        ("A", 1, 10.0, 1, 10.1, 1),
        ("B", 2, 5.0, 1, 5.1, 1),
        ("A", 3, 10.0, 1, 10.1, 1),  # repeat of A: dropped though B came between
        ("A", 4, 10.0, 2, 10.1, 1),  # bid size
        ("A", 5, 10.0, 2, 10.2, 1),  # ask
        ("A", 6, 10.0, 2, 10.2, 3),  # ask size
        ("A", 7, 10.05, 2, 10.2, 3),  # bid
        ("B", 8, 5.0, 1, 5.1, 1),  # repeat of B
        ("B", 9, 0.0, 0, 5.1, 1),  # Invalid
        ("B", 10, 0.0, 0, 5.1, 1),  # repeat Invalid
    ]
    t, _ = nbbo_deltas(quotes(rows))
    assert t.column("sip_timestamp").cast(pa.int64()).to_pylist() == [1, 2, 4, 5, 6, 7, 9]
    assert t.column("sequence_number").to_pylist() == [0, 1, 3, 4, 5, 6, 8]
    assert t.schema == STOCK_QUOTES


def _random_quotes(rng: np.random.Generator, n: int) -> pa.Table:
    tick = rng.choice(["A", "B", "C", "O:SPY261120P00590000"], n)
    bid = rng.choice([1.0, 1.01, 1.02, 0.0], n, p=[0.4, 0.3, 0.2, 0.1])
    ask = rng.choice([1.02, 1.03, 1.01], n)
    return pa.table(
        {
            "ticker": tick,
            "bid_price": bid,
            "bid_size": rng.choice([1.0, 2.0], n),
            "ask_price": ask,
            "ask_size": rng.choice([1.0, 2.0], n),
            "sip_timestamp": np.arange(n, dtype=np.int64),
            "sequence_number": np.arange(n, dtype=np.int64),
        }
    )


def _reference_deltas(table: pa.Table) -> list[int]:
    last: dict[str, tuple] = {}
    kept = []
    for r in table.to_pylist():
        key = (r["bid_price"], r["bid_size"], r["ask_price"], r["ask_size"])
        if last.get(r["ticker"]) != key:
            kept.append(r["sequence_number"])
        last[r["ticker"]] = key
    return kept


@pytest.mark.parametrize("batch_rows", [1, 7, 100, 5000])
def test_batches_with_carried_state_give_the_rows_of_one_pass(batch_rows):
    table = _random_quotes(np.random.default_rng(3), 5000)
    carry = NbboCarry.empty()
    parts = []
    for batch in table.to_batches(max_chunksize=batch_rows):
        out, carry = nbbo_deltas(batch, carry)
        parts.append(out)
    streamed = pa.concat_tables(parts)
    whole, _ = nbbo_deltas(table)
    assert streamed.equals(whole)
    assert streamed.column("sequence_number").to_pylist() == _reference_deltas(table)
    assert sorted(carry.tickers.to_pylist()) == sorted(set(table.column("ticker").to_pylist()))
    stream = nbbo_delta_stream(table.to_batches(max_chunksize=batch_rows))
    assert pa.concat_tables(stream).equals(whole)


@pytest.mark.parametrize("batch_rows", [1, 3, 50, 5000])
def test_a_sorted_stream_carries_only_the_last_ticker_and_gives_the_same_rows(batch_rows):
    table = _random_quotes(np.random.default_rng(5), 5000)
    table = table.take(pa.array(np.argsort(table["ticker"].to_numpy(), kind="stable")))
    batches = table.to_batches(max_chunksize=batch_rows)
    stream = nbbo_delta_stream(batches, sorted_by_ticker=True)
    assert pa.concat_tables(stream).equals(nbbo_deltas(table)[0])
    # Out of ticker order, a ticker that comes back repeats its NBBO once: nothing is lost.
    shuffled = pa.concat_tables([table.slice(2500), table.slice(0, 2500)])
    kept = pa.concat_tables(nbbo_delta_stream(shuffled.to_batches(100), sorted_by_ticker=True))
    exact = set(nbbo_deltas(shuffled)[0]["sequence_number"].to_pylist())
    assert exact <= set(kept["sequence_number"].to_pylist())
    assert kept.num_rows - len(exact) <= 1


def test_a_ticker_unchanged_across_a_batch_boundary_is_not_repeated():
    first, carry = nbbo_deltas(quotes([("A", 1, 10.0, 1, 10.1, 1)]))
    second, carry = nbbo_deltas(quotes([("A", 2, 10.0, 1, 10.1, 1)]), carry)
    third, _ = nbbo_deltas(quotes([("A", 3, 10.0, 1, 10.0, 1)]), carry)
    assert (first.num_rows, second.num_rows, third.num_rows) == (1, 0, 1)
    assert third.column("nbbo_state").to_pylist() == ["Locked"]


def test_option_quotes_carry_the_contract_fields_and_a_null_sequence_when_absent():
    t, _ = nbbo_deltas(quotes([(CALL, 5, 1.0, 1, 1.05, 2)], seq=False), options=True)
    assert t.schema == OPTION_QUOTES
    row = t.to_pylist()[0]
    assert row["underlying"] == "SPY"
    assert row["expiration"] == dt.date(2026, 11, 20)
    assert (row["contract_type"], row["strike"]) == ("call", 600.0)
    assert row["sequence_number"] is None


def test_a_row_without_ticker_or_time_is_an_error_naming_the_row():
    table = quotes([("A", 1, 10.0, 1, 10.1, 1), (None, 2, 10.0, 1, 10.1, 1)])
    with pytest.raises(ValueError, match="row 1 .*ticker"):
        nbbo_deltas(table)


def _real(name: str) -> pa.Table:
    from pyarrow import csv

    from market_assets_tests.config_files import FIXTURES

    table = csv.read_csv(FIXTURES / name)
    return table.rename_columns([c.lower() for c in table.column_names])  # stock: "Ticker"


def test_real_stock_quotes_sample_states_and_deltas():
    table = _real("stock_quotes_sample.csv.gz")
    deltas, _ = nbbo_deltas(table)
    states = deltas.column("nbbo_state").to_pylist()
    # Pre-open rows with both sides zero (two identical rows: one delta), then the ask zero.
    assert states[:3] == ["Invalid", "Invalid", "Normal"]
    assert "Normal" in states
    assert deltas.column("sequence_number").to_pylist() == _reference_deltas(table)


def test_real_option_quotes_sample_parses_the_contract():
    table = _real("options_quotes_example.csv.gz")
    deltas, _ = nbbo_deltas(table, options=True)
    assert set(deltas.column("underlying").to_pylist()) == {"SPY"}
    assert set(deltas.column("strike").to_pylist()) == {720.0}
    assert deltas.column("sequence_number").to_pylist() == _reference_deltas(table)
