# Copyright (c) James Kassemi, SC, US. All rights reserved.
import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.schemas import STOCK_TRADES
from market_assets.core.underlying import StreamedAsof, UnderlyingIndex, eligible_trade_rows
from market_assets.io.condition_rules import load_condition_rules

RULES = load_condition_rules()
BASE = 1_700_000_000_000_000_000
SEC = 1_000_000_000
# 0 regular, 12 extended hours, 37 odd lot: eligible; 2 (average price) and 7 (cash) are not.
CONDITION_CHOICES = [[], [12], [37], [12, 37], [2], [7], [37, 2], None]


def stock_table(tickers, ts, prices, seqs, conds, corrections) -> pa.Table:
    n = len(tickers)
    cols = {
        "ticker": pa.array(tickers, pa.string()),
        "sip_timestamp": pa.array(ts, pa.int64()).cast(STOCK_TRADES.field("sip_timestamp").type),
        "participant_timestamp": pa.nulls(n, STOCK_TRADES.field("participant_timestamp").type),
        "price": pa.array(prices, pa.float64()),
        "size": pa.array(np.full(n, 100.0)),
        "exchange": pa.array(np.full(n, 4, dtype=np.int32)),
        "conditions": pa.array(conds, pa.list_(pa.int32())),
        "correction": pa.array(corrections, pa.int32()),
        "sequence_number": pa.array(seqs, pa.int64()),
        "id": pa.array([str(i) for i in range(n)]),
        "tape": pa.array(np.full(n, 1, dtype=np.int32)),
        "trf_id": pa.nulls(n, pa.int32()),
        "trf_timestamp": pa.nulls(n, STOCK_TRADES.field("trf_timestamp").type),
    }
    return pa.Table.from_pydict(cols, schema=STOCK_TRADES)


def underlying_asof(option_underlying, option_ts_ns, stock, rules, max_staleness_ns):
    """One as-of lookup through the index the greeks asset builds."""
    return UnderlyingIndex(stock, rules).asof(option_underlying, option_ts_ns, max_staleness_ns)


def eligible(conds, correction) -> bool:
    if correction not in (None, 0):
        return False
    return all(c in (0, 12, 37) or RULES.table.get(c, (0, 0, 0))[1] for c in (conds or []))


def brute_force(und, ots, rows, max_stale):
    price = np.full(len(und), np.nan)
    when = np.full(len(und), -1, dtype=np.int64)
    for i, (u, t) in enumerate(zip(und, ots, strict=True)):
        best = None
        for tick, ts, p, seq, cond, corr in rows:
            if tick != u or ts > t or not eligible(cond, corr):
                continue
            if best is None or (ts, seq) > (best[0], best[1]):
                best = (ts, seq, p)
        if best is not None and t - best[0] <= max_stale:
            price[i], when[i] = best[2], best[0]
    return price, when


def test_asof_join_matches_brute_force_reference_with_ties_conditions_corrections_staleness():
    rng = np.random.default_rng(7)
    n_stock, n_opt = 600, 800
    tickers = rng.choice(["SPY", "QQQ", "IWM"], n_stock).tolist()
    ts = (BASE + rng.integers(0, 60, n_stock) * SEC // 2).tolist()  # many same-ns ties
    prices = np.round(rng.uniform(100, 600, n_stock), 2).tolist()
    seqs = rng.permutation(n_stock * 3)[:n_stock].tolist()
    conds = [CONDITION_CHOICES[k] for k in rng.integers(0, len(CONDITION_CHOICES), n_stock)]
    corrections = rng.choice([0, 0, 0, 1, 12], n_stock).tolist()
    corrections = [None if rng.random() < 0.1 else c for c in corrections]
    stock = stock_table(tickers, ts, prices, seqs, conds, corrections)
    und = rng.choice(["SPY", "QQQ", "IWM", "DIA"], n_opt).tolist()
    ots = BASE + rng.integers(-5 * SEC, 45 * SEC, n_opt)  # some before the first trade
    max_stale = 3 * SEC
    got_p, got_t = underlying_asof(np.array(und, dtype=object), ots, stock, RULES, max_stale)
    rows = list(zip(tickers, ts, prices, seqs, conds, corrections, strict=True))
    want_p, want_t = brute_force(und, ots.tolist(), rows, max_stale)
    np.testing.assert_array_equal(got_p, want_p)
    np.testing.assert_array_equal(got_t, want_t)
    assert np.isnan(got_p).sum() > 50 and (~np.isnan(got_p)).sum() > 300


def test_index_built_from_streamed_batches_equals_the_one_from_the_whole_table():
    rng = np.random.default_rng(11)
    n = 900
    tickers = [None if rng.random() < 0.02 else t for t in rng.choice(["SPY", "QQQ", "IWM"], n)]
    ts = (BASE + rng.integers(0, 60, n) * SEC // 2).tolist()
    prices = np.round(rng.uniform(100, 600, n), 2).tolist()
    seqs = rng.permutation(n * 3)[:n].tolist()
    conds = [CONDITION_CHOICES[k] for k in rng.integers(0, len(CONDITION_CHOICES), n)]
    corrections = rng.choice([0, 0, 0, 1], n).tolist()
    stock = stock_table(tickers, ts, prices, seqs, conds, corrections)
    whole = UnderlyingIndex(stock, RULES)
    # Uneven batches, one empty, tickers first seen in a different order in each.
    streamed = UnderlyingIndex(
        iter([*stock.slice(0, 7).to_batches(), stock.slice(7, 0), *stock.slice(7).to_batches(50)]),
        RULES,
    )
    und = np.array(rng.choice(["SPY", "QQQ", "IWM", "DIA"], 500), dtype=object)
    ots = BASE + rng.integers(-5 * SEC, 45 * SEC, 500)
    for got, want in zip(
        streamed.asof(und, ots, 3 * SEC), whole.asof(und, ots, 3 * SEC), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert streamed.size == whole.size > 0


def test_same_nanosecond_tie_takes_highest_sequence_number():
    stock = stock_table(
        ["SPY"] * 3, [BASE] * 3, [600.0, 601.0, 602.0], [5, 9, 7], [[]] * 3, [0] * 3
    )
    p, t = underlying_asof(pa.array(["SPY"]), np.array([BASE]), stock, RULES, SEC)
    assert p[0] == 601.0 and t[0] == BASE


def test_ineligible_conditions_and_corrections_are_skipped():
    stock = stock_table(
        ["SPY"] * 4,
        [BASE, BASE + 1, BASE + 2, BASE + 3],
        [600.0, 601.0, 602.0, 603.0],
        [1, 2, 3, 4],
        [[12, 37], [2], [7], []],
        [0, 0, 0, 1],
    )
    p, t = underlying_asof(pa.array(["SPY"]), np.array([BASE + 10]), stock, RULES, SEC)
    assert p[0] == 600.0 and t[0] == BASE


def test_stale_missing_and_early_trades_have_no_price():
    stock = stock_table(["SPY"], [BASE], [600.0], [1], [[]], [0])
    ots = np.array([BASE - 1, BASE, BASE + 5 * SEC, BASE + 5 * SEC + 1, BASE])
    p, t = underlying_asof(pa.array(["SPY"] * 4 + ["QQQ"]), ots, stock, RULES, 5 * SEC)
    np.testing.assert_array_equal(np.isnan(p), [True, False, False, True, True])
    np.testing.assert_array_equal(t, [-1, BASE, BASE, -1, -1])


def test_empty_inputs():
    stock = stock_table([], [], [], [], [], [])
    p, t = underlying_asof(pa.array(["SPY"]), np.array([BASE]), stock, RULES, SEC)
    assert np.isnan(p[0]) and t[0] == -1
    p, t = underlying_asof(
        pa.array([], pa.string()), np.array([], dtype=np.int64), stock, RULES, SEC
    )
    assert p.size == 0 and t.size == 0


# --- greeks.underlying_price = "nbbo_mid" --------------------------------------------------


def _mid_reference(q: pa.Table, und: list, ts: list, max_age_ns: int) -> list[float | None]:
    """Per trade, row at a time: the latest quote of the underlying at or before the trade
    (ties: highest sequence, then last row), its mid when Normal and fresh enough."""
    rows = q.to_pylist()
    out: list[float | None] = []
    for u, t in zip(und, ts, strict=True):
        best = None
        for i, r in enumerate(rows):
            if r["ticker"] != u or r["sip_timestamp"] > t:
                continue
            k = (r["sip_timestamp"], r["sequence_number"], i)
            if best is None or k > best[0]:
                best = (k, r)
        if best is None or t - best[1]["sip_timestamp"] > max_age_ns:
            out.append(None)
            continue
        r = best[1]
        normal = (
            min(r["bid_price"], r["ask_price"], r["bid_size"], r["ask_size"]) > 0
            and r["bid_price"] < r["ask_price"]
        )
        out.append((r["bid_price"] + r["ask_price"]) / 2 if normal else None)
    return out


def test_nbbo_mid_index_equals_the_per_trade_reference():
    from market_assets.core.underlying import NbboMidIndex

    rng = np.random.default_rng(4)
    n = 600
    q = pa.table(
        {
            "ticker": rng.choice(["SPY", "QQQ"], n),
            "sip_timestamp": rng.integers(0, 2_000_000_000, n),
            "bid_price": np.round(rng.uniform(99, 101, n), 2),
            "bid_size": rng.choice([0.0, 1.0, 5.0], n, p=[0.05, 0.5, 0.45]),
            "ask_price": np.round(rng.uniform(100, 102, n), 2),
            "ask_size": rng.choice([1.0, 3.0], n),
            "sequence_number": rng.integers(0, 50, n),
        }
    )
    und = list(rng.choice(["SPY", "QQQ", "IWM"], 400))
    ts = list(rng.integers(-100_000_000, 2_200_000_000, 400))
    max_age = 50_000_000
    index = NbboMidIndex(q.to_batches(max_chunksize=97), max_age)
    got, when = index.asof(pa.array(und), np.array(ts, np.int64), 5_000_000_000)
    want = _mid_reference(q, und, ts, max_age)
    assert [None if np.isnan(g) else g for g in got] == want
    assert ((when >= 0) == ~np.isnan(got)).all()
    assert sum(w is not None for w in want) > 50 and sum(w is None for w in want) > 50
    # A lookup's own limit, when tighter, applies too.
    tight, _ = index.asof(pa.array(und), np.array(ts, np.int64), 1_000_000)
    assert [None if np.isnan(g) else g for g in tight] == _mid_reference(q, und, ts, 1_000_000)


def _random_day(rng: np.random.Generator, n: int):
    """Stock rows of a few tickers in flat-file order (ticker, then time; ties in any
    sequence order), with ineligible and corrected trades among them."""
    tickers = rng.choice(["AAPL", "QQQ", "SPY", "TSLA"], n)
    ts = BASE + rng.integers(0, 600, n) * SEC // 4  # many ties at one nanosecond
    order = np.lexsort((ts, tickers))
    conds = [CONDITION_CHOICES[i] for i in rng.integers(0, len(CONDITION_CHOICES), n)]
    corrections = np.where(rng.random(n) < 0.05, 1, 0).tolist()
    table = stock_table(
        tickers.tolist(),
        ts.tolist(),
        rng.normal(100, 1, n).tolist(),
        rng.permutation(n).tolist(),
        conds,
        corrections,
    )
    return table.take(pa.array(order))


def _options(rng: np.random.Generator, n: int) -> pa.Table:
    und = rng.choice(np.array(["AAPL", "QQQ", "SPY", "TSLA", "ZZZ", None], dtype=object), n)
    ts = BASE + rng.integers(-20, 620, n) * SEC // 4
    table = pa.table(
        {
            "underlying": pa.array(und, pa.string()),
            "sip_timestamp": pa.array(ts, pa.int64(), mask=rng.random(n) < 0.02),
        }
    )
    return table.sort_by([("underlying", "ascending"), ("sip_timestamp", "ascending")])


def _chunks(table: pa.Table, rng: np.random.Generator, largest: int) -> list[pa.Table]:
    out, i = [], 0
    while i < table.num_rows:
        out.append(table.slice(i, int(rng.integers(1, largest))))
        i += out[-1].num_rows
    return out


def _streamed_lookups(stock_parts, options, rng, staleness):
    streamed = StreamedAsof(stock_parts, lambda t, s: eligible_trade_rows(t, RULES, s), staleness)
    prices, times = [], []
    for batch in _chunks(options, rng, 60):
        index = streamed.index_for(batch.column("underlying"), batch.column("sip_timestamp"))
        p, t = index.asof(batch.column("underlying"), batch.column("sip_timestamp"), staleness)
        prices.append(p)
        times.append(t)
    return np.concatenate(prices), np.concatenate(times), streamed


def test_streamed_asof_prices_every_batch_as_the_whole_day_index_does() -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        stock, options = _random_day(rng, 3000), _options(rng, 800)
        for staleness in (0, 2 * SEC, 10**15):
            whole = UnderlyingIndex(stock, RULES).asof(
                options.column("underlying"), options.column("sip_timestamp"), staleness
            )
            price, when, streamed = _streamed_lookups(
                _chunks(stock, rng, 200), options, rng, staleness
            )
            np.testing.assert_array_equal(price, whole[0])
            np.testing.assert_array_equal(when, whole[1])
            assert streamed.in_order
            if staleness == 2 * SEC:  # only a few seconds of each ticker are ever held
                assert streamed.peak_held < streamed.rows_read / 3


def test_streamed_asof_reads_a_stream_out_of_order_whole_and_stays_exact() -> None:
    rng = np.random.default_rng(9)
    stock, options = _random_day(rng, 3000), _options(rng, 800)
    shuffled = stock.take(pa.array(rng.permutation(stock.num_rows)))
    whole = UnderlyingIndex(stock, RULES).asof(
        options.column("underlying"), options.column("sip_timestamp"), 2 * SEC
    )
    price, when, streamed = _streamed_lookups(_chunks(shuffled, rng, 200), options, rng, 2 * SEC)
    assert not streamed.in_order
    np.testing.assert_array_equal(price, whole[0])
    np.testing.assert_array_equal(when, whole[1])


def test_streamed_asof_refuses_option_trades_out_of_order() -> None:
    rng = np.random.default_rng(2)
    stock = _random_day(rng, 500)
    streamed = StreamedAsof([stock], lambda t, s: eligible_trade_rows(t, RULES, s), SEC)
    late = pa.array([BASE + 100 * SEC], pa.int64())
    streamed.index_for(pa.array(["SPY"]), late)
    with pytest.raises(ValueError, match="not sorted"):
        streamed.index_for(pa.array(["AAPL"]), late)


def test_streamed_nbbo_mids_equal_the_whole_day_index_with_non_normal_rows_in_force() -> None:
    from market_assets.core.underlying import NbboMidIndex, nbbo_mid_rows

    rng = np.random.default_rng(5)
    n = 2000
    q = pa.table(
        {
            "ticker": rng.choice(["QQQ", "SPY"], n),
            "sip_timestamp": rng.integers(0, 2_000_000_000, n) // 1000 * 1000,
            "bid_price": np.round(rng.uniform(99, 101, n), 2),
            "bid_size": rng.choice([0.0, 1.0, 5.0], n, p=[0.1, 0.5, 0.4]),
            "ask_price": np.round(rng.uniform(100, 102, n), 2),
            "ask_size": rng.choice([1.0, 3.0], n),
            "sequence_number": rng.integers(0, 50, n),
        }
    ).sort_by([("ticker", "ascending"), ("sip_timestamp", "ascending")])
    options = pa.table(
        {
            "underlying": rng.choice(["IWM", "QQQ", "SPY"], 700),
            "sip_timestamp": rng.integers(-100_000_000, 2_200_000_000, 700),
        }
    ).sort_by([("underlying", "ascending"), ("sip_timestamp", "ascending")])
    stale = 30_000_000
    whole = NbboMidIndex(q).asof(options["underlying"], options["sip_timestamp"], stale)
    streamed = StreamedAsof(q.to_batches(max_chunksize=71), nbbo_mid_rows, stale)
    got = []
    for batch in options.to_batches(max_chunksize=53):
        index = streamed.index_for(batch.column("underlying"), batch.column("sip_timestamp"))
        got.append(index.asof(batch.column("underlying"), batch.column("sip_timestamp"), stale))
    np.testing.assert_array_equal(np.concatenate([p for p, _ in got]), whole[0])
    np.testing.assert_array_equal(np.concatenate([t for _, t in got]), whole[1])
    assert streamed.in_order and streamed.peak_held < n / 2
