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


def option_root(tickers: pa.Array) -> pa.Array:
    """OCC root of ``O:``-prefixed tickers (``O:SPY251121C00600000`` -> ``SPY``); the whole
    ticker after ``O:`` where it is too short to hold the 15-character date/type/strike."""
    body = pc.utf8_slice_codeunits(tickers, 2)
    n = pc.utf8_length(body)
    long_enough = pc.greater(n, 15)
    return pc.if_else(long_enough, pc.utf8_slice_codeunits(body, 0, -15), body)


def tick_sizes(tickers: pa.Array, prices: np.ndarray, rules: TickRules) -> np.ndarray:
    """Tick size per row (float64): by instrument kind, class and price; NaN price -> NaN."""
    tickers = tickers.cast(pa.string())
    is_option = np.asarray(
        pc.fill_null(pc.starts_with(tickers, "O:"), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    prices = np.asarray(prices, dtype=np.float64)
    out = np.where(
        prices >= rules.equity_threshold, rules.equity_tick_at_above, rules.equity_tick_below
    )
    if is_option.any():
        root = option_root(tickers)
        all_penny = _member(root, rules.penny_all_prices)
        penny = _member(root, rules.penny_classes)
        high = prices >= rules.option_threshold
        opt = np.where(high, rules.option_tick_at_above, rules.option_tick_below)
        opt = np.where(
            penny, np.where(high, rules.penny_tick_at_above, rules.penny_tick_below), opt
        )
        opt = np.where(all_penny, rules.penny_tick_below, opt)
        out = np.where(is_option, opt, out)
    return np.where(np.isnan(prices), np.nan, out)


def _member(values: pa.Array, names: frozenset[str]) -> np.ndarray:
    if not names:
        return np.zeros(len(values), dtype=bool)
    hit = pc.is_in(values, value_set=pa.array(sorted(names), pa.string()))
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)
