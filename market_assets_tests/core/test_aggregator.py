# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The incremental window aggregator: trades fed piecemeal give the whole-day rows exactly,
every window is emitted once, late trades are dropped and counted, memory holds only the
open windows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core import schemas
from market_assets.core.aggregator import (
    OutOfOrderError,
    WindowAggregator,
    aggregate_in_time_order,
)
from market_assets.core.calendar import session_bounds_ns, window_ns
from market_assets.core.windows import features_for_day, window_grid
from market_assets.io.condition_rules import load_condition_rules

DAY = dt.date(2026, 11, 20)
EARLY = dt.date(2026, 11, 27)  # the day after Thanksgiving: the regular session ends 13:00
RULES = load_condition_rules()
S = 1_000_000_000
WINDOWS = ("1m", "5m", "15m", "30m", "7m")


def generated_day(
    day: dt.date, session: str, seed: int, n_stock: int = 3000, n_opt: int = 2500
) -> tuple[pa.Table, pa.Table]:
    """A day of SPY trades (and some others) over the session, denser at both ends, with
    trades before and after it, on window boundaries, sharing timestamps, corrected, with
    every condition kind and greeks status, as STOCK_TRADES and OPTION_TRADES_GREEKS."""
    rng = np.random.default_rng(seed)
    start, end = session_bounds_ns(day, session)

    def times(n: int) -> np.ndarray:
        t = start + (rng.beta(0.6, 0.6, n) * (end - start)).astype(np.int64)
        t[: n // 20] = rng.integers(start - 900 * S, end + 900 * S, n // 20)  # outside too
        t[n // 20 : n // 10] = start + rng.integers(0, (end - start) // (60 * S), n // 20) * 60 * S
        t[n // 10 : n // 5] = rng.choice(t[n // 5 :], n // 10)  # shared timestamps
        return t

    ts = times(n_stock)
    pool = [[], [37], [10], [16], [12, 37], [14, 41], [53], [2]]
    which = rng.choice(len(pool), n_stock, p=[0.45, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05])
    null_ts = pa.nulls(n_stock, schemas.TS)
    stock = pa.table(
        {
            "ticker": np.where(rng.random(n_stock) < 0.9, "SPY", "AAPL"),
            "sip_timestamp": pa.array(ts).cast(schemas.TS),
            "participant_timestamp": null_ts,
            "price": np.round(600 + np.cumsum(rng.normal(0, 0.05, n_stock)), 2),
            "size": rng.integers(1, 500, n_stock).astype(float),
            "exchange": pa.array(rng.integers(1, 20, n_stock).astype(np.int32)),
            "conditions": pa.array([pool[i] for i in which], schemas.CONDITIONS),
            "correction": pa.array(
                np.where(rng.random(n_stock) < 0.02, 1, 0).astype(np.int32),
                mask=rng.random(n_stock) < 0.5,
            ),
            "sequence_number": rng.permutation(n_stock).astype(np.int64),
            "id": pa.array(np.arange(n_stock).astype(str)),
            "tape": pa.array(np.full(n_stock, 2, np.int32)),
            "trf_id": pa.nulls(n_stock, pa.int32()),
            "trf_timestamp": null_ts,
        },
        schema=schemas.STOCK_TRADES,
    )
    ots = times(n_opt) // 1_000_000 * 1_000_000  # option trades: whole milliseconds
    status = rng.choice(list(schemas.GREEKS_STATUSES), n_opt, p=[0.8, 0.05, 0.05, 0.05, 0.03, 0.02])
    ok = status == "ok"
    price = rng.choice([0.5, 1.0, 2.5, 3.0], n_opt)
    size = rng.integers(1, 20, n_opt).astype(float)
    nan = np.full(n_opt, np.nan)
    intrinsic = np.where(status == "no_underlying", nan, rng.choice([0.0, 1.0, 2.5], n_opt))
    options = pa.table(
        {
            "ticker": pa.array(["O:SPY261120C00600000"] * n_opt),
            "underlying": np.where(rng.random(n_opt) < 0.95, "SPY", "QQQ"),
            "expiration": pa.array([day] * n_opt, pa.date32()),
            "contract_type": np.where(rng.random(n_opt) < 0.55, "call", "put"),
            "strike": np.full(n_opt, 600.0),
            "sip_timestamp": pa.array(ots).cast(schemas.TS),
            "participant_timestamp": pa.nulls(n_opt, schemas.TS),
            "price": price,
            "size": size,
            "exchange": pa.array(np.ones(n_opt, np.int32)),
            "conditions": pa.array([[]] * n_opt, schemas.CONDITIONS),
            "correction": pa.array(np.where(rng.random(n_opt) < 0.02, 1, 0).astype(np.int32)),
            "underlying_price": np.full(n_opt, 600.0),
            "underlying_price_time": pa.array(ots).cast(schemas.TS),
            "time_to_expiry": np.full(n_opt, 0.01),
            "rate": np.full(n_opt, 0.04),
            "dividend_yield": np.full(n_opt, 0.012),
            "iv": np.where(ok, 0.2, nan),
            "delta": np.where(ok, 0.5, nan),
            "gamma": np.where(ok, 0.01, nan),
            "vega": nan,
            "theta": nan,
            "intrinsic_value": intrinsic,
            "dollar_value": price * size * 100,
            "dadvv": np.where(ok, rng.lognormal(9, 1.5, n_opt), nan),
            "gadvv": np.where(ok, (rng.pareto(1.5, n_opt) + 1) * 1000, nan),
            "greeks_status": status,
        },
        schema=schemas.OPTION_TRADES_GREEKS,
    )
    return stock, options


def time_ordered(stock: pa.Table, options: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Each stream in the order a feed (or the stored assets) delivers it."""
    return (
        stock.sort_by([("sip_timestamp", "ascending"), ("sequence_number", "ascending")]),
        options.sort_by([("sip_timestamp", "ascending")]),
    )


def random_chunks(table: pa.Table, rng: np.random.Generator, largest: int) -> list:
    """Slices of random sizes, as tables and record batches alternately."""
    out, i = [], 0
    while i < table.num_rows:
        part = table.slice(i, int(rng.integers(1, largest)))
        out.append(part.combine_chunks().to_batches()[0] if len(out) % 2 else part)
        i += part.num_rows
    return out


def _ts(chunk) -> np.ndarray:
    return chunk.column("sip_timestamp").cast(pa.int64()).to_numpy()


def whole_day(stock, options, day, session, windows=WINDOWS) -> dict[str, pa.Table]:
    return {w: features_for_day(stock, options, day, "SPY", w, session, RULES) for w in windows}


def fed_piecemeal(agg: WindowAggregator, s: pa.Table, o: pa.Table, seed: int) -> dict:
    """Both streams fed in random slices, closing at random watermarks (some going
    backwards) along the way; every size's rows, in the order they were emitted."""
    rng = np.random.default_rng(seed)
    s_chunks, o_chunks = random_chunks(s, rng, 400), random_chunks(o, rng, 300)
    got: dict[str, list[pa.Table]] = {w: [] for w in agg.grids}
    si = oi = 0
    s_last = o_last = np.iinfo(np.int64).min
    while si < len(s_chunks) or oi < len(o_chunks):
        take_stock = oi == len(o_chunks) or (si < len(s_chunks) and s_last <= o_last)
        if take_stock:
            agg.add_stock(s_chunks[si])
            s_last = int(_ts(s_chunks[si]).max())
            si += 1
        else:
            agg.add_options(o_chunks[oi])
            o_last = int(_ts(o_chunks[oi]).max())
            oi += 1
        if rng.random() < 0.5:  # watermarks now and then, some of them going backwards
            done_s = s_last if si < len(s_chunks) else np.iinfo(np.int64).max
            done_o = o_last if oi < len(o_chunks) else np.iinfo(np.int64).max
            safe = min(done_s, done_o)
            mark = safe if rng.random() < 0.8 else safe - int(rng.integers(0, 3600 * S))
            for w, t in agg.close_until(mark).items():
                assert (_ts_end(t) <= max(mark, agg.watermark_ns)).all()
                got[w].append(t)
    for w, t in agg.close_all().items():
        got[w].append(t)
    assert agg.close_all() == {}  # nothing is emitted twice
    return {w: pa.concat_tables(t) for w, t in got.items()}


@pytest.mark.parametrize(
    ("day", "session"), [(DAY, "regular"), (DAY, "extended"), (EARLY, "regular")]
)
def test_piecemeal_feeding_gives_the_whole_day_rows_exactly(day, session) -> None:
    stock, options = generated_day(day, session, seed=day.day)
    expected = whole_day(stock, options, day, session)
    s, o = time_ordered(stock, options)
    agg = WindowAggregator("SPY", WINDOWS, day, session, RULES)
    got = fed_piecemeal(agg, s, o, seed=5)
    assert agg.late_dropped == 0
    for w in WINDOWS:
        assert got[w].num_rows == window_grid(day, w, session).size
        assert got[w].equals(expected[w]), w


def test_sizes_that_share_only_a_30s_cell_and_aggression_give_the_whole_day_rows() -> None:
    sizes = ("90s", "2m", "7m")
    stock, options = generated_day(DAY, "regular", seed=12)
    rng = np.random.default_rng(12)
    side = rng.choice(
        np.array(["buy", "sell", "neither", None], dtype=object),
        options.num_rows,
        p=[0.45, 0.45, 0.09, 0.01],
    )
    options = options.append_column("aggressor_side", pa.array(side, pa.string()))
    expected = {
        w: features_for_day(
            stock, options, DAY, "SPY", w, "regular", RULES, include_aggression=True
        )
        for w in sizes
    }
    s, o = time_ordered(stock, options)
    agg = WindowAggregator("SPY", sizes, DAY, "regular", RULES, include_aggression=True)
    assert agg.cell_ns == 30 * S
    got = fed_piecemeal(agg, s, o, seed=7)
    for w in sizes:
        assert got[w].equals(expected[w]), w
        assert got[w].column("calls_dadvv_agg_buy_mean").null_count < got[w].num_rows


def _ts_end(table: pa.Table) -> np.ndarray:
    return table.column("window_end").cast(pa.int64()).to_numpy()


def test_streams_driven_in_time_order_give_the_whole_day_rows() -> None:
    stock, options = generated_day(DAY, "regular", seed=3)
    expected = whole_day(stock, options, DAY, "regular", ["1m", "30m"])
    s, o = time_ordered(stock, options)
    agg = WindowAggregator("SPY", ["1m", "30m"], DAY, "regular", RULES)
    got: dict[str, list[pa.Table]] = {w: [] for w in expected}
    symbol_stock = s.filter(pa.compute.equal(s.column("ticker"), "SPY"))
    symbol_options = o.filter(pa.compute.equal(o.column("underlying"), "SPY"))
    for closed in aggregate_in_time_order(
        agg, symbol_stock.to_batches(max_chunksize=97), symbol_options.to_batches(max_chunksize=61)
    ):
        for w, t in closed.items():
            got[w].append(t)
    for w in expected:
        assert pa.concat_tables(got[w]).equals(expected[w]), w


def test_windows_close_once_the_watermark_passes_their_end_even_without_trades() -> None:
    agg = WindowAggregator("SPY", ["5m", "30m"], DAY, "regular", RULES)
    open_ = int(window_grid(DAY, "5m", "regular")[0])
    assert agg.close_until(open_ + 5 * 60 * S - 1) == {}
    first = agg.close_until(open_ + 5 * 60 * S)
    assert list(first) == ["5m"] and first["5m"].num_rows == 1
    assert first["5m"].column("underlying_trades").to_pylist() == [0]
    assert first["5m"].column("calls_dadvv_total").to_pylist() == [0.0]
    assert agg.close_until(open_ + 5 * 60 * S) == {}
    later = agg.close_until(open_ + 60 * 60 * S)
    assert later["5m"].num_rows == 11 and later["30m"].num_rows == 2
    rest = agg.close_all()
    assert rest["5m"].num_rows == 78 - 12 and rest["30m"].num_rows == 13 - 2


def test_late_trades_are_dropped_and_counted_and_never_reopen_a_window() -> None:
    stock, options = generated_day(DAY, "regular", seed=9)
    s, o = time_ordered(stock, options)
    open_ = int(window_grid(DAY, "30m", "regular")[0])
    cut = open_ + 10 * 60 * S  # 09:40: the first 1m..5m windows are closed, 30m is open
    ts = _ts(s)
    agg = WindowAggregator("SPY", ["1m", "30m"], DAY, "regular", RULES)
    agg.add_stock(s.filter(pa.array(ts < cut)))
    agg.add_options(o.filter(pa.array(_ts(o) < cut)))
    early = agg.close_until(cut)
    assert early["1m"].num_rows == 10 and "30m" not in early
    late = s.filter(pa.array((ts >= open_) & (ts < cut - 60 * S)))
    spy_late = int(np.count_nonzero(_counted(late, "ticker")))
    agg.add_stock(late)  # the same trades again, after their windows closed
    assert agg.late_dropped == spy_late > 0
    agg.add_stock(s.filter(pa.array(ts >= cut)))
    agg.add_options(o.filter(pa.array(_ts(o) >= cut)))
    rest = agg.close_all()
    expected = whole_day(stock, options, DAY, "regular", ["1m", "30m"])
    assert pa.concat_tables([early["1m"], rest["1m"]]).equals(expected["1m"])
    assert rest["30m"].equals(expected["30m"])  # the late copies counted nowhere


def _counted(table: pa.Table, key: str) -> np.ndarray:
    """The symbol's trades that count (SPY, correction null or 0)."""
    spy = np.asarray(table.column(key).to_pylist()) == "SPY"
    return spy & (table.column("correction").fill_null(0).to_numpy() == 0)


def test_only_the_open_windows_trades_are_kept() -> None:
    stock, options = generated_day(DAY, "regular", seed=4)
    s, o = time_ordered(stock, options)
    s_ts, o_ts = _ts(s), _ts(o)
    agg = WindowAggregator("SPY", ["1m", "15m"], DAY, "regular", RULES)

    def feed_until(end: int) -> None:
        agg.add_stock(s.filter(pa.array((s_ts >= fed[0]) & (s_ts < end))))
        agg.add_options(o.filter(pa.array((o_ts >= fed[0]) & (o_ts < end))))
        fed[0] = end

    def held_from(start: int, end: int) -> int:
        return int(
            np.count_nonzero(_counted(s, "ticker") & (s_ts >= start) & (s_ts < end))
            + np.count_nonzero(_counted(o, "underlying") & (o_ts >= start) & (o_ts < end))
        )

    fed = [np.iinfo(np.int64).min]
    second = int(window_grid(DAY, "15m", "regular")[1])
    feed_until(second)
    agg.close_until(second)
    assert agg.buffered_trades == 0  # every window ending by 09:45 is closed
    mid = second + 7 * 60 * S + 30 * S
    feed_until(mid)
    assert agg.buffered_trades == held_from(second, mid)
    agg.close_until(mid)  # the 1m windows up to 09:52 close; the 09:45 15m window is open
    assert agg.buffered_trades == held_from(second, mid) > 0
    third = second + 15 * 60 * S
    feed_until(third)
    agg.close_until(third)
    assert agg.buffered_trades == 0


def test_a_stream_going_back_in_time_is_an_error() -> None:
    stock, options = generated_day(DAY, "regular", seed=2, n_stock=500, n_opt=200)
    s, o = time_ordered(stock, options)
    s = s.filter(pa.compute.equal(s.column("ticker"), "SPY"))
    o = o.filter(pa.compute.equal(o.column("underlying"), "SPY"))
    half = s.num_rows // 2
    backwards = [s.slice(half), s.slice(0, half)]
    agg = WindowAggregator("SPY", ["1m"], DAY, "regular", RULES)
    with pytest.raises(OutOfOrderError, match="not in sip_timestamp order"):
        for _ in aggregate_in_time_order(agg, backwards, o.to_batches(max_chunksize=500)):
            pass


def test_an_aggregator_needs_a_window_size() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        WindowAggregator("SPY", [], DAY, "regular", RULES)
    assert window_ns("7m") == 7 * 60 * S
