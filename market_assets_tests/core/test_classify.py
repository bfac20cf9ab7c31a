# Copyright (c) James Kassemi, SC, US. All rights reserved.
import math

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.classify import (
    ClassifyParams,
    NbboBook,
    QuoteIndex,
    Staleness,
    classify,
    classify_table,
)
from market_assets.core.nbbo import nbbo_deltas
from market_assets.core.ticks import TickRules

MS = 1_000_000
STOCK = "MSFT"
CALL = "O:XYZ261120C00050000"  # not a penny class: $0.05 / $0.10 ticks
FIXED = ClassifyParams(
    option_staleness=Staleness.options(adaptive=False),
    equity_staleness=Staleness.equities(adaptive=False),
)


def quotes(rows: list[tuple]) -> pa.Table:
    """rows: (ticker, sip ns, bid, bid size, ask, ask size[, sequence])."""
    rows = [r if len(r) == 7 else (*r, i) for i, r in enumerate(rows)]
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 7
    return pa.table(
        {
            "ticker": pa.array(cols[0], pa.string()),
            "sip_timestamp": pa.array(cols[1], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "bid_price": pa.array(cols[2], pa.float64()),
            "bid_size": pa.array(cols[3], pa.float64()),
            "ask_price": pa.array(cols[4], pa.float64()),
            "ask_size": pa.array(cols[5], pa.float64()),
            "sequence_number": pa.array(cols[6], pa.int64()),
        }
    )


def trades(rows: list[tuple]) -> pa.Table:
    """rows: (ticker, sip ns, price)."""
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "ticker": pa.array(cols[0], pa.string()),
            "sip_timestamp": pa.array(cols[1], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "price": pa.array(cols[2], pa.float64()),
            "size": pa.array([1.0] * len(rows)),
        }
    )


def run(q: list[tuple], t: list[tuple], params: ClassifyParams = FIXED) -> list[dict]:
    return classify(trades(t), QuoteIndex(quotes(q)), params).to_pylist()


BOOK = [(STOCK, 0, 100.00, 5, 100.10, 7)]


@pytest.mark.parametrize(
    ("price", "side", "method", "ticks"),
    [
        (100.10, "buy", "touch", 0.0),
        (100.12, "buy", "beyond", 2.0),
        (100.00, "sell", "touch", 0.0),
        (99.97, "sell", "beyond", 3.0),
    ],
)
def test_trades_at_or_beyond_a_touch_take_that_side(price, side, method, ticks):
    (row,) = run(BOOK, [(STOCK, 1 * MS, price)])
    assert (row["aggressor_side"], row["class_method"], row["unknown_reason"]) == (
        side,
        method,
        None,
    )
    assert row["touch_offset_ticks"] == pytest.approx(ticks)
    assert row["tick_size_used"] == 0.01
    assert row["mid_offset_bp"] == pytest.approx((price - 100.05) / 100.05 * 1e4)
    assert (row["nbbo_bid"], row["nbbo_ask"], row["nbbo_bid_size"], row["nbbo_ask_size"]) == (
        100.0,
        100.1,
        5.0,
        7.0,
    )
    assert (row["nbbo_age_us"], row["nbbo_state"]) == (1000, "Normal")


def test_a_trade_inside_the_spread_is_unknown_and_keeps_its_nbbo_snapshot():
    (row,) = run(BOOK, [(STOCK, 1 * MS, 100.05)])
    assert (row["aggressor_side"], row["class_method"], row["unknown_reason"]) == (
        "unknown",
        "unknown",
        "inside_spread",
    )
    assert row["mid_offset_bp"] == pytest.approx(0.0)
    assert row["touch_offset_ticks"] is None
    assert row["nbbo_ask"] == 100.10


def test_epsilon_is_a_thousandth_of_the_tick():
    eps = 0.01 * TickRules().epsilon_ticks
    inside = run(BOOK, [(STOCK, 1, 100.10 - 2 * eps), (STOCK, 1, 100.0 + 2 * eps)])
    within = run(BOOK, [(STOCK, 1, 100.10 - eps / 2), (STOCK, 1, 100.0 + eps / 2)])
    assert [r["aggressor_side"] for r in inside] == ["unknown", "unknown"]
    assert [(r["aggressor_side"], r["class_method"]) for r in within] == [
        ("buy", "touch"),
        ("sell", "touch"),
    ]


@pytest.mark.parametrize(
    ("bid", "bid_size", "ask", "state", "reason"),
    [
        (100.10, 5, 100.10, "Locked", "locked"),
        (100.20, 5, 100.10, "Crossed", "crossed"),
        (0.0, 5, 100.10, "Invalid", "invalid"),
        (100.0, 0, 100.10, "Invalid", "invalid"),
    ],
)
def test_locked_crossed_and_one_sided_quotes_do_not_classify(bid, bid_size, ask, state, reason):
    (row,) = run([(STOCK, 0, bid, bid_size, ask, 7)], [(STOCK, 1 * MS, 100.10)])
    assert (row["aggressor_side"], row["class_method"]) == ("unknown", "unknown")
    assert (row["unknown_reason"], row["nbbo_state"]) == (reason, state)


def test_a_quote_older_than_the_limit_is_stale_and_one_at_the_limit_is_not():
    limit_ns = 50 * MS  # equities, fixed
    rows = run(BOOK, [(STOCK, limit_ns, 100.10), (STOCK, limit_ns + 1, 100.10)])
    assert [r["aggressor_side"] for r in rows] == ["buy", "unknown"]
    assert rows[1]["unknown_reason"] == "stale"
    assert rows[1]["nbbo_age_us"] == 50_000  # the stale snapshot is still reported
    assert [r["staleness_limit_us"] for r in rows] == [50_000, 50_000]
    option = run([(CALL, 0, 1.00, 1, 1.10, 1)], [(CALL, 150 * MS, 1.10), (CALL, 151 * MS, 1.10)])
    assert [r["unknown_reason"] for r in option] == [None, "stale"]


def test_no_quote_yet_or_none_for_the_ticker_is_unknown_without_a_snapshot():
    rows = run([(STOCK, 10, 100.0, 5, 100.1, 7)], [(STOCK, 9, 100.1), ("AAPL", 20, 1.0)])
    for row in rows:
        assert (row["aggressor_side"], row["unknown_reason"]) == ("unknown", "no_quote")
        assert row["nbbo_bid"] is None and row["nbbo_ts"] is None and row["nbbo_state"] is None


def test_a_quote_at_the_trades_sip_time_counts_and_the_highest_sequence_wins_a_tie():
    q = [
        (STOCK, 0, 100.00, 5, 100.10, 7, 1),
        (STOCK, 5, 100.20, 5, 100.30, 7, 3),  # same ns, highest sequence: in force at 5
        (STOCK, 5, 100.10, 5, 100.20, 7, 2),
        (STOCK, 6, 99.00, 5, 99.10, 7, 4),  # after the trade
    ]
    (row,) = run(q, [(STOCK, 5, 100.30)])
    assert (row["aggressor_side"], row["nbbo_ask"], row["nbbo_age_us"]) == ("buy", 100.30, 0)


def test_a_trade_without_price_or_time_is_unknown_bad_trade():
    t = trades([(STOCK, 1, 100.1), (STOCK, 2, 100.1)])
    t = t.set_column(2, "price", pa.array([None, 100.1], pa.float64()))
    rows = classify(t, QuoteIndex(quotes(BOOK)), FIXED).to_pylist()
    assert [r["unknown_reason"] for r in rows] == ["bad_trade", None]


TICK_RULE_CASES = [
    (STOCK, 10, 100.10),  # first trade: no previous trade -> unknown
    (STOCK, 200 * MS, 100.20),  # stale NBBO, uptick -> buy
    (STOCK, 201 * MS, 100.15),  # downtick -> sell
    (STOCK, 202 * MS, 100.15),  # zero tick -> unknown
]


def test_tick_rule_fallback_off_by_default_leaves_stale_trades_unknown():
    rows = run(BOOK, TICK_RULE_CASES)
    assert [r["aggressor_side"] for r in rows] == ["buy", "unknown", "unknown", "unknown"]
    assert ClassifyParams().tick_rule_fallback is False


def test_tick_rule_fallback_classifies_upticks_and_downticks_as_its_own_method():
    params = ClassifyParams(
        equity_staleness=Staleness.equities(adaptive=False), tick_rule_fallback=True
    )
    rows = run(BOOK, TICK_RULE_CASES, params)
    assert [(r["aggressor_side"], r["class_method"], r["unknown_reason"]) for r in rows] == [
        ("buy", "touch", None),
        ("buy", "tick_rule", None),
        ("sell", "tick_rule", None),
        ("unknown", "unknown", "stale"),
    ]
    # Inside the spread the NBBO is valid: the tick rule does not apply.
    (inside,) = run(BOOK, [(STOCK, 1, 100.05)], params)
    assert inside["unknown_reason"] == "inside_spread"


def test_tick_rule_uses_the_previous_trade_by_sip_time_not_row_order():
    params = ClassifyParams(tick_rule_fallback=True)
    rows = run([], [(CALL, 3, 1.20), (CALL, 1, 1.00), (CALL, 2, 1.10)], params)
    assert [r["aggressor_side"] for r in rows] == ["buy", "unknown", "buy"]
    assert [r["unknown_reason"] for r in rows] == [None, "no_quote", None]


def test_option_tick_sizes_follow_class_and_price():
    q = [(t, 0, 0.5, 1, 10.0, 1) for t in ("O:SPY261120C00600000", "O:AAPL261120C00100000", CALL)]
    t = [
        ("O:SPY261120C00600000", 1, 5.0),
        ("O:AAPL261120C00100000", 1, 2.0),
        ("O:AAPL261120C00100000", 1, 3.0),
        (CALL, 1, 2.95),
        (CALL, 1, 3.0),
        (STOCK, 1, 0.5),
    ]
    rows = run(q, t)
    assert [r["tick_size_used"] for r in rows] == [0.01, 0.01, 0.05, 0.05, 0.10, 0.0001]


def test_adaptive_staleness_is_the_p99_age_clamped_per_kind():
    def limit(ticker: str, ages_ms: list[float], min_samples: int = 20) -> int:
        q = [(ticker, 0, 1.0, 1, 1.10, 1)]
        t = [(ticker, round(a * MS), 1.10) for a in ages_ms]
        params = ClassifyParams(
            option_staleness=Staleness(min_ms=10, max_ms=150, min_samples=min_samples),
            equity_staleness=Staleness(min_ms=5, max_ms=50, min_samples=min_samples),
        )
        limits = {r["staleness_limit_us"] for r in run(q, t, params)}
        assert len(limits) == 1
        return limits.pop()

    ages = [1.0] * 99 + [30.0]  # p99, method 'higher': index ceil(0.99 * 99) = 99, 30 ms
    assert limit(CALL, ages) == 30_000
    assert limit(STOCK, ages) == 30_000
    assert limit(CALL, [1.0] * 100) == 10_000  # clamped up
    assert limit(STOCK, [1.0] * 100) == 5_000
    assert limit(CALL, [900.0] * 100) == 150_000  # clamped down
    assert limit(STOCK, [900.0] * 100) == 50_000
    assert limit(CALL, [20.0005] * 30) == 20_001  # rounded up to whole microseconds


def test_adaptive_staleness_pools_tickers_with_few_ages():
    q = [("A", 0, 1.0, 1, 1.1, 1), ("B", 0, 1.0, 1, 1.1, 1)]
    t = [("A", 20 * MS, 1.1)] * 30 + [("B", 40 * MS, 1.1)] * 5
    rows = run(q, t, ClassifyParams())
    by = {r: set() for r in "AB"}
    for trade, row in zip(t, rows, strict=True):
        by[trade[0]].add(row["staleness_limit_us"])
    assert by["A"] == {20_000}  # 30 own ages
    assert by["B"] == {40_000}  # 5 ages < min_samples: the pooled p99 of all 35 is 40 ms


def test_classify_table_appends_columns_and_never_changes_raw_ones():
    t = trades([(STOCK, 1, 100.10)])
    out = classify_table(t, quotes(BOOK), FIXED)
    assert out.select(t.column_names).equals(t)
    assert out.column("aggressor_side").to_pylist() == ["buy"]


# --- the vectorized join and rules against a per-trade reference on a generated day ---


def generated_day(seed: int, contracts: int = 150, n_quotes: int = 30_000, n_trades: int = 12_000):
    rng = np.random.default_rng(seed)
    names = [f"O:XYZ261120{'CP'[i % 2]}{(10 + i) * 1000:08d}" for i in range(contracts - 2)]
    names += ["SPY", "O:SPY261120C00600000"]
    span = 400 * MS
    qt = rng.choice(names, n_quotes)
    qts = (rng.integers(0, span // (MS // 10), n_quotes) * (MS // 10)).astype(np.int64)
    mid = rng.choice([0.5, 2.9, 3.1, 12.0], n_quotes)
    half = rng.choice([0.0, 0.05, 0.10, -0.05], n_quotes, p=[0.05, 0.5, 0.4, 0.05])
    bid_size = rng.choice([0.0, 1.0, 10.0], n_quotes, p=[0.03, 0.5, 0.47])
    q = pa.table(
        {
            "ticker": qt,
            "sip_timestamp": pa.array(qts).cast(pa.timestamp("ns", tz="UTC")),
            "bid_price": np.round(mid - half, 2),
            "bid_size": bid_size,
            "ask_price": np.round(mid + half, 2),
            "ask_size": rng.choice([1.0, 5.0], n_quotes),
            "sequence_number": rng.permutation(n_quotes).astype(np.int64),
        }
    )
    tt = rng.choice(names, n_trades)
    tts = (rng.integers(0, span // (MS // 10), n_trades) * (MS // 10)).astype(np.int64)
    tmid = rng.choice([0.5, 2.9, 3.1, 12.0], n_trades)
    offs = rng.choice([-0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15], n_trades)
    price = np.round(tmid + offs, 2)
    price[rng.random(n_trades) < 0.01] = np.nan
    t = pa.table(
        {
            "ticker": tt,
            "sip_timestamp": pa.array(tts).cast(pa.timestamp("ns", tz="UTC")),
            "price": pa.array(price, from_pandas=True),
        }
    )
    return q, t


def reference(q: pa.Table, t: pa.Table, params: ClassifyParams) -> list[dict]:
    """Per-trade, row-at-a-time implementation of docs/classification.md."""
    book: dict[str, list[tuple]] = {}
    for i, r in enumerate(q.to_pylist()):
        ts = r["sip_timestamp"].value if hasattr(r["sip_timestamp"], "value") else None
        book.setdefault(r["ticker"], []).append((ts, r["sequence_number"], i, r))
    for rows in book.values():
        rows.sort(key=lambda x: x[:3])
    trs = t.to_pylist()
    tts = t.column("sip_timestamp").cast(pa.int64()).to_pylist()
    found = []
    for r, ts in zip(trs, tts, strict=True):
        price_ok = r["price"] is not None and not math.isnan(r["price"]) and r["price"] > 0
        best = None
        if price_ok:
            for qts, _, _, qr in book.get(r["ticker"], []):
                if qts <= ts:
                    best = (qts, qr)
        found.append(best)
    # staleness limits
    ages: dict[str, list[int]] = {}
    for r, ts, b in zip(trs, tts, found, strict=True):
        if b is not None:
            ages.setdefault(r["ticker"], []).append(ts - b[0])

    def policy(ticker):
        return params.option_staleness if ticker.startswith("O:") else params.equity_staleness

    def q99(values, p):
        s = sorted(values)
        return s[math.ceil(p.quantile * (len(s) - 1))]

    pooled = {}
    for kind in (True, False):
        vals = [a for k, v in ages.items() if k.startswith("O:") == kind for a in v]
        pooled[kind] = vals

    def limit_us(ticker):
        p = policy(ticker)
        if not p.adaptive:
            return round(p.fixed_ms * 1000)
        own = ages.get(ticker, [])
        vals = own if len(own) >= p.min_samples else pooled[ticker.startswith("O:")]
        if not vals:
            return round(p.max_ms * 1000)
        us = math.ceil(q99(vals, p) / 1000)
        return min(max(us, round(p.min_ms * 1000)), round(p.max_ms * 1000))

    last_price: dict[str, float] = {}
    prev_of = [math.nan] * len(trs)
    for i in sorted(range(len(trs)), key=lambda i: (tts[i], i)):
        p = trs[i]["price"]
        if p is None or math.isnan(p) or p <= 0:
            continue
        prev_of[i] = last_price.get(trs[i]["ticker"], math.nan)
        last_price[trs[i]["ticker"]] = p

    out = []
    for i, (r, ts, b) in enumerate(zip(trs, tts, found, strict=True)):
        price = r["price"]
        tick = TickRules()
        ticker = r["ticker"]
        root = ticker[2:-15] if ticker.startswith("O:") else None
        if price is None or math.isnan(price):
            tick_size = None
        elif root is None:
            tick_size = 0.01 if price >= 1 else 0.0001
        elif root in tick.penny_all_prices:
            tick_size = 0.01
        elif root in tick.penny_classes:
            tick_size = 0.01 if price < 3 else 0.05
        else:
            tick_size = 0.05 if price < 3 else 0.10
        eps = tick_size * tick.epsilon_ticks if tick_size else None
        lim = limit_us(ticker)
        row = {"side": "unknown", "method": "unknown", "reason": None, "limit": lim}
        row["tick"] = tick_size
        if tick_size is None or price <= 0:
            row["reason"] = "bad_trade"
        elif b is None:
            row["reason"] = "no_quote"
        else:
            qr = b[1]
            age = ts - b[0]
            bid, ask = qr["bid_price"], qr["ask_price"]
            valid = bid > 0 and ask > 0 and qr["bid_size"] > 0 and qr["ask_size"] > 0
            state = (
                "Invalid"
                if not valid
                else "Crossed"
                if bid > ask
                else "Locked"
                if bid == ask
                else "Normal"
            )
            row.update(bid=bid, ask=ask, state=state, age_us=age // 1000)
            if age <= lim * 1000 and state != "Invalid":
                row["mid_bp"] = (price - (bid + ask) / 2) / ((bid + ask) / 2) * 1e4
            if age > lim * 1000:
                row["reason"] = "stale"
            elif state != "Normal":
                row["reason"] = state.lower()
            elif price >= ask - eps:
                row["side"] = "buy"
                row["method"] = "beyond" if price > ask + eps else "touch"
                row["touch_ticks"] = (price - ask) / tick_size
            elif price <= bid + eps:
                row["side"] = "sell"
                row["method"] = "beyond" if price < bid - eps else "touch"
                row["touch_ticks"] = (bid - price) / tick_size
            else:
                row["reason"] = "inside_spread"
        if params.tick_rule_fallback and row["reason"] in (
            "no_quote",
            "stale",
            "invalid",
            "locked",
            "crossed",
        ):
            prev = prev_of[i]
            if not math.isnan(prev) and price > prev + eps:
                row.update(side="buy", method="tick_rule", reason=None)
            elif not math.isnan(prev) and price < prev - eps:
                row.update(side="sell", method="tick_rule", reason=None)
        out.append(row)
    return out


@pytest.mark.parametrize(
    "params",
    [
        FIXED,
        ClassifyParams(),
        ClassifyParams(tick_rule_fallback=True),
        ClassifyParams(option_staleness=Staleness(min_ms=1, max_ms=3), tick_rule_fallback=True),
    ],
    ids=["fixed", "adaptive", "adaptive+tick-rule", "tight"],
)
def test_vectorized_classification_equals_the_per_trade_reference(params):
    q, t = generated_day(seed=7)
    got = classify(t, QuoteIndex(q), params).to_pylist()
    want = reference(q, t, params)
    reasons = set()
    for g, w in zip(got, want, strict=True):
        assert (g["aggressor_side"], g["class_method"], g["unknown_reason"]) == (
            w["side"],
            w["method"],
            w["reason"],
        )
        assert g["staleness_limit_us"] == w["limit"]
        assert g["nbbo_bid"] == w.get("bid") and g["nbbo_ask"] == w.get("ask")
        assert g["nbbo_state"] == w.get("state") and g["nbbo_age_us"] == w.get("age_us")
        assert g["tick_size_used"] == w["tick"]
        for ours, theirs in (("mid_offset_bp", "mid_bp"), ("touch_offset_ticks", "touch_ticks")):
            if w.get(theirs) is None:
                assert g[ours] is None
            else:
                assert g[ours] == pytest.approx(w[theirs], rel=1e-12, abs=1e-12)
        reasons.add(w["reason"] or w["method"])
    # The generated day exercises every outcome.
    assert {"touch", "beyond", "inside_spread", "no_quote", "locked", "crossed", "invalid"} <= (
        reasons
    )


def test_live_book_gives_the_batch_result_with_fixed_staleness():
    q, t = generated_day(seed=11, contracts=20, n_quotes=3000, n_trades=1500)
    params = ClassifyParams(
        option_staleness=Staleness.options(adaptive=False),
        equity_staleness=Staleness.equities(adaptive=False),
        tick_rule_fallback=True,
    )
    # Quotes in SIP order, as they arrive live and as a flat file orders each ticker.
    q_ts = q.column("sip_timestamp").cast(pa.int64()).to_numpy()
    q = q.take(np.lexsort((q.column("sequence_number").to_numpy(), q_ts)))
    batch = classify(t, QuoteIndex(nbbo_deltas(q)[0]), params)
    # Live: trades in small batches in SIP order; the book has also seen quotes stamped up
    # to 5 ms after a batch's last trade.
    q_ts = q.column("sip_timestamp").cast(pa.int64()).to_numpy()
    t_ts = t.column("sip_timestamp").cast(pa.int64()).to_numpy()
    order = np.lexsort((np.arange(t.num_rows), t_ts))
    book = NbboBook(params)
    live = [None] * t.num_rows
    applied = 0
    for chunk in np.array_split(order, 100):
        upto = np.searchsorted(q_ts, t_ts[chunk].max() + 5 * MS, side="right")
        if upto > applied:
            book.update(q.slice(applied, upto - applied))
            applied = upto
        rows = book.classify(t.take(pa.array(chunk))).to_pylist()
        for i, row in zip(chunk, rows, strict=True):
            live[i] = row
    want = batch.to_pylist()
    for i, (a, b) in enumerate(zip(live, want, strict=True)):
        assert a == b, (i, {k: (a[k], b[k]) for k in a if a[k] != b[k]})


def test_live_adaptive_limit_comes_from_the_ages_seen_before_the_batch():
    book = NbboBook(ClassifyParams())
    book.update(quotes([(CALL, 0, 1.0, 1, 1.1, 1)]))
    first = book.classify(trades([(CALL, 1 * MS + i, 1.1) for i in range(100)]))
    assert set(first.column("staleness_limit_us").to_pylist()) == {150_000}  # none seen yet
    later = book.classify(trades([(CALL, 12 * MS, 1.1)])).to_pylist()[0]
    assert later["staleness_limit_us"] == 10_000  # p99 of 1 ms ages, clamped up to 10 ms
    assert (later["aggressor_side"], later["unknown_reason"]) == ("unknown", "stale")


def test_live_book_classifies_trades_before_any_quote_as_unknown_and_remembers_their_price():
    # A live run's first option trades can come before any quote (or with no quote stream):
    # nothing has an NBBO age to remember, and that must not break the batch.
    book = NbboBook(ClassifyParams())
    out = book.classify(trades([(CALL, 1 * MS, 1.1), (CALL, 2 * MS, 1.2)]))
    assert set(out.column("aggressor_side").to_pylist()) == {"unknown"}
    assert book._last_price == {CALL: 1.2} and not book._ages


def test_live_book_remembers_ages_and_prices_like_a_trade_by_trade_reference():
    # Adaptive staleness and the tick rule read what the book remembers from earlier
    # batches: each ticker's last 50 NBBO ages and the pooled ages per kind (in SIP order),
    # and each ticker's last positive price. Batches hold many tickers, out of order.
    q, t = generated_day(seed=3, contracts=12, n_quotes=2000, n_trades=1200)
    book = NbboBook(ClassifyParams(tick_rule_fallback=True), window=50)
    book.update(q)
    ages: dict[str, list[int]] = {}
    pooled: dict[bool, list[int]] = {True: [], False: []}
    last: dict[str, float] = {}
    rng = np.random.default_rng(3)
    for chunk in np.array_split(rng.permutation(t.num_rows), 17):
        batch = t.take(pa.array(np.sort(chunk)))
        out = book.classify(batch)
        ticker = batch.column("ticker").to_pylist()
        price = batch.column("price").to_pylist()
        ts = [x or 0 for x in batch.column("sip_timestamp").cast(pa.int64()).to_pylist()]
        nbbo = out.column("nbbo_ts").cast(pa.int64()).to_pylist()
        for i in sorted(range(batch.num_rows), key=lambda i: (ts[i], i)):  # the reference
            if ticker[i] is None:
                continue
            if nbbo[i] is not None:
                ages.setdefault(ticker[i], []).append(ts[i] - nbbo[i])
                pooled[ticker[i].startswith("O:")].append(ts[i] - nbbo[i])
            if ts[i] and price[i] is not None and price[i] > 0:
                last[ticker[i]] = price[i]
    assert {k: list(v) for k, v in book._ages.items()} == {k: v[-50:] for k, v in ages.items()}
    assert {k: list(v) for k, v in book._pooled.items()} == {k: v[-50:] for k, v in pooled.items()}
    assert book._last_price == last


def test_live_book_keeps_unchanged_quotes_out_and_answers_for_trades_stamped_earlier():
    book = NbboBook(FIXED)
    book.update(quotes([(STOCK, 0, 100.0, 5, 100.1, 7), (STOCK, 5, 100.0, 5, 100.1, 7)]))
    book.update(quotes([(STOCK, 10, 101.0, 5, 101.1, 7)]))
    rows = book.classify(trades([(STOCK, 7, 100.1), (STOCK, 10, 101.1)])).to_pylist()
    assert [(r["aggressor_side"], r["nbbo_age_us"]) for r in rows] == [("buy", 0), ("buy", 0)]
    assert [r["nbbo_ts"].value for r in rows] == [0, 10]


def test_quote_order_and_time_range_do_not_change_the_result():
    q, t = generated_day(seed=5, contracts=40, n_quotes=4000, n_trades=2000)
    want = classify(t, QuoteIndex(q), FIXED).to_pylist()
    # In file order (ticker, time, sequence): the index takes it without sorting.
    ts = q.column("sip_timestamp").cast(pa.int64()).to_numpy()
    codes = pa.compute.dictionary_encode(q.column("ticker")).combine_chunks().indices.to_numpy()
    in_order = q.take(np.lexsort((q.column("sequence_number").to_numpy(), ts, codes)))
    assert classify(t, QuoteIndex(in_order), FIXED).to_pylist() == want
    # A time range too wide for the packed key (ticker x span): ranks of distinct times.
    far = 2**61

    def shifted(table: pa.Table, extra: list[tuple]) -> pa.Table:
        return pa.concat_tables([table, quotes(extra).select(table.column_names)])

    wide = shifted(q, [("FAR", far, 1.0, 1, 1.1, 1, -1)])
    index = QuoteIndex(wide)
    assert index.times is not None
    assert classify(t, index, FIXED).to_pylist() == want


def test_live_book_reports_the_current_nbbo_and_its_state():
    book = NbboBook(FIXED)
    assert book.current(STOCK) is None
    book.update(quotes([(STOCK, 5, 100.0, 5, 100.1, 7), (STOCK, 9, 100.1, 5, 100.1, 7)]))
    now = book.current(STOCK)
    assert (now["sip_timestamp"], now["bid_price"], now["nbbo_state"]) == (9, 100.1, "Locked")


def test_live_book_strictly_before_ignores_a_quote_in_the_trades_own_millisecond():
    # The feed's times are milliseconds: a quote stamped in the trade's millisecond may
    # have come after it, so the live book takes the last quote of an earlier millisecond.
    q = [(CALL, 1 * MS, 1.00, 5, 1.10, 5), (CALL, 2 * MS, 1.10, 5, 1.20, 5)]
    t = [(CALL, 2 * MS, 1.10)]
    book = NbboBook(FIXED, strictly_before=True)
    book.update(quotes(q))
    (live,) = book.classify(trades(t)).to_pylist()
    assert (live["aggressor_side"], live["nbbo_ask"], live["nbbo_age_us"]) == ("buy", 1.10, 1000)
    (at_or_before,) = run(q, t)  # the batch rule on nanosecond quote times
    assert (at_or_before["aggressor_side"], at_or_before["nbbo_bid"]) == ("sell", 1.10)


def test_live_book_forgets_old_quotes_but_keeps_the_one_in_force():
    book = NbboBook(FIXED)
    book.update(quotes([(CALL, i * MS, 1.00 + i / 100, 5, 1.50, 5) for i in range(10)]))
    book.update(quotes([(STOCK, 3 * MS, 100.0, 5, 100.1, 5)]))
    t = trades([(CALL, 7 * MS, 1.07), (CALL, 9 * MS + 1, 1.50), (STOCK, 8 * MS, 100.1)])
    want = book.classify(t).to_pylist()
    book.forget_before(7 * MS)
    assert len(book) == 4 + 1  # CALL from 6 ms (in force at 7 ms) on; STOCK's only quote
    assert book.classify(t).to_pylist() == want
    assert [r["aggressor_side"] for r in want] == ["sell", "buy", "buy"]
