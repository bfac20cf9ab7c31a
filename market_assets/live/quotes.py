# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Streaming reader of quote flat files (``quotes_v1``): gzip CSV -> normalised Arrow batches.

Columns are found by header name, in any case (real stock quote files start with
``Ticker``). Rows are filtered by ticker (stocks) or by the contract's underlying (options)
batch by batch, so memory is bounded by the block size. A row that does not parse stops
the read with an error naming the file, the line and the value.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence

import isal.igzip_threaded
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.io.reader import ByteSource, IngestError
from market_assets.io.sizes import DEFAULT_BLOCK_SIZE, MIB
from market_assets.live.schemas import OPTION_QUOTES, STOCK_QUOTES

# Column -> (type it is parsed as, required?). Lists are read as text and split here.
_STOCK: dict[str, tuple[pa.DataType, bool]] = {
    "ticker": (pa.string(), True),
    "ask_exchange": (pa.int32(), False),
    "ask_price": (pa.float64(), True),
    "ask_size": (pa.float64(), True),
    "bid_exchange": (pa.int32(), False),
    "bid_price": (pa.float64(), True),
    "bid_size": (pa.float64(), True),
    "conditions": (pa.string(), False),
    "indicators": (pa.string(), False),
    "participant_timestamp": (pa.int64(), False),
    "sequence_number": (pa.int64(), False),
    "sip_timestamp": (pa.int64(), True),
    "tape": (pa.int32(), False),
    "trf_timestamp": (pa.int64(), False),
}
_OPTION: dict[str, tuple[pa.DataType, bool]] = {
    "ticker": (pa.string(), True),
    "ask_exchange": (pa.int32(), False),
    "ask_price": (pa.float64(), True),
    "ask_size": (pa.float64(), True),
    "bid_exchange": (pa.int32(), False),
    "bid_price": (pa.float64(), True),
    "bid_size": (pa.float64(), True),
    "sequence_number": (pa.int64(), False),
    "sip_timestamp": (pa.int64(), True),
}
QUOTE_KINDS = {"stock_quotes": (_STOCK, STOCK_QUOTES), "option_quotes": (_OPTION, OPTION_QUOTES)}
_LISTS = {"conditions", "indicators"}
_TIMES = {"sip_timestamp", "participant_timestamp", "trf_timestamp"}


class QuoteReader:
    """Iterate normalised record batches of one quote flat file.

    ``keep`` lists stock tickers (``stock_quotes``) or underlyings (``option_quotes``);
    ``["*"]`` keeps everything. ``rows_read`` counts the data rows parsed so far.
    """

    def __init__(
        self,
        source: ByteSource,
        kind: str,
        keep: Sequence[str] = ("*",),
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if kind not in QUOTE_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(QUOTE_KINDS)}")
        self.source = source
        self.kind = kind
        self.columns, self.schema = QUOTE_KINDS[kind]
        self.keep = None if "*" in keep else pa.array(sorted({k.upper() for k in keep}))
        self.block_size = int(block_size)
        self.rows_read = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        raw = isal.igzip_threaded.open(self.source.stream, "rb", threads=1)
        text = io.BufferedReader(raw, buffer_size=MIB)
        try:
            names = self._header(text)
            present = [c for c in self.columns if c in names]
            if not text.peek(1):
                return
            try:
                reader = pcsv.open_csv(
                    text,
                    read_options=pcsv.ReadOptions(
                        column_names=names, block_size=self.block_size, use_threads=False
                    ),
                    convert_options=pcsv.ConvertOptions(
                        include_columns=present,
                        column_types={c: self.columns[c][0] for c in present},
                        strings_can_be_null=True,
                        null_values=[""],
                        quoted_strings_can_be_null=True,
                    ),
                )
            except pa.ArrowInvalid as e:
                raise IngestError(f"{self.source.name}: {self._where(str(e))}") from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as e:
                    raise IngestError(f"{self.source.name}: {self._where(str(e))}") from None
                first_line = self.rows_read + 2
                self.rows_read += batch.num_rows
                out = self._convert(batch, first_line)
                if out.num_rows:
                    yield out
        except (EOFError, OSError) as e:
            raise IngestError(
                f"{self.source.name}: {type(e).__name__}: {e} after {self.rows_read:,} rows"
            ) from e
        finally:
            text.close()

    def _header(self, text: io.BufferedReader) -> list[str]:
        line = text.readline().decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            raise IngestError(f"{self.source.name}: file is empty (no header line)")
        names = [n.strip().strip('"').lower() for n in line.split(",")]
        missing = [c for c, (_, req) in self.columns.items() if req and c not in names]
        if missing:
            raise IngestError(
                f"{self.source.name} line 1: header is missing required column(s) "
                f"{', '.join(missing)}; found {', '.join(names)}"
            )
        return names

    def _where(self, message: str) -> str:
        # pyarrow: "In CSV column #3: Row #17: CSV conversion error ...": Row # counts data rows.
        m = re.search(r"Row #(\d+)", message)
        if m:
            return f"line {int(m.group(1)) + 1}: {message}"
        return f"after data row {self.rows_read:,}: {message}"

    def _convert(self, batch: pa.RecordBatch, first_line: int) -> pa.RecordBatch:
        ticker = batch.column("ticker")
        if self.kind == "option_quotes":
            parsed, ok = parse_option_tickers(ticker)
            if self.keep is not None:
                keep = pc.fill_null(
                    pc.is_in(parsed.column("underlying"), value_set=self.keep), False
                )
                bad = pc.and_(pc.invert(ok), pc.is_valid(ticker))
            else:
                keep, bad = ok, pc.invert(ok)
            if pc.any(bad).as_py():
                i = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
                raise IngestError(
                    f"{self.source.name} line {first_line + i}: unparsable option ticker "
                    f"{ticker[i].as_py()!r}"
                )
        elif self.keep is not None:
            keep = pc.fill_null(pc.is_in(ticker, value_set=self.keep), False)
        else:
            keep = None
        rows = np.arange(batch.num_rows)
        if keep is not None and not pc.all(keep).as_py():
            rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
            batch = batch.take(pa.array(rows))
        lines = first_line + rows
        n = batch.num_rows
        out = {}
        names = set(batch.schema.names)
        for name, typ in zip(self.schema.names, self.schema.types, strict=True):
            if name not in names:
                out[name] = pa.nulls(n, typ)
                continue
            col = batch.column(name)
            if name in _LISTS:
                col = self._int_list(col, name, lines)
            elif name in _TIMES:
                col = pc.cast(col, pa.int64())
                if name == "trf_timestamp":
                    col = pc.if_else(pc.equal(col, 0), pa.scalar(None, pa.int64()), col)
                col = col.cast(typ)
            elif col.type != typ:
                col = pc.cast(col, typ)
            required = self.columns.get(name, (None, False))[1]
            if required and col.null_count:
                i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
                raise IngestError(f"{self.source.name} line {lines[i]}: no {name}")
            out[name] = col
        return pa.RecordBatch.from_pydict(out, schema=self.schema)

    def _int_list(self, col: pa.Array, name: str, lines: np.ndarray) -> pa.Array:
        try:
            return pc.cast(pc.split_pattern(col, ","), pa.list_(pa.int32()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = pc.fill_null(pc.match_substring_regex(col, r"^[0-9]+(,[0-9]+)*$"), True)
            i = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
            raise IngestError(
                f"{self.source.name} line {lines[i]}: {name} {col[i].as_py()!r} is not a "
                "list of integers"
            ) from None
