# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Massive's WebSocket messages: the one place that turns normalised rows into the feed's
JSON and back.

A frame is a JSON array of events. Each event is an object with ``ev`` (``T`` trade, ``Q``
quote, ``status``) and short field names. The tables below (``FIELDS``) are the wire
format, used by both directions:

=============  ==================================================================
stocks ``T``   ``sym`` ticker, ``x`` exchange, ``i`` trade id, ``z`` tape, ``p`` price,
               ``s`` size, ``ds`` size as a decimal string (only for fractional sizes),
               ``c`` conditions, ``t`` SIP time, ``q`` sequence number, ``trfi`` TRF id,
               ``trft`` TRF time
options ``T``  ``sym`` contract, ``x``, ``p``, ``s``, ``c``, ``t``, ``q``
stocks ``Q``   ``sym``, ``bx``/``bp``/``bs`` bid exchange/price/size, ``ax``/``ap``/``as``
               ask, ``c`` condition (one integer), ``i`` indicators, ``t``, ``q``, ``z``
options ``Q``  ``sym``, ``bx``, ``ax``, ``bp``, ``ap``, ``bs``, ``as``, ``t``, ``q``
=============  ==================================================================

Choices, where the flat file and the feed differ:

- Times: ``t`` (and ``trft``) are Unix **milliseconds**, as Massive documents for every
  field of these four channels (the flat files' nanoseconds, floored). The feed has no
  nanosecond or participant time; decoding gives ``sip_timestamp = t * 1_000_000`` ns.
- Absent values are omitted, not null: no ``c`` for a trade without conditions, no
  ``z``/``trfi``/``trft`` when the flat file has none (as the real feed and Massive's own
  client tests do).
- ``s`` is an integer (the spec's type). A fractional size (flat files carry them from
  2026) is sent as ``s`` = its integer part plus ``ds`` = the exact decimal text; decoding
  prefers ``ds``. (``ds`` is what massive 2.9.1 reads as ``fractional_shares``.)
- Stock quotes: ``c`` is the first of the flat file's conditions (the feed has one).
  Quote sizes are sent as the flat file has them (Massive's WebSocket docs describe
  ``bs``/``as`` in round lots; the SIP moved to shares in November 2025, as the files did).
- Option trades: OPRA flat files have no sequence number; ``q`` is the trade's 1-based
  position among its contract's trades in the file (unique and rising per contract, as
  Massive documents ``q``). It is kept as ``sequence_number`` when decoded.
- The feed carries no correction code: a corrected trade is sent like any other.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from market_assets.core.option_symbols import parse_option_tickers
from market_assets.core.schemas import STOCK_TRADES
from market_assets.live.schemas import OPTION_QUOTES, STOCK_QUOTES, WIRE_OPTION_TRADES

MARKETS = ("stocks", "options")
CHANNELS = ("T", "Q")
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class WireField:
    """One event field: its short ``key``, the normalised ``column`` and how it is coded."""

    key: str
    column: str
    codec: str  # str | int | float | size | ms | int_list | first_int
    required: bool = False


_F = WireField
FIELDS: dict[tuple[str, str], tuple[WireField, ...]] = {
    ("stocks", "T"): (
        _F("sym", "ticker", "str", True),
        _F("x", "exchange", "int", True),
        _F("i", "id", "str"),
        _F("z", "tape", "int"),
        _F("p", "price", "float", True),
        _F("s", "size", "size", True),
        _F("c", "conditions", "int_list"),
        _F("t", "sip_timestamp", "ms", True),
        _F("q", "sequence_number", "int"),
        _F("trfi", "trf_id", "int"),
        _F("trft", "trf_timestamp", "ms"),
    ),
    ("options", "T"): (
        _F("sym", "ticker", "str", True),
        _F("x", "exchange", "int", True),
        _F("p", "price", "float", True),
        _F("s", "size", "size", True),
        _F("c", "conditions", "int_list"),
        _F("t", "sip_timestamp", "ms", True),
        _F("q", "sequence_number", "int"),
    ),
    ("stocks", "Q"): (
        _F("sym", "ticker", "str", True),
        _F("bx", "bid_exchange", "int"),
        _F("bp", "bid_price", "float", True),
        _F("bs", "bid_size", "int", True),
        _F("ax", "ask_exchange", "int"),
        _F("ap", "ask_price", "float", True),
        _F("as", "ask_size", "int", True),
        _F("c", "conditions", "first_int"),
        _F("i", "indicators", "int_list"),
        _F("t", "sip_timestamp", "ms", True),
        _F("q", "sequence_number", "int"),
        _F("z", "tape", "int"),
    ),
    ("options", "Q"): (
        _F("sym", "ticker", "str", True),
        _F("bx", "bid_exchange", "int"),
        _F("ax", "ask_exchange", "int"),
        _F("bp", "bid_price", "float", True),
        _F("ap", "ask_price", "float", True),
        _F("bs", "bid_size", "int", True),
        _F("as", "ask_size", "int", True),
        _F("t", "sip_timestamp", "ms", True),
        _F("q", "sequence_number", "int"),
    ),
}

SCHEMAS: dict[tuple[str, str], pa.Schema] = {
    ("stocks", "T"): STOCK_TRADES,
    ("options", "T"): WIRE_OPTION_TRADES,
    ("stocks", "Q"): STOCK_QUOTES,
    ("options", "Q"): OPTION_QUOTES,
}

# --- status messages -----------------------------------------------------------------------

CONNECTED = ("connected", "Connected Successfully")
AUTH_SUCCESS = ("auth_success", "authenticated")
AUTH_FAILED = ("auth_failed", "authentication failed")


def subscribed(topic: str) -> tuple[str, str]:
    return ("success", f"subscribed to: {topic}")


def unsubscribed(topic: str) -> tuple[str, str]:
    return ("success", f"unsubscribed to: {topic}")


def status_frame(*statuses: tuple[str, str]) -> str:
    """A frame of ``status`` events, e.g. ``status_frame(AUTH_SUCCESS)``."""
    return json.dumps(
        [{"ev": "status", "status": s, "message": m} for s, m in statuses],
        separators=(",", ":"),
    )


def frame(messages: Iterable[str]) -> str:
    """A frame (JSON array) of already encoded events."""
    return "[" + ",".join(messages) + "]"


# --- rows -> wire (vectorized) --------------------------------------------------------------


def _json_string(values: pa.Array) -> pa.Array:
    text = pc.cast(values, pa.string())
    if pc.any(pc.match_substring_regex(text, r'["\\]')).as_py():
        text = pc.replace_substring(text, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
    return pc.binary_join_element_wise('"', text, '"', "")


def _finite_text(values: pa.Array) -> pa.Array:
    values = pc.cast(values, pa.float64())
    finite = pc.is_finite(values)
    return pc.cast(pc.if_else(finite, values, pa.scalar(None, pa.float64())), pa.string())


def _int_text(values: pa.Array) -> pa.Array:
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, values.type))
        values = pc.cast(pc.floor(values), pa.int64(), safe=False)
    return pc.cast(values, pa.string())


def _ms_text(values: pa.Array) -> pa.Array:
    ns = pc.cast(values, pa.int64())
    return pc.cast(pc.divide(ns, NS_PER_MS), pa.string())


def _int_list_text(values: pa.Array) -> pa.Array:
    non_empty = pc.greater(pc.fill_null(pc.list_value_length(values), 0), 0)
    joined = pc.binary_join(pc.cast(values, pa.list_(pa.string())), ",")
    text = pc.binary_join_element_wise("[", joined, "]", "")
    return pc.if_else(non_empty, text, pa.scalar(None, pa.string()))


def _first_int_text(values: pa.Array) -> pa.Array:
    non_empty = pc.greater(pc.fill_null(pc.list_value_length(values), 0), 0)
    safe = pc.if_else(non_empty, values, pa.scalar([0], values.type))
    first = pc.list_element(safe, 0)
    return pc.if_else(non_empty, pc.cast(first, pa.string()), pa.scalar(None, pa.string()))


def _piece(key: str, text: pa.Array) -> pa.Array:
    """``,"key":text``, or an empty string where ``text`` is null (the value is absent)."""
    return pc.fill_null(pc.binary_replace_slice(text, 0, 0, f',"{key}":'), "")


def _pieces(f: WireField, values: pa.Array) -> list[pa.Array]:
    """The field's ``,"key":value`` texts (empty where the value is absent)."""
    if f.codec == "str":
        text = _json_string(values)
    elif f.codec == "int":
        text = _int_text(values)
    elif f.codec == "float":
        text = _finite_text(values)
    elif f.codec == "ms":
        text = _ms_text(values)
    elif f.codec == "int_list":
        text = _int_list_text(values)
    elif f.codec == "first_int":
        text = _first_int_text(values)
    elif f.codec == "size":
        size = pc.cast(values, pa.float64())
        size = pc.if_else(pc.is_finite(size), size, pa.scalar(None, pa.float64()))
        fractional = pc.fill_null(pc.not_equal(size, pc.floor(size)), False)
        decimal = pc.if_else(fractional, _json_string(pc.cast(size, pa.string())), None)
        return [_piece(f.key, _int_text(size)), _piece("ds", decimal)]
    else:  # pragma: no cover - the tables above use only the codecs handled here
        raise ValueError(f"unknown codec {f.codec!r}")
    return [_piece(f.key, text)]


def encode_events(batch: pa.RecordBatch | pa.Table, market: str, channel: str) -> pa.Array:
    """One JSON event object per row of ``batch`` (columns of ``SCHEMAS[market, channel]``;
    a missing optional column is sent as absent), as a string array."""
    fields = FIELDS[(market, channel)]
    n = batch.num_rows
    if n == 0:
        return pa.array([], pa.string())
    names = set(batch.schema.names)
    pieces: list[pa.Array] = [pa.repeat(pa.scalar(f'{{"ev":"{channel}"'), n)]
    for f in fields:
        if f.column not in names:
            if f.required:
                raise ValueError(f"{market} {channel} rows need a {f.column!r} column")
            continue
        col = batch.column(f.column)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        pieces += _pieces(f, col)
    pieces.append(pa.repeat(pa.scalar("}"), n))
    return pc.binary_join_element_wise(*pieces, "")


# --- wire -> rows -------------------------------------------------------------------------


class MalformedFrame(ValueError):
    """A frame that is not a JSON array of objects."""


def decode_frame(data: str | bytes) -> list[dict[str, Any]]:
    """The events of one frame; raises :class:`MalformedFrame` for anything else."""
    try:
        events = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedFrame(f"invalid JSON: {e}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise MalformedFrame("a frame must be a JSON array of objects")
    return events


@dataclass
class Decoded:
    """The events of some frames of one market, sorted by kind; rows are normalised."""

    trades: pa.RecordBatch
    quotes: pa.RecordBatch
    statuses: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_bits(typ: pa.DataType) -> int:
    """Bits of the integers a column holds (its list items' for a list column)."""
    if pa.types.is_list(typ):
        typ = typ.value_type
    return typ.bit_width if pa.types.is_integer(typ) else 64


# The integer range of each field's column (an exchange id is an int32, ``q`` an int64).
_BITS: dict[tuple[str, str], dict[str, int]] = {
    ch: {f.key: _int_bits(SCHEMAS[ch].field(f.column).type) for f in fs}
    for ch, fs in FIELDS.items()
}
_MAX_MS = (2**63 - 1) // NS_PER_MS
_MIN_MS = -(2**63) // NS_PER_MS  # both ends: the time in ns must fit an int64


def _int_in_range(f: WireField, v: int, bits: int) -> int:
    lo, hi = (_MIN_MS, _MAX_MS) if f.codec == "ms" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"field {f.key!r}: {v} is out of range")
    return v


def _value(f: WireField, event: dict[str, Any], bits: int = 64) -> Any:
    """The normalised value of field ``f`` in ``event`` (its column holds ``bits``-bit
    integers); ValueError says what is wrong."""
    v = event.get(f.key)
    if v is None:
        if f.required:
            raise ValueError(f"missing field {f.key!r}")
        return None
    codec = f.codec
    if codec == "str":
        if not isinstance(v, str) or not v:
            raise ValueError(f"field {f.key!r}: expected a non-empty string, got {v!r}")
        return v
    if codec in ("int", "ms", "first_int"):
        if not _is_int(v):
            raise ValueError(f"field {f.key!r}: expected an integer, got {v!r}")
        v = _int_in_range(f, v, bits)
        return v * NS_PER_MS if codec == "ms" else [v] if codec == "first_int" else v
    if codec == "float":
        try:  # an integer past float's range overflows
            ok = (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
        except OverflowError:
            ok = False
        if not ok:
            raise ValueError(f"field {f.key!r}: expected a finite number, got {v!r}")
        return float(v)
    if codec == "size":
        if not _is_int(v):
            raise ValueError(f"field {f.key!r}: expected an integer, got {v!r}")
        v = _int_in_range(f, v, 64)
        ds = event.get("ds")
        if ds is None:
            return float(v)
        try:
            size = float(ds)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"field 'ds': expected a decimal string, got {ds!r}") from None
        if not math.isfinite(size) or math.floor(size) != v:
            raise ValueError(f"field 'ds' {ds!r} does not match 's' {v!r}")
        return size
    if codec == "int_list":
        if not isinstance(v, list) or not all(_is_int(x) for x in v):
            raise ValueError(f"field {f.key!r}: expected a list of integers, got {v!r}")
        return [_int_in_range(f, x, bits) for x in v] or None
    raise ValueError(f"unknown codec {codec!r}")  # pragma: no cover


def _rows(
    events: Sequence[dict[str, Any]], market: str, channel: str
) -> tuple[pa.RecordBatch, list[tuple[str, dict[str, Any]]]]:
    fields = FIELDS[(market, channel)]
    schema = SCHEMAS[(market, channel)]
    bits = [_BITS[(market, channel)][f.key] for f in fields]
    columns: dict[str, list[Any]] = {f.column: [] for f in fields}
    bad: list[tuple[str, dict[str, Any]]] = []
    good: list[dict[str, Any]] = []
    for event in events:
        try:
            values = [_value(f, event, b) for f, b in zip(fields, bits, strict=True)]
        except ValueError as e:
            bad.append((str(e), event))
            continue
        good.append(event)
        for f, v in zip(fields, values, strict=True):
            columns[f.column].append(v)
    n = len(good)
    arrays: dict[str, pa.Array] = {}
    for name, typ in zip(schema.names, schema.types, strict=True):
        if name in columns:
            values = columns[name]
            if pa.types.is_timestamp(typ):
                arrays[name] = pa.array(values, pa.int64()).cast(typ)
            else:
                arrays[name] = pa.array(values, typ)
    if market == "options" and channel == "T":
        parsed, ok = parse_option_tickers(pa.array(columns["ticker"], pa.string()))
        ok_list = ok.to_pylist()
        if not all(ok_list):
            keep = pa.array(ok_list)
            for i in (i for i, parsed_ok in enumerate(ok_list) if not parsed_ok):
                bad.append((f"field 'sym': {good[i]['sym']!r} is not an option ticker", good[i]))
            arrays = {k: v.filter(keep) for k, v in arrays.items()}
            parsed = parsed.filter(keep)
            n = len(arrays["ticker"])
        for name in parsed.column_names:
            arrays[name] = parsed.column(name).combine_chunks()
    out = {
        name: arrays.get(name, pa.nulls(n, typ))
        for name, typ in zip(schema.names, schema.types, strict=True)
    }
    return pa.RecordBatch.from_pydict(out, schema=schema), bad


def decode_events(events: Iterable[dict[str, Any]], market: str) -> Decoded:
    """Normalised trade and quote rows of ``market``'s events (``decode_frame`` output);
    status events, events of other types and malformed events are returned apart."""
    if market not in MARKETS:
        raise ValueError(f"unknown market {market!r}; expected one of {MARKETS}")
    by_channel: dict[str, list[dict[str, Any]]] = {"T": [], "Q": []}
    statuses, unknown = [], []
    for event in events:
        ev = event.get("ev")
        if ev in by_channel:
            by_channel[ev].append(event)
        elif ev == "status":
            statuses.append(event)
        else:
            unknown.append(event)
    trades, bad_trades = _rows(by_channel["T"], market, "T")
    quotes, bad_quotes = _rows(by_channel["Q"], market, "Q")
    return Decoded(trades, quotes, statuses, unknown, bad_trades + bad_quotes)


# --- trade frames -> rows, fast path -----------------------------------------------------

_JSON_TYPES = {
    "str": pa.string(),
    "int": pa.int64(),
    "ms": pa.int64(),
    "float": pa.float64(),
    "size": pa.int64(),
    "int_list": pa.list_(pa.int64()),
}
_TRADE_OPENING = b'{"ev":"T",'
_QUOTE_OPENING = b'{"ev":"Q",'
_TRADE_LINE = re.compile(rb'^\{"ev":"T",.*$', re.MULTILINE)
_QUOTE_LINE = re.compile(rb'^\{"ev":"Q",.*$', re.MULTILINE)
_JSON_TYPES["first_int"] = pa.int64()


def _json_schema(market: str, channel: str = "T") -> pa.Schema:
    fields = [pa.field("ev", pa.string())]
    fields += [pa.field(f.key, _JSON_TYPES[f.codec]) for f in FIELDS[(market, channel)]]
    extra = [pa.field("ds", pa.string())] if channel == "T" else []
    return pa.schema([*fields, *extra])


def _read_lines(lines: list[bytes], parse: pj.ParseOptions) -> pa.Table | None:
    """JSON objects, one per line, as one table (None when the reader refuses them)."""
    data = b"\n".join(lines)
    # One block: one chunk, parsed on this thread (the event loop's; no pool hand-off).
    options = pj.ReadOptions(use_threads=False, block_size=1 << max(16, len(data).bit_length()))
    try:
        return pj.read_json(io.BytesIO(data), read_options=options, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


class TradeDecoder:
    """Trade frames of one market decoded by pyarrow's JSON reader: one Arrow batch for
    several frames, no Python object per event.

    :meth:`decode` takes only what it decodes exactly as :func:`decode_events` would: frames
    written as the feed writes them (``[{"ev":"T",...},...]``, compact), holding trades only,
    every field of the expected type and range, required fields present and no ``ds``
    (fractional size). Anything else (quotes, statuses, a bad event, another spelling)
    returns None and the caller decodes those frames with :func:`decode_frame` and
    :func:`decode_events`, which sort out what is wrong event by event. Option contracts
    are parsed once per contract (kept for the run: a day has thousands).
    """

    def __init__(self, market: str) -> None:
        if market not in MARKETS:
            raise ValueError(f"unknown market {market!r}; expected one of {MARKETS}")
        self.market = market
        self.schema = SCHEMAS[(market, "T")]
        self._parse = pj.ParseOptions(
            explicit_schema=_json_schema(market), unexpected_field_behavior="ignore"
        )
        self._parse_quotes = pj.ParseOptions(
            explicit_schema=_json_schema(market, "Q"), unexpected_field_behavior="ignore"
        )
        self._contract_rows: dict[str, int] = {}
        self._contracts = _ContractColumns()

    def decode(self, frames: Sequence[str | bytes]) -> tuple[pa.RecordBatch, list[int]] | None:
        """The trades of ``frames`` (trades only) in order and the number of events of each
        frame; None when a frame needs the event-by-event path or holds a quote."""
        out = self.decode_with_quotes(frames)
        if out is None or out[2].num_rows:
            return None
        return out[0], out[1]

    def decode_with_quotes(
        self, frames: Sequence[str | bytes]
    ) -> tuple[pa.RecordBatch, list[int], pa.RecordBatch] | None:
        """:meth:`decode` for frames of trades and quotes (``[{"ev":"T",...},{"ev":"Q",...}]``
        in any mix): the trades, each frame's number of trades, and the quotes; None when a
        frame needs the event-by-event path (a status, a bad event, another spelling)."""
        trade_lines: list[bytes] = []
        quote_lines: list[bytes] = []
        counts = []
        for text in frames:
            data = text.encode() if isinstance(text, str) else bytes(text)
            if not (data.startswith(b"[{") and data.endswith(b"}]")):
                return None
            body = data[1:-1]
            n = body.count(b"},{") + 1
            # A "},{" inside a string splits it across lines: the counts then disagree, or
            # the reader rejects it.
            n_trades, n_quotes = body.count(_TRADE_OPENING), body.count(_QUOTE_OPENING)
            if n_trades + n_quotes != n:
                return None
            events = body.replace(b"},{", b"}\n{")
            if not n_quotes:
                trade_lines.append(events)
            elif not n_trades:
                quote_lines.append(events)
            else:  # mixed: each kind's lines picked out by the regex engine, not per event
                trades_of, quotes_of = _TRADE_LINE.findall(events), _QUOTE_LINE.findall(events)
                if len(trades_of) != n_trades or len(quotes_of) != n_quotes:
                    return None
                trade_lines.append(b"\n".join(trades_of))
                quote_lines.append(b"\n".join(quotes_of))
            counts.append(n_trades)
        trades = pa.RecordBatch.from_pylist([], schema=self.schema)
        if trade_lines:
            table = _read_lines(trade_lines, self._parse)
            if table is None or table.num_rows != sum(counts):
                return None
            trades = self._rows(table.combine_chunks())
            if trades is None:
                return None
        quotes = pa.RecordBatch.from_pylist([], schema=SCHEMAS[(self.market, "Q")])
        if quote_lines:
            table = _read_lines(quote_lines, self._parse_quotes)
            if table is None or table.num_rows != sum(x.count(b"\n") + 1 for x in quote_lines):
                return None
            quotes = _quote_rows(table.combine_chunks(), self.market)
            if quotes is None:
                return None
        return trades, counts, quotes

    def _rows(self, t: pa.Table) -> pa.RecordBatch | None:
        arrays = _read_columns(t, self.market, "T")
        if arrays is None:
            return None
        n = len(t)
        if self.market == "options":
            parsed = self._parsed(arrays["ticker"])
            if parsed is None:
                return None
            arrays.update(parsed)
        out = [
            arrays.get(name, pa.nulls(n, typ))
            for name, typ in zip(self.schema.names, self.schema.types, strict=True)
        ]
        return pa.RecordBatch.from_arrays(out, schema=self.schema)

    def _parsed(self, tickers: pa.Array) -> dict[str, pa.Array] | None:
        """The contract columns of ``tickers`` (None when one does not parse)."""
        enc = pc.dictionary_encode(tickers)
        names = enc.dictionary.to_pylist()
        new = [s for s in names if s not in self._contract_rows]
        if new:
            parsed, ok = parse_option_tickers(pa.array(new, pa.string()))
            if not pc.all(ok).as_py():
                return None
            for s in new:
                self._contract_rows[s] = len(self._contract_rows)
            self._contracts.extend(parsed.combine_chunks())
        rows = np.array([self._contract_rows[s] for s in names], dtype=np.int64)
        return self._contracts.take(rows[enc.indices.to_numpy(zero_copy_only=False)])


class _ContractColumns:
    """The parsed columns of every contract seen (row = contract number), in numpy arrays
    that grow by doubling: adding contracts never copies the cache per batch."""

    def __init__(self) -> None:
        self.n = 0
        self.underlying = np.zeros(0, np.int32)  # codes into self.underlyings
        self.underlyings: list[str] = []
        self._codes: dict[str, int] = {}
        self.expiration = np.zeros(0, np.int32)  # days since the epoch
        self.put = np.zeros(0, bool)  # call otherwise
        self.strike = np.zeros(0, np.float64)

    def extend(self, parsed: pa.Table) -> None:
        k = parsed.num_rows
        if self.n + k > self.strike.size:
            size = max(2 * self.strike.size, self.n + k, 1024)
            for name in ("underlying", "expiration", "put", "strike"):
                grown = np.zeros(size, getattr(self, name).dtype)
                grown[: self.n] = getattr(self, name)[: self.n]
                setattr(self, name, grown)
        und = parsed.column("underlying").to_pylist()
        for u in dict.fromkeys(und):
            self._codes.setdefault(u, len(self._codes))
            if len(self.underlyings) < len(self._codes):
                self.underlyings.append(u)
        end = self.n + k
        self.underlying[self.n : end] = [self._codes[u] for u in und]
        expiration = parsed.column("expiration").cast(pa.int32())
        self.expiration[self.n : end] = expiration.to_numpy(zero_copy_only=False)
        kind = parsed.column("contract_type").to_numpy(zero_copy_only=False)
        self.put[self.n : end] = kind == "put"
        self.strike[self.n : end] = parsed.column("strike").to_numpy(zero_copy_only=False)
        self.n = end

    def take(self, rows: np.ndarray) -> dict[str, pa.Array]:
        und = pa.DictionaryArray.from_arrays(
            pa.array(self.underlying[rows]), pa.array(self.underlyings, pa.string())
        )
        kind = pa.DictionaryArray.from_arrays(
            pa.array(self.put[rows].astype(np.int8)), pa.array(["call", "put"], pa.string())
        )
        return {
            "underlying": und.cast(pa.string()),
            "expiration": pa.array(self.expiration[rows], pa.int32()).cast(pa.date32()),
            "contract_type": kind.cast(pa.string()),
            "strike": pa.array(self.strike[rows], pa.float64()),
        }


def _sizes(s: pa.Array, ds: pa.Array) -> pa.Array | None:
    """``s``, or the decimal ``ds`` where sent (None unless ``floor(ds) == s``)."""
    whole = s.cast(pa.float64())
    if ds.null_count == len(ds):
        return whole
    exact = pc.cast(ds, pa.float64())  # a text that is not a number raises
    agrees = pc.and_(pc.is_finite(exact), pc.equal(pc.floor(exact), whole))
    if not pc.fill_null(pc.all(agrees), True).as_py():
        return None
    return pc.coalesce(exact, whole)


def _read_columns(t: pa.Table, market: str, channel: str) -> dict[str, pa.Array] | None:
    """The normalised columns of ``channel`` events read by pyarrow's JSON reader, exactly as
    :func:`decode_events` gives them (checks, ms -> ns, sizes with ``ds``, empty lists as
    null, a quote's one condition as a list of one); None when one would not pass."""
    fields, schema = FIELDS[(market, channel)], SCHEMAS[(market, channel)]
    ok = [pc.all(pc.equal(t.column("ev"), channel))]
    for f in fields:
        col = t.column(f.key)
        if f.required:
            ok.append(pa.scalar(col.null_count == 0))
        if f.codec == "str":
            ok.append(pc.all(pc.greater(pc.utf8_length(col), 0)))
        elif f.codec == "float":
            ok.append(pc.all(pc.is_finite(col)))
        elif f.codec == "int_list":  # the event path refuses a null inside a list
            ok.append(pa.scalar(pc.list_flatten(col).null_count == 0))
    if not all(pc.fill_null(x, True).as_py() for x in ok):
        return None
    n = len(t)
    arrays: dict[str, pa.Array] = {}
    try:
        for f in fields:
            col = t.column(f.key).chunk(0) if n else pa.nulls(0, t.schema.field(f.key).type)
            typ = schema.field(f.column).type
            if f.codec == "ms":
                col = pc.multiply_checked(col, NS_PER_MS).cast(typ)
            elif f.codec == "size":
                col = _sizes(col, t.column("ds").chunk(0))
                if col is None:
                    return None
            elif f.codec == "first_int":  # one condition, stored as a list of one
                value = col.cast(typ.value_type)
                offsets = pa.array(np.arange(n + 1, dtype=np.int32))
                col = pa.ListArray.from_arrays(offsets, value, mask=col.is_null())
            elif f.codec == "int_list":
                empty = pc.equal(pc.list_value_length(col), 0)
                col = pc.if_else(empty, pa.scalar(None, col.type), col).cast(typ)
            else:
                col = col.cast(typ)  # safe casts: an int out of range raises
            arrays[f.column] = col
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return arrays


def _quote_rows(t: pa.Table, market: str) -> pa.RecordBatch | None:
    """Quote events read by pyarrow's JSON reader as normalised rows (None: see
    :func:`_read_columns`)."""
    arrays = _read_columns(t, market, "Q")
    if arrays is None:
        return None
    schema, n = SCHEMAS[(market, "Q")], len(t)
    out = [
        arrays.get(name, pa.nulls(n, typ))
        for name, typ in zip(schema.names, schema.types, strict=True)
    ]
    return pa.RecordBatch.from_arrays(out, schema=schema)
