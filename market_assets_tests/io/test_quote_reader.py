# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The quote-file reader: real samples, filtering, skip-ahead, early stop, rejects."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from market_assets.devtools.quote_files import roots, write_option_quotes
from market_assets.io.quote_reader import QuoteReader
from market_assets.io.reader import IngestError
from market_assets.io.source import LocalStore, S3Store
from market_assets_tests.config_files import FIXTURES
from market_assets_tests.s3_server import FAKE_KEY_ID, FAKE_SECRET

MASSIVE = FIXTURES
ROOTS = roots(40, include=("BBB", "SPY"))


@pytest.fixture(scope="module")
def option_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~400k option quotes over 40+ roots in ticker order (several MB of gzip)."""
    path = tmp_path_factory.mktemp("quotes") / "option_quotes.csv.gz"
    write_option_quotes(path, 400_000, ROOTS, weights={"SPY": 3}, contracts_per_root=40)
    return path


def _read(path: Path, kind: str, keep, **kw) -> tuple[pa.Table, QuoteReader]:
    store = LocalStore(path.parent)
    reader = QuoteReader(store.open(path.name), kind, keep=keep, **kw)
    table = pa.Table.from_batches(list(reader), schema=reader.schema)
    reader.source.stream.close()
    return table, reader


def _underlying_rows(full: pa.Table, roots_: list[str]) -> pa.Table:
    return full.filter(pc.is_in(full["underlying"], pa.array(roots_)))


def test_real_stock_quote_sample_with_capital_ticker_header_parses():
    table, reader = _read(MASSIVE / "stock_quotes_sample.csv.gz", "stock_quotes", ["msft"])
    assert table.num_rows == reader.stats.rows_read == 99
    assert set(table["ticker"].to_pylist()) == {"MSFT"}
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ask_exchange"] == 19 and first["conditions"] == [19]
    assert first["sip_timestamp"].value == 1679990340010084598
    assert first["trf_timestamp"] is None  # 0 in the file: no TRF time
    assert reader.stats.rows_rejected == 0


def test_real_option_quote_sample_parses_with_contract_fields():
    table, _ = _read(MASSIVE / "options_quotes_example.csv.gz", "option_quotes", ["SPY"])
    assert table.num_rows == 99
    row = table.slice(0, 1).to_pylist()[0]
    assert row["ticker"] == "O:SPY241220P00720000"
    assert (row["underlying"], row["expiration"], row["contract_type"], row["strike"]) == (
        "SPY",
        dt.date(2024, 12, 20),
        "put",
        720.0,
    )
    assert (row["ask_price"], row["bid_size"], row["sequence_number"]) == (326.77, 1.0, 81779)


def test_only_contracts_of_wanted_underlyings_are_kept(option_file: Path):
    full, _ = _read(option_file, "option_quotes", ["*"])
    spy, _ = _read(option_file, "option_quotes", ["spy"])
    assert spy.num_rows > 0
    assert set(spy["underlying"].to_pylist()) == {"SPY"}
    assert spy.equals(_underlying_rows(full, ["SPY"]))


def test_a_root_that_extends_a_wanted_root_is_not_kept(tmp_path: Path):
    path = tmp_path / "q.csv.gz"
    write_option_quotes(path, 20_000, ["SPX", "SPY", "SPYG", "SPYX"], contracts_per_root=5)
    spy, reader = _read(path, "option_quotes", ["SPY"], block_size=4096)
    full, _ = _read(path, "option_quotes", ["*"])
    assert set(spy["underlying"].to_pylist()) == {"SPY"}
    assert spy.equals(_underlying_rows(full, ["SPY"]))
    assert reader.stats.rows_rejected == 0


@pytest.mark.parametrize("keep", [["SPY"], ["BBB", "SPY"], [ROOTS[0]], [ROOTS[-1]], ["QQQ"]])
def test_skipping_ahead_gives_the_rows_of_parsing_everything(option_file: Path, keep):
    fast, reader = _read(option_file, "option_quotes", keep, block_size=64 * 1024)
    slow, careful = _read(option_file, "option_quotes", keep, sorted_by_ticker=False)
    assert fast.equals(slow)
    assert reader.blocks_skipped > 0 or keep == [ROOTS[0]]
    assert careful.blocks_skipped == 0 and not careful.stopped_early


def test_stock_quotes_skip_ahead_keeps_exact_tickers_only(tmp_path: Path):
    lines = gzip.decompress((MASSIVE / "stock_quotes_sample.csv.gz").read_bytes()).decode()
    header, *rows = lines.splitlines()
    body = [
        t + r[len("MSFT") :] for t in ("AAPL", "SP", "SPY", "SPY.A", "SPYG", "ZZ") for r in rows
    ]
    path = tmp_path / "stock_quotes.csv.gz"
    path.write_bytes(gzip.compress(("\n".join([header, *body]) + "\n").encode()))
    fast, reader = _read(path, "stock_quotes", ["SPY"], block_size=512)
    slow, _ = _read(path, "stock_quotes", ["SPY"], sorted_by_ticker=False)
    assert fast.num_rows == len(rows) and set(fast["ticker"].to_pylist()) == {"SPY"}
    assert fast.equals(slow)
    assert reader.blocks_skipped > 0 and reader.stopped_early


def test_ingesting_an_early_underlying_reads_only_a_prefix_of_the_file(option_file: Path):
    early = ROOTS[2]
    part, reader = _read(option_file, "option_quotes", [early])
    full, _ = _read(option_file, "option_quotes", ["*"])
    size = option_file.stat().st_size
    assert reader.stopped_early
    assert reader.bytes_read < size / 3, (reader.bytes_read, size)
    assert part.num_rows > 0 and part.equals(_underlying_rows(full, [early]))


def test_early_stop_over_s3_downloads_only_a_prefix(option_file: Path, s3_bucket):
    client, bucket, endpoint = s3_bucket
    key = "us_options_opra/quotes_v1/2025/11/2025-11-20.csv.gz"
    client.upload_file(str(option_file), bucket, key)
    store = S3Store(
        bucket=bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id=FAKE_KEY_ID,
        secret_access_key=FAKE_SECRET,
    )
    opened = store.open(key)
    reader = QuoteReader(opened, "option_quotes", keep=[ROOTS[2]])
    table = pa.Table.from_batches(list(reader), schema=reader.schema)
    assert reader.stopped_early and opened.stream.closed
    assert opened.bytes_read < opened.size / 3, (opened.bytes_read, opened.size)
    local, _ = _read(option_file, "option_quotes", [ROOTS[2]], sorted_by_ticker=False)
    assert table.equals(local)


def _rewrite(src: Path, dest: Path, edit) -> None:
    lines = gzip.decompress(src.read_bytes()).decode().split("\n")
    edit(lines)
    dest.write_bytes(gzip.compress("\n".join(lines).encode(), compresslevel=1))


def test_malformed_rows_are_reported_with_their_lines_and_the_rest_is_kept(
    option_file: Path, tmp_path: Path
):
    full, _ = _read(option_file, "option_quotes", ["SPY"], sorted_by_ticker=False)
    lines = gzip.decompress(option_file.read_bytes()).decode().split("\n")
    spy = [i for i, line in enumerate(lines) if line.startswith("O:SPY")]
    bad_value, bad_fields = spy[10], spy[500]  # 0-based indices: file lines are +1

    def edit(rows: list[str]) -> None:
        fields = rows[bad_value].split(",")
        fields[5] = "1x.25"
        rows[bad_value] = ",".join(fields)
        rows[bad_fields] = rows[bad_fields].rsplit(",", 1)[0]

    path = tmp_path / "bad.csv.gz"
    _rewrite(option_file, path, edit)
    table, reader = _read(path, "option_quotes", ["SPY"], block_size=256 * 1024)
    got = [(r.line, r.reason) for r in reader.rejects]
    assert got == [
        (bad_value + 1, "bid_price: invalid value '1x.25'"),
        (bad_fields + 1, "expected 9 fields, found 8"),
    ]
    assert reader.rejects[0].text == lines[bad_value].replace(
        lines[bad_value].split(",")[5], "1x.25", 1
    )
    assert table.num_rows == full.num_rows - 2
    with pytest.raises(IngestError, match=rf"first at line {bad_value + 1}: bid_price"):
        _read(path, "option_quotes", ["SPY"], max_reject_fraction=0.0)


def test_a_file_out_of_ticker_order_fails_instead_of_losing_rows(tmp_path: Path):
    path = tmp_path / "q.csv.gz"
    write_option_quotes(path, 20_000, ["AAA", "BBB", "SPY"], contracts_per_root=5)

    def edit(rows: list[str]) -> None:
        body = rows[1:-1]
        rows[1:-1] = body[len(body) // 2 :] + body[: len(body) // 2]

    shuffled = tmp_path / "shuffled.csv.gz"
    _rewrite(path, shuffled, edit)
    with pytest.raises(IngestError, match="not sorted by ticker"):
        _read(shuffled, "option_quotes", ["SPY"], block_size=4096)
    table, _ = _read(shuffled, "option_quotes", ["SPY"], sorted_by_ticker=False)
    assert table.num_rows == _read(path, "option_quotes", ["SPY"])[0].num_rows
