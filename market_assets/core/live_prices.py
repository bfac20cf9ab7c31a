# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The underlying price of live option trades: the batch as-of rule on millisecond times.

The batch prices an option trade at SIP time ``t`` (OPRA flat files: whole milliseconds)
with the last eligible stock trade at or before ``t`` in nanoseconds. The WebSocket carries
stock SIP times floored to milliseconds, so live uses **the last eligible stock trade in an
earlier millisecond** (feed time ``< t``; ties in one millisecond: the highest sequence
number). On a replayed day this is the trade the batch picks, except when a stock trade
falls exactly on the option trade's millisecond boundary (the batch includes it; a
1-in-a-million chance per trade with nanosecond times) or when its sequence order differs
from its nanosecond order within one millisecond. Staleness is measured from the stock
trade's millisecond (up to 1 ms older than its nanosecond time), so a trade right at
``max_underlying_staleness_s`` may price in the batch and not live.

Eligibility, staleness and the greeks are the batch's: :mod:`market_assets.core.underlying`
and :mod:`market_assets.core.enrich`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.conditions import ConditionRules
from market_assets.core.enrich import GreeksParams, enrich_option_trades
from market_assets.core.schemas import STOCK_TRADES
from market_assets.core.underlying import UnderlyingIndex, eligible_underlying_mask


class EarlierMillisecondIndex(UnderlyingIndex):
    """An :class:`UnderlyingIndex` over millisecond stock times whose as-of is strictly
    earlier: a lookup at ``t`` sees the stock trades at or before ``t - 1 ns``."""

    def asof(
        self,
        option_underlying: np.ndarray | pa.Array | pa.ChunkedArray,
        option_ts_ns: np.ndarray | pa.Array | pa.ChunkedArray,
        max_staleness_ns: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(option_ts_ns, np.ndarray):
            shifted: np.ndarray | pa.Array | pa.ChunkedArray = option_ts_ns.astype(np.int64) - 1
        else:
            ts = option_ts_ns
            if pa.types.is_timestamp(ts.type):
                ts = pc.cast(ts, pa.int64())
            shifted = pc.subtract(ts, 1)
        price, time_ns = super().asof(option_underlying, shifted, max_staleness_ns + 1)
        return price, time_ns


class UnderlyingBuffer:
    """The eligible stock trades that may still price a pending option trade."""

    def __init__(self, rules: ConditionRules) -> None:
        self.rules = rules
        self._chunks: list[pa.Table] = []
        self._index: EarlierMillisecondIndex | None = None

    def add(self, stock: pa.Table) -> None:
        """Keep the eligible rows of ``stock`` (STOCK_TRADES columns)."""
        if not stock.num_rows:
            return
        keep = eligible_underlying_mask(stock, self.rules)
        if keep.any():
            self._chunks.append(stock.filter(pa.array(keep)).select(STOCK_TRADES.names))
            self._index = None

    def forget_before(self, ts_ns: int) -> None:
        """Drop trades older than ``ts_ns`` (they are stale for every pending option trade)."""
        kept = []
        for c in self._chunks:
            ts = pc.cast(c.column("sip_timestamp"), pa.int64())
            mask = pc.greater_equal(ts, ts_ns)
            if pc.all(mask).as_py():
                kept.append(c)
            elif pc.any(mask).as_py():
                kept.append(c.filter(mask))
        if len(kept) != len(self._chunks) or any(
            a is not b for a, b in zip(kept, self._chunks, strict=False)
        ):
            self._chunks = kept
            self._index = None
        if len(self._chunks) > 64:
            self._chunks = [pa.concat_tables(self._chunks).combine_chunks()]
            self._index = None

    def index(self) -> EarlierMillisecondIndex:
        if self._index is None:
            table = pa.concat_tables(self._chunks) if self._chunks else STOCK_TRADES.empty_table()
            self._index = EarlierMillisecondIndex(table, self.rules)
        return self._index

    def __len__(self) -> int:
        return sum(c.num_rows for c in self._chunks)


def price_option_trades(
    options: pa.Table, underlying: UnderlyingBuffer, params: GreeksParams, rules: ConditionRules
) -> pa.Table:
    """Greeked option trades (OPTION_TRADES_GREEKS) priced with the live as-of rule."""
    return enrich_option_trades(options, underlying.index(), params, rules)
