# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The replay server, driven by the unpatched official ``massive`` client over real sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pytest
import websockets
from massive import WebSocketClient
from massive.exceptions import AuthError

from market_assets.cli import main
from market_assets.devtools.sample_day import generate_day
from market_assets.io.source import LocalStore, flat_file_key
from market_assets.live import day as day_module
from market_assets.live.day import prepare_day
from market_assets.live.protocol import decode_events, decode_frame
from market_assets.live.replay import Injection, ReplayOptions, serve_in_thread, start_ns

DAY = dt.date(2026, 11, 20)
KEY = "test-key"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("massive")
    generate_day(DAY, root, scale="tiny", seed=3)
    return root


@pytest.fixture(scope="module")
def spy_day(mirror: Path):
    with prepare_day(LocalStore(mirror), DAY, ["SPY"]) as day:
        yield day


def flat(mirror: Path, dataset: str, keep: Callable[[pa.Table], pa.Array]) -> list[dict[str, Any]]:
    """Rows of a generated flat file (read with pyarrow alone) in SIP-time order."""
    text = {c: pa.string() for c in ("conditions", "indicators", "correction", "trf_id", "id")}
    table = pv.read_csv(
        mirror / flat_file_key(dataset, DAY),
        convert_options=pv.ConvertOptions(column_types=text, strings_can_be_null=True),
    )
    table = table.filter(keep(table))
    return table.take(pc.sort_indices(table, [("sip_timestamp", "ascending")])).to_pylist()


def spy_stock(t: pa.Table) -> pa.Array:
    return pc.equal(t["ticker"], "SPY")


def spy_options(t: pa.Table) -> pa.Array:
    return pc.starts_with(t["ticker"], "O:SPY2")


def ints(text: str | None) -> list[int] | None:
    return [int(c) for c in text.split(",")] if text else None


def run_client(
    port: int,
    market: str,
    subscriptions: list[str],
    until: Callable[[list], bool],
    *,
    key: str = KEY,
    raw: bool = False,
    timeout: float = 20.0,
    script: Callable[[WebSocketClient, list], Any] | None = None,
    max_reconnects: int = 5,
) -> list:
    """Run the official client on its own loop until ``until(received)``; returns what its
    processor got (parsed messages, or raw frames with ``raw``)."""

    async def main() -> list:
        client = WebSocketClient(
            api_key=key,
            feed=f"127.0.0.1:{port}",
            market=market,
            secure=False,
            subscriptions=subscriptions,
            raw=raw,
            max_reconnects=max_reconnects,
        )
        got: list = []

        async def processor(msgs: Any) -> None:
            if raw:
                got.append(msgs)
            else:
                got.extend(msgs)

        task = asyncio.create_task(client.connect(processor))
        deadline = time.monotonic() + timeout
        try:
            if script is not None:
                await script(client, got)
            while not until(got):
                if task.done():
                    task.result()
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"received {len(got)} messages in {timeout} s")
                await asyncio.sleep(0.01)
        finally:
            if not task.done():
                await client.close()
                try:
                    await asyncio.wait_for(task, 5)
                except TimeoutError:
                    task.cancel()
        return got

    return asyncio.run(main())


def test_every_stock_trade_arrives_once_in_sip_order_with_the_flat_file_values(spy_day, mirror):
    expected = flat(mirror, "stock_trades", spy_stock)
    with serve_in_thread(spy_day, ReplayOptions(speed=None)) as server:
        got = run_client(server.port, "stocks", ["T.SPY"], lambda g: len(g) >= len(expected))
        assert server.stats.connections[0].subscriptions == {"T.SPY"}
    assert len(got) == len(expected) == 1715
    fractional = 0
    for m, row in zip(got, expected, strict=True):
        assert (m.event_type, m.symbol, m.exchange, m.price) == (
            "T",
            "SPY",
            row["exchange"],
            row["price"],
        )
        assert m.timestamp == row["sip_timestamp"] // 1_000_000  # SIP time, Unix ms
        assert m.conditions == ints(row["conditions"])
        assert (m.sequence_number, m.id, m.tape) == (row["sequence_number"], row["id"], 2)
        assert m.trf_id == (int(row["trf_id"]) if row["trf_id"] else None)
        assert m.trf_timestamp == (row["trf_timestamp"] // 1_000_000 if row["trf_id"] else None)
        size = float(m.fractional_shares) if m.fractional_shares else float(m.size)
        assert size == row["size"] and m.size == int(row["size"])
        fractional += m.fractional_shares is not None
    assert fractional == 23  # the day's fractional sizes travel as ds


def test_option_contracts_are_served_per_contract_and_by_wildcard(spy_day, mirror):
    expected = flat(mirror, "option_trades", spy_options)
    contract = Counter(r["ticker"] for r in expected).most_common(1)[0][0]
    with serve_in_thread(spy_day, ReplayOptions(speed=None)) as server:
        every = run_client(server.port, "options", ["T.*"], lambda g: len(g) >= len(expected))
    assert [(m.symbol, m.timestamp, m.price, m.size, m.exchange, m.conditions) for m in every] == [
        (
            r["ticker"],
            r["sip_timestamp"] // 1_000_000,
            r["price"],
            r["size"],
            r["exchange"],
            ints(r["conditions"]),
        )
        for r in expected
    ]
    # q: rising and unique per contract (OPRA files have no sequence number).
    for sym in {m.symbol for m in every}:
        q = [m.sequence_number for m in every if m.symbol == sym]
        assert q == list(range(1, len(q) + 1))
    one = [r for r in expected if r["ticker"] == contract]
    with serve_in_thread(spy_day, ReplayOptions(speed=None)) as server:
        got = run_client(
            server.port, "options", [f"T.{contract}"], lambda g: server.stats.finished, timeout=20
        )
    assert [(m.symbol, m.timestamp) for m in got] == [
        (contract, r["sip_timestamp"] // 1_000_000) for r in one
    ]


def test_quotes_of_the_symbol_and_its_contracts(spy_day, mirror):
    stock = flat(mirror, "stock_quotes", spy_stock)
    option = flat(mirror, "option_quotes", spy_options)
    with serve_in_thread(
        spy_day, ReplayOptions(speed=None, wait_for=("stocks", "options"))
    ) as server:
        got_stock = []

        async def both() -> tuple[list, list]:
            return await asyncio.gather(
                asyncio.to_thread(
                    run_client, server.port, "stocks", ["Q.SPY"], lambda g: len(g) >= len(stock)
                ),
                asyncio.to_thread(
                    run_client, server.port, "options", ["Q.*"], lambda g: len(g) >= len(option)
                ),
            )

        got_stock, got_option = asyncio.run(both())
    assert [
        (m.symbol, m.bid_price, m.bid_size, m.bid_exchange_id, m.ask_price, m.ask_size, m.ask_exchange_id,
         m.condition, m.timestamp, m.sequence_number, m.tape)
        for m in got_stock
    ] == [
        (r["ticker"], r["bid_price"], r["bid_size"], r["bid_exchange"], r["ask_price"], r["ask_size"],
         r["ask_exchange"], ints(r["conditions"])[0], r["sip_timestamp"] // 1_000_000, r["sequence_number"], r["tape"])
        for r in stock
    ]  # fmt: skip
    assert [
        (m.symbol, m.bid_price, m.ask_price, m.timestamp, m.sequence_number) for m in got_option
    ] == [
        (
            r["ticker"],
            r["bid_price"],
            r["ask_price"],
            r["sip_timestamp"] // 1_000_000,
            r["sequence_number"],
        )
        for r in option
    ]


def test_a_wildcard_serves_every_served_symbol_in_time_order(mirror):
    expected = flat(
        mirror, "stock_trades", lambda t: pc.is_in(t["ticker"], pa.array(["QQQ", "SPY"]))
    )
    with prepare_day(LocalStore(mirror), DAY, ["SPY", "QQQ"], quotes=False) as day:
        with serve_in_thread(day, ReplayOptions(speed=None)) as server:
            got = run_client(server.port, "stocks", ["T.*"], lambda g: len(g) >= len(expected))
    assert {m.symbol for m in got} == {"QQQ", "SPY"}
    assert [(m.symbol, m.sequence_number) for m in got] == [
        (r["ticker"], r["sequence_number"]) for r in expected
    ]


def test_a_rejected_key_gives_the_clients_auth_error(spy_day):
    with serve_in_thread(spy_day, ReplayOptions(speed=None, api_key="the-right-key")) as server:
        with pytest.raises(AuthError, match="authentication failed"):
            run_client(server.port, "stocks", ["T.SPY"], lambda g: False, key="a-wrong-key")
        assert not server.stats.connections[0].authenticated
        assert not server.stats.clock_started


def test_the_handshake_and_statuses_are_the_services(spy_day):
    async def talk(port: int) -> list[Any]:
        out = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/stocks") as ws:
            out.append(await ws.recv())
            await ws.send(json.dumps({"action": "subscribe", "params": "T.SPY"}))
            out.append(await ws.recv())
            await ws.send(json.dumps({"action": "auth", "params": KEY}))
            out.append(await ws.recv())
            await ws.send(json.dumps({"action": "subscribe", "params": "T.SPY,Q.SPY,AM.SPY"}))
            out += [await ws.recv() for _ in range(3)]
            await ws.send(json.dumps({"action": "unsubscribe", "params": "T.SPY,Q.SPY"}))
            out += [await ws.recv() for _ in range(2)]
        with pytest.raises(websockets.exceptions.InvalidStatus, match="404"):
            async with websockets.connect(f"ws://127.0.0.1:{port}/crypto"):
                pass
        return out

    # The clock starts after the day's last event: no event interleaves the statuses.
    options = ReplayOptions(speed=1.0, start_ns=start_ns(DAY, dt.time(20, 0)))
    with serve_in_thread(spy_day, options) as server:
        frames = asyncio.run(talk(server.port))

    def status(s: str, m: str) -> str:
        return json.dumps([{"ev": "status", "status": s, "message": m}], separators=(",", ":"))

    assert frames == [
        status("connected", "Connected Successfully"),
        status("error", "not authorized"),
        status("auth_success", "authenticated"),
        status("success", "subscribed to: T.SPY"),
        status("success", "subscribed to: Q.SPY"),
        status("error", "the replay serves T and Q topics only: AM.SPY"),
        status("success", "unsubscribed to: T.SPY"),
        status("success", "unsubscribed to: Q.SPY"),
    ]


def test_unsubscribe_stops_the_stream(spy_day):
    options = ReplayOptions(speed=2000, start_ns=start_ns(DAY, dt.time(9, 30)), record=True)
    with serve_in_thread(spy_day, options) as server:
        seen: dict[str, int] = {}

        async def script(client: WebSocketClient, got: list) -> None:
            while len(got) < 30:
                await asyncio.sleep(0.01)
            client.unsubscribe("T.SPY")
            conn = server.stats.connections[0]
            while conn.subscriptions:
                await asyncio.sleep(0.01)
            seen["sent"] = conn.messages
            await asyncio.sleep(1.0)  # about 30 minutes of the day: trades went on

        got = run_client(server.port, "stocks", ["T.SPY"], lambda g: True, script=script)
        assert server.stats.events_replayed > seen["sent"] + 10
    assert len(got) == seen["sent"] == server.stats.connections[0].messages
    assert 30 <= len(got) < 1715


def test_drop_every_makes_the_client_reconnect_and_miss_what_was_sent_meanwhile(mirror):
    with prepare_day(LocalStore(mirror), DAY, ["SPY"], quotes=False) as day:
        options = ReplayOptions(
            speed=30_000, start_ns=start_ns(DAY, dt.time(9, 30)), drop_every=200, record=True
        )
        with serve_in_thread(day, options) as server:
            got = run_client(
                server.port, "stocks", ["T.SPY"], lambda g: server.stats.finished,
                timeout=30, max_reconnects=100,
            )  # fmt: skip
            stats = server.stats
    conns = stats.connections
    assert len(conns) >= 4 and all(c.dropped and c.messages == 200 for c in conns[:-1])
    assert all(c.subscriptions == {"T.SPY"} for c in conns)  # resubscribed each time
    # What arrived is exactly what each connection was sent, in SIP order, once each.
    sent = [m for c in conns for m in c.sent]
    assert [(m.timestamp, m.sequence_number) for m in got] == [
        (e["t"], e["q"]) for e in map(json.loads, sent)
    ]
    q = [m.sequence_number for m in got]
    assert q == sorted(q) and len(set(q)) == len(q)
    # The rest was replayed while the client was reconnecting: missed, as on the real feed.
    since = start_ns(DAY, dt.time(9, 30))
    stock = sum(r["sip_timestamp"] >= since for r in flat(mirror, "stock_trades", spy_stock))
    options = sum(r["sip_timestamp"] >= since for r in flat(mirror, "option_trades", spy_options))
    missed = stats.events_unrouted - options  # nobody subscribed to options
    print(f"{len(conns)} connections, {len(got)} received, {missed} missed of {stock}")
    assert missed > 0 and len(got) + missed == stock


def test_speed_paces_the_replay(spy_day):
    speed = 600.0
    options = ReplayOptions(speed=speed, start_ns=start_ns(DAY, dt.time(10, 0)))
    arrivals: list[tuple[float, int]] = []

    async def script(client: WebSocketClient, got: list) -> None:
        seen = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for m in got[seen:]:
                arrivals.append((time.monotonic(), m.timestamp))
            seen = len(got)
            await asyncio.sleep(0.002)

    with serve_in_thread(spy_day, options) as server:
        run_client(server.port, "stocks", ["T.SPY"], lambda g: True, script=script)
    assert len(arrivals) > 20
    (w0, t0), t1 = arrivals[0], arrivals[-1][1]
    assert (t1 - t0) / 1000 / speed > 1.2  # over a second of wall time replayed
    # Each trade arrives when its SIP time is due on the replay clock (a busy machine may
    # delay a few).
    lags = sorted(abs((w - w0) - (t - t0) / 1000 / speed) for w, t in arrivals)
    assert lags[int(0.9 * len(lags))] < 0.1 and lags[-1] < 0.5, lags


def test_injected_duplicates_late_and_bad_messages(spy_day, mirror):
    expected = flat(mirror, "stock_trades", spy_stock)
    inject = Injection(duplicates=7, late=11, late_by_s=5.0, bad=13)
    with serve_in_thread(spy_day, ReplayOptions(speed=None, inject=inject)) as server:
        frames = run_client(
            server.port, "stocks", ["T.SPY"], lambda g: server.stats.finished and len(g) > 100,
            raw=True,
        )  # fmt: skip
        time.sleep(0.2)
        injected = [i for i in server.stats.injected if i.topic == "T.SPY"]
    invalid, order, ms, malformed, unknown = 0, [], [], [], []
    for text in frames:
        try:
            events = decode_frame(text)
        except ValueError:
            invalid += 1
            continue
        decoded = decode_events(events, "stocks")
        order += decoded.trades.column("sequence_number").to_pylist()
        ms += [
            t // 1_000_000
            for t in pc.cast(decoded.trades.column("sip_timestamp"), pa.int64()).to_pylist()
        ]
        malformed += decoded.malformed
        unknown += decoded.unknown
    kinds = Counter(i.kind for i in injected)
    assert invalid == kinds["invalid_json"] > 0
    assert len(unknown) == kinds["unknown_event"] > 0 and unknown[0]["ev"] == "ZZ"
    assert [why for why, _ in malformed] == ["missing field 'p'"] * kinds["missing_field"]
    # Every trade arrives; the duplicated ones twice.
    q = Counter(order)
    doubled = {json.loads(i.text)["q"] for i in injected if i.kind == "duplicate"}
    assert set(q) == {r["sequence_number"] for r in expected}
    assert {k for k, n in q.items() if n == 2} == doubled and max(q.values()) == 2
    # A late trade comes once the clock passed its time + 5 s, with its own time.
    late = [json.loads(i.text) for i in injected if i.kind == "late"]
    late_q = {e["q"] for e in late}
    assert late
    for event in late:
        k = order.index(event["q"])
        assert ms[k] == event["t"]
        assert all(t <= event["t"] + 5000 for t in ms[:k])
        assert all(
            t >= event["t"] + 5000
            for t, s in zip(ms[k + 1 :], order[k + 1 :], strict=True)
            if s not in late_q
        )


def test_the_replay_command_serves_the_configured_day_and_stops_cleanly(project_config, tmp_path):
    config = project_config()
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    env = {**os.environ, "MARKET_ASSETS_CONFIG": str(config), "MASSIVE_API_KEY": "cli-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "market_assets.cli", "replay", "--date", DAY.isoformat(),
         "--speed", "max", "--port", "0", "--no-quotes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines = []
        while not lines or "listening on" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"replay exited: {proc.stderr.read()}"
            lines.append(line)
        port = int(re.search(r"ws://127\.0\.0\.1:(\d+)/stocks", lines[-1]).group(1))
        got = run_client(port, "stocks", ["T.SPY"], lambda g: len(g) >= 1715, key="cli-key")
        assert len(got) == 1715
        with pytest.raises(AuthError):
            run_client(port, "stocks", ["T.SPY"], lambda g: False, key="not-the-env-key")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "cli-key" not in "".join(lines) + out + err


def test_the_day_is_replayed_in_order_across_many_spill_buffers(mirror, monkeypatch):
    monkeypatch.setattr(day_module, "SPILL_ROWS", 97)
    with prepare_day(LocalStore(mirror), DAY, ["*"]) as day:
        times = []
        seen = Counter()
        for segment in day.segments():
            times += segment.column("t_ns").to_pylist()
            seen.update(segment.column("stream").to_pylist())
        assert len(day.index) > 100
    assert times == sorted(times)
    assert seen == Counter({0: day.stats.events["stock_trades"], 1: day.stats.events["stock_quotes"],
                            2: day.stats.events["option_trades"], 3: day.stats.events["option_quotes"]})  # fmt: skip
    assert day.stats.events["stock_trades"] == len(
        flat(mirror, "stock_trades", lambda t: pc.is_valid(t["ticker"]))
    )


def test_a_day_without_files_is_a_one_line_error(project_config, capsys):
    project_config()
    assert main(["replay", "--date", "2026-11-19", "--port", "0"]) == 3  # not available
    err = capsys.readouterr().err
    assert err.startswith("error: flat file ") and "2026-11-19.csv.gz does not exist" in err
