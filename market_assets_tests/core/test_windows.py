# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Per-window feature rows: the grid, trade selection rules, a hand-checked day and a random
day against a straightforward per-window reference."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core import schemas
from market_assets.core.calendar import session_bounds_ns, window_ns
from market_assets.core.feature_names import FEATURE_NAMES, IDENTITY_COLUMNS
from market_assets.core.statistics import StatsOptions
from market_assets.core.windows import compute_windows, features_for_day, output_schema, window_grid
from market_assets.io.condition_rules import load_condition_rules
from market_assets_tests.core.test_statistics import assert_stat_equal, ref_kde_peaks, reference

DAY = dt.date(2026, 11, 20)
EARLY = dt.date(2026, 11, 27)
RULES = load_condition_rules()
S = 1_000_000_000
OPEN_NS = session_bounds_ns(DAY)[0]


def stock_table(rows: Sequence[dict]) -> pa.Table:
    n = len(rows)
    cols = {
        "ticker": [r.get("ticker", "SPY") for r in rows],
        "sip_timestamp": pa.array([r["ts"] for r in rows], pa.int64()).cast(schemas.TS),
        "participant_timestamp": pa.nulls(n, schemas.TS),
        "price": [float(r["price"]) for r in rows],
        "size": [float(r["size"]) for r in rows],
        "exchange": pa.array([4] * n, pa.int32()),
        "conditions": pa.array([r.get("conditions", []) for r in rows], schemas.CONDITIONS),
        "correction": pa.array([r.get("correction") for r in rows], pa.int32()),
        "sequence_number": pa.array([r.get("seq", i) for i, r in enumerate(rows)], pa.int64()),
        "id": [str(i) for i in range(n)],
        "tape": pa.array([2] * n, pa.int32()),
        "trf_id": pa.nulls(n, pa.int32()),
        "trf_timestamp": pa.nulls(n, schemas.TS),
    }
    return pa.table(cols, schema=schemas.STOCK_TRADES)


def option_table(rows: Sequence[dict]) -> pa.Table:
    n = len(rows)

    def f(key: str, default: float | None = None) -> list:
        return [r.get(key, default) for r in rows]

    ts = pa.array([r["ts"] for r in rows], pa.int64()).cast(schemas.TS)
    cols = {
        "ticker": ["O:SPY261120C00600000"] * n,
        "underlying": f("underlying", "SPY"),
        "expiration": pa.array([DAY] * n, pa.date32()),
        "contract_type": f("type"),
        "strike": f("strike", 600.0),
        "sip_timestamp": ts,
        "participant_timestamp": pa.nulls(n, schemas.TS),
        "price": f("price"),
        "size": f("size", 1.0),
        "exchange": pa.array([1] * n, pa.int32()),
        "conditions": pa.array([[]] * n, schemas.CONDITIONS),
        "correction": pa.array(f("correction"), pa.int32()),
        "underlying_price": f("S", 600.0),
        "underlying_price_time": ts,
        "time_to_expiry": [0.01] * n,
        "rate": [0.04] * n,
        "dividend_yield": [0.012] * n,
        "iv": f("iv"),
        "delta": f("delta"),
        "gamma": f("gamma"),
        "vega": f("vega"),
        "theta": f("theta"),
        "intrinsic_value": f("intrinsic"),
        "dollar_value": f("dollar"),
        "dadvv": f("dadvv"),
        "gadvv": f("gadvv"),
        "greeks_status": f("status", "ok"),
    }
    return pa.table(cols, schema=schemas.OPTION_TRADES_GREEKS)


EMPTY_STOCK = stock_table([])
EMPTY_OPTIONS = option_table([])


@pytest.mark.parametrize(
    ("day", "session", "sizes"),
    [
        (DAY, "regular", (390, 78, 26, 13)),
        (EARLY, "regular", (210, 42, 14, 7)),
        (DAY, "extended", (960, 192, 64, 32)),
    ],
)
def test_grid_has_a_fixed_number_of_windows_per_session(day, session, sizes) -> None:
    for window, n in zip(("1m", "5m", "15m", "30m"), sizes, strict=True):
        starts = window_grid(day, window, session)
        assert starts.dtype == np.int64 and starts.size == n
        assert np.all(np.diff(starts) == window_ns(window))
        table = features_for_day(EMPTY_STOCK, EMPTY_OPTIONS, day, "SPY", window, session, RULES)
        assert table.num_rows == n


def test_output_columns_are_identity_then_feature_names_with_types() -> None:
    table = features_for_day(EMPTY_STOCK, EMPTY_OPTIONS, DAY, "SPY", "30m", "regular", RULES)
    assert table.column_names == list(IDENTITY_COLUMNS) + list(FEATURE_NAMES)
    assert table.schema == output_schema()
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["symbol"] == pa.string() and types["window"] == pa.string()
    assert types["window_start"] == types["window_end"] == pa.timestamp("ns", tz="UTC")
    for c in ("underlying_trades", "call_trades", "put_trades"):
        assert types[c] == pa.int64()
    assert all(types[c] == pa.float64() for c in FEATURE_NAMES)


def test_windows_without_trades_have_zero_counts_and_totals_and_null_features() -> None:
    table = features_for_day(EMPTY_STOCK, EMPTY_OPTIONS, DAY, "SPY", "15m", "regular", RULES)
    row = table.slice(3, 1).to_pylist()[0]
    assert row["symbol"] == "SPY" and row["window"] == "15m"
    assert row["underlying_trades"] == row["call_trades"] == row["put_trades"] == 0
    for name in FEATURE_NAMES:
        if name.endswith("_total") or name == "calls_dollar_value":
            assert row[name] == 0.0, name
        else:
            assert row[name] is None, name


def _hand_day() -> tuple[pa.Table, pa.Table]:
    t0 = OPEN_NS  # 09:30:00 ET, the first 5m window's start
    stock = stock_table(
        [
            {"ts": t0, "price": 100, "size": 10},  # on the boundary: first window
            {"ts": t0 + 1 * S, "price": 105, "size": 100, "conditions": [37]},  # odd lot
            {"ts": t0 + 2 * S, "price": 101, "size": 20, "seq": 9},  # same ts, later seq
            {"ts": t0 + 2 * S, "price": 99, "size": 5, "conditions": [10], "seq": 8},
            {"ts": t0 + 3 * S, "price": 200, "size": 1, "correction": 1},  # corrected
            {"ts": t0 + 4 * S, "price": 102, "size": 30, "conditions": [16]},
            {"ts": t0 + 5 * S, "price": 90, "size": 50, "ticker": "QQQ"},
            {"ts": t0 + 300 * S - 1, "price": 103, "size": 40, "correction": 0},
            {"ts": t0 + 300 * S, "price": 104, "size": 1},  # next window's boundary
            {"ts": t0 - 1, "price": 1, "size": 1},  # before the session: ignored
        ]
    )
    ok = {"status": "ok"}
    options = option_table(
        [
            {
                "ts": t0 + S,
                "type": "call",
                "price": 5.0,
                "intrinsic": 4.0,
                "dollar": 1000.0,
                "dadvv": 1000.0,
                "gadvv": 10.0,
                **ok,
            },
            {
                "ts": t0 + 2 * S,
                "type": "call",
                "price": 3.0,
                "intrinsic": 3.0,
                "dollar": 300.0,
                "dadvv": 3000.0,
                "gadvv": 30.0,
                **ok,
            },
            {
                "ts": t0 + 3 * S,
                "type": "call",
                "price": 1.0,
                "intrinsic": 2.0,
                "dollar": 100.0,
                "status": "below_intrinsic",
            },
            {
                "ts": t0 + 4 * S,
                "type": "call",
                "price": 2.0,
                "dollar": 200.0,
                "S": None,
                "status": "no_underlying",
            },
            {
                "ts": t0 + 5 * S,
                "type": "call",
                "price": 9.0,
                "intrinsic": 1.0,
                "dollar": 900.0,
                "dadvv": 9.0,
                "gadvv": 9.0,
                "correction": 1,
                **ok,
            },
            {
                "ts": t0 + 6 * S,
                "type": "put",
                "price": 1.0,
                "intrinsic": 2.0,
                "dollar": 100.0,
                "dadvv": 500.0,
                "gadvv": 5.0,
                **ok,
            },
            {
                "ts": t0 + 7 * S,
                "type": "put",
                "price": 4.0,
                "intrinsic": 0.0,
                "dollar": 400.0,
                "dadvv": 700.0,
                "gadvv": 7.0,
                **ok,
            },
            {
                "ts": t0 + 8 * S,
                "type": "put",
                "price": 2.0,
                "intrinsic": 2.0,
                "dollar": 200.0,
                "status": "bad_input",
            },
            {
                "ts": t0 + 9 * S,
                "type": "put",
                "price": 2.0,
                "intrinsic": 2.0,
                "dollar": 200.0,
                "dadvv": 1.0,
                "gadvv": 1.0,
                "underlying": "QQQ",
                **ok,
            },
        ]
    )
    return stock, options


def test_hand_checked_window() -> None:
    stock, options = _hand_day()
    table = features_for_day(stock, options, DAY, "SPY", "5m", "regular", RULES)
    rows = table.to_pylist()
    first, second = rows[0], rows[1]
    assert first["window_start"] == dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC)
    assert first["window_end"] == dt.datetime(2026, 11, 20, 14, 35, tzinfo=dt.UTC)
    # SPY, not corrected, whatever the conditions: 100, 105, 101, 99, 102, 103
    assert first["underlying_trades"] == 6
    # open/close: trades whose every condition updates open/close (not 37, 10, 16), ordered
    # by time then sequence number: 100, 99 is excluded, 101, 103
    assert first["underlying_price_open"] == 100.0
    assert first["underlying_price_close"] == 103.0
    # high/low: 10 updates high/low; 37 and 16 do not
    assert first["underlying_price_high"] == 103.0
    assert first["underlying_price_low"] == 99.0
    # volume: 16 does not update volume; 37 and 10 do
    dv = [100 * 10, 105 * 100, 101 * 20, 99 * 5, 103 * 40]
    assert first["underlying_dollar_value_total"] == pytest.approx(sum(dv))
    assert first["underlying_dollar_value_minimum"] == 495.0
    assert first["underlying_dollar_value_maximum"] == 10500.0
    assert first["underlying_dollar_value_mean"] == pytest.approx(sum(dv) / 5)
    # options: the corrected call and the QQQ put are gone
    assert first["call_trades"] == 4 and first["put_trades"] == 3
    assert first["calls_dollar_value"] == pytest.approx(1600.0)
    # calls with S: 5 > 4 (above), 3 = 3 (neither), 1 < 2 (below)
    assert first["calls_above_intrinsic_pct"] == pytest.approx(1 / 3)
    assert first["puts_below_intrinsic_pct"] == pytest.approx(1 / 3)
    assert first["puts_above_intrinsic_pct"] == pytest.approx(1 / 3)
    # dadvv/gadvv only from greeks_status == ok
    assert first["calls_dadvv_total"] == 4000.0
    assert first["calls_dadvv_mean"] == 2000.0
    assert first["calls_dadvv_stddev"] == pytest.approx(math.sqrt(2) * 1000)
    assert first["calls_dadvv_skew"] is None  # n = 2
    assert first["calls_gadvv_q2"] == 20.0
    assert first["puts_dadvv_total"] == 1200.0
    assert first["puts_gadvv_total"] == 12.0
    assert first["puts_dadvv_kde_peaks"] in (1.0, 2.0)
    # the trade exactly on 09:35:00 belongs to the second window
    assert second["underlying_trades"] == 1
    assert second["underlying_price_open"] == second["underlying_price_close"] == 104.0
    assert second["call_trades"] == 0 and second["calls_dollar_value"] == 0.0
    assert second["calls_above_intrinsic_pct"] is None


def test_a_single_window_from_buffered_trades_equals_the_day_row() -> None:
    stock, options = _hand_day()
    day = features_for_day(stock, options, DAY, "SPY", "5m", "regular", RULES)
    one = compute_windows(
        stock, options, np.array([OPEN_NS + 300 * S]), window_ns("5m"), "SPY", "5m", RULES
    )
    assert one.num_rows == 1
    assert one.to_pylist()[0] == day.slice(1, 1).to_pylist()[0]


def test_unsorted_input_gives_the_same_rows() -> None:
    stock, options = _random_day(3)
    a = features_for_day(stock, options, DAY, "SPY", "30m", "regular", RULES)
    rng = np.random.default_rng(0)
    b = features_for_day(
        stock.take(rng.permutation(stock.num_rows)),
        options.take(rng.permutation(options.num_rows)),
        DAY,
        "SPY",
        "30m",
        "regular",
        RULES,
    )
    assert a.equals(b)


# --- a random day against a straightforward reference ------------------------------------


def _random_day(seed: int, n_stock: int = 4000, n_opt: int = 3000) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    start, end = session_bounds_ns(DAY)
    # a little outside the session too, and some exactly on 5m boundaries
    ts = rng.integers(start - 600 * S, end + 600 * S, n_stock)
    ts[:50] = start + rng.integers(0, 78, 50) * 300 * S
    pool = [[], [37], [10], [16], [12, 37], [14, 41], [53]]
    cond = [
        pool[i] for i in rng.choice(len(pool), n_stock, p=[0.5, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05])
    ]
    stock = stock_table(
        [
            {
                "ts": int(ts[i]),
                "price": round(600 + rng.normal(0, 2), 2),
                "size": float(rng.integers(1, 500)),
                "conditions": cond[i],
                "correction": int(rng.random() < 0.02),
                "seq": int(rng.integers(0, 10**9)),
                "ticker": "SPY" if rng.random() < 0.9 else "AAPL",
            }
            for i in range(n_stock)
        ]
    )
    ots = rng.integers(start, end, n_opt)
    statuses = rng.choice(
        list(schemas.GREEKS_STATUSES), n_opt, p=[0.8, 0.05, 0.05, 0.05, 0.03, 0.02]
    )
    rows = []
    for i in range(n_opt):
        status = str(statuses[i])
        intrinsic = None if status == "no_underlying" else float(rng.choice([0.0, 1.0, 2.5]))
        price = float(rng.choice([0.5, 1.0, 2.5, 3.0]))
        ok = status == "ok"
        rows.append(
            {
                "ts": int(ots[i]),
                "type": "call" if rng.random() < 0.55 else "put",
                "price": price,
                "intrinsic": intrinsic,
                "dollar": price * 100 * float(rng.integers(1, 20)),
                "dadvv": float(rng.lognormal(9, 1.5)) if ok else None,
                "gadvv": float(rng.pareto(1.5) + 1) * 1000 if ok else None,
                "status": status,
                "correction": int(rng.random() < 0.02),
                "underlying": "SPY" if rng.random() < 0.95 else "QQQ",
            }
        )
    return stock, option_table(rows)


SAMPLES = ("underlying_dollar_value", "puts_dadvv", "puts_gadvv", "calls_dadvv", "calls_gadvv")


def _reference_rows(stock: pa.Table, options: pa.Table, window: str) -> list[dict]:
    """Per window: select the trades with plain Python/numpy, then the reference statistics."""
    s = stock.to_pylist()
    o = options.to_pylist()
    ok_hl = set(RULES.allowed_ids("high_low").tolist())
    ok_oc = set(RULES.allowed_ids("open_close").tolist())
    ok_vol = set(RULES.allowed_ids("volume").tolist())
    out = []
    wns = window_ns(window)
    for start in window_grid(DAY, window, "regular").tolist():
        end = start + wns

        trades = [
            r for r in s if r["ticker"] == "SPY" and not r["correction"] and start <= r["_ns"] < end
        ]
        trades.sort(key=lambda r: (r["_ns"], r["sequence_number"]))
        oc = [r["price"] for r in trades if set(r["conditions"]) <= ok_oc]
        hl = [r["price"] for r in trades if set(r["conditions"]) <= ok_hl]
        dv = np.array([r["price"] * r["size"] for r in trades if set(r["conditions"]) <= ok_vol])
        opts = [
            r
            for r in o
            if r["underlying"] == "SPY" and not r["correction"] and start <= r["_ns"] < end
        ]
        calls = [r for r in opts if r["contract_type"] == "call"]
        puts = [r for r in opts if r["contract_type"] == "put"]

        def frac(rows: list[dict], pred) -> float | None:
            with_s = [r for r in rows if r["greeks_status"] != "no_underlying"]
            return sum(pred(r) for r in with_s) / len(with_s) if with_s else None

        row = {
            "underlying_trades": len(trades),
            "call_trades": len(calls),
            "put_trades": len(puts),
            "underlying_price_open": oc[0] if oc else None,
            "underlying_price_close": oc[-1] if oc else None,
            "underlying_price_high": max(hl) if hl else None,
            "underlying_price_low": min(hl) if hl else None,
            "puts_below_intrinsic_pct": frac(puts, lambda r: r["price"] < r["intrinsic_value"]),
            "puts_above_intrinsic_pct": frac(puts, lambda r: r["price"] > r["intrinsic_value"]),
            "calls_above_intrinsic_pct": frac(calls, lambda r: r["price"] > r["intrinsic_value"]),
            "calls_dollar_value": float(sum(r["dollar_value"] for r in calls)),
        }
        samples = {
            "underlying_dollar_value": dv,
            "puts_dadvv": np.array([r["dadvv"] for r in puts if r["greeks_status"] == "ok"]),
            "puts_gadvv": np.array([r["gadvv"] for r in puts if r["greeks_status"] == "ok"]),
            "calls_dadvv": np.array([r["dadvv"] for r in calls if r["greeks_status"] == "ok"]),
            "calls_gadvv": np.array([r["gadvv"] for r in calls if r["greeks_status"] == "ok"]),
        }
        row["samples"] = samples
        for prefix, x in samples.items():
            row[prefix] = reference(x)
        out.append(row)
    return out


@pytest.mark.parametrize("window", ["15m"])
def test_random_day_matches_a_straightforward_reference(window: str) -> None:
    stock, options = _random_day(7)
    table = features_for_day(stock, options, DAY, "SPY", window, "regular", RULES)
    refs = _reference_rows(_with_ns(stock), _with_ns(options), window)
    got = table.to_pylist()
    assert len(got) == len(refs)
    for g, r in zip(got, refs, strict=True):
        for k in (
            "underlying_trades",
            "call_trades",
            "put_trades",
            "underlying_price_open",
            "underlying_price_close",
            "underlying_price_high",
            "underlying_price_low",
        ):
            assert g[k] == r[k], k
        for k in (
            "puts_below_intrinsic_pct",
            "puts_above_intrinsic_pct",
            "calls_above_intrinsic_pct",
            "calls_dollar_value",
        ):
            assert (g[k] is None) == (r[k] is None), k
            if r[k] is not None:
                assert g[k] == pytest.approx(r[k], rel=1e-12), k
        for prefix in SAMPLES:
            for name in FEATURE_NAMES:
                if name.startswith(prefix + "_"):
                    suffix = name[len(prefix) + 1 :]
                    assert_stat_equal(suffix, g[name], r[prefix][suffix])
    assert sum(r["underlying_trades"] for r in got) > 100


def _with_ns(table: pa.Table) -> pa.Table:
    """The table plus integer-ns sip timestamps for the reference's window test."""
    ns = table.column("sip_timestamp").cast(pa.int64())
    return table.append_column("_ns", ns)


def test_stats_options_reach_describe() -> None:
    stock, options = _random_day(11, n_stock=1500, n_opt=10)
    table = features_for_day(
        stock, options, DAY, "SPY", "30m", "regular", RULES, StatsOptions(kde_grid=16)
    )
    refs = _reference_rows(_with_ns(stock), _with_ns(options), "30m")
    got = table.column("underlying_dollar_value_kde_peaks").to_pylist()
    for g, r in zip(got, refs, strict=True):
        x = r["samples"]["underlying_dollar_value"]
        assert g == (float(ref_kde_peaks(x, 16)) if x.size else None)
