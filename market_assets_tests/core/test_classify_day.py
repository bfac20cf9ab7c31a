# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A day classified in two streamed passes equals classify_table on the whole day."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.classify import ClassifyParams, Staleness, classify_table
from market_assets.core.classify_day import DayClassifier, NotInTickerOrder, classify_day
from market_assets_tests.core.test_classify import generated_day

PARAMS = {
    "fixed": ClassifyParams(option_staleness=Staleness.options(adaptive=False)),
    "adaptive": ClassifyParams(),
    "adaptive+tick-rule": ClassifyParams(tick_rule_fallback=True),
    "tight": ClassifyParams(
        option_staleness=Staleness(min_ms=1, max_ms=3), tick_rule_fallback=True
    ),
}


def _scan(trades: pa.Table, rows: int):
    def scan(columns):
        table = trades if columns is None else trades.select(columns)
        return table.to_batches(max_chunksize=rows)

    return scan


def _by_ticker(quotes: pa.Table) -> pa.Table:
    return quotes.sort_by([("ticker", "ascending")])  # stable: file order within a ticker


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("quote_rows,trade_rows", [(97, 53), (5000, 4000), (100_000, 100_000)])
def test_streamed_day_equals_classify_table_on_the_whole_day(name, quote_rows, trade_rows):
    q, t = generated_day(seed=7)
    q = _by_ticker(q)
    want = classify_table(t, q, PARAMS[name])
    got = pa.concat_tables(
        classify_day(_scan(t, trade_rows), q.to_batches(max_chunksize=quote_rows), PARAMS[name])
    )
    assert got.schema == want.schema
    assert got.equals(want)


def test_a_tie_across_quote_batches_goes_to_the_later_row_as_one_index_would():
    ts = pa.array([100, 100, 100], pa.timestamp("ns", tz="UTC"))
    q = pa.table(
        {
            "ticker": ["O:SPY261120C00600000"] * 3,
            "sip_timestamp": ts,
            "bid_price": [1.0, 1.1, 1.2],
            "bid_size": [1.0, 1.0, 1.0],
            "ask_price": [1.2, 1.3, 1.4],
            "ask_size": [1.0, 1.0, 1.0],
            "sequence_number": [5, 5, 5],
        }
    )
    t = pa.table(
        {
            "ticker": ["O:SPY261120C00600000"],
            "sip_timestamp": pa.array([200], pa.timestamp("ns", tz="UTC")),
            "price": [1.4],
        }
    )
    want = classify_table(t, q)
    got = pa.concat_tables(classify_day(_scan(t, 10), q.to_batches(max_chunksize=1)))
    assert got.equals(want)
    assert got.column("nbbo_bid").to_pylist() == [1.2]


def test_trades_without_quotes_before_between_and_after_the_quoted_tickers():
    q, t = generated_day(seed=3, contracts=30, n_quotes=2000, n_trades=1500)
    q = _by_ticker(q)
    names = sorted(set(q.column("ticker").to_pylist()))
    keep = pa.array(
        [x not in (names[0], names[5], names[-1]) for x in q.column("ticker").to_pylist()]
    )
    q = q.filter(keep)
    extra = pa.table(
        {
            "ticker": pa.array(["A", None, "ZZZ"], pa.string()),
            "sip_timestamp": pa.array([1, 2, None], pa.timestamp("ns", tz="UTC")),
            "price": [1.0, 2.0, 3.0],
        }
    )
    t = pa.concat_tables([extra, t])
    want = classify_table(t, q, ClassifyParams())
    got = pa.concat_tables(classify_day(_scan(t, 64), q.to_batches(max_chunksize=128)))
    assert got.equals(want)
    assert "no_quote" in got.column("unknown_reason").to_pylist()


@pytest.mark.parametrize("name", ["adaptive", "adaptive+tick-rule"])
def test_tickers_never_quoted_go_out_a_few_at_a_time_with_the_same_rows(monkeypatch, name):
    # Most tickers without a quote (a day whose quotes cover some underlyings only): their
    # trades are emitted in chunks of whole tickers (so the tick rule's previous prices are
    # the same), never gathered until the quotes end.
    import market_assets.core.classify_day as cd

    monkeypatch.setattr(cd, "OUT_ROWS", 7)
    q, t = generated_day(seed=5, contracts=40, n_quotes=3000, n_trades=2500)
    q = _by_ticker(q)
    names = sorted(set(q.column("ticker").to_pylist()))
    # Quotes for a few tickers in the middle, and for the first and last only: a quote
    # batch running from one quoted ticker to the next spans all the unquoted between.
    quoted = {names[0], names[-1]} | set(names[10:14]) | set(names[30:32])
    q = q.filter(pa.array([x in quoted for x in q.column("ticker").to_pylist()]))
    want = classify_table(t, q, PARAMS[name])
    chunks: list[np.ndarray] = []
    feed_below = cd._TradeFeed.below

    def spy(self, bound, limit=None):
        out = feed_below(self, bound, limit)
        if limit is not None and out is not None:
            chunks.append(out["rank"])
        return out

    monkeypatch.setattr(cd._TradeFeed, "below", spy)
    emitted: list[int] = []
    emit = cd.DayClassifier._emit

    def spy_emit(self, trades, best, day):
        emitted.append(len(trades["rank"]))
        return emit(self, trades, best, day)

    monkeypatch.setattr(cd.DayClassifier, "_emit", spy_emit)
    got = pa.concat_tables(
        classify_day(_scan(t, 50), q.to_batches(max_chunksize=200), PARAMS[name])
    )
    assert got.equals(want)
    assert len(chunks) > 10 and max(c.size for c in chunks) < t.num_rows / 4
    # Never a large share of the day's trades held and emitted at once.
    assert sum(emitted) == t.num_rows and max(emitted) < t.num_rows / 4
    # No ticker is split between two chunks.
    assert all(a[-1] != b[0] for a, b in zip(chunks, chunks[1:], strict=False))


def test_quotes_out_of_ticker_order_are_refused_naming_the_tickers():
    q, t = generated_day(seed=3, contracts=10, n_quotes=500, n_trades=100)
    with pytest.raises(NotInTickerOrder, match="quotes are not in ticker order"):
        list(classify_day(_scan(t, 50), q.to_batches(max_chunksize=100)))


def test_pooled_limit_from_the_histogram_equals_the_quantile_of_the_ages():
    q, t = generated_day(seed=9)
    q = _by_ticker(q)
    clf = DayClassifier(ClassifyParams(option_staleness=Staleness(min_samples=10**9)))
    got = pa.concat_tables(classify_day(_scan(t, 500), q.to_batches(), classifier=clf))
    want = classify_table(t, q, clf.params)
    assert got.equals(want)
    limits = np.unique(got.column("staleness_limit_us").to_numpy())
    assert len(limits) <= 2 and clf.pooled_limits_us()[True] in limits
