# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Cell summaries: per-cell sample values however the cells are laid out, and dropped cells
giving their memory back."""

from __future__ import annotations

import numpy as np

from market_assets.core.cells import Ragged, summarize, window_cells
from market_assets.core.window_trades import OptionTrades, StockTrades


def _naive(values, mask, lo, hi) -> list[list[float]]:
    return [
        [v for v, m in zip(values[a:b], mask[a:b], strict=True) if m]
        for a, b in zip(lo, hi, strict=True)
    ]


def test_ragged_values_per_cell_for_ordered_gapped_and_overlapping_cells() -> None:
    rng = np.random.default_rng(3)
    values, mask = rng.normal(size=200), rng.random(200) < 0.6
    layouts = {
        "contiguous": (np.array([0, 50, 120]), np.array([50, 120, 200])),
        "gaps": (np.array([5, 60, 150]), np.array([40, 100, 151])),
        "empty cells": (np.array([0, 10, 10]), np.array([10, 10, 30])),
        "overlapping": (np.array([0, 20, 10]), np.array([40, 60, 15])),
    }
    for name, (lo, hi) in layouts.items():
        r = Ragged.of(values, mask, lo, hi)
        got = [r.cells(k, k + 1).tolist() for k in range(lo.size)]
        assert got == _naive(values, mask, lo, hi), name


def test_dropping_most_cells_copies_the_rest_so_their_memory_can_go() -> None:
    n = 10_000
    ts = np.arange(n, dtype=np.int64) * 10
    stock = StockTrades(
        ts=ts,
        seq=np.arange(n, dtype=np.int64),
        price=np.full(n, 100.0),
        dollar=np.arange(n, dtype=np.float64),
        open_close=np.ones(n, bool),
        high_low=np.ones(n, bool),
        volume=np.ones(n, bool),
    )
    cells = summarize(stock, OptionTrades.empty(), np.arange(0, n * 10, 1000), 1000, False)
    assert len(cells) == 100 and cells.trades == n
    kept = cells.since(90 * 1000)  # 10 of 100 cells left
    assert len(kept) == 10 and kept.trades == 1000
    values = kept.samples["underlying_dollar_value"].values
    assert values.base is None and values.tolist() == list(range(9000, 10_000))
    most = cells.since(10 * 1000)  # most kept: a view is fine
    assert np.shares_memory(
        most.samples["underlying_dollar_value"].values,
        cells.samples["underlying_dollar_value"].values,
    )
    # A window across two chunks sees every value once, in time order.
    half = n // 2
    first = summarize(
        stock.take(slice(0, half)), OptionTrades.empty(), np.arange(0, half * 10, 1000), 1000, False
    )
    second = summarize(
        stock.take(slice(half, n)),
        OptionTrades.empty(),
        np.arange(half * 10, n * 10, 1000),
        1000,
        False,
    )
    w = window_cells([first, second], 0, n * 10)
    assert len(w.parts) == 2 and w.count("underlying_trades") == n
    assert w.values("underlying_dollar_value").tolist() == list(range(n))
    assert w.ohlc() == [100.0, 100.0, 100.0, 100.0]
