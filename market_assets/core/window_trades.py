# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The trades a symbol's windows count, as numpy columns (step 1 of :mod:`core.windows`).

:meth:`StockTrades.from_arrow` / :meth:`OptionTrades.from_arrow` keep the symbol's trades
that count (not corrected) with the per-trade values the features use (dollar value,
condition masks, call/put flags, ...); ``.ordered()`` sorts them: stock trades by
(sip_timestamp, sequence_number), option trades by sip_timestamp, both stable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.conditions import ConditionRules

# The aggressor side column read when aggression features are on ("buy"/"sell"); produced
# upstream once quotes are available. A window holding an option trade that came without it
# has null aggression features.
AGGRESSOR_COLUMN = "aggressor_side"
UNKNOWN, NEITHER, BUY, SELL = -1, 0, 1, 2

Trades = pa.Table | pa.RecordBatch


def _ns(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _f64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy array with nulls as NaN."""
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _bool(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _is(col: pa.ChunkedArray | pa.Array, value: str) -> np.ndarray:
    """Boolean numpy mask ``col == value`` (null -> False)."""
    return _bool(pc.fill_null(pc.equal(col, value), False))


def _counted(trades: Trades, key: str, symbol: str) -> np.ndarray:
    """Row indices of the symbol's trades whose correction is null or 0."""
    keep = _is(trades.column(key), symbol)
    keep &= _bool(pc.fill_null(pc.equal(trades.column("correction"), 0), True))
    return np.flatnonzero(keep)


class _Columns:
    """Equal-length numpy columns (a dataclass) that can be taken, sliced and concatenated."""

    ts: np.ndarray
    DTYPES: ClassVar[dict[str, type]]

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def empty(cls) -> Self:
        return cls(**{name: np.zeros(0, dtype=t) for name, t in cls.DTYPES.items()})

    def _map(self, f) -> Self:  # noqa: ANN001 - a numpy indexing function
        return type(self)(**{k.name: f(getattr(self, k.name)) for k in dataclasses.fields(self)})

    def take(self, idx: np.ndarray | slice) -> Self:
        return self._map(lambda a: a[idx])

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        if len(parts) == 1:
            return parts[0]
        names = [k.name for k in dataclasses.fields(cls)]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def copy(self) -> Self:
        """The same trades in arrays of their own (not views of a larger buffer)."""
        return self._map(np.copy)

    def between(self, start: int, end: int) -> Self:
        """The trades with ``start <= ts < end`` (``ts`` sorted)."""
        a, b = np.searchsorted(self.ts, (start, end), side="left")
        return self.take(slice(int(a), int(b)))

    def count_between(self, start: int, end: int) -> int:
        """How many trades have ``start <= ts < end`` (``ts`` sorted)."""
        a, b = np.searchsorted(self.ts, (start, end), side="left")
        return int(b - a)


@dataclass(frozen=True)
class StockTrades(_Columns):
    """The symbol's stock trades that count (not corrected), with what the features use."""

    ts: np.ndarray  # int64 ns since the epoch, UTC
    seq: np.ndarray  # int64 sequence number (null -> 0)
    price: np.ndarray
    dollar: np.ndarray  # price x size
    open_close: np.ndarray  # every condition updates open/close
    high_low: np.ndarray  # every condition updates high/low
    volume: np.ndarray  # every condition updates volume
    DTYPES: ClassVar[dict[str, type]] = {
        "ts": np.int64,
        "seq": np.int64,
        "price": np.float64,
        "dollar": np.float64,
        "open_close": np.bool_,
        "high_low": np.bool_,
        "volume": np.bool_,
    }

    @classmethod
    def from_arrow(cls, trades: Trades, symbol: str, rules: ConditionRules) -> StockTrades:
        """From STOCK_TRADES columns (other tickers and corrected trades are dropped)."""
        idx = _counted(trades, "ticker", symbol)
        conds = trades.column("conditions")
        price = _f64(trades.column("price"))[idx]
        return cls(
            ts=_ns(trades.column("sip_timestamp"))[idx],
            seq=pc.fill_null(trades.column("sequence_number"), 0)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64, copy=False)[idx],
            price=price,
            dollar=price * _f64(trades.column("size"))[idx],
            open_close=rules.mask(conds, "open_close")[idx],
            high_low=rules.mask(conds, "high_low")[idx],
            volume=rules.mask(conds, "volume")[idx],
        )

    def ordered(self) -> StockTrades:
        """Sorted by (sip_timestamp, sequence_number), stable; a no-op when already so."""
        ts, seq = self.ts, self.seq
        if ts.size < 2:
            return self
        d = np.diff(ts)
        if (d > 0).all() or ((d >= 0).all() and (np.diff(seq)[d == 0] >= 0).all()):
            return self
        return self.take(np.lexsort((seq, ts)))


@dataclass(frozen=True)
class OptionTrades(_Columns):
    """The symbol's option trades that count (not corrected), with what the features use."""

    ts: np.ndarray
    is_call: np.ndarray
    is_put: np.ndarray
    ok: np.ndarray  # greeks_status == "ok"
    has_s: np.ndarray  # an underlying price, so an intrinsic value, exists
    below: np.ndarray  # price < intrinsic value
    above: np.ndarray  # price > intrinsic value
    dollar: np.ndarray  # premium (null -> 0)
    dadvv: np.ndarray
    gadvv: np.ndarray
    side: np.ndarray  # int8 aggressor side: -1 no classification, 0 neither, 1 buy, 2 sell
    DTYPES: ClassVar[dict[str, type]] = {
        "ts": np.int64,
        "is_call": np.bool_,
        "is_put": np.bool_,
        "ok": np.bool_,
        "has_s": np.bool_,
        "below": np.bool_,
        "above": np.bool_,
        "dollar": np.float64,
        "dadvv": np.float64,
        "gadvv": np.float64,
        "side": np.int8,
    }

    @classmethod
    def from_arrow(cls, trades: Trades, symbol: str) -> OptionTrades:
        """From OPTION_TRADES_GREEKS columns (other underlyings and corrected trades dropped)."""
        idx = _counted(trades, "underlying", symbol)
        status = trades.column("greeks_status")
        intrinsic = _f64(trades.column("intrinsic_value"))[idx]
        has_s = ~_is(status, "no_underlying")[idx] & ~np.isnan(intrinsic)
        has_s &= ~_bool(pc.is_null(status))[idx]
        side = np.full(idx.size, UNKNOWN, dtype=np.int8)
        if AGGRESSOR_COLUMN in trades.column_names:
            col = trades.column(AGGRESSOR_COLUMN)
            side[:] = NEITHER
            side[_is(col, "buy")[idx]] = BUY
            side[_is(col, "sell")[idx]] = SELL
        price = _f64(trades.column("price"))[idx]
        with np.errstate(invalid="ignore"):
            below, above = price < intrinsic, price > intrinsic
        return cls(
            ts=_ns(trades.column("sip_timestamp"))[idx],
            is_call=_is(trades.column("contract_type"), "call")[idx],
            is_put=_is(trades.column("contract_type"), "put")[idx],
            ok=_is(status, "ok")[idx],
            has_s=has_s,
            below=below,
            above=above,
            dollar=np.nan_to_num(_f64(trades.column("dollar_value"))[idx], nan=0.0),
            dadvv=_f64(trades.column("dadvv"))[idx],
            gadvv=_f64(trades.column("gadvv"))[idx],
            side=side,
        )

    def ordered(self) -> OptionTrades:
        """Sorted by sip_timestamp, stable; a no-op when already so."""
        if self.ts.size < 2 or (np.diff(self.ts) >= 0).all():
            return self
        return self.take(np.argsort(self.ts, kind="stable"))
