# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Streaming reader: gzip CSV bytes -> typed, filtered Arrow record batches.

compressed stream -> isal gzip decoder (its own thread) -> pyarrow's incremental CSV
reader (columns chosen by header NAME, case-insensitively) -> per-batch vectorized
conversion, filtering and option-ticker parsing. Memory is bounded by the block size: no
step holds more than a few blocks.

Malformed rows never vanish: rows with the wrong number of fields and rows with a value
that does not parse are counted and kept (line number, reason, text) as rejects.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import isal.igzip_threaded
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import OPTION_TRADES, STOCK_TRADES
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


class _RecordingStream(io.RawIOBase):
    """Decompressed byte stream that remembers the exception a read raised, so the error
    can be reported with the file name and offset whatever pyarrow wraps it in."""

    def __init__(self, inner: BinaryIO):
        self._inner = inner
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            return self._inner.readinto(b)
        except BaseException as e:
            self.error = e
            raise

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except BaseException as e:
            self.error = e
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _LineBlocks:
    """Cuts a decompressed stream into blocks of whole lines without copying them.

    Each item is ``(block, skipped_lines)``: with ``prefixes`` a block is narrowed to the
    span from its first to its last line starting with one of them (lines in between pass
    too: parsed rows are still filtered by ticker, so the span only has to contain every
    wanted line), and ``skipped_lines`` counts the lines left out. Massive sorts files by
    ticker, so for one ticker this skips parsing almost everything else at memchr speed.
    Lines in a block are counted as the rows parsed from it.
    """

    def __init__(self, inner: io.BufferedReader, prefixes: list[bytes] | None, block_size: int):
        self._inner = inner
        self._prefixes = prefixes
        self._needles = [b"\n" + p for p in prefixes] if prefixes else []
        self._block = block_size

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

    def __iter__(self) -> Iterator[tuple[memoryview | bytes, int]]:
        carry = b""
        while True:
            buf, n = self._read(carry)
            if n == len(carry):  # end of stream
                if carry:
                    line = carry if carry.endswith(b"\n") else carry + b"\n"
                    wanted = self._prefixes is None or any(
                        line.startswith(p) for p in self._prefixes
                    )
                    yield (line, 0) if wanted else (b"", 1)
                return
            last_nl = buf.rfind(b"\n", 0, n)
            if last_nl < 0:
                carry = bytes(buf[:n])
                continue
            carry = bytes(buf[last_nl + 1 : n])
            view = memoryview(buf)
            if self._prefixes is None:
                yield view[: last_nl + 1], 0
                continue
            # Lines from the first to the last one wanted (a line at offset 0 has no "\n").
            starts = [0] if any(buf.startswith(p) for p in self._prefixes) else []
            starts += [i + 1 for i in (buf.find(x, 0, last_nl) for x in self._needles) if i >= 0]
            if not starts:
                yield b"", buf.count(b"\n", 0, last_nl + 1)
                continue
            lasts = [i + 1 for i in (buf.rfind(x, 0, last_nl) for x in self._needles) if i >= 0]
            last = max(lasts) if lasts else 0
            end = buf.find(b"\n", last, last_nl + 1) + 1
            lo = min(starts)
            skipped = buf.count(b"\n", 0, lo) + buf.count(b"\n", end, last_nl + 1)
            yield view[lo:end], skipped


class _Restart(Exception):
    """The fast pass met input it cannot pin to a line: re-read carefully."""


class TradeReader:
    """Iterate typed, filtered record batches of one flat file.

    ``keep`` lists stock tickers (stock_trades) or underlyings (option_trades) to keep;
    ``["*"]`` keeps everything. ``on_progress`` is called after every block with the
    running :class:`ReadStats`.

    Clean files take a fast pass: pyarrow converts the columns to their types itself, on
    its thread pool. If that pass meets a malformed row (which it cannot place on a line)
    and ``reopen`` can open the file again, a careful pass re-reads it single-threaded,
    as text, skipping the rows already delivered, so every malformed row is reported with
    its line number and nothing is delivered twice.
    """

    def __init__(
        self,
        source: ByteSource,
        kind: str,
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
                    # The fast pass rejects nothing (it restarts instead): only counts reset.
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
        raw = _RecordingStream(isal.igzip_threaded.open(source.stream, "rb", threads=1))
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
            yield self._convert(batch)

    def _fast_batches(
        self, text: BinaryIO, raw: _RecordingStream, names: list[str]
    ) -> Iterator[pa.RecordBatch]:
        """Blocks of whole lines parsed with their types on two threads (pyarrow releases
        the GIL), results taken in order; at most a few blocks are in flight."""
        prefixes = None
        if self.keep is not None and names[0] == "ticker":
            prefixes = [
                ("O:" + k if self.kind == "option_trades" else k + ",").encode()
                for k in self.keep.to_pylist()
            ]
        blocks = _LineBlocks(text, prefixes, self.block_size)
        types = {c: self.columns[c][0] for c in self.present}

        def on_invalid(row: pcsv.InvalidRow) -> str:
            self._fast_invalid += 1  # threaded parsing cannot number rows: re-read carefully
            return "skip"

        parse = pcsv.ParseOptions(invalid_row_handler=on_invalid)
        convert = pcsv.ConvertOptions(
            include_columns=self.present,
            column_types=types,
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=True,
        )

        def parse_block(item: tuple[memoryview | bytes, int]) -> tuple[list[pa.RecordBatch], int]:
            block, skipped = item
            if not len(block):
                return [], skipped
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
            # Every line of the block is a row here (a malformed one restarts the read).
            lines = table.num_rows + skipped
            return [self._convert(b, fast=True) for b in table.to_batches()], lines

        pending: collections.deque[concurrent.futures.Future] = collections.deque()
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
                            raise self._io_error(raw, e) from e
                        pending.append(pool.submit(parse_block, item))
                    if not pending:
                        break
                    try:
                        outs, lines = pending.popleft().result()
                    except pa.ArrowInvalid as e:
                        if "conversion error" in str(e).lower():
                            raise _Restart(f"a value does not parse ({e})") from None
                        raise self._io_error(raw, e) from e
                    self.stats.rows_read += lines
                    for out in outs:
                        self.stats.rows_kept += out.num_rows
                        yield out
            finally:
                for f in pending:
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
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
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

    def _convert(self, batch: pa.RecordBatch, fast: bool = False) -> pa.RecordBatch:
        n = batch.num_rows
        first_row = self.stats.rows_read  # data rows (excluding skipped) before this batch
        if not fast:  # the fast pass counts lines and kept rows on the main thread
            self.stats.rows_read += n
        if n == 0:
            return pa.RecordBatch.from_pylist([], schema=self.schema)

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
        if reasons:
            local = np.fromiter(reasons, dtype=np.int64)
            in_batch = local if rows is None else rows[local]
            lines = self._line_numbers(first_row + in_batch)
            for (i, why), line in zip(reasons.items(), lines, strict=True):
                self._reject(int(line), why, _row_text(view, i))

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
        if not fast:
            self.stats.rows_kept += result.num_rows
        return result

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
        # Only the careful pass rejects rows (the fast pass restarts instead), so each
        # malformed row reaches the sink exactly once.
        reject = Reject(line, reason, text)
        self.stats.rows_rejected += 1
        if self._first_reject is None or line < self._first_reject.line:
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
        elif isinstance(cause, OSError | ValueError) and "gzip" in str(cause).lower():
            what = f"corrupt gzip data ({cause})"
        elif isinstance(cause, pa.ArrowInvalid) and "conversion error" in str(cause).lower():
            what = f"a value does not parse ({cause}); the row cannot be located without re-reading the file"
        else:
            what = f"{type(cause).__name__}: {cause}"
        return IngestError(
            f"{self.source.name}: {what} at compressed byte offset {offset:,} of "
            f"{self.source.size:,}, after {self.stats.rows_read:,} rows"
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


def _row_text(batch: pa.RecordBatch, i: int) -> str:
    return ",".join(
        "" if (v := batch.column(j)[i].as_py()) is None else str(v)
        for j in range(batch.num_columns)
    )
