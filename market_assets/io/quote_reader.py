# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Streaming reader of Massive quote flat files (``quotes_v1``) for a few tickers.

compressed stream -> gzip decoder (ISA-L on its own thread) -> blocks of whole lines ->
only the line spans that can hold wanted tickers -> pyarrow's CSV parser -> typed,
filtered Arrow record batches. Columns are found by header NAME, in any case (real stock
quote files start with ``Ticker``).

Massive sorts quote files by ticker, and an option-quotes day is tens to hundreds of GB of
gzip, so for a few tickers the reader does not parse the rest: a block whose last line
sorts before every wanted ticker is skipped after looking at that one line, a block
holding wanted lines hands the parser only their span (found at memchr speed), and once a
line sorts after every wanted ticker the reader stops and closes the source (for S3 that
closes the HTTP body: the rest of the object is never downloaded). Decompression of the
prefix up to the last wanted ticker is then the floor.

Malformed rows never vanish: a row with the wrong number of fields, a value that does not
parse, a missing ticker or SIP time, or an option ticker that does not parse is counted and
kept as a :class:`~market_assets.io.reader.Reject` (file line, reason, text). Rows outside
the wanted spans are not parsed, so they are not checked either.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import isal.igzip_threaded
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import OPTION_QUOTE_ROWS, STOCK_QUOTE_ROWS
from market_assets.io.reader import (
    MAX_KEPT_REJECTS,
    ByteSource,
    IngestError,
    ReadStats,
    Reject,
    _parse_conditions,
    _parse_number,
)
from market_assets.io.sizes import DEFAULT_BLOCK_SIZE, MIB

# Column -> (type it is parsed as, required?). Prices and sizes may be missing: a missing
# side is a quote state (Invalid), not a malformed row.
_STOCK: dict[str, tuple[pa.DataType, bool]] = {
    "ticker": (pa.string(), True),
    "ask_exchange": (pa.int32(), False),
    "ask_price": (pa.float64(), False),
    "ask_size": (pa.float64(), False),
    "bid_exchange": (pa.int32(), False),
    "bid_price": (pa.float64(), False),
    "bid_size": (pa.float64(), False),
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
    "ask_price": (pa.float64(), False),
    "ask_size": (pa.float64(), False),
    "bid_exchange": (pa.int32(), False),
    "bid_price": (pa.float64(), False),
    "bid_size": (pa.float64(), False),
    "sequence_number": (pa.int64(), False),
    "sip_timestamp": (pa.int64(), True),
}
QUOTE_KINDS: dict[str, tuple[dict[str, tuple[pa.DataType, bool]], pa.Schema]] = {
    "stock_quotes": (_STOCK, STOCK_QUOTE_ROWS),
    "option_quotes": (_OPTION, OPTION_QUOTE_ROWS),
}
_LISTS = {"conditions", "indicators"}
_TIMES = {"sip_timestamp", "participant_timestamp", "trf_timestamp"}


def open_gzip(stream: BinaryIO) -> BinaryIO:
    """Decompressed view of a gzip ``stream``: ISA-L inflate on one background thread.

    rapidgzip (parallel decompression) measured 3-6x slower on this workload on 2 shared
    cores and needs a seekable file (benchmarks/README.md), so ISA-L it is, for any stream.
    A small compressed read-ahead (8 x 256 KiB) keeps an early stop's download short.
    """
    return isal.igzip_threaded.open(stream, "rb", threads=1, block_size=256 * 1024)


def _first_field(line: bytes | bytearray | memoryview) -> bytes:
    line = bytes(line)
    cut = line.find(b",")
    return line if cut < 0 else line[:cut]


class _SortedSpans:
    """Cuts a decompressed stream of lines sorted by their first field into blocks of whole
    lines and yields ``(span, first_line)``: the part of a block from the first to the last
    line starting with one of ``keys`` (so it holds every wanted line; lines in between are
    filtered after parsing), and the file line number of its first line.

    ``keys`` are byte prefixes of wanted lines (``b"SPY,"``, ``b"O:SPY"``); ``None`` yields
    every block whole. Blocks whose last line sorts before every key are skipped without
    searching them; the iteration ends (``stopped_early``) at the first line that sorts after
    every key. ``lines`` counts the lines seen, skipped or not.
    """

    def __init__(
        self,
        inner: BinaryIO,
        keys: list[bytes] | None,
        block_size: int,
        first_line: int,
        name: str,
    ) -> None:
        self._inner = inner
        self._keys = sorted(keys) if keys is not None else None
        self._needles = [b"\n" + k for k in self._keys or ()]
        self._block = block_size
        self._name = name
        self.lines = 0
        self._line0 = first_line  # file line number of the first line of the stream
        self.stopped_early = False
        self.blocks_skipped = 0
        self._last_ticker: bytes | None = None

    def _read(self, carry: bytes) -> tuple[bytearray, int]:
        buf = bytearray(len(carry) + self._block)
        buf[: len(carry)] = carry
        n = len(carry)
        view = memoryview(buf)
        while n < len(buf):
            got = self._inner.readinto(view[n:])
            if not got:
                break
            n += got
        return buf, n

    def _blocks(self) -> Iterator[tuple[bytearray | bytes, int]]:
        """``(buffer, end)``: ``buffer[:end]`` is whole lines, each ending in a newline."""
        carry = b""
        while True:
            buf, n = self._read(carry)
            if n == len(carry):
                if carry:
                    yield (
                        (carry if carry.endswith(b"\n") else carry + b"\n"),
                        len(carry) + (0 if carry.endswith(b"\n") else 1),
                    )
                return
            last_nl = buf.rfind(b"\n", 0, n)
            if last_nl < 0:
                carry = bytes(buf[:n])
                continue
            carry = bytes(buf[last_nl + 1 : n])
            yield buf, last_nl + 1

    def _before_all(self, line: bytes) -> bool:
        k = self._keys[0]  # before the smallest key is before all of them
        return line[: len(k)] < k

    def _after_all(self, line: bytes) -> bool:
        return all(line[: len(k)] > k for k in self._keys)

    def _check_order(self, first: bytes, last: bytes) -> None:
        a, b = _first_field(first), _first_field(last)
        if (self._last_ticker is not None and a < self._last_ticker) or b < a:
            raise IngestError(
                f"{self._name}: lines are not sorted by ticker near line "
                f"{self._line0 + self.lines:,} ({a.decode(errors='replace')!r} after "
                f"{(self._last_ticker or a).decode(errors='replace')!r}); reading a few "
                "tickers skips and stops by ticker order: read it with sorted_by_ticker=False"
            )
        self._last_ticker = b

    def __iter__(self) -> Iterator[tuple[memoryview | bytes, int]]:
        for buf, end in self._blocks():
            base = self._line0 + self.lines
            if self._keys is None:
                self.lines += buf.count(b"\n", 0, end)
                yield memoryview(buf)[:end], base
                continue
            first_end = buf.find(b"\n", 0, end)
            last_start = buf.rfind(b"\n", 0, end - 1) + 1
            first = bytes(buf[: min(first_end, 64)])
            last = bytes(buf[last_start : min(end, last_start + 64)])
            self._check_order(first, last)
            if self._after_all(first):
                self.stopped_early = True
                return
            if self._before_all(last):
                self.blocks_skipped += 1
                self.lines += buf.count(b"\n", 0, end)
                continue
            starts = [0] if any(buf.startswith(k) for k in self._keys) else []
            starts += [i + 1 for i in (buf.find(x, 0, end - 1) for x in self._needles) if i >= 0]
            if starts:
                lo = min(starts)
                lasts = [i + 1 for i in (buf.rfind(x, 0, end - 1) for x in self._needles)]
                hi = buf.find(b"\n", max(lo, *lasts), end) + 1
                yield memoryview(buf)[lo:hi], base + buf.count(b"\n", 0, lo)
            self.lines += buf.count(b"\n", 0, end)
            if self._after_all(last):
                self.stopped_early = True
                return


class QuoteReader:
    """Iterate typed, filtered record batches of one quote flat file.

    ``keep`` lists stock tickers (``stock_quotes``) or underlyings (``option_quotes``: rows
    whose contract ``O:<root>...`` has a wanted root); ``["*"]`` keeps everything.
    ``sorted_by_ticker`` (Massive's order) lets the reader skip and stop early; an order
    violation seen at a block edge raises instead of losing rows. Rejects go to
    ``reject_sink`` (all) and ``rejects`` (the first ``MAX_KEPT_REJECTS``); above
    ``max_reject_fraction`` of the rows read the read fails naming the first one.
    ``on_progress`` is called after every block with the running :class:`ReadStats`.
    """

    def __init__(
        self,
        source: ByteSource,
        kind: str,
        keep: Sequence[str] = ("*",),
        block_size: int = DEFAULT_BLOCK_SIZE,
        on_progress: Callable[[ReadStats], None] | None = None,
        max_reject_fraction: float = 1.0,
        reject_sink: Callable[[Reject], None] | None = None,
        sorted_by_ticker: bool = True,
    ) -> None:
        if kind not in QUOTE_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(QUOTE_KINDS)}")
        self.source = source
        self.kind = kind
        self.columns, self.schema = QUOTE_KINDS[kind]
        wanted = None if "*" in keep else sorted({k.strip().upper() for k in keep if k.strip()})
        self.keep = None if wanted is None else pa.array(wanted, pa.string())
        self.block_size = int(block_size)
        self.on_progress = on_progress
        self.max_reject_fraction = max_reject_fraction
        self.reject_sink = reject_sink
        self.sorted_by_ticker = sorted_by_ticker
        self.stats = ReadStats(source=source.name, bytes_total=source.size)
        self.rejects: list[Reject] = []
        self._first_reject: Reject | None = None
        self.stopped_early = False
        self.blocks_skipped = 0

    @property
    def rows_read(self) -> int:
        """Data lines seen so far (parsed or skipped), malformed ones included."""
        return self.stats.rows_read

    @property
    def rows_in(self) -> int:
        """Data lines seen (as :attr:`rows_read`): up to the early stop, if any."""
        return self.stats.rows_read

    # -- public -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[pa.RecordBatch]:
        raw = open_gzip(self.source.stream)
        text = io.BufferedReader(_Readinto(raw), buffer_size=MIB)
        spans: _SortedSpans | None = None
        try:
            try:
                header = text.readline()
            except Exception as e:
                raise self._io_error(e) from e
            if not header:
                raise IngestError(f"{self.source.name}: file is empty (no header line)")
            names = self._header(header.decode("utf-8", "replace").rstrip("\r\n"))
            keys = self._keys(names)
            spans = _SortedSpans(text, keys, self.block_size, 2, self.source.name)
            it = iter(spans)
            while True:
                try:
                    item = next(it)
                except StopIteration:
                    break
                except IngestError:
                    raise
                except Exception as e:
                    raise self._io_error(e) from e
                span, first_line = item
                self.stats.rows_read = spans.lines
                out = self._parse(span, first_line, names)
                self._report()
                if out is not None and out.num_rows:
                    self.stats.rows_kept += out.num_rows
                    yield out
            self.stats.rows_read = spans.lines
            self.stopped_early = spans.stopped_early
            self.blocks_skipped = spans.blocks_skipped
        finally:
            with contextlib.suppress(Exception):
                text.close()
            if spans is not None and spans.stopped_early:
                # Stop the download: the rest of the file holds no wanted ticker.
                with contextlib.suppress(Exception):
                    self.source.stream.close()
        self._finish()

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    # -- steps --------------------------------------------------------------------------
    def _header(self, line: str) -> list[str]:
        names = [n.strip().strip('"').lower() for n in line.split(",")]
        missing = [c for c, (_, req) in self.columns.items() if req and c not in names]
        if missing:
            raise IngestError(
                f"{self.source.name} line 1: header is missing required column(s) "
                f"{', '.join(missing)}; expected (any order, any case) "
                f"{', '.join(self.columns)}; found {', '.join(names)}"
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise IngestError(f"{self.source.name} line 1: duplicate column(s) {', '.join(dupes)}")
        self.present = [c for c in self.columns if c in names]
        return names

    def _keys(self, names: list[str]) -> list[bytes] | None:
        """Line prefixes of wanted rows, or None to parse every line."""
        if self.keep is None or not self.sorted_by_ticker or names[0] != "ticker":
            return None
        if self.kind == "option_quotes":
            return [f"O:{k}".encode() for k in self.keep.to_pylist()]
        return [f"{k},".encode() for k in self.keep.to_pylist()]

    def _parse(
        self, span: memoryview | bytes, first_line: int, names: list[str]
    ) -> pa.RecordBatch | None:
        """Typed parse of one span; on any malformed row, a text parse that finds them."""
        if not len(span):
            return None
        invalid = 0

        def on_invalid(row: pcsv.InvalidRow) -> str:
            nonlocal invalid
            invalid += 1
            return "skip"

        try:
            table = self._read_csv(span, names, on_invalid, typed=True)
        except pa.ArrowInvalid as e:
            if "conversion error" not in str(e).lower():
                raise IngestError(f"{self.source.name} near line {first_line:,}: {e}") from e
            invalid = -1
        if invalid:
            return self._parse_carefully(span, first_line, names)
        lines = first_line + np.arange(table.num_rows, dtype=np.int64)
        cols = {c: table.column(c).combine_chunks() for c in self.present}
        return self._build(cols, lines, span, first_line)

    def _read_csv(
        self, span: memoryview | bytes, names: list[str], on_invalid: Any, typed: bool
    ) -> pa.Table:
        types = {c: (self.columns[c][0] if typed else pa.string()) for c in self.present}
        if typed:
            types.update({c: pa.string() for c in _LISTS if c in types})
        return pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(span)),
            read_options=pcsv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(span) + 1
            ),
            parse_options=pcsv.ParseOptions(
                invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                include_columns=self.present,
                column_types=types,
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )

    def _parse_carefully(
        self, span: memoryview | bytes, first_line: int, names: list[str]
    ) -> pa.RecordBatch:
        """Everything as text, one line at a time numbered: rows with the wrong number of
        fields and values that do not parse are rejected with their file line."""
        skipped: list[int] = []  # 0-based line offsets in the span
        found: list[Reject] = []  # emitted in line order with the rest of the span's

        def on_invalid(row: pcsv.InvalidRow) -> str:
            offset = (row.number or 1) - 1  # pyarrow numbers the span's lines from 1
            skipped.append(offset)
            found.append(
                Reject(
                    first_line + offset,
                    f"expected {row.expected_columns} fields, found {row.actual_columns}",
                    row.text,
                )
            )
            return "skip"

        table = self._read_csv(span, names, on_invalid, typed=False)
        n_lines = bytes(span).count(b"\n")
        offsets = np.setdiff1d(np.arange(n_lines, dtype=np.int64), np.asarray(skipped, np.int64))
        lines = first_line + offsets
        bad = np.zeros(table.num_rows, dtype=bool)
        reasons: dict[int, str] = {}
        cols: dict[str, pa.Array] = {}
        for name in self.present:
            typ = self.columns[name][0]
            col = table.column(name).combine_chunks()
            if name in _LISTS or typ == pa.string():
                cols[name] = col
                continue
            conv, wrong = _parse_number(col, typ)
            if wrong is not None:
                wrong_np = pc.fill_null(wrong, False).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(wrong_np & ~bad):
                    reasons[int(i)] = f"{name}: invalid value {col[int(i)].as_py()!r}"
                bad |= wrong_np
            cols[name] = conv
        found += self._rejects_of(reasons, lines, span, first_line)
        if bad.any():
            keep = pa.array(~bad)
            cols = {k: v.filter(keep) for k, v in cols.items()}
            lines = lines[~bad]
        return self._build(cols, lines, span, first_line, found)

    def _build(
        self,
        cols: dict[str, pa.Array],
        lines: np.ndarray,
        span: memoryview | bytes,
        first_line: int,
        found: list[Reject] | None = None,
    ) -> pa.RecordBatch:
        """Filter to wanted tickers, reject incomplete rows (with ``found``, the span's
        earlier rejects, in line order), shape to the output schema."""
        ticker = cols["ticker"]
        n = len(ticker)
        reasons: dict[int, str] = {}
        parsed = None
        if self.kind == "option_quotes":
            parsed, ok = parse_option_tickers(ticker)
            ok_np = ok.to_numpy(zero_copy_only=False)
            keep_np = self._mask(parsed.column("underlying"))
            for i in np.flatnonzero(~ok_np & pc.is_valid(ticker).to_numpy(zero_copy_only=False)):
                if self.keep is None or self._could_be_wanted(ticker[int(i)].as_py()):
                    reasons[int(i)] = f"unparsable option ticker {ticker[int(i)].as_py()!r}"
        else:
            keep_np = self._mask(ticker)
        good = np.ones(n, dtype=bool)
        for name, (_, required) in self.columns.items():
            if required and name in cols and cols[name].null_count:
                for i in np.flatnonzero(pc.is_null(cols[name]).to_numpy(zero_copy_only=False)):
                    if name == "ticker" or keep_np[i]:
                        reasons.setdefault(int(i), f"{name}: missing value")
        lists: dict[str, pa.Array] = {}
        for name in _LISTS & set(cols):
            conv, wrong = _parse_conditions(cols[name])
            if wrong is not None:
                wrong_np = pc.fill_null(wrong, False).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(wrong_np & keep_np):
                    reasons.setdefault(
                        int(i), f"{name}: {cols[name][int(i)].as_py()!r} is not a list of integers"
                    )
            lists[name] = conv
        if reasons:
            good[list(reasons)] = False
        found = (found or []) + self._rejects_of(reasons, lines, span, first_line)
        for reject in sorted(found, key=lambda r: r.line):
            self._reject(reject)
        final = keep_np & good
        sel = None if final.all() else pa.array(final)
        m = int(final.sum())
        out: dict[str, pa.Array] = {}
        for name, typ in zip(self.schema.names, self.schema.types, strict=True):
            if parsed is not None and name in parsed.column_names:
                arr = parsed.column(name).combine_chunks()
            elif name in lists:
                arr = lists[name]
            elif name in cols:
                arr = cols[name]
            else:
                out[name] = pa.nulls(m, typ)
                continue
            if sel is not None:
                arr = arr.filter(sel)
            if name in _TIMES:
                arr = arr.cast(pa.int64())
                if name == "trf_timestamp":
                    arr = pc.if_else(pc.equal(arr, 0), pa.scalar(None, pa.int64()), arr)
            out[name] = arr.cast(typ) if arr.type != typ else arr
        return pa.RecordBatch.from_pydict(out, schema=self.schema)

    def _could_be_wanted(self, ticker: str | None) -> bool:
        return bool(ticker) and any(ticker.startswith(f"O:{k}") for k in self.keep.to_pylist())

    def _mask(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if self.keep is None:
            return pc.is_valid(values).to_numpy(zero_copy_only=False)
        return pc.fill_null(pc.is_in(values, value_set=self.keep), False).to_numpy(
            zero_copy_only=False
        )

    @staticmethod
    def _rejects_of(
        reasons: dict[int, str], lines: np.ndarray, span: memoryview | bytes, first: int
    ) -> list[Reject]:
        """Rejects of rows ``reasons`` (row -> why), with their file lines and raw text."""
        if not reasons:
            return []
        texts = bytes(span).split(b"\n")
        return [
            Reject(int(lines[i]), why, texts[int(lines[i]) - first].decode("utf-8", "replace"))
            for i, why in reasons.items()
        ]

    def _reject(self, reject: Reject) -> None:
        self.stats.rows_rejected += 1
        if self._first_reject is None or reject.line < self._first_reject.line:
            self._first_reject = reject
        if len(self.rejects) < MAX_KEPT_REJECTS:
            self.rejects.append(reject)
        if self.reject_sink is not None:
            self.reject_sink(reject)

    def _report(self) -> None:
        self.stats.bytes_read = self.bytes_read
        if self.on_progress is not None:
            self.on_progress(self.stats)

    def _finish(self) -> None:
        self.stats.finished = time.monotonic()
        self._report()
        total = self.stats.rows_read
        if total and self.stats.rows_rejected / total > self.max_reject_fraction:
            first = self._first_reject
            raise IngestError(
                f"{self.source.name}: {self.stats.rows_rejected} of {total} rows rejected "
                f"({self.stats.rows_rejected / total:.4%}), above ingest.max_reject_fraction "
                f"= {self.max_reject_fraction:g}; first at line {first.line}: {first.reason}"
            )

    def _io_error(self, e: BaseException) -> IngestError:
        if isinstance(e, EOFError):
            what = "truncated gzip stream (the file ended before the gzip end-of-stream marker)"
        elif isinstance(e, OSError | ValueError) and "gzip" in str(e).lower():
            what = f"corrupt gzip data ({e})"
        else:
            what = f"{type(e).__name__}: {e}"
        return IngestError(
            f"{self.source.name}: {what} at compressed byte offset {self.bytes_read:,} of "
            f"{self.source.size:,}, after {self.stats.rows_read:,} rows"
        )


class _Readinto(io.RawIOBase):
    """A raw stream over a decoder, so closing the text stream closes the decoder."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if hasattr(self._inner, "readinto"):
            return self._inner.readinto(b) or 0
        data = self._inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()
