# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Streaming reader: gzip CSV bytes -> typed, filtered Arrow record batches.

compressed stream -> ISA-L gzip decoder (its own thread) -> pyarrow's incremental CSV
reader (columns chosen by header NAME, case-insensitively) -> per-batch vectorized
conversion, filtering and option-ticker parsing. Memory is bounded by the block size: no
step holds more than a few blocks.

Malformed rows never vanish: rows with the wrong number of fields, rows with a value that
does not parse and rows that break a value rule (:mod:`market_assets.core.trade_rules`:
price and size finite and above 0, SIP time on the partition's day) are counted and kept
(line number, reason, text) as rejects, handed to the sink in line order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import heapq
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import isal.isal_zlib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import OPTION_TRADES, STOCK_TRADES
from market_assets.core.trade_rules import find_violations
from market_assets.io.sizes import DEFAULT_BLOCK_SIZE, MIB

# Rejects kept in memory for error messages and inspection; every reject also goes to the
# reader's ``reject_sink`` (the asset spools them to disk), so none is lost past this.
MAX_KEPT_REJECTS = 1_000


class IngestError(RuntimeError):
    """Input that cannot be ingested; the message names the file and where."""


class ByteSource(Protocol):
    name: str
    size: int
    stream: BinaryIO

    @property
    def bytes_read(self) -> int: ...


# Column name -> (type it is parsed as, required?). Everything is read as text and
# converted per batch, so a bad value rejects one row instead of failing the block.
_STOCK_COLUMNS: dict[str, tuple[pa.DataType, bool]] = {
    "ticker": (pa.string(), True),
    "conditions": (pa.string(), True),
    "correction": (pa.int32(), True),
    "exchange": (pa.int32(), True),
    "id": (pa.string(), True),
    "participant_timestamp": (pa.int64(), False),
    "price": (pa.float64(), True),
    "sequence_number": (pa.int64(), True),
    "sip_timestamp": (pa.int64(), True),
    "size": (pa.float64(), True),
    "tape": (pa.int32(), False),
    "trf_id": (pa.int32(), False),
    "trf_timestamp": (pa.int64(), False),
}
_OPTION_COLUMNS: dict[str, tuple[pa.DataType, bool]] = {
    "ticker": (pa.string(), True),
    "conditions": (pa.string(), True),
    "correction": (pa.int32(), True),
    "exchange": (pa.int32(), True),
    "participant_timestamp": (pa.int64(), False),
    "price": (pa.float64(), True),
    "sip_timestamp": (pa.int64(), True),
    "size": (pa.float64(), True),
}
KINDS: dict[str, tuple[dict[str, tuple[pa.DataType, bool]], pa.Schema]] = {
    "stock_trades": (_STOCK_COLUMNS, STOCK_TRADES),
    "option_trades": (_OPTION_COLUMNS, OPTION_TRADES),
}
# Nullable columns: an empty field is null, not a reject.
_NULLABLE = {"correction", "participant_timestamp", "tape", "trf_id", "trf_timestamp", "id"}
_TIMESTAMPS = {"sip_timestamp", "participant_timestamp", "trf_timestamp"}
_NUMBER_RE = {
    pa.int32(): r"^-?[0-9]+$",
    pa.int64(): r"^-?[0-9]+$",
    pa.float64(): r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$",
}
_CONDITIONS_RE = r"^[0-9]+(,[0-9]+)*$"


@dataclass
class Reject:
    line: int
    reason: str
    text: str


@dataclass
class ReadStats:
    source: str
    bytes_total: int
    bytes_read: int = 0
    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class _GzipDecoder(io.RawIOBase):
    """Decompressed bytes of a gzip stream, decoded with ISA-L on a thread of its own (the
    GIL is released while it inflates), at most ``queue_size`` chunks ahead.

    Every byte that decodes is handed out before an error: a truncated file gives all its
    rows up to the cut, then ``EOFError`` (igzip's threaded reader drops the megabyte it
    was decoding, so a small truncated file looked like it had no rows at all).
    Concatenated gzip members are read one after another, as gzip does.
    """

    _IN = MIB // 4  # compressed bytes per read
    _OUT = 2 * MIB  # at most this many decompressed bytes per chunk (CSV: about 1 MiB)

    def __init__(self, compressed: BinaryIO, queue_size: int = 2):
        self._src = compressed
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(queue_size)
        self._chunk = memoryview(b"")
        self._error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._decode, name="gzip-decode", daemon=True)
        self._worker.start()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._chunk:
            if self._error is not None:
                raise self._error
            if self._done:
                return 0
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._error = item
            else:
                self._chunk = memoryview(item)
        n = min(len(b), len(self._chunk))
        b[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._worker.join()
        super().close()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _decode(self) -> None:
        last: BaseException | None = None
        try:
            inflate, in_member = isal.isal_zlib.decompressobj(31), False
            while not self._stop.is_set():
                data = self._src.read(self._IN)
                if not data:
                    if in_member and (rest := inflate.flush()):
                        self._put(rest)
                    if in_member and not inflate.eof:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
                    break
                while data:
                    in_member = True
                    out = inflate.decompress(data, self._OUT)
                    if out and not self._put(out):
                        return
                    if inflate.eof:  # end of a member: another may follow (zero padding may)
                        data = inflate.unused_data.lstrip(b"\0")
                        inflate, in_member = isal.isal_zlib.decompressobj(31), False
                    else:
                        data = inflate.unconsumed_tail
        except BaseException as e:
            last = e
        self._put(last)


class _RecordingStream(io.RawIOBase):
    """Decompressed byte stream that remembers the exception a read raised, so the error
    can be reported with the file name and offset whatever pyarrow wraps it in.

    ``position`` counts the decompressed bytes handed out; with ``count_lines`` (the
    careful pass, whose CSV reader keeps its partial block to itself) ``lines`` counts the
    complete lines among them.
    """

    def __init__(self, inner: BinaryIO, count_lines: bool = False):
        self._inner = inner
        self.error: BaseException | None = None
        self.position = 0
        self.lines: int | None = 0 if count_lines else None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            n = self._inner.readinto(b)
        except BaseException as e:
            self.error = e
            raise
        self._count(memoryview(b)[:n])
        return n

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._inner.read(n)
        except BaseException as e:
            self.error = e
            raise
        self._count(data)
        return data

    def _count(self, data: memoryview | bytes) -> None:
        self.position += len(data)
        if self.lines is not None and len(data):
            self.lines += int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _LineBlocks:
    """Cuts a decompressed stream into blocks of whole lines without copying them.

    Each item is ``(block, skipped_before, skipped_after)``: with ``prefixes`` a block is
    narrowed to the span from its first to its last line starting with one of them (lines
    in between pass too: parsed rows are still filtered by ticker, so the span only has to
    contain every wanted line), and the ``skipped_*`` counts are the lines left out before
    and after the span. Massive sorts files by ticker, so for one ticker this skips parsing
    almost everything else at memchr speed. Lines in a block are counted as the rows parsed
    from it. If the stream fails, ``partial_lines`` holds the complete lines read since
    the last block.
    """

    def __init__(
        self, inner: BinaryIO, prefixes: list[bytes] | None, block_size: int, head: bytes = b""
    ):
        self._inner = inner
        self._prefixes = prefixes
        self._needles = [b"\n" + p for p in prefixes] if prefixes else []
        self._block = block_size
        self._head = memoryview(head)  # bytes already taken from ``inner``'s stream
        self.partial_lines = 0

    def _read(self, carry: bytes) -> tuple[bytearray, int, bool]:
        """``carry`` then up to a block of the stream; True at the end of the stream."""
        buf = bytearray(len(carry) + self._block)
        buf[: len(carry)] = carry
        n = len(carry)
        view = memoryview(buf)
        while n < len(buf):
            try:
                if self._head:
                    got = min(len(self._head), len(buf) - n)
                    view[n : n + got] = self._head[:got]
                    self._head = self._head[got:]
                else:
                    got = self._inner.readinto(view[n:])
            except BaseException:
                self.partial_lines = buf.count(b"\n", 0, n)
                raise
            if not got:
                return buf, n, True
            n += got
        return buf, n, False

    def __iter__(self) -> Iterator[tuple[memoryview | bytes, int, int]]:
        carry = b""
        ended = False
        while not ended:
            buf, n, ended = self._read(carry)
            if ended and n and buf[n - 1] != 10:  # a last line without "\n", as Massive's
                buf[n] = 10
                n += 1
            if not n:
                return
            last_nl = buf.rfind(b"\n", 0, n)
            if last_nl < 0:
                carry = bytes(buf[:n])
                continue
            carry = bytes(buf[last_nl + 1 : n])
            view = memoryview(buf)
            if self._prefixes is None:
                yield view[: last_nl + 1], 0, 0
                continue
            # Lines from the first to the last one wanted (a line at offset 0 has no "\n").
            starts = [0] if any(buf.startswith(p) for p in self._prefixes) else []
            starts += [i + 1 for i in (buf.find(x, 0, last_nl) for x in self._needles) if i >= 0]
            if not starts:
                yield b"", buf.count(b"\n", 0, last_nl + 1), 0
                continue
            lasts = [i + 1 for i in (buf.rfind(x, 0, last_nl) for x in self._needles) if i >= 0]
            last = max(lasts) if lasts else 0
            end = buf.find(b"\n", last, last_nl + 1) + 1
            lo = min(starts)
            yield view[lo:end], buf.count(b"\n", 0, lo), buf.count(b"\n", end, last_nl + 1)


class _Restart(Exception):
    """The fast pass met input it cannot pin to a line: re-read carefully."""


@dataclass
class _ParsedBlock:
    """One fast-pass block: its output batches, the file lines it covers, the lines skipped
    before its first row, and its value-rule rejects as (row index in block, reason, line
    text)."""

    outs: list[pa.RecordBatch]
    lines: int
    skipped_before: int
    rejects: list[tuple[int, str, str]]


class TradeReader:
    """Iterate typed, filtered record batches of one flat file.

    ``day`` is the partition's day: a kept row whose SIP time is not on that day in New
    York time (or that breaks another rule of :mod:`market_assets.core.trade_rules`) is
    rejected. ``keep`` lists stock tickers (stock_trades) or underlyings (option_trades) to
    keep; ``["*"]`` keeps everything. ``on_progress`` is called after every block with the
    running :class:`ReadStats`.

    Clean files take a fast pass: pyarrow converts the columns to their types itself, on
    its thread pool; rows breaking a value rule are rejected there with their line numbers.
    If that pass meets a malformed row (which it cannot place on a line) and ``reopen`` can
    open the file again, a careful pass re-reads it single-threaded, as text, skipping the
    rows already delivered and the rejects already reported, so every malformed row is
    reported with its line number and nothing is delivered or reported twice.
    """

    def __init__(
        self,
        source: ByteSource,
        kind: str,
        day: dt.date,
        keep: Sequence[str] = ("*",),
        block_size: int = DEFAULT_BLOCK_SIZE,
        on_progress: Callable[[ReadStats], None] | None = None,
        max_reject_fraction: float = 1.0,
        reopen: Callable[[], ByteSource] | None = None,
        reject_sink: Callable[[Reject], None] | None = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
        self.source = source
        self.kind = kind
        self.day = day
        self.columns, self.schema = KINDS[kind]
        self.keep = None if "*" in keep else pa.array(sorted({k.upper() for k in keep}))
        self.block_size = int(block_size)
        self.on_progress = on_progress
        self.max_reject_fraction = max_reject_fraction
        self.reopen = reopen
        self.stats = ReadStats(source=source.name, bytes_total=source.size)
        self.rejects: list[Reject] = []  # the first MAX_KEPT_REJECTS
        self.reject_sink = reject_sink
        self._first_reject: Reject | None = None
        # Rejects wait here until no earlier line can be rejected, so the sink gets them in
        # line order (a careful pass numbers malformed lines before converting the rows
        # above them). Holds at most about a block's rejects.
        self._pending: list[tuple[int, int, Reject]] = []
        self._reported_through = 0  # lines up to here were read and their rejects reported
        self.careful_pass = False
        self._skipped_lines: list[int] = []
        self._fast_invalid = 0
        self._emitted = 0
        self._opened_here: list[ByteSource] = []

    # -- public -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.reopen is None:
                self.careful_pass = True
                yield from self._pass(self.source, careful=True, drop_rows=0)
            else:
                try:
                    yield from self._pass(self.source, careful=False, drop_rows=0)
                except _Restart as why:
                    delivered = self._emitted
                    self.careful_pass = True
                    self._fast_invalid = 0
                    self._skipped_lines.clear()
                    # The fast pass reported value-rule rejects up to the last block it
                    # finished (no malformed row lies there): the careful pass reports
                    # only the rejects below that line. Rows and kept counts restart.
                    self._flush()
                    self._reported_through = self.stats.rows_read + 1
                    self.stats.rows_read = self.stats.rows_kept = 0
                    source = self.reopen()
                    self._opened_here.append(source)
                    logging.getLogger(__name__).warning(
                        "%s: %s; re-reading it carefully (%d rows already written are not repeated)",
                        self.source.name,
                        why,
                        delivered,
                    )
                    yield from self._pass(source, careful=True, drop_rows=delivered)
            self._finish()
        finally:
            self._flush()  # a failed read still hands over every reject found
            for s in self._opened_here:
                with contextlib.suppress(Exception):
                    s.stream.close()

    @property
    def bytes_read(self) -> int:
        src = self._opened_here[-1] if self._opened_here else self.source
        return src.bytes_read

    # -- passes -------------------------------------------------------------------------
    def _pass(self, source: ByteSource, careful: bool, drop_rows: int) -> Iterator[pa.RecordBatch]:
        """One read of the file. The careful pass drops the first ``drop_rows`` output rows
        (already delivered by the fast pass: both passes keep the same rows in order)."""
        raw = _RecordingStream(_GzipDecoder(source.stream), count_lines=careful)
        text = io.BufferedReader(raw, buffer_size=MIB)
        try:
            header_line = self._read_header(text, raw)
            names = [n.strip().strip('"').lower() for n in header_line.split(",")]
            self._check_header(names)
            batches = (
                self._careful_batches(text, raw, names)
                if careful
                else self._fast_batches(text, raw, names)
            )
            for out in batches:
                if drop_rows:
                    cut = min(drop_rows, out.num_rows)
                    out, drop_rows = out.slice(cut), drop_rows - cut
                self._report()
                if out.num_rows:
                    self._emitted += out.num_rows
                    yield out
        finally:
            text.close()

    def _careful_batches(
        self, text: io.BufferedReader, raw: _RecordingStream, names: list[str]
    ) -> Iterator[pa.RecordBatch]:
        """Single-threaded, everything parsed as text: every malformed row gets its line."""
        reader = self._open_csv(text, raw, names)
        while reader is not None:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as e:
                raise self._io_error(raw, e) from e
            before = self.stats.rows_read
            out, _ = self._convert(batch)
            if self.stats.rows_read > before:
                # Later rejects (rows, or malformed lines further on) are below this row.
                last = self._line_numbers(np.array([self.stats.rows_read - 1]))[0]
                self._flush(int(last))
            yield out

    def _fast_batches(
        self, text: io.BufferedReader, raw: _RecordingStream, names: list[str]
    ) -> Iterator[pa.RecordBatch]:
        """Blocks of whole lines parsed with their types on two threads (pyarrow releases
        the GIL), results taken in order; at most a few blocks are in flight."""
        prefixes = None
        if self.keep is not None and names[0] == "ticker":
            prefixes = [
                ("O:" + k if self.kind == "option_trades" else k + ",").encode()
                for k in self.keep.to_pylist()
            ]
        # Blocks are read from the decompressor itself (after what the header read left
        # buffered), so a failing read loses no byte and the error can count every row.
        try:
            head = text.read1()
        except Exception as e:
            raise self._io_error(raw, e) from e
        blocks = _LineBlocks(raw, prefixes, self.block_size, head)
        types = {c: self.columns[c][0] for c in self.present}

        def on_invalid(row: pcsv.InvalidRow) -> str:
            self._fast_invalid += 1  # threaded parsing cannot number rows: re-read carefully
            return "skip"

        # An empty line is a row of nulls, not skipped: every line keeps its number.
        parse = pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False)
        convert = pcsv.ConvertOptions(
            include_columns=self.present,
            column_types=types,
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=True,
        )

        def parse_block(item: tuple[memoryview | bytes, int, int]) -> _ParsedBlock:
            block, before, after = item
            if not len(block):
                return _ParsedBlock([], before + after, before, [])
            opts = pcsv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(block) + 1
            )
            table = pcsv.read_csv(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=opts,
                parse_options=parse,
                convert_options=convert,
            )
            if self._fast_invalid:
                raise _Restart("a row has the wrong number of fields")
            # Every line of the block is a row here (a malformed one restarts the read), so
            # a row's index in the table is its line's index in the block.
            outs, violations, offset = [], [], 0
            for b in table.to_batches():
                out, broken = self._convert(b, fast=True)
                outs.append(out)
                violations += [(offset + i, why) for i, why in broken]
                offset += b.num_rows
            texts = _line_texts(block, [i for i, _ in violations])
            rejects = [(i, why, t) for (i, why), t in zip(violations, texts, strict=True)]
            return _ParsedBlock(outs, table.num_rows + before + after, before, rejects)

        pending: collections.deque[tuple[concurrent.futures.Future, tuple]] = collections.deque()
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="csv-parse") as pool:
            try:
                it = iter(blocks)
                exhausted = False
                while True:
                    while not exhausted and len(pending) < 3:
                        try:
                            item = next(it)
                        except StopIteration:
                            exhausted = True
                            break
                        except Exception as e:
                            # Rows read = lines of the blocks taken, in flight, and read
                            # since: the message must say how far the file was good.
                            in_flight = sum(
                                bytes(b[0]).count(b"\n") + b[1] + b[2] for _, b in pending
                            )
                            self.stats.rows_read += in_flight + blocks.partial_lines
                            raise self._io_error(raw, e) from e
                        pending.append((pool.submit(parse_block, item), item))
                    if not pending:
                        break
                    try:
                        done = pending.popleft()[0].result()
                    except pa.ArrowInvalid as e:
                        if "conversion error" in str(e).lower():
                            raise _Restart(f"a value does not parse ({e})") from None
                        raise self._io_error(raw, e) from e
                    first_line = self.stats.rows_read + 2 + done.skipped_before  # header: 1
                    for i, why, text in done.rejects:
                        self._reject(first_line + i, why, text)
                    self.stats.rows_read += done.lines
                    self._flush()
                    for out in done.outs:
                        self.stats.rows_kept += out.num_rows
                        yield out
            finally:
                for f, _ in pending:
                    f.cancel()

    # -- steps --------------------------------------------------------------------------
    def _read_header(self, text: io.BufferedReader, raw: _RecordingStream) -> str:
        try:
            line = text.readline()
        except Exception as e:
            raise self._io_error(raw, e) from e
        if not line:
            raise IngestError(f"{self.source.name}: file is empty (no header line)")
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def _check_header(self, names: list[str]) -> None:
        required = [c for c, (_, req) in self.columns.items() if req]
        missing = [c for c in required if c not in names]
        if missing:
            raise IngestError(
                f"{self.source.name} line 1: header is missing required column(s) "
                f"{', '.join(missing)}; expected (any order, any case) {', '.join(self.columns)}; "
                f"found {', '.join(names)}"
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise IngestError(f"{self.source.name} line 1: duplicate column(s) {', '.join(dupes)}")
        self.present = [c for c in self.columns if c in names]

    def _open_csv(self, stream: io.BufferedReader, raw: _RecordingStream, names: list[str]):
        """The careful pass's streaming reader: text columns, single-threaded, so pyarrow
        numbers every malformed line. None for a file with no data rows."""

        def on_invalid(row: pcsv.InvalidRow) -> str:
            line = (row.number or 0) + 1  # pyarrow numbers data rows after the header
            self._skipped_lines.append(line)
            self._reject(
                line,
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                row.text,
            )
            return "skip"

        try:
            if not stream.peek(1):
                return None
            return pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    column_names=names, block_size=self.block_size, use_threads=False
                ),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=on_invalid, ignore_empty_lines=False
                ),
                convert_options=pcsv.ConvertOptions(
                    include_columns=self.present,
                    column_types={c: pa.string() for c in self.present},
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=True,
                ),
            )
        except Exception as e:
            raise self._io_error(raw, e) from e

    def _convert(
        self, batch: pa.RecordBatch, fast: bool = False
    ) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
        """Typed, filtered rows of ``batch``. The careful pass rejects bad rows itself; the
        fast pass (on a worker thread, not knowing line numbers) restarts on a malformed
        value and returns the rows breaking a value rule as (index in batch, reason)."""
        n = batch.num_rows
        first_row = self.stats.rows_read  # data rows (excluding skipped) before this batch
        if not fast:  # the fast pass counts lines and kept rows on the main thread
            self.stats.rows_read += n
        if n == 0:
            return pa.RecordBatch.from_pylist([], schema=self.schema), []

        # Filter first (on the raw ticker text) so only kept rows are converted; rows whose
        # option ticker does not parse stay in view so they are reported, not dropped.
        ticker = batch.column("ticker")
        reasons: dict[int, str] = {}
        if self.kind == "option_trades":
            parsed, ok = parse_option_tickers(ticker)
            ok_np = ok.to_numpy(zero_copy_only=False)
            keep_np = self._keep_mask(parsed.column("underlying"))
            view_np = keep_np | ~ok_np
        else:
            parsed, ok_np = None, None
            keep_np = view_np = self._keep_mask(ticker)
        if view_np.all():
            rows = None
            view = batch
        else:
            rows = np.flatnonzero(view_np)
            idx = pa.array(rows)
            view = batch.take(idx)
            if parsed is not None:
                parsed = parsed.take(idx)
            keep_np, ok_np = keep_np[rows], (ok_np[rows] if ok_np is not None else None)
        m = view.num_rows
        good = np.ones(m, dtype=bool)
        if ok_np is not None and not ok_np.all():
            for i in np.flatnonzero(~ok_np):
                reasons.setdefault(
                    int(i), f"unparsable option ticker {view.column('ticker')[i].as_py()!r}"
                )
            good &= ok_np

        converted: dict[str, pa.Array] = {}
        for name in self.present:
            typ, _ = self.columns[name]
            col = view.column(name)
            if name == "conditions":
                conv, bad = _parse_conditions(col)
            elif col.type == typ:
                conv, bad = col, None
                if name not in _NULLABLE and col.null_count:
                    bad = pc.is_null(col)
            else:
                conv, bad = _parse_number(col, typ)
                if name not in _NULLABLE and col.null_count:
                    nulls = pc.is_null(col)
                    bad = nulls if bad is None else pc.or_(bad, nulls)
            if bad is not None:
                bad_np = pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
                if bad_np.any():
                    for i in np.flatnonzero(bad_np):
                        v = col[i].as_py()
                        reasons.setdefault(
                            int(i),
                            f"{name}: {'missing value' if v is None else f'cannot parse {v!r}'}",
                        )
                    good &= ~bad_np
            converted[name] = conv

        if reasons and fast:
            # The fast pass does not know line numbers: re-read carefully to report them.
            raise _Restart(next(iter(reasons.values())))

        final = good & keep_np
        sel = None if final.all() else pa.array(final)
        out = {}
        for name, field_ in zip(self.schema.names, self.schema, strict=True):
            if parsed is not None and name in parsed.column_names:
                arr = parsed.column(name).combine_chunks()
            elif name in converted:
                arr = converted[name]
            else:
                arr = pa.nulls(m, field_.type)
            if sel is not None:
                arr = arr.filter(sel)
            if name in _TIMESTAMPS:
                if name == "trf_timestamp":
                    arr = pc.if_else(pc.equal(arr, 0), pa.scalar(None, pa.int64()), arr)
                arr = arr.cast(pa.int64()).cast(field_.type)
            elif arr.type != field_.type:
                arr = arr.cast(field_.type)
            out[name] = arr
        result = pa.RecordBatch.from_pydict(out, schema=self.schema)

        broken: list[tuple[int, str]] = []
        violations = find_violations(result, self.day)
        if len(violations):
            in_view = np.flatnonzero(final)[violations.rows]
            passing = np.ones(result.num_rows, dtype=bool)
            passing[violations.rows] = False
            result = result.filter(pa.array(passing))
            why = violations.reasons.to_pylist()
            if fast:
                in_batch = in_view if rows is None else rows[in_view]
                broken = list(zip(in_batch.tolist(), why, strict=True))
            else:
                reasons.update(zip(in_view.tolist(), why, strict=True))
        if reasons:
            local = np.array(sorted(reasons), dtype=np.int64)
            in_batch = local if rows is None else rows[local]
            lines = self._line_numbers(first_row + in_batch)
            for i, line in zip(local.tolist(), lines.tolist(), strict=True):
                text = _row_text(view, i)
                self._reject(line, reasons[i] if text.strip(",") else "empty line", text)
        if not fast:
            self.stats.rows_kept += result.num_rows
        return result, broken

    def _keep_mask(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if self.keep is None:
            return np.ones(len(values), dtype=bool)
        return pc.fill_null(pc.is_in(values, value_set=self.keep), False).to_numpy(
            zero_copy_only=False
        )

    def _line_numbers(self, data_rows: np.ndarray) -> np.ndarray:
        """File line numbers (header = 1) of 0-based data-row indices, skipping the lines
        the CSV parser rejected (those are not data rows)."""
        skipped = np.sort(np.asarray(self._skipped_lines, dtype=np.int64))
        lines = data_rows + 2
        # Each skipped line at or before a candidate pushes it one line further down.
        for _ in range(len(skipped) + 1):
            moved = data_rows + 2 + np.searchsorted(skipped, lines, side="right")
            if np.array_equal(moved, lines):
                break
            lines = moved
        return lines

    def _reject(self, line: int, reason: str, text: str) -> None:
        """Count a rejected row and queue it for the sink (see :meth:`_flush`)."""
        if line <= self._reported_through:
            return  # reported by the fast pass before it restarted
        reject = Reject(line, reason, text)
        self.stats.rows_rejected += 1
        if self._first_reject is None or line < self._first_reject.line:
            self._first_reject = reject
        heapq.heappush(self._pending, (line, self.stats.rows_rejected, reject))

    def _flush(self, through_line: int | None = None) -> None:
        """Hand queued rejects up to ``through_line`` (all by default) to the sink, in line
        order; the caller knows no reject below that line can still come."""
        while self._pending and (through_line is None or self._pending[0][0] <= through_line):
            reject = heapq.heappop(self._pending)[2]
            if len(self.rejects) < MAX_KEPT_REJECTS:
                self.rejects.append(reject)
            if self.reject_sink is not None:
                self.reject_sink(reject)

    def _report(self) -> None:
        self.stats.bytes_read = self.bytes_read
        if self.on_progress is not None:
            self.on_progress(self.stats)

    def _finish(self) -> None:
        self._flush()
        self.stats.finished = time.monotonic()
        self._report()
        total = self.stats.rows_read + len(self._skipped_lines)
        if total and self.stats.rows_rejected / total > self.max_reject_fraction:
            first = self._first_reject
            raise IngestError(
                f"{self.source.name}: {self.stats.rows_rejected} of {total} rows rejected "
                f"({self.stats.rows_rejected / total:.4%}), above ingest.max_reject_fraction "
                f"= {self.max_reject_fraction:g}; first at line {first.line}: {first.reason}"
            )

    @property
    def rows_in(self) -> int:
        """Data rows in the file, malformed ones included."""
        return self.stats.rows_read + len(self._skipped_lines)

    def _io_error(self, raw: _RecordingStream, e: BaseException) -> IngestError:
        cause = raw.error or e
        offset = self.bytes_read
        if isinstance(cause, EOFError):
            what = "truncated gzip stream (the file ended before the gzip end-of-stream marker)"
        elif isinstance(cause, isal.isal_zlib.error):
            what = f"corrupt gzip data ({cause})"
        elif isinstance(cause, pa.ArrowInvalid) and "conversion error" in str(cause).lower():
            what = f"a value does not parse ({cause}); the row cannot be located without re-reading the file"
        else:
            what = f"{type(cause).__name__}: {cause}"
        # Complete data lines decompressed before the failure (the header excluded).
        rows = self.stats.rows_read if raw.lines is None else max(raw.lines - 1, 0)
        return IngestError(
            f"{self.source.name}: {what} at compressed byte offset {offset:,} of "
            f"{self.source.size:,} (decompressed byte {raw.position:,}), after {rows:,} rows"
        )


def _parse_number(col: pa.Array, typ: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """Cast text to ``typ``; on failure find the bad rows, null them, and return them."""
    try:
        return pc.cast(col, typ), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    trimmed = pc.utf8_trim_whitespace(col)
    okay = pc.match_substring_regex(trimmed, _NUMBER_RE[typ])
    bad = pc.and_(pc.is_valid(col), pc.invert(pc.fill_null(okay, False)))
    cleaned = pc.if_else(bad, pa.scalar(None, pa.string()), trimmed)
    try:
        return pc.cast(cleaned, typ), bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Integers that match the pattern but overflow the type: find them through float64,
    # checking one by one only the few values near the type's limits.
    limit = float(np.iinfo(np.int32 if typ == pa.int32() else np.int64).max)
    magnitude = np.abs(pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False))
    overflow = np.nan_to_num(magnitude, nan=0.0) > limit * 0.999
    for i in np.flatnonzero(overflow):
        try:
            pc.cast(cleaned[i : i + 1], typ)
            overflow[i] = False
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    bad = pc.or_(bad, pa.array(overflow))
    cleaned = pc.if_else(pa.array(overflow), pa.scalar(None, pa.string()), cleaned)
    return pc.cast(cleaned, typ), bad


def _parse_conditions(col: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """``"12,37"`` / ``"12"`` / empty -> list<int32> (null when empty)."""
    lists = pc.split_pattern(col, ",")
    try:
        return pc.cast(lists, pa.list_(pa.int32())), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    okay = pc.match_substring_regex(pc.utf8_replace_slice(col, 0, 0, ""), _CONDITIONS_RE)
    bad = pc.and_(pc.is_valid(col), pc.invert(pc.fill_null(okay, False)))
    cleaned = pc.if_else(bad, pa.scalar(None, pa.string()), col)
    return pc.cast(pc.split_pattern(cleaned, ","), pa.list_(pa.int32())), bad


def _line_texts(block: memoryview | bytes, rows: list[int]) -> list[str]:
    """The text of the given lines (0-based) of a block of whole lines."""
    if not rows:
        return []
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    texts = []
    for r in rows:
        start = int(ends[r - 1]) + 1 if r else 0
        texts.append(bytes(block[start : int(ends[r])]).decode("utf-8", "replace").rstrip("\r"))
    return texts


def _row_text(batch: pa.RecordBatch, i: int) -> str:
    return ",".join(
        "" if (v := batch.column(j)[i].as_py()) is None else str(v)
        for j in range(batch.num_columns)
    )
