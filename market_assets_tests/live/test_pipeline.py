# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The live pipeline fed frames by hand (no sockets): the quote stream gating
classification, the value rules, the run's day and the restart gap."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from market_assets.core.calendar import NEW_YORK
from market_assets.core.classify import ClassifyParams, Staleness
from market_assets.core.enrich import GreeksParams
from market_assets.core.statistics import StatsOptions
from market_assets.io.condition_rules import load_condition_rules
from market_assets.live.pipeline import LivePipeline
from market_assets.live.run import LiveSetupError, session_day, subscription_topics
from market_assets.live.view import render

DAY = dt.date(2026, 11, 20)
CALL = "O:SPY261218C00600000"
FIXED = ClassifyParams(
    option_staleness=Staleness.options(adaptive=False),
    equity_staleness=Staleness.equities(adaptive=False),
)


def _ms(at: dt.time, day: dt.date = DAY) -> int:
    return int(dt.datetime.combine(day, at, NEW_YORK).timestamp() * 1000)


T0 = _ms(dt.time(10, 0))


def _pipeline(output: Path, aggression: bool = False) -> LivePipeline:
    return LivePipeline(
        "SPY",
        ["1m"],
        "regular",
        load_condition_rules(),
        GreeksParams(0.04, 0.0, 100.0, 1.0, 5.0),
        StatsOptions(),
        output,
        allowed_lateness_s=0.1,
        stream_idle_s=30.0,
        day=DAY,
        aggression=aggression,
        classify=FIXED,
    )


def _frame(*events: dict) -> str:
    return json.dumps(list(events))


def _stock(t_ms: int, q: int, price: float = 600.0, size: int = 100) -> dict:
    return {"ev": "T", "sym": "SPY", "x": 4, "i": str(q), "p": price, "s": size, "t": t_ms, "q": q}


def _option(t_ms: int, q: int, price: float) -> dict:
    return {"ev": "T", "sym": CALL, "x": 300, "p": price, "s": 1, "t": t_ms, "q": q}


def _quote(t_ms: int, q: int, bid: float, ask: float) -> dict:
    return {"ev": "Q", "sym": CALL, "bp": bid, "ap": ask, "bs": 10, "as": 10, "t": t_ms, "q": q}


def _stock_quote(t_ms: int, q: int, bid: float, ask: float) -> dict:
    return {"ev": "Q", "sym": "SPY", "bp": bid, "ap": ask, "bs": 300, "as": 200, "t": t_ms, "q": q}


def _written(output: Path) -> pa.Table:
    return pq.ParquetDataset(output / "window=1m" / f"dt={DAY}").read().sort_by("window_start")


def test_an_option_trade_waits_for_the_quote_stream_and_gets_the_nbbo_at_its_time(tmp_path):
    p = _pipeline(tmp_path, aggression=True)
    p.frame("stocks", _frame(_stock(T0 - 1000, 1), _stock(T0 + 5000, 2)), wall=1.0)
    p.frame("options", _frame(_quote(T0 - 10, 1, 13.00, 13.10), _option(T0, 1, 13.10)), wall=1.0)
    p.tick(1.0)
    # The stocks have passed the trade, the option quotes not yet: it waits.
    assert p.counters.pending_options == 1 and not p.counters.aggressor
    # A quote stamped before the trade arrives after it (quotes and trades are out of step).
    later = _frame(_quote(T0 - 5, 2, 13.10, 13.20), _quote(T0 + 1000, 3, 13.10, 13.20))
    p.frame("options", later, wall=1.1)
    p.tick(1.1)
    assert p.counters.pending_options == 0
    assert dict(p.counters.aggressor) == {"sell": 1}  # at the bid in force at its time
    p.frame("stocks", _frame(_stock_quote(T0 + 4000, 3, 599.99, 600.01)), wall=1.2)
    view = Console(width=200, record=True)
    view.print(render("SPY", p.counters, [], 0, 0.0))
    text = view.export_text()
    assert "SPY bid / ask" in text and "599.99 / 600.01" in text
    line = next(x for x in text.splitlines() if "buy / sell / unknown" in x)
    assert line.split("│")[2].strip() == "0 / 1 / 0"
    p.finish(_ms(dt.time(10, 1)) * 1_000_000)
    row = _written(tmp_path).to_pylist()[-1]
    assert row["call_trades"] == 1
    assert row["calls_dadvv_agg_sell_total"] == row["calls_dadvv_total"] != 0
    assert not row["calls_dadvv_agg_buy_total"]


def test_trades_breaking_a_value_rule_are_counted_and_never_aggregated(tmp_path):
    p = _pipeline(tmp_path)
    yesterday = _ms(dt.time(15, 59), dt.date(2026, 11, 19))
    frame = _frame(
        _stock(T0, 1),
        _stock(T0 + 1, 2, price=0.0),
        _stock(T0 + 2, 3, size=0),
        _stock(yesterday, 4),
        _option(T0 + 3, 1, -1.5),
    )
    p.frame("stocks", frame, wall=1.0)
    p.frame("options", _frame(_option(T0 + 3, 1, -1.5)), wall=1.0)
    assert dict(p.counters.rejected) == {"price": 2, "size": 1, "sip_timestamp": 1}
    assert (p.counters.stock_trades, p.counters.option_trades) == (1, 0)
    assert p.clock.latest_ns("stocks") == T0 * 1_000_000  # yesterday's trade moved nothing
    p.finish(_ms(dt.time(10, 1)) * 1_000_000)
    rows = _written(tmp_path)
    assert rows.num_rows == 31  # 09:30 .. 10:00, every window of the day's grid
    assert rows["underlying_trades"].to_pylist()[-1] == 1


def test_the_day_is_the_date_given_or_today_in_new_york_and_must_be_a_trading_day():
    late_evening = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)  # 22:00 on the 20th in NY
    assert session_day(None, now=late_evening) == DAY
    assert session_day(dt.date(2026, 11, 19), now=late_evening) == dt.date(2026, 11, 19)
    saturday = dt.datetime(2026, 11, 21, 15, 0, tzinfo=dt.UTC)
    with pytest.raises(LiveSetupError, match=r"2026-11-21 \(today in New York\).*Saturday"):
        session_day(None, now=saturday)
    with pytest.raises(LiveSetupError, match=r"2026-11-26 \(--date\).*Thanksgiving") as e:
        session_day(dt.date(2026, 11, 26))
    assert e.value.code == 2


def test_a_restart_marks_the_gap_until_its_first_trade_only(tmp_path):
    first = _pipeline(tmp_path)
    first.frame("stocks", _frame(_stock(T0, 1)), wall=1.0)
    first.finish(_ms(dt.time(10, 0)) * 1_000_000)
    assert _written(tmp_path).num_rows == 30  # 09:30 .. 09:59
    again = _pipeline(tmp_path)
    again.frame("stocks", _frame(_stock(_ms(dt.time(10, 5)), 2)), wall=2.0)
    again.finish(_ms(dt.time(10, 10)) * 1_000_000)
    rows = _written(tmp_path)
    starts = pc.cast(rows["window_start"], pa.int64()).to_numpy() // 1_000_000
    gaps = dict(zip(starts.tolist(), rows["gaps"].to_pylist(), strict=True))
    assert len(gaps) == rows.num_rows == 40
    assert [gaps[_ms(dt.time(10, m))] for m in range(10)] == [1] * 6 + [0] * 4


def test_quotes_are_subscribed_for_at_most_1000_contracts_per_connection():
    contracts = [f"O:SPY261218C{i:08d}" for i in range(1500)]  # most active first
    topics = subscription_topics("SPY", contracts, quotes=True)
    assert topics["stocks"] == ["T.SPY", "Q.SPY"]
    options = topics["options"]
    assert [t for t in options if t.startswith("T.")] == [f"T.{c}" for c in contracts]
    assert [t for t in options if t.startswith("Q.")] == [f"Q.{c}" for c in contracts[:1000]]
    assert options[:4] == [f"T.{contracts[0]}", f"Q.{contracts[0]}", f"T.{contracts[1]}",
                           f"Q.{contracts[1]}"]  # fmt: skip
    assert subscription_topics("SPY", None, quotes=True)["options"] == ["T.*", "Q.*"]
    assert subscription_topics("SPY", contracts, quotes=False)["stocks"] == ["T.SPY"]


def _compact(*events: dict) -> str:
    """A frame spelt as the feed writes it (the fast decoder takes these)."""
    return json.dumps(list(events), separators=(",", ":"))


def test_frames_taken_together_give_what_frames_one_at_a_time_give(tmp_path):
    no_q = {k: v for k, v in _stock(T0 + 7, 0).items() if k != "q"}
    frames = [
        ("stocks", 1, 1.0, _compact(_stock(T0, 1), _stock(T0 + 1, 2))),
        ("options", 1, 1.0, _compact(_option(T0 + 2, 1, 13.1), _option(T0 + 2, 1, 13.1))),
        ("stocks", 1, 1.0, _compact(_stock(T0 + 1, 2), no_q, no_q)),  # a copy; no q, twice
        ("stocks", 1, 1.0, _frame(_stock(T0 + 3, 3))),  # another spelling: event by event
        ("options", 1, 1.0, '[{"ev":"T"'),  # invalid JSON
        ("stocks", 1, 1.0, _compact(_stock(T0 + 5000, 4), _stock(T0 + 3, 3))),
    ]
    together, alone = _pipeline(tmp_path / "a"), _pipeline(tmp_path / "b")
    together.frames(frames, now=1.0)
    for market, gen, wall, text in frames:
        alone.frame(market, text, wall, gen)
    for p in (together, alone):
        c = p.counters
        assert (c.stock_trades, c.option_trades, c.duplicates, c.frames) == (5, 1, 4, 6)
        assert dict(c.malformed) == {"invalid_json": 1}
        p.finish(_ms(dt.time(10, 1)) * 1_000_000)
    assert _written(tmp_path / "a").equals(_written(tmp_path / "b"))
    # The watermark passed the ends of 09:30 .. 09:59 (a close latency each); 10:00 was
    # closed by the run's end (none).
    assert together.counters.close_latency.count == 30


def test_a_frame_the_decoder_fails_on_is_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    from market_assets.live import protocol

    p = _pipeline(tmp_path)
    real = protocol.decode_events

    def broken(events, market):
        if any(e.get("q") == 2 for e in events):
            raise OverflowError("a decoder bug")
        return real(events, market)

    monkeypatch.setattr(protocol, "decode_events", broken)
    wall = 0.0
    # Spaces after the commas: the event-by-event path, where the failure happens.
    p.frame("stocks", json.dumps([_stock(T0, 1)], separators=(", ", ": ")), wall)
    p.frame("stocks", json.dumps([_stock(T0 + 1, 2)], separators=(", ", ": ")), wall)
    p.frame("stocks", json.dumps([_stock(T0 + 2, 3)], separators=(", ", ": ")), wall)
    assert p.counters.malformed["bad_frame"] == 1
    assert p.counters.stock_trades == 2
