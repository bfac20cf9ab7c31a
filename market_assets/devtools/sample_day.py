# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Synthetic Massive trading days in the exact flat-file layout (pure numpy/pyarrow, no dagster).

``generate_day`` writes one NYSE trading day of stock trades, stock quotes, option trades and
option quotes under the bucket's relative keys, gzip CSV with Massive's headers and number
formatting. Everything is vectorized and written in row chunks so the ``large`` scale (5M+
stock trades, 1M+ SPY option trades) runs in bounded memory.

Price model, chosen so a downstream greeks stage can recover the generating IVs exactly:
each ticker follows a geometric random walk sampled at its round-lot, non-corrected trades
("price-setting" trades); odd lots, ISO sweeps, pre/post-market trades and correction
duplicates all print the price of the latest price-setting trade. So the latest trade of a
ticker at any instant carries the current price whichever trades a consumer counts as
genuine. Option trades happen in the regular session shortly after a genuine underlying
trade (so the underlying price is never stale) and are priced with BSM at that trade's price
(``generate_option_trades`` returns the IV it used per trade).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import isal.igzip as igzip
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core import calendar
from market_assets.core.bsm import bsm_price
from market_assets.core.enrich import NS_PER_YEAR
from market_assets.io.source import flat_file_key

# The files of a day, in the order they are written (keys of generate_day's result).
DATASETS = ("stock_trades", "stock_quotes", "option_trades", "option_quotes")
SCALES: dict[str, int] = {"tiny": 3_000, "demo": 300_000, "large": 5_600_000}
OPTION_TRADES_PER_STOCK_TRADE = 0.22
STOCK_QUOTES_PER_STOCK_TRADE = 1 / 3

RATE = 0.04  # continuously compounded risk-free rate used to price option trades
DIVIDEND_YIELD = 0.012  # continuous dividend yield used to price option trades

STOCK_TRADES_HEADER = (
    "ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,"
    "sip_timestamp,size,tape,trf_id,trf_timestamp"
)
STOCK_QUOTES_HEADER = (
    "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,conditions,"
    "indicators,participant_timestamp,sequence_number,sip_timestamp,tape,trf_timestamp"
)
OPTION_TRADES_HEADERS = {
    "v7": "ticker,conditions,correction,exchange,price,sip_timestamp,size",
    "v8": "ticker,conditions,correction,exchange,participant_timestamp,price,sip_timestamp,size",
}
OPTION_QUOTES_HEADER = (
    "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,sequence_number,"
    "sip_timestamp"
)

FRACTIONAL_SIZES_FROM = dt.date(2026, 2, 1)
QUOTE_SIZES_IN_SHARES_FROM = dt.date(2025, 11, 3)


@dataclass(frozen=True)
class TickerSpec:
    level: float  # typical price level
    vol: float  # annualized volatility of the walk
    tape: int
    share: float  # share of the day's stock trades
    spread_cents: int  # typical quoted spread


TICKERS: dict[str, TickerSpec] = {
    "AAPL": TickerSpec(230.0, 0.25, 3, 0.06, 1),
    "MSFT": TickerSpec(420.0, 0.22, 3, 0.06, 2),
    "NVDA": TickerSpec(140.0, 0.45, 3, 0.10, 1),
    "QQQ": TickerSpec(520.0, 0.20, 3, 0.12, 1),
    "SPY": TickerSpec(600.0, 0.15, 2, 0.56, 1),
    "TSLA": TickerSpec(250.0, 0.55, 3, 0.10, 2),
}
OPTION_ROOT_SHARES = {"SPY": 0.88, "QQQ": 0.12}

_STOCK_EXCHANGES = np.array([4, 12, 11, 8, 19, 21, 15, 10, 7, 17, 18], dtype=np.int64)
_STOCK_EXCHANGE_P = np.array([0.34, 0.14, 0.10, 0.09, 0.10, 0.08, 0.04, 0.04, 0.03, 0.02, 0.02])
_TRF_EXCHANGE = 4
_TRF_IDS = ("", "201", "202", "203")
# Condition strings by code = 4*iso + 2*extended_hours + odd_lot, in Massive's order.
_STOCK_CONDITIONS = (
    "",
    "37",
    "12",
    '"12,37"',
    '"14,41"',
    '"14,37,41"',
    '"14,12,41"',
    '"14,12,37,41"',
)
_CORRECTIONS = ("", "1", "12")
_OPTION_EXCHANGES = np.array(
    [300, 301, 302, 303, 304, 307, 308, 309, 312, 313, 315, 316, 319, 320, 322, 323, 325]
)
_OPTION_CONDITIONS = np.array([209, 227, 232, 219, 229, 233])
_OPTION_CONDITION_P = np.array([0.60, 0.20, 0.08, 0.05, 0.04, 0.03])

_NS_PER_TRADING_YEAR = 252 * 6.5 * 3600e9
_CHUNK_ROWS = 262_144  # rows formatted to CSV at a time
_SEGMENT_ROWS = 1_048_576  # stock trades generated at a time

# Random streams: one independent generator per (purpose, ticker) so any piece can be
# regenerated alone (tests rebuild option trades from the stock file with the same seed).
_STREAM_LAYOUT, _STREAM_TRADES, _STREAM_SEQ, _STREAM_OPTIONS, _STREAM_QUOTES = 1, 2, 3, 4, 5


def _rng(seed: int, stream: int, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, sub])


def scale_trades(scale: str | int) -> int:
    """Number of stock trades (approx) for a scale name or an explicit int."""
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}: expected one of {sorted(SCALES)} or an int")
        return SCALES[scale]
    if int(scale) < 100:
        raise ValueError(f"scale must be at least 100 stock trades, got {scale}")
    return int(scale)


# --------------------------------------------------------------------------- CSV writing


def _strictly_increasing(t: np.ndarray) -> np.ndarray:
    """Smallest non-decreasing shift making a sorted int64 array strictly increasing."""
    i = np.arange(len(t), dtype=np.int64)
    return np.maximum.accumulate(t - i) + i


def _str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _cents(cents: np.ndarray) -> pa.Array:
    # k / 100.0 is the double nearest the decimal k/100, so Arrow's shortest repr prints it
    # as Massive does (276.4, 276, 0.01).
    return _str(cents / 100.0)


class _CsvGz:
    """Deterministic gzip CSV writer (mtime 0, no file name in the gzip header); the file
    appears under its name only when closed, so a failed run leaves no half-written day."""

    def __init__(self, path: Path, header: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._tmp = path.with_name(path.name + ".partial")
        self._raw = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._gz = igzip.GzipFile(
            filename="", mode="wb", compresslevel=1, fileobj=self._raw, mtime=0
        )
        self._gz.write(header.encode() + b"\n")
        self.rows = 0

    def write(self, columns: Sequence[pa.Array | pa.Scalar]) -> None:
        line = pc.binary_join_element_wise(*columns, ",")
        line = pc.binary_join_element_wise(line, "", "\n")
        if isinstance(line, pa.ChunkedArray):
            line = line.combine_chunks()
        offsets = np.frombuffer(line.buffers()[1], dtype=np.int32)
        start, end = offsets[line.offset], offsets[line.offset + len(line)]
        self._gz.write(memoryview(line.buffers()[2])[start:end])
        self.rows += len(line)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._raw.close()
        self._tmp.unlink(missing_ok=True)


def _chunks(n: int) -> range:
    return range(0, n, _CHUNK_ROWS)


# --------------------------------------------------------------------------- stock trades


def _session_times(
    rng: np.random.Generator, m: int, day: dt.date, pre: float, post: float
) -> np.ndarray:
    """m sorted event times over the extended session: U-shaped in the regular session,
    rising into the open pre-market and fading after the close."""
    ext_start, ext_end = calendar.session_bounds_ns(day, "extended")
    open_, close = calendar.session_bounds_ns(day, "regular")
    length = close - open_
    u = rng.random(m)
    part = np.where(u < pre, 0, np.where(u > 1.0 - post, 2, 1))
    v = rng.random(m)
    pre_t = ext_start + ((open_ - ext_start) * np.sqrt(v)).astype(np.int64)
    post_t = close + ((ext_end - close) * (1.0 - np.sqrt(v))).astype(np.int64)
    comp = rng.choice(3, size=m, p=[0.66, 0.16, 0.18])
    x = np.select(
        [comp == 0, comp == 1],
        [v * length, rng.exponential(0.06 * length, m)],
        length - 1 - rng.exponential(0.07 * length, m),
    )
    reg_t = open_ + np.clip(x, 0, length - 1).astype(np.int64)
    t = np.select([part == 0, part == 1], [pre_t, reg_t], post_t)
    t = np.clip(t, ext_start, ext_end - 1)
    t.sort()
    return t


@dataclass
class _Layout:
    """Row structure of one ticker's trades: sip times, correction duplicates, clusters."""

    sip: np.ndarray  # int64, strictly increasing
    correction: np.ndarray  # bool: row duplicates the row before it with a correction code
    cluster: np.ndarray  # int64: trades sharing an event (same exchange, participant time)
    quote_sip: np.ndarray  # int64 strictly increasing stock quote times


def _layout(day: dt.date, n: int, n_quotes: int, rng: np.random.Generator) -> _Layout:
    k = rng.geometric(0.6, max(1, round(n / 1.67)))
    events = _session_times(rng, len(k), day, pre=0.03, post=0.02)
    rows = int(k.sum())
    cluster = np.repeat(np.arange(len(k)), k)
    first = np.repeat(np.cumsum(k) - k, k)
    step = np.repeat(rng.integers(2_000, 12_000, len(k)), k)
    sip = events[cluster] + (np.arange(rows) - first) * step + rng.integers(0, 1_000, rows)
    sip.sort()
    open_, close = calendar.session_bounds_ns(day, "regular")
    regular = np.flatnonzero((sip >= open_) & (sip < close))
    n_corr = max(1, rng.binomial(rows, 0.0005)) if len(regular) else 0
    corr_src = np.unique(rng.choice(regular, size=min(n_corr, len(regular)), replace=False))
    counts = np.ones(rows, dtype=np.int64)
    counts[corr_src] = 2
    src = np.repeat(np.arange(rows), counts)
    correction = np.zeros(len(src), dtype=bool)
    correction[1:] = src[1:] == src[:-1]
    sip = _strictly_increasing(sip[src])
    # Quotes around the trades (a quote update usually precedes a burst of prints).
    qsrc = rng.integers(0, len(sip), n_quotes)
    quote_sip = np.sort(sip[qsrc] - rng.integers(1_000, 50_000_000, n_quotes))
    quote_sip = _strictly_increasing(np.maximum(quote_sip, sip[0] - 60_000_000_000))
    return _Layout(sip, correction, cluster[src], quote_sip)


def _global_sequence(times: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Sequence numbers rising with sip time across all tickers' rows (gaps stand for the
    messages of other tickers and quotes sharing the SIP sequence)."""
    allt = np.concatenate(times)
    order = np.argsort(allt, kind="stable")
    seq = np.empty(len(allt), dtype=np.int64)
    seq[order] = 1_000 + np.cumsum(rng.integers(1, 40, len(allt)))
    return np.split(seq, np.cumsum([len(t) for t in times])[:-1])


@dataclass
class _StockTrades:
    sip: np.ndarray
    participant: np.ndarray
    price_cents: np.ndarray
    size_e4: np.ndarray  # size in 1/10000 shares
    exchange: np.ndarray
    condition_code: np.ndarray
    correction_code: np.ndarray
    id: np.ndarray
    sequence: np.ndarray
    trf_code: np.ndarray
    trf_timestamp: np.ndarray

    @property
    def genuine(self) -> np.ndarray:
        """Round-lot, non-corrected rows (they set the price)."""
        return (self.correction_code == 0) & (self.size_e4 >= 100 * 10_000)


@dataclass
class _WalkState:
    """What one segment of a ticker's trades hands to the next."""

    s0: float  # the day's reference price
    w: float = 0.0  # Brownian value at the last row
    log_px: float = 0.0  # log(price / s0) of the last price-setting trade
    prev_sip: int | None = None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(64, dtype=np.int64))


def _stock_trades(
    day: dt.date,
    spec: TickerSpec,
    sip: np.ndarray,
    corr: np.ndarray,
    cluster: np.ndarray,
    sequence: np.ndarray,
    rng: np.random.Generator,
    state: _WalkState,
) -> _StockTrades:
    """One segment (whole clusters) of a ticker's trades, continuing ``state``."""
    n = len(sip)
    cluster = cluster - cluster[0]
    n_cl = int(cluster[-1]) + 1
    first_of_cluster = np.searchsorted(cluster, np.arange(n_cl))
    # Cluster-level attributes: one participant (exchange) and one event time per cluster.
    ex_c = rng.choice(_STOCK_EXCHANGES, size=n_cl, p=_STOCK_EXCHANGE_P)
    part_c = sip[first_of_cluster] - rng.integers(5_000, 400_000, n_cl)
    iso_c = rng.random(n_cl) < 0.08
    trf_c = rng.integers(1, len(_TRF_IDS), n_cl)
    exchange = ex_c[cluster]
    participant = part_c[cluster]
    del ex_c, part_c, first_of_cluster

    # The draws keep their order (sizes, then the walk, then correction codes): each
    # consumes the ticker's stream.
    size_e4 = _sizes_e4(rng, n, day, corr)
    open_, close = calendar.session_bounds_ns(day, "regular")
    extended = (sip < open_) | (sip >= close)
    setter = ~corr & (size_e4 >= 100 * 10_000)
    price_cents = _walk_price_cents(rng, spec, sip, extended, setter, state)

    is_odd = size_e4 < 100 * 10_000
    condition_code = 4 * iso_c[cluster] + 2 * extended + is_odd
    correction_code = np.where(corr, np.where(rng.random(n) < 0.7, 1, 2), 0)
    ids = _exchange_ids(exchange, corr, state)

    is_trf = exchange == _TRF_EXCHANGE
    trf_code = np.where(is_trf, trf_c[cluster], 0)
    trf_timestamp = np.where(is_trf, participant + (sip - participant) // 2, 0)
    return _StockTrades(
        sip,
        participant,
        price_cents,
        size_e4,
        exchange,
        condition_code,
        correction_code,
        ids,
        sequence,
        trf_code,
        trf_timestamp,
    )


def _sizes_e4(rng: np.random.Generator, n: int, day: dt.date, corr: np.ndarray) -> np.ndarray:
    """Sizes in 1e-4 shares: odd lots, round lots, mixed lots, rare blocks, fractional shares
    (from FRACTIONAL_SIZES_FROM); a correction repeats the size of the row it corrects."""
    u = rng.random(n)
    odd = np.exp(rng.uniform(0, np.log(99.5), n)).astype(np.int64).clip(1, 99)
    rnd = 100 * rng.geometric(0.55, n)
    mixed = 100 + rng.integers(1, 900, n)
    block = 100 * rng.integers(50, 500, n)
    shares = np.select([u < 0.42, u < 0.90, u < 0.998], [odd, rnd, mixed], block)
    size_e4 = shares * 10_000
    if day >= FRACTIONAL_SIZES_FROM:
        frac = rng.random(n) < 0.01
        fsize = np.exp(rng.uniform(np.log(0.001), np.log(60.0), n)) * 10_000
        fsize = fsize.astype(np.int64).clip(1)
        fsize += (fsize % 10_000 == 0) * 5_000  # never a whole number
        size_e4 = np.where(frac, fsize, size_e4)
    src = np.arange(n) - corr  # a correction duplicates the row before it
    return size_e4[src]


def _walk_price_cents(
    rng: np.random.Generator,
    spec: TickerSpec,
    sip: np.ndarray,
    extended: np.ndarray,
    setter: np.ndarray,
    state: _WalkState,
) -> np.ndarray:
    """Prices in cents: a geometric Brownian walk sampled at the price-setting trades; every
    other row prints the latest price-setting trade's price. Advances ``state``."""
    n = len(sip)
    prev = sip[0] - 1 if state.prev_sip is None else state.prev_sip
    # Extended hours move prices far less per unit of clock time than the regular session.
    dt_ns = np.diff(sip, prepend=prev) * np.where(extended, 0.15, 1.0)
    sigma = spec.vol / np.sqrt(_NS_PER_TRADING_YEAR)
    w = state.w + np.cumsum(sigma * np.sqrt(dt_ns) * rng.standard_normal(n))
    del dt_ns
    last = np.maximum.accumulate(np.where(setter, np.arange(n), -1))
    log_px = np.where(last >= 0, w[np.maximum(last, 0)], state.log_px)
    del last
    state.w, state.log_px, state.prev_sip = float(w[-1]), float(log_px[-1]), int(sip[-1])
    return np.rint(state.s0 * np.exp(log_px) * 100).astype(np.int64).clip(1)


def _exchange_ids(exchange: np.ndarray, corr: np.ndarray, state: _WalkState) -> np.ndarray:
    """Trade ids: a rising counter per exchange, continuing ``state.ids`` (a correction keeps
    the id of the trade it corrects)."""
    n = len(exchange)
    src = np.arange(n) - corr
    ids = np.zeros(n, dtype=np.int64)
    orig = np.flatnonzero(~corr)
    order = orig[np.argsort(exchange[orig], kind="stable")]
    ex_sorted = exchange[order]
    starts = np.flatnonzero(np.r_[True, ex_sorted[1:] != ex_sorted[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ids[order] = np.arange(len(order)) - group_start + 1 + state.ids[ex_sorted]
    ids[corr] = ids[src[corr]]
    state.ids += np.bincount(ex_sorted, minlength=len(state.ids))
    return ids


def _segments(cluster: np.ndarray) -> np.ndarray:
    """Row bounds of about _SEGMENT_ROWS rows each, cut between clusters."""
    targets = np.arange(_SEGMENT_ROWS, len(cluster), _SEGMENT_ROWS)
    cuts = np.unique(np.searchsorted(cluster, cluster[targets]))
    return np.r_[0, cuts[cuts > 0], len(cluster)]


def _write_stock_trades(w: _CsvGz, ticker: str, spec: TickerSpec, tr: _StockTrades) -> None:
    cond_tbl, corr_tbl, trf_tbl = (pa.array(t) for t in (_STOCK_CONDITIONS, _CORRECTIONS, _TRF_IDS))
    tk, tape = pa.scalar(ticker), pa.scalar(str(spec.tape))
    for a in _chunks(len(tr.sip)):
        s = slice(a, a + _CHUNK_ROWS)
        w.write(
            [
                tk,
                cond_tbl.take(pa.array(tr.condition_code[s])),
                corr_tbl.take(pa.array(tr.correction_code[s])),
                _str(tr.exchange[s]),
                _str(tr.id[s]),
                _str(tr.participant[s]),
                _cents(tr.price_cents[s]),
                _str(tr.sequence[s]),
                _str(tr.sip[s]),
                _str(tr.size_e4[s] / 10_000.0),
                tape,
                trf_tbl.take(pa.array(tr.trf_code[s])),
                _str(tr.trf_timestamp[s]),
            ]
        )


def _write_stock_quotes(
    w: _CsvGz,
    day: dt.date,
    ticker: str,
    spec: TickerSpec,
    tr: _StockTrades,
    quote_sip: np.ndarray,
    sequence: np.ndarray,
    rng: np.random.Generator,
) -> None:
    m = len(quote_sip)
    if m == 0:
        return
    at = np.clip(np.searchsorted(tr.sip, quote_sip, side="right") - 1, 0, None)
    mid = tr.price_cents[at]
    spread = spec.spread_cents + rng.geometric(0.7, m) - 1
    bid = np.maximum(mid - rng.integers(0, spread + 1), 1)
    ask = bid + spread
    lots = rng.geometric(0.3, (2, m))
    if day >= QUOTE_SIZES_IN_SHARES_FROM:
        lots = lots * 100 + rng.integers(0, 100, (2, m)) * (rng.random((2, m)) < 0.2)
    quote_ex = _STOCK_EXCHANGES[1:]
    p = _STOCK_EXCHANGE_P[1:] / _STOCK_EXCHANGE_P[1:].sum()
    ex = rng.choice(quote_ex, size=(2, m), p=p)
    participant = quote_sip - rng.integers(5_000, 400_000, m)
    tk, tape, one, empty, zero = (pa.scalar(v) for v in (ticker, str(spec.tape), "1", "", "0"))
    for a in _chunks(m):
        s = slice(a, a + _CHUNK_ROWS)
        w.write(
            [
                tk,
                _str(ex[0, s]),
                _cents(ask[s]),
                _str(lots[0, s]),
                _str(ex[1, s]),
                _cents(bid[s]),
                _str(lots[1, s]),
                one,
                empty,
                _str(participant[s]),
                _str(sequence[s]),
                _str(quote_sip[s]),
                tape,
                zero,
            ]
        )


# --------------------------------------------------------------------------- options


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _roll_back_to_session(d: dt.date) -> dt.date:
    """An expiration on a holiday moves to the previous session (beyond the calendar's
    horizon only weekends are known)."""
    last = calendar.xnys().last_session.date()
    while d.weekday() >= 5 or (d <= last and not calendar.is_trading_day(d)):
        d -= dt.timedelta(days=1)
    return d


def option_expiries(day: dt.date) -> list[tuple[dt.date, float]]:
    """(expiration, share of trades) for SPY/QQQ on ``day``: 0DTE and the next four daily
    expiries, the next three Fridays, the next two monthlies and a January LEAP."""
    weights: dict[dt.date, float] = {}

    def add(d: dt.date, wgt: float) -> None:
        d = _roll_back_to_session(d)
        if d >= day:
            weights[d] = weights.get(d, 0.0) + wgt

    add(day, 0.42)
    nxt = day
    for wgt in (0.10, 0.06, 0.05, 0.04):
        nxt = calendar.xnys().next_session(nxt.isoformat()).date()
        add(nxt, wgt)
    friday = nxt + dt.timedelta(days=(4 - nxt.weekday()) % 7 or 7)
    for wgt in (0.05, 0.04, 0.03):
        add(friday, wgt)
        friday += dt.timedelta(days=7)
    monthlies = [
        _third_friday(day.year + (day.month - 1 + i) // 12, (day.month - 1 + i) % 12 + 1)
        for i in range(3)
    ]
    for d, wgt in zip([m for m in monthlies if m > day][:2], (0.11, 0.05), strict=True):
        add(d, wgt)
    add(_third_friday(day.year + 2, 1), 0.03)
    total = sum(weights.values())
    return sorted((d, wgt / total) for d, wgt in weights.items())


def option_ticker(root: str, expiration: dt.date, is_call: bool, strike: float) -> str:
    """Massive/OPRA option ticker, e.g. ``O:SPY261120C00600000``."""
    return f"O:{root}{expiration:%y%m%d}{'C' if is_call else 'P'}{round(strike * 1000):08d}"


def _smile_iv(root: str, k: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Implied vol from a term structure plus skew/convexity in k = ln(K/F)."""
    base = 0.13 + 0.035 * (1.0 - np.exp(-t / 0.25)) + np.where(t < 2 / 365, 0.025, 0.0)
    if root != "SPY":
        base = base + 0.04
    tc = np.maximum(t, 1 / 365)
    return np.clip(base - 0.40 * k / np.sqrt(tc) + 0.60 * k * k / tc, 0.06, 1.2)


@dataclass(frozen=True)
class _Expiries:
    """The day's option expirations: dates, expiry instants (ns) and shares of the trades."""

    dates: list[dt.date]
    ns: np.ndarray
    share: np.ndarray

    @classmethod
    def of(cls, day: dt.date) -> _Expiries:
        expiries = option_expiries(day)
        return cls(
            [d for d, _ in expiries],
            np.array([calendar.expiry_ns(d) for d, _ in expiries], dtype=np.int64),
            np.array([wgt for _, wgt in expiries]),
        )


class _Prices(NamedTuple):
    iv: np.ndarray  # the volatility each trade was priced at
    model: np.ndarray  # the BSM price at that volatility
    cents: np.ndarray  # the printed price in cents
    below: np.ndarray  # deep trades printed below intrinsic
    off_model: np.ndarray  # printed away from the model (below intrinsic or floored to 0.01)


class _Quotes(NamedTuple):
    bid: np.ndarray  # cents
    ask: np.ndarray  # cents
    outside: np.ndarray  # the trade printed outside its prevailing quote
    sip: np.ndarray  # the quote's sip_timestamp


def generate_option_trades(
    day: dt.date,
    n: int,
    underlyings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Option trades (and the quote prevailing at each) for the roots in ``underlyings``.

    ``underlyings`` maps a root to (sip_timestamps, prices) of its genuine trades (sorted):
    each option trade happens in the regular session up to 0.8 s after one of them and is
    priced with BSM at the latest genuine underlying trade at or before it. Returned arrays
    are in file order (ticker, then sip_timestamp); ``tickers[contract]`` is each trade's
    ticker; ``iv`` the volatility used; ``off_model`` marks trades deliberately not at the
    model price (below intrinsic, or the model price under half a cent floored to 0.01);
    ``outside_quote`` marks trades whose prevailing quote (bid/ask) does not contain them.
    """
    roots = [r for r in OPTION_ROOT_SHARES if r in underlyings] or sorted(underlyings)
    expiries = _Expiries.of(day)
    d = _draw_option_trades(day, n, roots, underlyings, expiries, seed)
    tickers, contract = _contracts(d, roots, expiries.dates)
    contract, first = _sort_into_file_order(d, tickers, contract)
    # Strictly rising times within a contract (prevailing quotes are then unambiguous).
    sip = _strictly_within_groups(d["sip"], first)
    und_price, und_time = _underlying_at(sip, d["root"], roots, underlyings)
    t = (expiries.ns[d["e"]] - sip) / NS_PER_YEAR
    p = _price_trades(d, roots, und_price, t)
    q = _prevailing_quotes(p.cents, p.off_model, d["u"], sip, first, d["quote_gap"])
    return {
        "tickers": tickers,
        "contract": contract,
        "underlying": np.array(roots)[d["root"]],
        "expiration": np.array(expiries.dates, dtype="datetime64[D]")[d["e"]],
        "is_call": d["is_call"],
        "strike": d["strike"],
        "sip_timestamp": sip,
        "price": p.cents / 100.0,
        "size": d["size"],
        "exchange": d["exchange"],
        "condition": d["condition"],
        "underlying_price": und_price,
        "underlying_time": und_time,
        "time_to_expiry": t,
        "iv": p.iv,
        "model_price": p.model,
        "off_model": p.off_model,
        "below_intrinsic": p.below,
        "outside_quote": q.outside,
        "bid": q.bid / 100.0,
        "ask": q.ask / 100.0,
        "quote_timestamp": q.sip,
        "bid_exchange": d["quote_ex"][0],
        "ask_exchange": d["quote_ex"][1],
        "bid_size": d["quote_size"][0],
        "ask_size": d["quote_size"][1],
    }


def _draw_option_trades(
    day: dt.date,
    n: int,
    roots: list[str],
    underlyings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    expiries: _Expiries,
    seed: int,
) -> dict[str, np.ndarray]:
    """Split ``n`` trades over the roots and draw each root's trades (one random stream per
    root); the per-trade arrays of all roots concatenated, in draw order."""
    shares = np.array([OPTION_ROOT_SHARES.get(r, 1.0) for r in roots])
    counts = np.random.default_rng([seed, _STREAM_OPTIONS, 99]).multinomial(
        n, shares / shares.sum()
    )
    open_, close = calendar.session_bounds_ns(day, "regular")
    parts: list[dict[str, np.ndarray]] = []
    for ri, (root, m) in enumerate(zip(roots, counts, strict=True)):
        times, prices = (np.asarray(a) for a in underlyings[root])
        anchors = np.flatnonzero((times >= open_) & (times < close))
        if m == 0 or len(anchors) == 0:
            continue
        rng = _rng(seed, _STREAM_OPTIONS, ri)
        parts.append(_draw_root_trades(rng, ri, m, times, prices, anchors, close, expiries))
    if not parts:
        raise ValueError("no underlying trades in the regular session to anchor option trades")
    d = {k: np.concatenate([p.pop(k) for p in parts], axis=-1) for k in list(parts[0])}
    del parts
    return d


def _draw_root_trades(
    rng: np.random.Generator,
    ri: int,
    m: int,
    times: np.ndarray,
    prices: np.ndarray,
    anchors: np.ndarray,
    close: int,
    expiries: _Expiries,
) -> dict[str, np.ndarray]:
    """m trades on root number ``ri``, each anchored shortly after a regular-session genuine
    underlying trade (rows of ``times``/``prices`` listed in ``anchors``)."""
    spot0 = float(prices[anchors[0]])
    a = rng.choice(anchors, size=m)
    sip = np.minimum(times[a] + rng.integers(0, 800_000_000, m), close - 1_000)
    e = rng.choice(len(expiries.dates), size=m, p=expiries.share)
    is_call = rng.random(m) < 0.52
    t_anchor = (expiries.ns[e] - sip) / NS_PER_YEAR
    width = np.clip(0.9 * 0.16 * np.sqrt(t_anchor), 0.0015, 0.06)
    x = np.clip(rng.normal(0.0, 1.0, m) * width, -0.15, 0.15)
    # A few deep in-the-money trades on short expiries, printed below intrinsic.
    deep = (rng.random(m) < 0.003) & (t_anchor < 8 / 365)
    depth = rng.uniform(0.03, 0.10, m)
    x = np.where(deep, np.where(is_call, -depth, depth), x)
    # The draws below keep their order: each consumes the root's stream.
    return dict(
        root=np.full(m, ri),
        e=e,
        is_call=is_call,
        strike=_listed_strike(prices[a] * np.exp(x), spot0, deep),
        sip=sip,
        deep=deep,
        u=rng.random((4, m)),
        size=np.select(
            [rng.random(m) < 0.005, rng.random(m) < 0.15],
            [rng.integers(100, 1000, m), rng.integers(1, 51, m)],
            rng.geometric(0.4, m),
        ),
        exchange=rng.choice(_OPTION_EXCHANGES, size=m),
        condition=rng.choice(_OPTION_CONDITIONS, size=m, p=_OPTION_CONDITION_P),
        quote_ex=rng.choice(_OPTION_EXCHANGES, size=(2, m)),
        quote_size=rng.geometric(0.05, (2, m)),
        iv_noise=rng.normal(0.0, 0.004, m),
        quote_gap=_quote_gaps(rng.integers(1_000, 500_000_000, m)),
    )


def _quote_gaps(draws: np.ndarray) -> np.ndarray:
    """How long (ns) before a trade its prevailing quote was set: 19 in 20 within 50 ms (an
    active contract's NBBO changes often), the rest up to 500 ms (a quiet one; beyond the
    classifier's 150 ms staleness bound, Unknown as stale)."""
    return np.where(draws % 20 == 0, draws, 1_000 + draws // 10)


def _listed_strike(k_raw: np.ndarray, spot0: float, deep: np.ndarray) -> np.ndarray:
    """Round wanted strikes to listed ones: $1 near the money, $5 beyond 5% of the opening
    spot and for the deep trades, all within +-15% of it."""
    k1 = np.rint(k_raw)
    k5 = 5 * np.rint(k_raw / 5)
    strike = np.where(deep | (np.abs(k1 / spot0 - 1) > 0.05), k5, k1)
    return np.clip(strike, 5 * np.ceil(spot0 * 0.85 / 5), 5 * np.floor(spot0 * 1.15 / 5))


def _contracts(
    d: Mapping[str, np.ndarray], roots: list[str], dates: list[dt.date]
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct contracts' tickers and each trade's contract number (an index into them)."""
    strike_milli = np.rint(d["strike"] * 1000).astype(np.int64)
    key = (
        (d["root"].astype(np.int64) << 42) | (d["e"] << 33) | (d["is_call"].astype(np.int64) << 32)
    )
    uniq, contract = np.unique(key | strike_milli, return_inverse=True)
    tickers = np.array(
        [
            option_ticker(
                roots[k >> 42], dates[(k >> 33) & 511], bool((k >> 32) & 1), (k & 0xFFFFFFFF) / 1000
            )
            for k in uniq.tolist()
        ]
    )
    return tickers, contract


def _sort_into_file_order(
    d: dict[str, np.ndarray], tickers: np.ndarray, contract: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the trades in place by ticker text, then sip_timestamp (the file order).

    Returns the reordered contract numbers and a mask of each contract's first trade.
    """
    rank = np.argsort(np.argsort(tickers, kind="stable"), kind="stable")
    order = np.lexsort((d["sip"], rank[contract]))
    for k in d:  # reorder one array at a time (bounded memory)
        d[k] = d[k][..., order]
    contract = contract[order]
    first = np.r_[True, contract[1:] != contract[:-1]]
    return contract, first


def _underlying_at(
    sip: np.ndarray,
    root: np.ndarray,
    roots: list[str],
    underlyings: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Price and time of the latest genuine underlying trade at or before each trade."""
    und_price = np.empty(len(sip))
    und_time = np.empty(len(sip), dtype=np.int64)
    for ri, name in enumerate(roots):
        sel = root == ri
        if not sel.any():
            continue
        times, prices = (np.asarray(a) for a in underlyings[name])
        s_idx = np.searchsorted(times, sip[sel], side="right") - 1
        und_price[sel] = prices[s_idx]
        und_time[sel] = times[s_idx]
    return und_price, und_time


def _price_trades(
    d: Mapping[str, np.ndarray], roots: list[str], und_price: np.ndarray, t: np.ndarray
) -> _Prices:
    """BSM prices at the smile's volatility (plus noise), rounded to the cent; the deep
    trades printed a little below intrinsic instead."""
    strike, is_call = d["strike"], d["is_call"]
    fwd = und_price * np.exp((RATE - DIVIDEND_YIELD) * t)
    iv = np.empty(len(t))
    for ri, root in enumerate(roots):
        sel = d["root"] == ri
        iv[sel] = _smile_iv(root, np.log(strike[sel] / fwd[sel]), t[sel])
    iv = np.clip(iv + d["iv_noise"], 0.05, None)
    model = bsm_price(is_call, und_price, strike, t, RATE, iv, DIVIDEND_YIELD)
    cents = np.rint(model * 100).astype(np.int64)
    floored = cents < 1
    intrinsic = np.where(is_call, und_price - strike, strike - und_price)
    below = d["deep"] & (intrinsic >= 0.5)
    below_cents = np.floor((intrinsic - 0.02 - 0.28 * d["u"][0]) * 100).astype(np.int64)
    cents = np.where(below, below_cents, np.maximum(cents, 1))
    return _Prices(iv, model, cents, below, floored | below)


def _prevailing_quotes(
    cents: np.ndarray,
    off_model: np.ndarray,
    u: np.ndarray,
    sip: np.ndarray,
    first: np.ndarray,
    quote_gap: np.ndarray,
) -> _Quotes:
    """The quote prevailing at each trade, placed after the contract's previous trade and at
    or before this one; a few normal trades print through the bid or the ask."""
    spread = np.maximum(1, np.rint(cents * 0.008)).astype(np.int64) + (u[1] * 3).astype(np.int64)
    bid = cents - (u[2] * (spread + 1)).astype(np.int64).clip(0, spread)
    bid = np.maximum(bid, 0)
    ask = np.maximum(bid + spread, cents)
    outside = (u[3] < 0.005) & (cents >= 50) & ~off_model
    through_ask = u[2] < 0.5
    shift = 1 + (u[1] * 3).astype(np.int64)
    ask = np.where(outside & through_ask, cents - shift, ask)
    bid = np.where(outside & through_ask, ask - spread, bid)
    bid = np.where(outside & ~through_ask, cents + shift, bid)
    ask = np.where(outside & ~through_ask, bid + spread, ask)
    prev_gap = np.where(first, 10**12, np.diff(sip, prepend=sip[0]))
    quote_sip = sip - np.minimum(quote_gap, (prev_gap - 1) // 2)
    return _Quotes(bid, ask, outside, quote_sip)


def _strictly_within_groups(t: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Make sorted-within-group int64 times strictly increasing inside each group."""
    i = np.arange(len(t), dtype=np.int64)
    j = i - np.maximum.accumulate(np.where(first, i, 0))
    base = t - j
    lo = base.min()
    # Running maximum restarting at each group: lift each group above the previous one.
    lift = (np.cumsum(first) - 1) * (base.max() - lo + 1)
    return np.maximum.accumulate(base - lo + lift) - lift + lo + j


def _write_option_trades(w: _CsvGz, o: Mapping[str, np.ndarray], header: str) -> None:
    tickers = pa.array(o["tickers"])
    empty = pa.scalar("")
    for a in _chunks(len(o["contract"])):
        s = slice(a, a + _CHUNK_ROWS)
        sip = _str(o["sip_timestamp"][s])
        cols = [
            tickers.take(pa.array(o["contract"][s])),
            _str(o["condition"][s]),
            empty,
            _str(o["exchange"][s]),
        ]
        if header == "v8":
            cols.append(sip)
        cols += [_cents(np.rint(o["price"][s] * 100)), sip, _str(o["size"][s])]
        w.write(cols)


def _write_option_quotes(w: _CsvGz, o: Mapping[str, np.ndarray], rng: np.random.Generator) -> None:
    qt = o["quote_timestamp"]
    seq = np.empty(len(qt), dtype=np.int64)
    seq[np.argsort(qt, kind="stable")] = 10_000 + np.cumsum(rng.integers(1, 200, len(qt)))
    tickers = pa.array(o["tickers"])
    for a in _chunks(len(qt)):
        s = slice(a, a + _CHUNK_ROWS)
        w.write(
            [
                tickers.take(pa.array(o["contract"][s])),
                _str(o["ask_exchange"][s]),
                _cents(np.rint(o["ask"][s] * 100)),
                _str(o["ask_size"][s]),
                _str(o["bid_exchange"][s]),
                _cents(np.rint(o["bid"][s] * 100)),
                _str(o["bid_size"][s]),
                _str(seq[s]),
                _str(qt[s]),
            ]
        )


# --------------------------------------------------------------------------- the day


def generate_day(
    day: dt.date,
    out_dir: str | Path,
    scale: str | int = "demo",
    seed: int = 0,
    option_header: str = "v7",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write a synthetic trading day in Massive's flat-file layout under ``out_dir``.

    ``scale`` is a name in ``SCALES`` or an approximate number of stock trades. The same
    arguments give byte-identical files. Returns the four written paths keyed
    ``stock_trades``, ``stock_quotes``, ``option_trades``, ``option_quotes``.
    """
    if isinstance(day, dt.datetime):
        day = day.date()
    if not calendar.is_trading_day(day):
        raise ValueError(f"{day} is not an NYSE trading day")
    if option_header not in OPTION_TRADES_HEADERS:
        raise ValueError(f"option_header must be one of {sorted(OPTION_TRADES_HEADERS)}")
    n = scale_trades(scale)
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    paths = {name: out / flat_file_key(name, day) for name in DATASETS}
    underlyings = _write_stock_files(day, n, seed, paths, say)
    n_opt = max(50, round(n * OPTION_TRADES_PER_STOCK_TRADE))
    o = generate_option_trades(day, n_opt, underlyings, seed)
    _write_option_files(o, paths, option_header, seed)
    say(f"{day}: {len(o['contract']):,} option trades on {len(o['tickers']):,} contracts")
    return paths


def _write_stock_files(
    day: dt.date, n: int, seed: int, paths: Mapping[str, Path], say: Callable[[str], None]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the stock trades and quotes of every ticker, one ticker after the other.

    Returns (sip_timestamps, prices) of the genuine trades of each option root.
    """
    names = sorted(TICKERS)
    share = np.array([TICKERS[t].share for t in names])
    share /= share.sum()
    layouts = [
        _layout(
            day,
            max(10, round(n * s)),
            max(5, round(n * s * STOCK_QUOTES_PER_STOCK_TRADE)),
            _rng(seed, _STREAM_LAYOUT, i),
        )
        for i, s in enumerate(share)
    ]
    trade_seq = _global_sequence([lay.sip for lay in layouts], _rng(seed, _STREAM_SEQ, 0))
    quote_seq = _global_sequence([lay.quote_sip for lay in layouts], _rng(seed, _STREAM_SEQ, 1))
    say(f"{day}: laid out {sum(len(lay.sip) for lay in layouts):,} stock trades")

    underlyings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    trades_w = _CsvGz(paths["stock_trades"], STOCK_TRADES_HEADER)
    quotes_w = _CsvGz(paths["stock_quotes"], STOCK_QUOTES_HEADER)
    try:
        for i, ticker in enumerate(names):
            lay = layouts[i]
            genuine = _write_ticker(
                (trades_w, quotes_w), day, ticker, lay, trade_seq[i], quote_seq[i], seed, i
            )
            if genuine is not None:
                underlyings[ticker] = genuine
            say(f"{day}: {ticker}: {len(lay.sip):,} trades, {len(lay.quote_sip):,} quotes")
            layouts[i] = trade_seq[i] = quote_seq[i] = None  # type: ignore[call-overload]  # free as we go
    except BaseException:
        trades_w.abort()
        quotes_w.abort()
        raise
    trades_w.close()
    quotes_w.close()
    return underlyings


def _write_ticker(
    writers: tuple[_CsvGz, _CsvGz],
    day: dt.date,
    ticker: str,
    lay: _Layout,
    trade_seq: np.ndarray,
    quote_seq: np.ndarray,
    seed: int,
    i: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Write ticker number ``i``'s trades and quotes segment by segment (bounded memory).

    Returns (sip_timestamps, prices) of its genuine trades if it is an option root.
    """
    trades_w, quotes_w = writers
    spec = TICKERS[ticker]
    rng = _rng(seed, _STREAM_TRADES, i)
    qrng = _rng(seed, _STREAM_QUOTES, i)
    state = _WalkState(s0=spec.level * float(np.exp(rng.normal(0.0, 0.04))))
    genuine: list[tuple[np.ndarray, np.ndarray]] = []
    bounds = _segments(lay.cluster)
    q_bounds = np.searchsorted(lay.quote_sip, lay.sip[bounds[1:-1]])
    q_bounds = np.r_[0, q_bounds, len(lay.quote_sip)]
    for a, b, qa, qb in zip(bounds[:-1], bounds[1:], q_bounds[:-1], q_bounds[1:], strict=True):
        tr = _stock_trades(
            day,
            spec,
            lay.sip[a:b],
            lay.correction[a:b],
            lay.cluster[a:b],
            trade_seq[a:b],
            rng,
            state,
        )
        _write_stock_trades(trades_w, ticker, spec, tr)
        _write_stock_quotes(
            quotes_w, day, ticker, spec, tr, lay.quote_sip[qa:qb], quote_seq[qa:qb], qrng
        )
        if ticker in OPTION_ROOT_SHARES:
            g = tr.genuine
            genuine.append((tr.sip[g], tr.price_cents[g] / 100.0))
        del tr
    if not genuine:
        return None
    return np.concatenate([g[0] for g in genuine]), np.concatenate([g[1] for g in genuine])


def _write_option_files(
    o: Mapping[str, np.ndarray], paths: Mapping[str, Path], option_header: str, seed: int
) -> None:
    """Write the option trades and the quotes prevailing at them."""
    otw = _CsvGz(paths["option_trades"], OPTION_TRADES_HEADERS[option_header])
    oqw = _CsvGz(paths["option_quotes"], OPTION_QUOTES_HEADER)
    try:
        _write_option_trades(otw, o, option_header)
        _write_option_quotes(oqw, o, _rng(seed, _STREAM_SEQ, 2))
    except BaseException:
        otw.abort()
        oqw.abort()
        raise
    otw.close()
    oqw.close()
