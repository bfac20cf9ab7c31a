# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Massive's WebSocket message formats: rows -> wire JSON -> rows, on real flat-file samples."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from massive.websocket.models import EquityQuote, EquityTrade, Market, parse

from market_assets.core.schemas import STOCK_TRADES
from market_assets.io.reader import IngestError, TradeReader
from market_assets.io.source import LocalStore, flat_file_key
from market_assets.live.protocol import (
    CONNECTED,
    MalformedFrame,
    TradeDecoder,
    decode_events,
    decode_frame,
    encode_events,
    frame,
    status_frame,
)
from market_assets.live.quotes import QuoteReader
from market_assets_tests.config_files import FIXTURES

DAY = dt.date(2023, 3, 28)
TRADE_DAYS = {"stock_trades": DAY, "option_trades": dt.date(2023, 3, 13)}
SAMPLES = {
    "stock_trades": "stock_trades_sample.csv.gz",
    "option_trades": "options_trades_example.csv.gz",
    "stock_quotes": "stock_quotes_sample.csv.gz",
    "option_quotes": "options_quotes_example.csv.gz",
}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    """The real Massive samples placed under their bucket keys."""
    root = tmp_path_factory.mktemp("massive")
    for dataset, name in SAMPLES.items():
        dest = root / flat_file_key(dataset, DAY)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, dest)
    return LocalStore(root)


def _read(store: LocalStore, dataset: str) -> pa.Table:
    opened = store.open(flat_file_key(dataset, DAY))
    if dataset.endswith("_trades"):
        # The option sample's trades are from 2023-03-13 (the file is placed under DAY).
        reader = TradeReader(opened, dataset, TRADE_DAYS[dataset])
    else:
        reader = QuoteReader(opened, dataset)
    return pa.Table.from_batches(list(reader))


def _round_trip(table: pa.Table, market: str, channel: str) -> pa.RecordBatch:
    text = frame(encode_events(table, market, channel).to_pylist())
    decoded = decode_events(decode_frame(text), market)
    assert not decoded.malformed and not decoded.unknown
    return decoded.trades if channel == "T" else decoded.quotes


def _ms_floor(col: pa.ChunkedArray | pa.Array) -> list[int | None]:
    return [
        None if v is None else v // 1_000_000 * 1_000_000
        for v in pc.cast(col, pa.int64()).to_pylist()
    ]


def test_stock_trades_survive_the_wire_except_what_the_feed_lacks(mirror):
    rows = _read(mirror, "stock_trades")
    back = _round_trip(rows, "stocks", "T")
    assert back.schema == STOCK_TRADES and back.num_rows == rows.num_rows == 99
    for name in (
        "ticker",
        "price",
        "size",
        "exchange",
        "conditions",
        "sequence_number",
        "id",
        "tape",
        "trf_id",
    ):
        assert back.column(name).to_pylist() == rows.column(name).to_pylist(), name
    # Millisecond SIP and TRF times (floored); no participant time or correction on the feed.
    assert pc.cast(back.column("sip_timestamp"), pa.int64()).to_pylist() == _ms_floor(
        rows.column("sip_timestamp")
    )
    assert pc.cast(back.column("trf_timestamp"), pa.int64()).to_pylist() == _ms_floor(
        rows.column("trf_timestamp")
    )
    assert back.column("participant_timestamp").null_count == back.num_rows
    assert back.column("correction").null_count == back.num_rows


def test_stock_trade_message_has_massives_short_fields_and_omits_absent_values():
    rows = pa.table(
        {
            "ticker": ["SPY", "SPY"],
            "sip_timestamp": pa.array([1763650000123456789, 1763650000999999999]).cast(
                pa.timestamp("ns", "UTC")
            ),
            "price": [600.5, 600.25],
            "size": [100.0, 12.5],
            "exchange": pa.array([4, 12], pa.int32()),
            "conditions": pa.array([None, [12, 37]], pa.list_(pa.int32())),
            "sequence_number": [7, 8],
            "id": ['1"2', "9"],
            "tape": pa.array([None, 2], pa.int32()),
            "trf_id": pa.array([201, None], pa.int32()),
            "trf_timestamp": pa.array([1763650000123000001, None]).cast(pa.timestamp("ns", "UTC")),
        }
    )
    first, second = (json.loads(m) for m in encode_events(rows, "stocks", "T").to_pylist())
    assert first == {
        "ev": "T", "sym": "SPY", "x": 4, "i": '1"2', "p": 600.5, "s": 100,
        "t": 1763650000123, "q": 7, "trfi": 201, "trft": 1763650000123,
    }  # fmt: skip
    # A fractional size: the integer part in s, the exact decimal in ds.
    assert second == {
        "ev": "T", "sym": "SPY", "x": 12, "i": "9", "z": 2, "p": 600.25, "s": 12, "ds": "12.5",
        "c": [12, 37], "t": 1763650000999, "q": 8,
    }  # fmt: skip
    # The official client reads them as it reads the real feed.
    parsed = parse([first, second], logging.getLogger("test"), Market.Stocks)
    assert parsed[1] == EquityTrade(
        event_type="T", symbol="SPY", exchange=12, id="9", tape=2, price=600.25, size=12,
        fractional_shares="12.5", conditions=[12, 37], timestamp=1763650000999, sequence_number=8,
    )  # fmt: skip
    back = decode_events([first, second], "stocks").trades
    assert back.column("size").to_pylist() == [100.0, 12.5]


def test_option_trades_survive_the_wire_with_the_contract_parsed(mirror):
    rows = _read(mirror, "option_trades")
    rows = rows.append_column("sequence_number", pa.array(range(1, rows.num_rows + 1), pa.int64()))
    back = _round_trip(rows, "options", "T")
    assert back.num_rows == rows.num_rows == 62
    for name in (
        "ticker",
        "underlying",
        "expiration",
        "contract_type",
        "strike",
        "price",
        "size",
        "exchange",
        "conditions",
        "sequence_number",
    ):
        assert back.column(name).to_pylist() == rows.column(name).to_pylist(), name
    assert pc.cast(back.column("sip_timestamp"), pa.int64()).to_pylist() == _ms_floor(
        rows.column("sip_timestamp")
    )
    message = json.loads(encode_events(rows.slice(0, 1), "options", "T")[0].as_py())
    assert sorted(message) == ["c", "ev", "p", "q", "s", "sym", "t", "x"]


def test_quotes_survive_the_wire(mirror):
    stock = _read(mirror, "stock_quotes")  # the real file's header starts with "Ticker"
    assert stock.num_rows == 99
    back = _round_trip(stock, "stocks", "Q")
    for name in (
        "ticker",
        "bid_exchange",
        "bid_price",
        "bid_size",
        "ask_exchange",
        "ask_price",
        "ask_size",
        "conditions",
        "indicators",
        "sequence_number",
        "tape",
    ):
        assert back.column(name).to_pylist() == stock.column(name).to_pylist(), name
    assert pc.cast(back.column("sip_timestamp"), pa.int64()).to_pylist() == _ms_floor(
        stock.column("sip_timestamp")
    )
    first = json.loads(encode_events(stock.slice(2, 1), "stocks", "Q")[0].as_py())
    assert first == {
        "ev": "Q", "sym": "MSFT", "bx": 12, "bp": 275.33, "bs": 2, "ax": 0, "ap": 0, "as": 0,
        "c": 1, "t": 1679990400004, "q": 3178, "z": 3,
    }  # fmt: skip
    option = _read(mirror, "option_quotes")
    back = _round_trip(option, "options", "Q")
    for name in (
        "ticker",
        "bid_exchange",
        "bid_price",
        "bid_size",
        "ask_exchange",
        "ask_price",
        "ask_size",
        "sequence_number",
    ):
        assert back.column(name).to_pylist() == option.column(name).to_pylist(), name
    parsed = parse(
        [json.loads(encode_events(option.slice(0, 1), "options", "Q")[0].as_py())],
        logging.getLogger("t"),
        Market.Options,
    )
    assert parsed == [
        EquityQuote(
            event_type="Q", symbol="O:SPY241220P00720000", bid_exchange_id=309, bid_price=321.77,
            bid_size=1, ask_exchange_id=309, ask_price=326.77, ask_size=1, timestamp=1680010200067,
            sequence_number=81779,
        )
    ]  # fmt: skip


def test_bad_frames_and_events_are_sorted_out_with_a_reason():
    with pytest.raises(MalformedFrame, match="invalid JSON"):
        decode_frame('[{"ev":"T","sym":')
    with pytest.raises(MalformedFrame, match="array of objects"):
        decode_frame('{"ev":"T"}')
    good = {"ev": "T", "sym": "SPY", "x": 4, "p": 600.5, "s": 10, "t": 1763650000123, "q": 1}
    events = [
        good,
        {k: v for k, v in good.items() if k != "p"},
        {**good, "s": "ten"},
        {"ev": "ZZ", "sym": "SPY"},
        json.loads(status_frame(CONNECTED))[0],
    ]
    decoded = decode_events(events, "stocks")
    assert decoded.trades.num_rows == 1
    assert [why for why, _ in decoded.malformed] == [
        "missing field 'p'",
        "field 's': expected an integer, got 'ten'",
    ]
    assert decoded.unknown == [{"ev": "ZZ", "sym": "SPY"}]
    assert decoded.statuses == [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    ]
    options = decode_events([{**good, "sym": "SPY"}], "options")
    assert options.trades.num_rows == 0
    assert options.malformed[0][0] == "field 'sym': 'SPY' is not an option ticker"


def test_status_frames_are_the_services_text():
    assert (
        status_frame(CONNECTED)
        == '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
    )


def test_a_quote_row_that_does_not_parse_is_reported_with_its_line(tmp_path: Path):
    text = gzip.decompress((FIXTURES / SAMPLES["stock_quotes"]).read_bytes()).decode().splitlines()
    text[5] = text[5].replace(",275.", ",27x.", 1)
    path = tmp_path / flat_file_key("stock_quotes", DAY)
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(("\n".join(text) + "\n").encode()))
    with pytest.raises(IngestError, match=r"line 6: .*invalid value '27x\."):
        list(
            QuoteReader(
                LocalStore(tmp_path).open(flat_file_key("stock_quotes", DAY)), "stock_quotes"
            )
        )


def _both_paths(text: str, market: str) -> pa.RecordBatch | None:
    """The fast decoder's rows for one frame (None: it declined), checked against the
    event-by-event path when it took the frame."""
    fast = TradeDecoder(market).decode([text])
    if fast is None:
        return None
    slow = decode_events(decode_frame(text), market)
    assert not slow.malformed and not slow.unknown and not slow.quotes.num_rows
    assert fast[0].equals(slow.trades) and fast[1] == [slow.trades.num_rows]
    return fast[0]


@pytest.mark.parametrize("dataset", ["stock_trades", "option_trades"])
def test_the_fast_trade_decoder_gives_the_event_by_event_rows(mirror, dataset):
    market = dataset.split("_")[0].replace("stock", "stocks").replace("option", "options")
    rows = _read(mirror, dataset)
    if market == "options":
        rows = rows.append_column("sequence_number", pa.array(range(1, rows.num_rows + 1)))
    else:  # a fractional size (sent with "ds") and a trade without conditions
        size = rows["size"].to_pylist()
        size[0] = 12.5
        rows = rows.set_column(rows.schema.get_field_index("size"), "size", pa.array(size))
    messages = encode_events(rows, market, "T").to_pylist()
    batch = _both_paths(frame(messages), market)
    assert batch is not None and batch.num_rows == rows.num_rows
    # Several frames decode as one batch, in order, with each frame's count.
    decoder = TradeDecoder(market)
    many = decoder.decode([frame(messages[:3]), frame(messages[3:10]), frame(messages[10:])])
    assert many is not None and many[1] == [3, 7, rows.num_rows - 10]
    assert many[0].equals(batch)


@pytest.mark.parametrize("market", ["stocks", "options"])
def test_trades_and_quotes_mixed_in_frames_decode_as_event_by_event(mirror, market):
    # The options socket carries the contracts' trades and quotes in the same frames (and
    # the stocks socket the symbol's, with nbbo_mid): both are read by pyarrow's JSON reader,
    # with the rows, per-frame trade counts and quotes of the event-by-event path.
    prefix = "stock" if market == "stocks" else "option"
    trades, quotes = _read(mirror, f"{prefix}_trades"), _read(mirror, f"{prefix}_quotes")
    if market == "options":
        trades = trades.append_column("sequence_number", pa.array(range(1, trades.num_rows + 1)))
    t_msgs = encode_events(trades, market, "T").to_pylist()[:300]
    q_msgs = encode_events(quotes, market, "Q").to_pylist()[:400]
    events, ti, qi = [], 0, 0
    while ti < len(t_msgs) or qi < len(q_msgs):  # interleaved: 2 quotes, 1 trade, ...
        if qi < len(q_msgs):
            events += q_msgs[qi : qi + 2]
            qi += 2
        if ti < len(t_msgs):
            events.append(t_msgs[ti])
            ti += 1
    frames = [frame(events[:5]), frame(q_msgs[:7]), frame(t_msgs[:4]), frame(events[5:])]
    fast = TradeDecoder(market).decode_with_quotes(frames)
    assert fast is not None
    slow = [decode_events(decode_frame(f), market) for f in frames]
    assert all(not d.malformed and not d.unknown for d in slow)
    assert fast[0].equals(
        pa.Table.from_batches([d.trades for d in slow]).combine_chunks().to_batches()[0]
    )
    assert fast[1] == [d.trades.num_rows for d in slow]
    want_quotes = pa.Table.from_batches([d.quotes for d in slow]).combine_chunks()
    assert pa.Table.from_batches([fast[2]]).equals(want_quotes)
    assert fast[2].num_rows == len(q_msgs) + 7 and fast[1][2] == 4


QUOTE = '{"ev":"Q","sym":"SPY","bx":4,"bp":600.5,"bs":3,"ax":7,"ap":600.6,"as":2,"t":1763650000123,"q":9}'


@pytest.mark.parametrize(
    "text",
    [
        "[" + QUOTE.replace('"bp":600.5,', "") + "]",  # missing bid
        "[" + QUOTE.replace("600.6", "NaN") + "]",
        "[" + QUOTE.replace('"bs":3', '"bs":3.5') + "]",
        "[" + QUOTE.replace('"bx":4', '"bx":4294967296') + "]",  # not an int32
        "[" + QUOTE + "," + status_frame(CONNECTED)[1:],  # a status among them
        "[" + QUOTE.replace('"sym":"SPY"', '"sym":""') + "]",
        "[" + QUOTE.replace('"q":9', '"q":9,"i":[null]') + "]",  # a null in a list
    ],
)
def test_the_fast_decoder_leaves_unusual_quotes_to_the_event_by_event_path(text):
    assert TradeDecoder("stocks").decode_with_quotes([text]) is None


GOOD = '{"ev":"T","sym":"SPY","x":4,"p":600.5,"s":10,"t":1763650000123,"q":1}'


@pytest.mark.parametrize(
    "text",
    [
        "[" + GOOD + ',{"ev":"Q","sym":"SPY","bp":1.0,"ap":1.1,"bs":1,"as":1,"t":1}]',
        status_frame(CONNECTED),
        "[" + GOOD + "," + GOOD.replace('"p":600.5,', "") + "]",  # missing price
        "[" + GOOD.replace("600.5", "NaN") + "]",
        "[" + GOOD.replace('"x":4', '"x":4.0') + "]",
        "[" + GOOD.replace('"x":4', '"x":4294967296') + "]",  # not an int32
        "[" + GOOD.replace('"x":4', '"x":true') + "]",
        "[" + GOOD.replace('"s":10', '"s":10,"ds":"9.5"') + "]",  # ds does not match s
        "[" + GOOD.replace('"q":1', '"q":1,"i":"},{"') + "]",  # "},{" inside a string
        "[" + GOOD + GOOD + "]",  # no comma between the events
        "[ " + GOOD + " ]",  # spelt otherwise than the feed writes it
        "[" + GOOD.replace('"sym":"SPY"', '"sym":""') + "]",
        '[{"ev":"T",' + GOOD[1:],  # "ev" twice
        "[" + GOOD.replace('"q":1', '"q":1,"c":[null,12]') + "]",  # a null in a list
    ],
)
def test_the_fast_decoder_leaves_anything_unusual_to_the_event_by_event_path(text):
    assert _both_paths(text, "stocks") is None


def test_out_of_range_integers_are_bad_fields_not_a_crash():
    good = json.loads(GOOD)
    events = [
        {**good, "x": 2**40},
        {**good, "t": 2**62},
        {**good, "c": [2**33]},
        {**good, "s": 10**400},
        {**good, "t": -(2**62) // 10**6 * 10},  # negative: ns below int64 too
        {**good, "p": 10**400},  # an integer past float's range
        {**good, "s": 10, "ds": "1" + "0" * 400},
        {**good, "s": 10, "ds": 10**400},
        good,
    ]
    decoded = decode_events(events, "stocks")
    assert decoded.trades.num_rows == 1
    assert [why for why, _ in decoded.malformed] == [
        f"field 'x': {2**40} is out of range",
        f"field 't': {2**62} is out of range",
        f"field 'c': {2**33} is out of range",
        f"field 's': {10**400} is out of range",
        f"field 't': {-(2**62) // 10**6 * 10} is out of range",
        f"field 'p': expected a finite number, got {10**400}",
        f"field 'ds' {'1' + '0' * 400!r} does not match 's' 10",
        f"field 'ds': expected a decimal string, got {10**400}",
    ]
    assert _both_paths(frame([json.dumps(e) for e in events]), "stocks") is None


def test_contracts_are_parsed_once_per_run_and_new_ones_do_not_copy_the_cache(mirror):
    # Many frames, each bringing contracts not seen before: the cache grows in place and
    # every frame's rows still equal the event-by-event ones.
    trades = _read(mirror, "option_trades")
    trades = trades.append_column("sequence_number", pa.array(range(1, trades.num_rows + 1)))
    messages = encode_events(trades, "options", "T").to_pylist()
    decoder = TradeDecoder("options")
    for i in range(0, len(messages), 7):
        text = frame(messages[i : i + 7])
        fast = decoder.decode([text])
        slow = decode_events(decode_frame(text), "options")
        assert fast is not None and fast[0].equals(slow.trades)
    contracts = decoder._contracts
    assert contracts.n == len(set(trades["ticker"].to_pylist()))
    assert contracts.strike.size < 2 * max(contracts.n, 1024)
