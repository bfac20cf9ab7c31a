# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Minimum price increments (tick sizes) and the price epsilon the classifier compares with.

Equities (Reg NMS rule 612): $0.01 at or above $1.00, $0.0001 below. Options: classes in the
Penny Interval Program quote in $0.01 below $3.00 and $0.05 at or above; SPY, QQQ and IWM
quote in $0.01 at every price; every other class in $0.05 below $3.00 and $0.10 at or above.
Both class lists are configurable (:class:`TickRules`). The tick is taken at the trade's
price; an option ticker is recognised by its ``O:`` prefix and its class is the OCC root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Classes quoted in pennies at every price (the program's three "all-penny" classes).
PENNY_ALL_PRICES = frozenset({"SPY", "QQQ", "IWM"})
# A conservative subset of the Penny Interval Program (classes that have been in it for
# years); extend it from the program's current list in config when needed.
PENNY_CLASSES = frozenset(
    {
        "AAPL", "AMD", "AMZN", "BAC", "C", "DIA", "EEM", "F", "GLD", "GOOG", "GOOGL", "INTC",
        "JPM", "META", "MSFT", "NFLX", "NVDA", "SLV", "TLT", "TSLA", "UBER", "XLE", "XLF",
    }
)  # fmt: skip


@dataclass(frozen=True)
class TickRules:
    """Tick-size rules per instrument class; ``epsilon_ticks`` is the comparison tolerance."""

    equity_threshold: float = 1.0
    equity_tick_below: float = 0.0001
    equity_tick_at_above: float = 0.01
    option_threshold: float = 3.0
    option_tick_below: float = 0.05
    option_tick_at_above: float = 0.10
    penny_tick_below: float = 0.01
    penny_tick_at_above: float = 0.05
    penny_all_prices: frozenset[str] = field(default_factory=lambda: PENNY_ALL_PRICES)
    penny_classes: frozenset[str] = field(default_factory=lambda: PENNY_CLASSES)
    # A thousandth of a tick absorbs float rounding at any realistic price (~1e-13 at
    # $1,000) while a sub-penny print $0.0001 inside a penny touch stays inside the spread.
    epsilon_ticks: float = 0.001


def option_tickers(tickers: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True for option tickers (``O:`` prefix; a null ticker is not one)."""
    opt = pc.fill_null(pc.starts_with(tickers, "O:"), False)
    return np.asarray(opt.to_numpy(zero_copy_only=False), bool)


def option_root(tickers: pa.Array) -> pa.Array:
    """OCC root of ``O:``-prefixed tickers (``O:SPY251121C00600000`` -> ``SPY``); the whole
    ticker after ``O:`` where it is too short to hold the 15-character date/type/strike."""
    body = pc.utf8_slice_codeunits(tickers, 2)
    n = pc.utf8_length(body)
    long_enough = pc.greater(n, 15)
    return pc.if_else(long_enough, pc.utf8_slice_codeunits(body, 0, -15), body)


def tick_sizes(tickers: pa.Array, prices: np.ndarray, rules: TickRules) -> np.ndarray:
    """Tick size per row (float64): by instrument kind, class and price; NaN price -> NaN."""
    encoded = pc.dictionary_encode(tickers.cast(pa.string()))
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return tick_sizes_coded(encoded.dictionary, np.asarray(codes, np.int64), prices, rules)


def tick_sizes_coded(
    dictionary: pa.Array, codes: np.ndarray, prices: np.ndarray, rules: TickRules
) -> np.ndarray:
    """:func:`tick_sizes` for dictionary-coded tickers (row ticker = ``dictionary[code]``; a
    code of -1 is taken as an equity): the class rules are looked up once per ticker."""
    dictionary = dictionary.cast(pa.string())
    # Per ticker: 0 equity, 1 option, 2 penny-class option, 3 all-penny option.
    is_option = option_tickers(dictionary)
    kind = is_option.astype(np.int8)
    if is_option.any():
        root = option_root(dictionary)
        kind[is_option & _member(root, rules.penny_classes)] = 2
        kind[is_option & _member(root, rules.penny_all_prices)] = 3
    row_kind = np.append(kind, 0)[np.asarray(codes)]  # code -1 -> the appended 0
    prices = np.asarray(prices, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        below_table = np.array(
            [rules.equity_tick_below, rules.option_tick_below, rules.penny_tick_below,
             rules.penny_tick_below]
        )  # fmt: skip
        above_table = np.array(
            [rules.equity_tick_at_above, rules.option_tick_at_above, rules.penny_tick_at_above,
             rules.penny_tick_below]
        )  # fmt: skip
        threshold = np.where(row_kind == 0, rules.equity_threshold, rules.option_threshold)
        out = np.where(prices >= threshold, above_table[row_kind], below_table[row_kind])
    return np.where(np.isnan(prices), np.nan, out)


def _member(values: pa.Array, names: frozenset[str]) -> np.ndarray:
    if not names:
        return np.zeros(len(values), dtype=bool)
    hit = pc.is_in(values, value_set=pa.array(sorted(names), pa.string()))
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)
