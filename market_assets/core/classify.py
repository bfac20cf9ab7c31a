# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Aggressor classification of trades against the NBBO in force at their SIP time.

For each trade: the latest NBBO of its ticker with SIP time <= the trade's (ties at one
nanosecond: the highest sequence number, then the last row), usable when its age is within
the staleness limit and its state is Normal. Buyer when price >= ask - epsilon, Seller when
price <= bid + epsilon, method ``touch`` (within epsilon of the touch) or ``beyond``; else
Unknown with a reason. With the tick-rule fallback on, a trade without a usable NBBO (no
quote, stale, Invalid, Locked, Crossed; not one inside the spread) is Buyer on an uptick and
Seller on a downtick from the previous trade of the same ticker (method ``tick_rule``).
docs/classification.md states the rules. Batch and live use :func:`classify`; the live side
keeps its NBBO in a :class:`NbboBook`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.nbbo import (
    CROSSED,
    INVALID,
    LOCKED,
    NORMAL,
    NbboCarry,
    nbbo_deltas,
    nbbo_states,
    state_names,
)
from market_assets.core.schemas import (
    AGGRESSOR_SIDES,
    CLASS_METHODS,
    CLASSIFICATION_COLUMNS,
    STOCK_QUOTES,
    TS,
    UNKNOWN_REASONS,
)
from market_assets.core.ticks import TickRules, option_tickers, tick_sizes_coded

BUY, SELL, UNKNOWN = range(3)
TOUCH, BEYOND, TICK_RULE, NO_METHOD = range(4)
BAD_TRADE, NO_QUOTE, STALE, R_INVALID, R_LOCKED, R_CROSSED, INSIDE = range(7)
_STATE_REASON = {INVALID: R_INVALID, LOCKED: R_LOCKED, CROSSED: R_CROSSED}
_SIDES = pa.array(AGGRESSOR_SIDES, pa.string())
_METHODS = pa.array(CLASS_METHODS, pa.string())
_REASONS = pa.array(UNKNOWN_REASONS, pa.string())


@dataclass(frozen=True)
class Staleness:
    """Maximum NBBO age: ``fixed_ms``, or adaptive: the ``quantile`` of observed ages
    clamped to [``min_ms``, ``max_ms``] (a ticker with fewer than ``min_samples`` ages uses
    the pooled ages of its kind; none at all gives ``max_ms``)."""

    adaptive: bool = True
    fixed_ms: float = 150.0
    quantile: float = 0.99
    min_ms: float = 10.0
    max_ms: float = 150.0
    min_samples: int = 20

    @classmethod
    def options(cls, adaptive: bool = True) -> Staleness:
        """SPEC default for options: p99 clamped to 10-150 ms (fixed: 150 ms)."""
        return cls(adaptive=adaptive, fixed_ms=150.0, min_ms=10.0, max_ms=150.0)

    @classmethod
    def equities(cls, adaptive: bool = True) -> Staleness:
        """SPEC default for equities: p99 clamped to 5-50 ms (fixed: 50 ms)."""
        return cls(adaptive=adaptive, fixed_ms=50.0, min_ms=5.0, max_ms=50.0)

    def limit_us(self, quantile_age_ns: float | None) -> int:
        """The limit (us) for an observed age quantile (ns; None when nothing observed)."""
        if not self.adaptive:
            return round(self.fixed_ms * 1000)
        if quantile_age_ns is None:
            return round(self.max_ms * 1000)
        us = math.ceil(quantile_age_ns / 1000)
        return int(min(max(us, round(self.min_ms * 1000)), round(self.max_ms * 1000)))


@dataclass(frozen=True)
class ClassifyParams:
    """Classifier settings: staleness per kind, tick rules, the tick-rule fallback."""

    option_staleness: Staleness = field(default_factory=Staleness.options)
    equity_staleness: Staleness = field(default_factory=Staleness.equities)
    tick_rules: TickRules = field(default_factory=TickRules)
    tick_rule_fallback: bool = False


def _array(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    return col


def _filled(arr: pa.Array, value: object) -> pa.Array:
    """``arr`` with nulls replaced by ``value`` (no copy when it has none: fill_null
    always copies, and is the slowest step of an index build otherwise)."""
    return arr.fill_null(value) if arr.null_count else arr


def _ns(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """int64 ns and validity of a timestamp or integer array."""
    ints = arr.cast(pa.int64()) if pa.types.is_timestamp(arr.type) else arr.cast(pa.int64())
    valid = ~np.asarray(ints.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(_filled(ints, 0).to_numpy(zero_copy_only=False), dtype=np.int64), valid


def _floats(arr: pa.Array) -> np.ndarray:
    return np.asarray(
        _filled(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False), dtype=np.float64
    )


def _codes(arr: pa.Array, value_set: pa.Array) -> np.ndarray:
    return np.asarray(
        _filled(pc.index_in(arr, value_set=value_set), -1).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )


class QuoteIndex:
    """Quote rows (NBBO deltas, or raw quotes) of one or many tickers sorted once by
    (ticker, SIP time, sequence number, row) for repeated as-of lookups.

    The sort key is one int64 per row: ticker code x span + the row's time relative to the
    earliest (span: the time range; over a day this fits 100,000+ tickers, beyond that the
    rank of the time among the distinct times), so an as-of lookup for many tickers is a
    single ``searchsorted`` (no loop over tickers). Rows already in that order (a flat
    file's, or deltas written from one) are not sorted again.
    """

    def __init__(
        self,
        quotes: pa.Table | pa.RecordBatch,
        tickers: pa.Array | None = None,
        codes: np.ndarray | None = None,
    ):
        """``tickers`` and ``codes`` (each row's code into ``tickers``, -1: skip the row),
        when given, stand for the ``ticker`` column (no string encoding)."""
        if codes is None:
            encoded = pc.dictionary_encode(_array(quotes, "ticker").cast(pa.string()))
            self.tickers = encoded.dictionary
            code = np.asarray(_filled(encoded.indices, -1).to_numpy(zero_copy_only=False), np.int64)
        else:
            self.tickers = tickers if tickers is not None else pa.array([], pa.string())
            code = np.asarray(codes, np.int64)
        ts, ts_ok = _ns(_array(quotes, "sip_timestamp"))
        if "sequence_number" in quotes.column_names:
            seq = np.asarray(
                _filled(_array(quotes, "sequence_number").cast(pa.int64()), -1).to_numpy(
                    zero_copy_only=False
                ),
                np.int64,
            )
        else:
            seq = np.full(len(code), -1, np.int64)
        usable = (code >= 0) & ts_ok
        rows = None if usable.all() else np.flatnonzero(usable)
        if rows is not None:
            code, ts, seq = code[rows], ts[rows], seq[rows]
        self._base = int(code.min()) if len(code) else 0
        width = (int(code.max()) - self._base + 1) if len(code) else 1
        self._width = width
        self._tmin = int(ts.min()) if len(ts) else 0
        span = (int(ts.max()) - self._tmin + 2) if len(ts) else 2
        if (width + 1) * span < 2**62:
            self.times = None
            self._span = span
            key = (code - self._base) * span + (ts - self._tmin)
        else:
            self.times = np.unique(ts)
            self._span = len(self.times) + 1
            key = (code - self._base) * self._span + np.searchsorted(self.times, ts)
        if len(key) > 1 and not _in_order(key, seq):
            order = np.lexsort((seq, key))  # stable: full ties keep row order
            key, code, ts, seq = key[order], code[order], ts[order], seq[order]
            rows = order if rows is None else rows[order]
        self.key, self.code, self.ts, self.seq = key, code, ts, seq
        values = [
            _floats(_array(quotes, c)) for c in ("bid_price", "bid_size", "ask_price", "ask_size")
        ]
        if rows is not None:
            values = [v[rows] for v in values]
        self.bid, self.bid_size, self.ask, self.ask_size = values
        self.state = nbbo_states(self.bid, self.bid_size, self.ask, self.ask_size)

    def __len__(self) -> int:
        return len(self.code)

    def codes(self, tickers: pa.Array) -> np.ndarray:
        """This index's ticker code per ticker (-1 where it has no quotes)."""
        return _codes(tickers.cast(pa.string()), self.tickers)

    def asof(self, tickers: pa.Array, ts_ns: np.ndarray) -> np.ndarray:
        """Position (into the sorted quotes) of the latest quote of each ticker with SIP
        time <= ``ts_ns``; -1 where there is none."""
        encoded = pc.dictionary_encode(tickers.cast(pa.string()))
        row_code = np.asarray(_filled(encoded.indices, -1).to_numpy(zero_copy_only=False), np.int64)
        return self.asof_codes(np.append(self.codes(encoded.dictionary), -1)[row_code], ts_ns)

    def asof_codes(self, code: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
        """:meth:`asof` for tickers given as this index's codes (see :meth:`codes`)."""
        if len(self.code) == 0:
            return np.full(len(code), -1, np.int64)
        if self.times is None:
            rel = np.clip(ts_ns - self._tmin, -1, self._span - 2)
        else:
            rel = np.searchsorted(self.times, ts_ns, side="right") - 1
        packed = np.clip(code - self._base, -1, self._width) * self._span + rel
        pos = np.searchsorted(self.key, packed, side="right") - 1
        found = (code >= 0) & (pos >= 0)
        found[found] = self.code[pos[found]] == code[found]
        return np.where(found, pos, -1)


def _in_order(key: np.ndarray, seq: np.ndarray) -> bool:
    """True when rows are sorted by (key, seq)."""
    step = np.diff(key)
    if (step < 0).any():
        return False
    tie = step == 0
    return not (tie.any() and (seq[1:][tie] < seq[:-1][tie]).any())


def _higher_quantile(values: np.ndarray, q: float) -> int:
    """The ``q`` quantile with numpy's method 'higher' (an observed value)."""
    k = math.ceil(q * (len(values) - 1))
    return int(np.partition(values, k)[k])


def _group_quantiles(
    group: np.ndarray, values: np.ndarray, q: float, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (ascending ids >= 0): the ``q`` quantile (method 'higher') of the values
    capped at ``cap`` (order statistics above the cap only ever clamp to it), and the
    count. One sort of a packed (group, value) int64 key."""
    if len(group) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    shift = int(cap).bit_length()
    if int(group.max()) >= 2 ** (62 - shift):
        raise ValueError("too many tickers for the adaptive staleness quantile")
    packed = np.sort((group.astype(np.int64) << shift) | np.minimum(values, cap))
    g = packed >> shift
    start = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    count = np.diff(np.append(start, len(packed)))
    k = np.ceil(q * (count - 1)).astype(np.int64)
    return g[start], packed[start + k] & ((1 << shift) - 1), count


def age_cap_ns(policy: Staleness) -> int:
    """Ages above this (ns) only ever clamp to the upper bound: they are capped at it."""
    return round(policy.max_ms * 1_000_000) + 1


def own_limits_us(
    codes: np.ndarray, ages_ns: np.ndarray, policy: Staleness
) -> tuple[np.ndarray, np.ndarray]:
    """The tickers (ascending codes) with at least ``min_samples`` ages and their own
    adaptive limits (us): the ``quantile`` of their ages, clamped. ``codes`` and
    ``ages_ns`` are the rows of one kind that have an age."""
    cap = age_cap_ns(policy)
    ids, qs, counts = _group_quantiles(codes, np.minimum(ages_ns, cap), policy.quantile, cap)
    own = counts >= policy.min_samples
    lo, hi = round(policy.min_ms * 1000), round(policy.max_ms * 1000)
    return ids[own], np.clip((qs[own] + 999) // 1000, lo, hi)  # ceil to whole microseconds


def adaptive_limits_us(
    ticker_codes: np.ndarray,
    is_option: np.ndarray,
    ages_ns: np.ndarray,
    has_age: np.ndarray,
    params: ClassifyParams,
) -> np.ndarray:
    """Staleness limit (us) per row from the ages observed on these rows (the batch side
    of SPEC's adaptive staleness): per ticker, pooled by kind below ``min_samples``."""
    out = np.zeros(len(ticker_codes), np.int64)
    for kind_mask, policy in (
        (is_option, params.option_staleness),
        (~is_option, params.equity_staleness),
    ):
        if not kind_mask.any():
            continue
        m = kind_mask & has_age
        if not policy.adaptive or not m.any():
            out[kind_mask] = policy.limit_us(None)
            continue
        ages = np.minimum(ages_ns[m], age_cap_ns(policy))
        limits = np.full(
            len(ticker_codes), policy.limit_us(_higher_quantile(ages, policy.quantile))
        )
        lut_ids, lut = own_limits_us(ticker_codes[m], ages, policy)
        if len(lut_ids):
            at = np.minimum(np.searchsorted(lut_ids, ticker_codes), len(lut_ids) - 1)
            limits = np.where(lut_ids[at] == ticker_codes, lut[at], limits)
        out[kind_mask] = limits[kind_mask]
    return out


@dataclass
class Nbbo:
    """The NBBO in force per trade (NaN / -1 where none)."""

    has: np.ndarray
    bid: np.ndarray
    bid_size: np.ndarray
    ask: np.ndarray
    ask_size: np.ndarray
    ts: np.ndarray
    state: np.ndarray


def _nbbo_at(quotes: QuoteIndex, qcode: np.ndarray, ts: np.ndarray, bad: np.ndarray) -> Nbbo:
    pos = quotes.asof_codes(qcode, ts)
    pos[bad] = -1
    has = pos >= 0
    if not len(quotes):
        nan = np.full(len(ts), np.nan)
        return Nbbo(has, nan, nan, nan, nan, np.zeros(len(ts), np.int64), np.full(len(ts), -1))
    p = np.where(has, pos, 0)

    def take(a: np.ndarray) -> np.ndarray:
        return np.where(has, a[p], np.nan)

    return Nbbo(
        has,
        take(quotes.bid),
        take(quotes.bid_size),
        take(quotes.ask),
        take(quotes.ask_size),
        np.where(has, quotes.ts[p], 0),
        np.where(has, quotes.state[p], -1),
    )


def bad_trades(ts_ok: np.ndarray, price: np.ndarray, no_ticker: np.ndarray) -> np.ndarray:
    """Rule 1: trades never classified (no time, no positive price, no ticker)."""
    with np.errstate(invalid="ignore"):
        return ~ts_ok | ~(price > 0) | no_ticker


@dataclass
class TradeInputs:
    """What the rules read from trade rows: ticker codes (into ``tickers``; -1 null), SIP
    time, price, kind, tick and epsilon at the price, and the bad rows (rule 1)."""

    tickers: pa.Array
    code: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    bad: np.ndarray
    is_option: np.ndarray
    tick: np.ndarray
    eps: np.ndarray

    @classmethod
    def of(cls, trades: pa.Table | pa.RecordBatch, params: ClassifyParams) -> TradeInputs:
        """``trades`` needs ``ticker``, ``sip_timestamp`` and ``price``."""
        encoded = pc.dictionary_encode(_array(trades, "ticker").cast(pa.string()))
        code = np.asarray(_filled(encoded.indices, -1).to_numpy(zero_copy_only=False), np.int64)
        ts, ts_ok = _ns(_array(trades, "sip_timestamp"))
        price = _floats(_array(trades, "price"))
        tick = tick_sizes_coded(encoded.dictionary, code, price, params.tick_rules)
        is_option = np.append(option_tickers(encoded.dictionary), False)
        bad = bad_trades(ts_ok, price, code < 0)
        return cls(
            encoded.dictionary,
            code,
            ts,
            price,
            bad,
            is_option[code],
            tick,
            tick * params.tick_rules.epsilon_ticks,
        )


def classify(
    trades: pa.Table | pa.RecordBatch,
    quotes: QuoteIndex,
    params: ClassifyParams | None = None,
    *,
    limits_us: np.ndarray | None = None,
    prev_price: np.ndarray | None = None,
) -> pa.Table:
    """The classification columns (``CLASSIFICATION_COLUMNS``) for ``trades``, row for row.

    ``trades`` needs ``ticker``, ``sip_timestamp`` and ``price``; it may hold many tickers
    in any order. ``limits_us`` overrides the staleness limit per row (the live book passes
    its rolling adaptive limits); otherwise fixed or adaptive over these trades' ages.
    ``prev_price`` is, per row, the ticker's last trade price before this batch (NaN: none)
    for the tick rule; within the batch the previous trade is found by (SIP time, row).
    """
    params = params or ClassifyParams()
    t = TradeInputs.of(trades, params)
    nbbo = _nbbo_at(quotes, np.append(quotes.codes(t.tickers), -1)[t.code], t.ts, t.bad)
    if limits_us is None:
        age_ns = np.where(nbbo.has, t.ts - nbbo.ts, 0)
        limits_us = adaptive_limits_us(t.code, t.is_option, age_ns, nbbo.has, params)
    prev = None
    if params.tick_rule_fallback:
        prev = _previous_prices(t.code, t.ts, t.price, ~t.bad, prev_price)
    return decide(t, nbbo, params, limits_us, prev)


def decide(
    t: TradeInputs,
    nbbo: Nbbo,
    params: ClassifyParams,
    limits_us: np.ndarray,
    prev: np.ndarray | None,
) -> pa.Table:
    """The rules applied to trades whose NBBO in force is known: the classification
    columns. ``prev``: the previous trade's price per row (the tick rule; None when off)."""
    ts, price, tick, eps = t.ts, t.price, t.tick, t.eps
    age_ns = np.where(nbbo.has, ts - nbbo.ts, 0)
    fresh = nbbo.has & (age_ns <= limits_us * 1000)

    reason = np.full(len(ts), -1, np.int8)
    reason[~fresh] = STALE
    reason[~nbbo.has] = NO_QUOTE
    reason[t.bad] = BAD_TRADE
    for st, r in _STATE_REASON.items():
        reason[fresh & (nbbo.state == st)] = r
    ok = fresh & (nbbo.state == NORMAL)
    bid, ask = nbbo.bid, nbbo.ask
    with np.errstate(invalid="ignore"):
        buy = ok & (price >= ask - eps)
        sell = ok & ~buy & (price <= bid + eps)
        side = np.where(buy, BUY, np.where(sell, SELL, UNKNOWN)).astype(np.int8)
        beyond = (buy & (price > ask + eps)) | (sell & (price < bid - eps))
        method = np.where(buy | sell, np.where(beyond, BEYOND, TOUCH), NO_METHOD).astype(np.int8)
        reason[ok & ~buy & ~sell] = INSIDE
        touch = np.where(buy, (price - ask) / tick, np.where(sell, (bid - price) / tick, np.nan))
        mid = (bid + ask) / 2
        mid_bp = np.where(fresh & (nbbo.state != INVALID), (price - mid) / mid * 1e4, np.nan)

    if params.tick_rule_fallback and prev is not None:
        fallback = (reason >= NO_QUOTE) & (reason <= R_CROSSED)
        with np.errstate(invalid="ignore"):
            up = fallback & (price > prev + eps)
            down = fallback & (price < prev - eps)
        side[up], side[down] = BUY, SELL
        method[up | down] = TICK_RULE
        reason[up | down] = -1

    def floats(a: np.ndarray) -> pa.Array:
        return pa.array(a, pa.float64(), from_pandas=True)

    cols = {
        "aggressor_side": _SIDES.take(pa.array(side.astype(np.int32))),
        "class_method": _METHODS.take(pa.array(method.astype(np.int32))),
        "unknown_reason": _REASONS.take(pa.array(reason.astype(np.int32), mask=reason < 0)),
        "nbbo_bid": floats(bid),
        "nbbo_ask": floats(ask),
        "nbbo_bid_size": floats(nbbo.bid_size),
        "nbbo_ask_size": floats(nbbo.ask_size),
        "nbbo_ts": pa.array(nbbo.ts, pa.int64(), mask=~nbbo.has).cast(TS),
        "nbbo_age_us": pa.array(age_ns // 1000, pa.int64(), mask=~nbbo.has),
        "nbbo_state": state_names(nbbo.state),
        "tick_size_used": floats(tick),
        "mid_offset_bp": floats(mid_bp),
        "touch_offset_ticks": floats(touch),
        "staleness_limit_us": pa.array(limits_us, pa.int64()),
    }
    return pa.table(cols, schema=CLASSIFICATION_COLUMNS)


def _previous_prices(
    code: np.ndarray,
    ts: np.ndarray,
    price: np.ndarray,
    valid: np.ndarray,
    carried: np.ndarray | None,
) -> np.ndarray:
    """Per row: the price of the previous valid trade of the same ticker by (SIP time, row);
    for a ticker's first trade the carried price (NaN without one)."""
    n = len(code)
    prev = np.full(n, np.nan) if carried is None else np.asarray(carried, np.float64).copy()
    rows = np.flatnonzero(valid)
    order = rows[np.lexsort((rows, ts[rows], code[rows]))]
    if len(order) > 1:
        same = code[order[1:]] == code[order[:-1]]
        prev[order[1:][same]] = price[order[:-1][same]]
    return prev


def classify_table(
    trades: pa.Table, quotes: pa.Table | QuoteIndex, params: ClassifyParams | None = None
) -> pa.Table:
    """``trades`` with the classification columns appended (a day's trades of many contracts
    against that day's NBBO deltas); the raw columns are returned unchanged."""
    index = quotes if isinstance(quotes, QuoteIndex) else QuoteIndex(quotes)
    cols = classify(trades, index, params)
    out = trades
    for name in cols.column_names:
        out = out.append_column(cols.schema.field(name), cols.column(name))
    return out


class _StrictlyBefore(QuoteIndex):
    """A :class:`QuoteIndex` whose as-of is strictly earlier: a lookup at ``t`` sees the
    quotes stamped at or before ``t - 1 ns``."""

    def asof_codes(self, code: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
        return super().asof_codes(code, np.asarray(ts_ns, np.int64) - 1)


class NbboBook:
    """Live NBBO per ticker, updated by quotes and classifying trades with :func:`classify`.

    Quotes become deltas with the batch's rule (:func:`market_assets.core.nbbo.nbbo_deltas`,
    its carry kept between calls), vectorized. The deltas stay until :meth:`forget_before`
    drops the ones no trade to come can need (the last delta of each ticker before the cut
    stays: it is in force at the cut), so a trade stamped before quotes that already arrived
    gets the NBBO in force at its own time. ``strictly_before``: the NBBO in force is the
    latest delta stamped strictly before the trade instead of at or before it (the live
    feed's millisecond times; see docs/live.md). The book also keeps the last trade price
    per ticker (tick rule) and the last ``window`` observed ages per ticker and per kind for
    the adaptive staleness limit, computed from the ages seen before each batch (causal,
    unlike the batch path's whole-day quantile: the two agree exactly with fixed staleness).
    """

    def __init__(
        self,
        params: ClassifyParams | None = None,
        window: int = 2000,
        *,
        strictly_before: bool = False,
    ):
        self.params = params or ClassifyParams()
        self.window = window
        self.strictly_before = strictly_before
        self._carry = NbboCarry.empty()
        self._deltas: list[pa.Table] = []
        self._index: QuoteIndex | None = None
        self._last_price: dict[str, float] = {}
        self._ages: dict[str, deque[int]] = {}
        self._pooled: dict[bool, deque[int]] = {
            True: deque(maxlen=window),
            False: deque(maxlen=window),
        }

    def __len__(self) -> int:
        """NBBO deltas kept."""
        return sum(t.num_rows for t in self._deltas)

    def update(self, quotes: pa.Table | pa.RecordBatch) -> None:
        """Apply quote rows (ticker, sip_timestamp, bid/ask price and size, optional
        sequence_number) in arrival order; rows without a ticker or a time are ignored."""
        if not quotes.num_rows:
            return
        ok = pc.and_(
            pc.is_valid(_array(quotes, "ticker")), pc.is_valid(_array(quotes, "sip_timestamp"))
        )
        if not pc.all(ok).as_py():
            quotes = quotes.filter(ok)
        deltas, self._carry = nbbo_deltas(quotes, self._carry)
        if deltas.num_rows:
            self._deltas.append(deltas)
            self._index = None

    def _table(self) -> pa.Table:
        if len(self._deltas) > 1:
            self._deltas = [pa.concat_tables(self._deltas).combine_chunks()]
        return self._deltas[0] if self._deltas else STOCK_QUOTES.empty_table()

    def forget_before(self, ts_ns: int) -> None:
        """Drop the deltas older than ``ts_ns`` except each ticker's last one (in force at
        ``ts_ns``): a trade stamped at or after ``ts_ns`` is classified as before."""
        table = self._table()
        ts, _ = _ns(_array(table, "sip_timestamp"))
        old = np.flatnonzero(ts < ts_ns)
        if len(old) == 0:
            return
        code = np.asarray(
            pc.dictionary_encode(_array(table, "ticker")).indices.to_numpy(zero_copy_only=False),
            np.int64,
        )
        seq = np.asarray(
            _array(table, "sequence_number").fill_null(-1).to_numpy(zero_copy_only=False), np.int64
        )
        order = old[np.lexsort((old, seq[old], ts[old], code[old]))]
        last = np.append(code[order][1:] != code[order][:-1], True)
        keep = ts >= ts_ns
        keep[order[last]] = True
        if not keep.all():
            self._deltas = [table.filter(pa.array(keep))]
            self._index = None

    def current(self, ticker: str) -> dict | None:
        """The latest NBBO of ``ticker`` (by SIP time) with its state, or None."""
        table = self._table()
        mine = table.filter(pc.equal(table.column("ticker"), ticker))
        if not mine.num_rows:
            return None
        ts, _ = _ns(_array(mine, "sip_timestamp"))
        seq = np.asarray(
            _array(mine, "sequence_number").fill_null(-1).to_numpy(zero_copy_only=False), np.int64
        )
        row = mine.slice(int(np.lexsort((np.arange(len(ts)), seq, ts))[-1]), 1).to_pylist()[0]
        row["sip_timestamp"] = int(ts.max())
        row.pop("ticker")
        return row

    def classify(self, trades: pa.Table | pa.RecordBatch) -> pa.Table:
        """Classification columns for ``trades`` (one or many), as :func:`classify` gives."""
        if self._index is None:
            kind = _StrictlyBefore if self.strictly_before else QuoteIndex
            self._index = kind(self._table())
        enc = pc.dictionary_encode(_array(trades, "ticker").cast(pa.string()))
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        tickers: list[str] = enc.dictionary.to_pylist()
        code = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        # Per ticker once, then spread to the rows (a batch holds few tickers, many trades).
        pooled: dict[bool, int] = {}
        prev_of = np.array([self._last_price.get(t, np.nan) for t in tickers] + [np.nan])
        limit_of = np.array([self._limit_us(t, pooled) for t in tickers] + [0], np.int64)
        prev, limits = prev_of[code], limit_of[code]  # code -1 (no ticker): the last entry
        out = classify(trades, self._index, self.params, limits_us=limits, prev_price=prev)
        self._remember(trades, tickers, code, out)
        return out

    def _limit_us(self, ticker: str, pooled: dict[bool, int]) -> int:
        """The ticker's limit from the ages seen so far (``pooled``: the per-kind limits
        already computed for this batch)."""
        is_option = ticker.startswith("O:")
        policy = self.params.option_staleness if is_option else self.params.equity_staleness
        if not policy.adaptive:
            return policy.limit_us(None)
        ages = self._ages.get(ticker)
        if ages is not None and len(ages) >= policy.min_samples:
            return policy.limit_us(_higher_quantile(np.fromiter(ages, np.int64), policy.quantile))
        if is_option not in pooled:
            kind = self._pooled[is_option]
            q = _higher_quantile(np.fromiter(kind, np.int64), policy.quantile) if kind else None
            pooled[is_option] = policy.limit_us(q)
        return pooled[is_option]

    def _remember(
        self, trades: pa.Table | pa.RecordBatch, tickers: list[str], code: np.ndarray, out: pa.Table
    ) -> None:
        """Add the batch's NBBO ages (per ticker and per kind, in time order) and each
        ticker's last valid trade price; ``code``: the rows' index into ``tickers``."""
        ts, ts_ok = _ns(_array(trades, "sip_timestamp"))
        price = _floats(_array(trades, "price"))
        nbbo_ts = out.column("nbbo_ts").cast(pa.int64())
        has_nbbo = np.asarray(nbbo_ts.is_valid().to_numpy(zero_copy_only=False), bool)
        age = ts - np.asarray(nbbo_ts.fill_null(0).to_numpy(zero_copy_only=False), np.int64)
        order = np.lexsort((np.arange(code.size), ts))  # time order, ties in row order
        code, age, has_nbbo = code[order], age[order], has_nbbo[order]
        valid_price = (ts_ok & (price > 0))[order] & (code >= 0)
        price = price[order]

        aged = has_nbbo & (code >= 0)
        ages, aged_code = age[aged], code[aged]
        option = option_tickers(pa.array(tickers, pa.string()))[aged_code]
        self._pooled[True].extend(ages[option].tolist())
        self._pooled[False].extend(ages[~option].tolist())
        by_ticker = np.argsort(aged_code, kind="stable")
        present, starts = np.unique(aged_code[by_ticker], return_index=True)
        ends = np.append(starts[1:], by_ticker.size)[: starts.size]  # none when nothing aged
        for c, a, b in zip(present, starts, ends, strict=True):
            ring = self._ages.setdefault(tickers[c], deque(maxlen=self.window))
            ring.extend(ages[by_ticker[a:b]].tolist())

        priced = np.flatnonzero(valid_price)
        last_code, first_from_end = np.unique(code[priced][::-1], return_index=True)
        for c, j in zip(last_code, priced[::-1][first_from_end], strict=True):
            self._last_price[tickers[c]] = float(price[j])
