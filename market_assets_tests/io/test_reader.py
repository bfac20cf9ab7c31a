# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from market_assets.core.schemas import OPTION_TRADES, STOCK_TRADES
from market_assets.io.reader import IngestError, TradeReader
from market_assets.io.source import LocalStore
from market_assets_tests.config_files import FIXTURES

DAY = dt.date(2025, 11, 20)  # the rows' SIP times (1763650000000000000 = 09:46:40 ET)
STOCK_HEADER = "ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp"


def read(path, kind, **kw) -> tuple[pa.Table, TradeReader]:
    opened = LocalStore(path.parent).open(path.name)
    reader = TradeReader(opened, kind, kw.pop("day", DAY), **kw)
    with opened:
        table = pa.Table.from_batches(list(reader), schema=reader.schema)
    return table, reader


def write_gz(path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()))


def test_real_stock_trades_sample_parses_exactly():
    t, r = read(FIXTURES / "stock_trades_sample.csv.gz", "stock_trades", day=dt.date(2023, 3, 28))
    assert t.schema == STOCK_TRADES
    # The file has 99 data rows (its README says 98).
    assert t.num_rows == 99 and r.stats.rows_rejected == 0
    first = t.slice(0, 1).to_pylist()[0]
    assert first["ticker"] == "MSFT"
    assert first["conditions"] == [12, 37]
    assert first["price"] == 276.16 and first["size"] == 55.0
    assert first["sip_timestamp"].value == 1679990400018381329  # exact ns, no float rounding
    assert first["participant_timestamp"].value == 1679990400018025984
    assert first["sequence_number"] == 1550 and first["exchange"] == 11 and first["tape"] == 3
    assert (
        first["correction"] is None and first["trf_id"] is None and first["trf_timestamp"] is None
    )
    assert t.column("conditions")[12].as_py() == [14, 12, 37, 41]
    assert t.column("conditions")[1].as_py() == [12]
    assert pc.sum(t.column("size")).as_py() == 2538.0  # csv module agrees


def test_real_option_trades_sample_matches_massives_day_aggregate():
    t, _ = read(
        FIXTURES / "options_trades_example.csv.gz",
        "option_trades",
        day=dt.date(2023, 3, 13),
        keep=["SPY"],
    )
    assert t.schema == OPTION_TRADES
    assert t.num_rows == 62  # Massive: 62 transactions
    assert pc.sum(t.column("size")).as_py() == 200  # volume 200
    prices = t.column("price").to_pylist()
    assert (prices[0], prices[-1], max(prices), min(prices)) == (11.82, 9.83, 11.82, 8.09)
    row = t.slice(0, 1).to_pylist()[0]
    assert (row["underlying"], str(row["expiration"]), row["contract_type"], row["strike"]) == (
        "SPY",
        "2023-03-27",
        "put",
        390.0,
    )
    assert row["sip_timestamp"].value == 1678715620948000000 and row["conditions"] == [232]


def test_seven_column_option_header_and_header_case(tmp_path):
    f = tmp_path / "o.csv.gz"
    write_gz(
        f,
        "Ticker,Conditions,Correction,Exchange,Price,SIP_Timestamp,Size\n"
        "O:SPY261120C00600000,209,,312,1.5,1763650000000000000,3\n"
        "O:QQQ261120P00500000,,,312,2.5,1763650000000000001,1\n",
    )
    t, _ = read(f, "option_trades", keep=["SPY"])
    assert t.num_rows == 1
    assert t.column("participant_timestamp").null_count == 1
    assert t.column("strike").to_pylist() == [600.0]


def test_fractional_stock_sizes_and_ticker_filter(tmp_path):
    f = tmp_path / "s.csv.gz"
    write_gz(
        f,
        STOCK_HEADER + "\n"
        "AAPL,,,4,1,1,230.1,1,1763650000000000000,0.5,3,,0\n"
        "SPY,37,,4,2,1,600.01,2,1763650000000000001,0.25,3,201,1763650000000000000\n",
    )
    t, r = read(f, "stock_trades", keep=["spy"])
    assert t.column("ticker").to_pylist() == ["SPY"]
    assert t.column("size").to_pylist() == [0.25]
    assert t.column("trf_id").to_pylist() == [201]
    assert r.stats.rows_read == 2 and r.stats.rows_kept == 1


def test_missing_required_column_lists_expected_and_found(tmp_path):
    f = tmp_path / "s.csv.gz"
    write_gz(f, "ticker,conditions,exchange,price,sip_timestamp\nSPY,,4,1,1\n")
    with pytest.raises(IngestError) as e:
        read(f, "stock_trades")
    msg = str(e.value)
    assert "s.csv.gz line 1" in msg and "missing required column(s) correction, id" in msg
    assert "found ticker, conditions, exchange, price, sip_timestamp" in msg


def test_malformed_rows_are_rejected_with_line_and_reason(tmp_path):
    f = tmp_path / "s.csv.gz"
    good = "SPY,,,4,{i},1,600.5,{i},17636500000000000{i:02d},10,3,,0"
    lines = [STOCK_HEADER] + [good.format(i=i) for i in range(10)]
    lines[3] = "SPY,12,,4,2,1"  # line 4: wrong field count
    lines[6] = "SPY,,,4,5,1,six hundred,5,1763650000000000005,10,3,,0"  # line 7
    lines[8] = 'SPY,"12,x",,4,7,1,600,7,1763650000000000007,10,3,,0'  # line 9
    write_gz(f, "\n".join(lines) + "\n")
    t, r = read(f, "stock_trades")
    assert t.num_rows == 7
    assert r.stats.rows_rejected == 3
    got = sorted((x.line, x.reason) for x in r.rejects)
    assert got == [
        (4, "expected 13 fields, found 6"),
        (7, "price: cannot parse 'six hundred'"),
        (9, "conditions: cannot parse '12,x'"),
    ]
    assert 600.5 in t.column("price").to_pylist()


def test_too_many_rejects_fail_the_read(tmp_path):
    f = tmp_path / "s.csv.gz"
    write_gz(
        f,
        STOCK_HEADER + "\nSPY,,,4,1,1,abc,1,1763650000000000000,10,3,,0\n"
        "SPY,,,4,1,1,600,1,1763650000000000001,10,3,,0\n",
    )
    with pytest.raises(
        IngestError,
        match=r"1 of 2 rows rejected \(50.0000%\), above ingest.max_reject_fraction = 0.1; first at line 2",
    ):
        read(f, "stock_trades", max_reject_fraction=0.1)


def test_truncated_gzip_names_file_and_offset(tmp_path):
    body = STOCK_HEADER + "\n" + "SPY,,,4,1,1,600,1,1763650000000000000,10,3,,0\n" * 50_000
    f = tmp_path / "trunc.csv.gz"
    f.write_bytes(gzip.compress(body.encode())[:-2000])
    with pytest.raises(IngestError) as e:
        read(f, "stock_trades", block_size=1 << 16)
    msg = str(e.value)
    assert "trunc.csv.gz" in msg and "truncated gzip" in msg and "compressed byte offset" in msg


def test_memory_stays_bounded_by_blocks(tmp_path):
    """Batches are block-sized: no batch holds more than a block's worth of rows."""
    row = "SPY,,,4,1,1,600.25,1,1763650000000000000,100,3,,0\n"
    f = tmp_path / "big.csv.gz"
    with gzip.open(f, "wt", compresslevel=1) as out:
        out.write(STOCK_HEADER + "\n")
        for _ in range(20):
            out.write(row * 10_000)
    opened = LocalStore(tmp_path).open("big.csv.gz")
    sizes = [b.num_rows for b in TradeReader(opened, "stock_trades", DAY, block_size=1 << 18)]
    assert sum(sizes) == 200_000
    assert max(sizes) <= (1 << 18) // len(row) + 1
    assert len(sizes) > 10


def test_progress_is_reported_per_block(tmp_path):
    f = tmp_path / "s.csv.gz"
    write_gz(f, STOCK_HEADER + "\n" + "SPY,,,4,1,1,600,1,1763650000000000000,10,3,,0\n" * 20_000)
    seen = []
    opened = LocalStore(tmp_path).open("s.csv.gz")
    list(
        TradeReader(
            opened,
            "stock_trades",
            DAY,
            block_size=1 << 16,
            on_progress=lambda s: seen.append(s.rows_read),
        )
    )
    assert len(seen) > 3 and seen == sorted(seen) and seen[-1] == 20_000


def _reopenable(path):
    store = LocalStore(path.parent)
    return store.open(path.name), (lambda: store.open(path.name))


def test_fast_pass_and_careful_reread_agree_exactly(tmp_path):
    """A malformed row deep in a file makes the fast pass restart carefully: the output is
    the same rows, each once, and every reject has its line number."""
    f = tmp_path / "s.csv.gz"
    good = "SPY,,,4,{i},1,600.{d},{i},{ts},10,3,,0"
    lines = [STOCK_HEADER] + [
        good.format(i=i, d=i % 100, ts=1763650000000000000 + i) for i in range(60_000)
    ]
    lines[40_001] = "SPY,,,4,x,1,not-a-price,1,1763650000000000000,10,3,,0"  # line 40,002
    lines[50_001] = "SPY,1,2"  # line 50,002
    write_gz(f, "\n".join(lines) + "\n")
    opened, reopen = _reopenable(f)
    fast = TradeReader(opened, "stock_trades", DAY, block_size=1 << 16, reopen=reopen)
    t_fast = pa.Table.from_batches(list(fast), schema=fast.schema)
    careful = TradeReader(
        LocalStore(tmp_path).open("s.csv.gz"), "stock_trades", DAY, block_size=1 << 16
    )
    t_careful = pa.Table.from_batches(list(careful), schema=careful.schema)
    assert fast.careful_pass
    assert t_fast.num_rows == 59_998
    assert t_fast.equals(t_careful)
    assert sorted((r.line, r.reason) for r in fast.rejects) == [
        (40_002, "price: cannot parse 'not-a-price'"),
        (50_002, "expected 13 fields, found 3"),
    ]
    assert fast.rows_in == 60_000


def test_clean_file_takes_the_fast_pass(tmp_path):
    f = tmp_path / "s.csv.gz"
    write_gz(
        f, STOCK_HEADER + "\n" + 'SPY,"12,37",,4,1,1,600,1,1763650000000000000,10,3,,0\n' * 1000
    )
    opened, reopen = _reopenable(f)
    r = TradeReader(opened, "stock_trades", DAY, reopen=reopen)
    t = pa.Table.from_batches(list(r), schema=r.schema)
    assert not r.careful_pass and t.num_rows == 1000
    assert t.column("conditions")[0].as_py() == [12, 37]


def test_ticker_filter_fast_path_matches_careful_read_sorted_or_not(tmp_path):
    """The fast path hands the parser only line spans that can hold kept tickers; the
    result must equal a full careful read whether or not the file is sorted by ticker."""
    rows = []
    for i, tick in enumerate(["AAPL", "SPY", "SPYG", "MSFT", "SPY", "QQQ"] * 3000):
        rows.append(f"{tick},,,4,{i},1,{100 + i % 7}.5,{i},{1763650000000000000 + i},10,3,,0")
    for name, body in [("sorted.csv.gz", sorted(rows)), ("unsorted.csv.gz", rows)]:
        f = tmp_path / name
        write_gz(f, STOCK_HEADER + "\n" + "\n".join(body))  # no final newline, as Massive's files
        opened, reopen = _reopenable(f)
        fast = TradeReader(
            opened, "stock_trades", DAY, keep=["SPY"], block_size=1 << 15, reopen=reopen
        )
        t_fast = pa.Table.from_batches(list(fast), schema=fast.schema)
        careful = TradeReader(
            LocalStore(tmp_path).open(name), "stock_trades", DAY, keep=["SPY"], block_size=1 << 15
        )
        t_careful = pa.Table.from_batches(list(careful), schema=careful.schema)
        assert not fast.careful_pass
        assert t_fast.num_rows == 6000 and t_fast.equals(t_careful)
        assert fast.rows_in == careful.rows_in == 18_000


@pytest.mark.parametrize("body", ["", "AAPL,,,4,1,1,230.1,1,1763650000000000000,5,3,,0\n"])
@pytest.mark.parametrize("fast", [True, False])
def test_no_kept_rows_gives_an_empty_result_not_an_error(tmp_path, body, fast):
    f = tmp_path / "s.csv.gz"
    write_gz(f, STOCK_HEADER + "\n" + body)
    opened, reopen = _reopenable(f)
    r = TradeReader(opened, "stock_trades", DAY, keep=["SPY"], reopen=reopen if fast else None)
    assert list(r) == []
    assert r.stats.rows_kept == 0 and r.rows_in == body.count("\n")


def test_unparsable_option_ticker_is_rejected_with_its_line_on_the_fast_path(tmp_path):
    f = tmp_path / "o.csv.gz"
    good = "O:SPY261120C00600000,209,,312,1.5,{ts},3"
    lines = ["ticker,conditions,correction,exchange,price,sip_timestamp,size"]
    lines += [good.format(ts=1763650000000000000 + i) for i in range(5000)]
    lines[2501] = "O:SPY261340C00600000,209,,312,1.5,1763650000000000000,3"  # month 13, line 2502
    write_gz(f, "\n".join(lines) + "\n")
    opened, reopen = _reopenable(f)
    r = TradeReader(opened, "option_trades", DAY, keep=["SPY"], block_size=1 << 14, reopen=reopen)
    t = pa.Table.from_batches(list(r), schema=r.schema)
    assert r.careful_pass and t.num_rows == 4999
    assert [(x.line, x.reason) for x in r.rejects] == [
        (2502, "unparsable option ticker 'O:SPY261340C00600000'")
    ]


def test_integer_overflow_is_a_reject_not_a_failed_block(tmp_path):
    f = tmp_path / "s.csv.gz"
    ok = "SPY,,,4,1,1,600,{seq},1763650000000000000,10,3,,0"
    lines = [STOCK_HEADER, ok.format(seq=1), ok.format(seq=99999999999999999999), ok.format(seq=3)]
    lines.append("SPY,,,4,1,1,600,9223372036854775807,1763650000000000000,10,3,,0")  # int64 max
    write_gz(f, "\n".join(lines) + "\n")
    t, r = read(f, "stock_trades")
    assert t.column("sequence_number").to_pylist() == [1, 3, 9223372036854775807]
    assert [(x.line, x.reason) for x in r.rejects] == [
        (3, "sequence_number: cannot parse '99999999999999999999'")
    ]


# -- value rules (core.trade_rules) ---------------------------------------------------------
TS = 1763650000000000000  # 2025-11-20 09:46:40 ET
ROW = "SPY,,,4,{i},1,{price},{i},{ts},{size},3,,0"
IMPOSSIBLE = {  # line number -> (price, size, sip_timestamp, reason)
    103: ("nan", "10", TS, "price: nan is not a finite number above 0"),
    1_507: ("inf", "10", TS, "price: inf is not a finite number above 0"),
    1_508: ("0", "10", TS, "price: 0 is not a finite number above 0"),
    2_990: ("-600.5", "10", TS, "price: -600.5 is not a finite number above 0"),
    3_001: ("600", "0", TS, "size: 0 is not a finite number above 0"),
    3_502: ("600", "-5", TS, "size: -5 is not a finite number above 0"),
    4_000: (
        "600",
        "10",
        0,
        "sip_timestamp: 0 (1969-12-31 19:00:00.000000000-0500) is not on 2025-11-20 "
        "(00:00-24:00 New York time)",
    ),
    4_999: (
        "600",
        "10",
        1763701200000000000,
        "sip_timestamp: 1763701200000000000 (2025-11-21 00:00:00.000000000-0500) is not on "
        "2025-11-20 (00:00-24:00 New York time)",
    ),
}


def file_with_impossible_values(path, n=5_000, extra: dict[int, str] | None = None) -> list[str]:
    """n data rows (lines 2..n+1); IMPOSSIBLE's lines break a value rule, line 50 has a
    valid but implausible price of 1e12; ``extra`` replaces more lines."""
    lines = [STOCK_HEADER] + [
        ROW.format(i=i, price=f"600.{i % 100}", ts=TS + i, size=10) for i in range(n)
    ]
    for line, (price, size, ts, _) in IMPOSSIBLE.items():
        if line <= n + 1:
            lines[line - 1] = ROW.format(i=line, price=price, ts=ts, size=size)
    lines[49] = ROW.format(i=49, price="1e12", ts=TS, size=10)
    for line, text in (extra or {}).items():
        lines[line - 1] = text
    write_gz(path, "\n".join(lines) + "\n")
    return lines


def read_both_ways(path, **kw) -> tuple[pa.Table, TradeReader, pa.Table, TradeReader]:
    """The file read with a fast pass (re-read carefully if needed) and careful-only."""
    opened, reopen = _reopenable(path)
    fast = TradeReader(opened, "stock_trades", DAY, reopen=reopen, **kw)
    t_fast = pa.Table.from_batches(list(fast), schema=fast.schema)
    careful = TradeReader(LocalStore(path.parent).open(path.name), "stock_trades", DAY, **kw)
    t_careful = pa.Table.from_batches(list(careful), schema=careful.schema)
    return t_fast, fast, t_careful, careful


def test_impossible_values_are_rejected_with_their_lines_on_the_fast_path_and_carefully(tmp_path):
    f = tmp_path / "s.csv.gz"
    lines = file_with_impossible_values(f)
    sunk = []
    t_fast, fast, t_careful, careful = read_both_ways(
        f, block_size=1 << 14, reject_sink=sunk.append
    )
    expected = [(line, why) for line, (*_, why) in IMPOSSIBLE.items()]
    assert not fast.careful_pass  # a value rule does not need a re-read
    assert [(r.line, r.reason) for r in fast.rejects] == expected
    assert [(r.line, r.reason) for r in careful.rejects] == expected
    assert [r.text for r in fast.rejects] == [lines[line - 1] for line in IMPOSSIBLE]  # raw
    assert sunk == fast.rejects + careful.rejects  # the sink got each, in line order
    assert t_fast.num_rows == 5_000 - len(IMPOSSIBLE) and t_fast.equals(t_careful)
    assert 1e12 in t_fast.column("price").to_pylist()  # valid, if implausible: kept
    assert fast.stats.rows_rejected == careful.stats.rows_rejected == len(IMPOSSIBLE)
    assert fast.rows_in == careful.rows_in == 5_000


def test_value_rules_and_a_malformed_row_in_one_file_report_each_reject_once_in_order(
    tmp_path, caplog
):
    """The fast pass reports the value-rule rejects of the blocks it finished, then restarts
    at the malformed row: the careful pass must not report those again."""
    f = tmp_path / "s.csv.gz"
    file_with_impossible_values(
        f, extra={3_200: "SPY,1,2", 3_300: ROW.format(i=1, price="x", ts=TS, size=1)}
    )
    sunk = []
    t_fast, fast, t_careful, careful = read_both_ways(
        f, block_size=1 << 14, reject_sink=sunk.append
    )
    expected = sorted(
        [(line, why) for line, (*_, why) in IMPOSSIBLE.items()]
        + [(3_200, "expected 13 fields, found 3"), (3_300, "price: cannot parse 'x'")]
    )
    assert fast.careful_pass
    # The fast pass had finished blocks holding rejects before it met the malformed row.
    delivered = int(re.search(r"\((\d+) rows already written", caplog.text).group(1))
    assert delivered > 2_000
    assert [(r.line, r.reason) for r in fast.rejects] == expected
    assert [(r.line, r.reason) for r in careful.rejects] == expected
    assert [r.line for r in sunk] == [line for line, _ in expected] * 2
    assert t_fast.equals(t_careful) and t_fast.num_rows == 5_000 - len(expected)
    assert fast.stats.rows_rejected == len(expected) and fast.rows_in == 5_000


def test_impossible_values_count_toward_max_reject_fraction(tmp_path):
    f = tmp_path / "s.csv.gz"
    file_with_impossible_values(f, n=200)  # one of IMPOSSIBLE's lines: 103
    for reopen in (True, False):
        opened, again = _reopenable(f)
        reader = TradeReader(
            opened, "stock_trades", DAY, max_reject_fraction=0.001, reopen=again if reopen else None
        )
        with pytest.raises(
            IngestError, match=r"1 of 200 rows rejected \(0.5000%\).*first at line 103: price: nan"
        ):
            list(reader)


def test_rejects_reach_the_sink_in_line_order(tmp_path):
    """Within a batch a bad size above a bad price, malformed lines the CSV reader meets
    while reading ahead, value-rule rejects: the sink sees them all by line number."""
    f = tmp_path / "s.csv.gz"
    lines = [STOCK_HEADER] + [ROW.format(i=i, price="600", ts=TS + i, size=10) for i in range(3000)]
    expected = []
    for line in range(10, 3000, 97):
        lines[line - 1] = ROW.format(i=line, price="600", ts=TS, size="ten")
        lines[line] = ROW.format(i=line, price="six", ts=TS, size=10)
        lines[line + 1] = "SPY,1"
        lines[line + 2] = ROW.format(i=line, price="-1", ts=TS, size=10)
        expected += [line, line + 1, line + 2, line + 3]
    write_gz(f, "\n".join(lines) + "\n")
    for reopen in (True, False):
        sunk = []
        opened, again = _reopenable(f)
        reader = TradeReader(
            opened,
            "stock_trades",
            DAY,
            block_size=1 << 12,
            reopen=again if reopen else None,
            reject_sink=sunk.append,
        )
        list(reader)
        assert [r.line for r in sunk] == expected
        assert [r.reason.split(":")[0] for r in sunk[:4]] == [
            "size",
            "price",
            "expected 13 fields, found 2",
            "price",
        ]


def test_truncated_gzip_reports_every_row_read_before_the_cut(tmp_path):
    """Half a small file: the error counts the rows that decompressed (not 0), both passes."""
    rows = [ROW.format(i=i, price="600", ts=TS + i, size=10) for i in range(3000)]
    whole = gzip.compress((STOCK_HEADER + "\n" + "\n".join(rows) + "\n").encode())
    cut = whole[: len(whole) // 2]
    readable = zlib.decompressobj(31).decompress(cut)
    rows_readable = readable.count(b"\n") - 1  # the header is not a row
    f = tmp_path / "trunc.csv.gz"
    f.write_bytes(cut)
    for reopen in (True, False):
        opened, again = _reopenable(f)
        with pytest.raises(IngestError) as e:
            list(TradeReader(opened, "stock_trades", DAY, reopen=again if reopen else None))
        msg = str(e.value)
        assert f"at compressed byte offset {len(cut):,} of {len(cut):,} " in msg
        assert msg.endswith(f", after {rows_readable:,} rows")
        # ISA-L may hold back the last few bytes zlib decodes: none of them ends a row.
        decoded = int(re.search(r"decompressed byte ([\d,]+)", msg).group(1).replace(",", ""))
        assert len(readable) - 16 <= decoded <= len(readable)
    assert rows_readable > 1000


def test_an_empty_line_keeps_the_line_numbers_below_it(tmp_path):
    f = tmp_path / "s.csv.gz"
    good = ROW.format(i=1, price="600", ts=TS, size=10)
    write_gz(
        f, "\n".join([STOCK_HEADER, good, "", good, ROW.format(i=1, price="0", ts=TS, size=1)])
    )
    _, fast, _, careful = read_both_ways(f)
    for r in (fast, careful):
        assert [(x.line, x.reason) for x in r.rejects] == [
            (3, "empty line"),
            (5, "price: 0 is not a finite number above 0"),
        ]


def test_value_rules_apply_to_kept_rows_only_with_lines_counted_past_skipped_spans(tmp_path):
    """With one ticker kept, the fast path parses only spans of lines; a rejected SPY row
    still gets its line in the file, and other tickers' impossible rows are not rejected."""
    f = tmp_path / "s.csv.gz"
    lines = [STOCK_HEADER]
    for tick in ("AAPL", "SPY", "TSLA"):
        lines += [
            ROW.format(i=i, price="600", ts=TS + i, size=10).replace("SPY", tick, 1)
            for i in range(2000)
        ]
    lines[100] = ROW.format(i=1, price="-1", ts=TS, size=10).replace("SPY", "AAPL", 1)
    lines[2500] = ROW.format(i=1, price="-1", ts=TS, size=10)  # line 2,501: SPY
    lines[4500] = ROW.format(i=1, price="-1", ts=TS, size=10).replace("SPY", "TSLA", 1)
    write_gz(f, "\n".join(lines) + "\n")
    t_fast, fast, t_careful, careful = read_both_ways(f, keep=["SPY"], block_size=1 << 14)
    assert not fast.careful_pass
    for r in (fast, careful):
        assert [(x.line, x.reason) for x in r.rejects] == [
            (2501, "price: -1 is not a finite number above 0")
        ]
    assert t_fast.equals(t_careful) and t_fast.num_rows == 1999


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda z: b"ticker,price\nSPY,1\n", "Invalid gzip/zlib wrapper"),  # not gzip at all
        (lambda z: z[:-8] + bytes([z[-8] ^ 1]) + z[-7:], "Incorrect checksum"),  # bad CRC
    ],
)
def test_corrupt_gzip_is_named_as_such(tmp_path, damage, why):
    f = tmp_path / "bad.csv.gz"
    row = ROW.format(i=1, price="600", ts=TS, size=10)
    f.write_bytes(damage(gzip.compress((STOCK_HEADER + "\n" + row + "\n").encode())))
    for reopen in (True, False):
        opened, again = _reopenable(f)
        with pytest.raises(IngestError, match=f"bad.csv.gz: corrupt gzip data \\(.*{why}"):
            list(TradeReader(opened, "stock_trades", DAY, reopen=again if reopen else None))


def test_concatenated_gzip_members_are_read_as_one_file(tmp_path):
    f = tmp_path / "two.csv.gz"
    rows = [ROW.format(i=i, price="600", ts=TS + i, size=10) for i in range(10)]
    first = gzip.compress((STOCK_HEADER + "\n" + "\n".join(rows[:4]) + "\n").encode())
    f.write_bytes(first + gzip.compress(("\n".join(rows[4:]) + "\n").encode()))
    t, r = read(f, "stock_trades")
    assert t.num_rows == 10 and t.column("sequence_number").to_pylist() == list(range(10))
