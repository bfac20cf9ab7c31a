# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The live run's latency histograms (live.latency)."""

from __future__ import annotations

import numpy as np

from market_assets.live.latency import LatencyHistogram


def test_quantiles_are_read_to_the_millisecond_in_fixed_memory() -> None:
    h = LatencyHistogram()
    assert h.quantile(0.5) is None and h.summary()["count"] == 0
    size = h.counts.nbytes
    h.add(np.arange(1, 1001) / 1000)  # 1 ms .. 1 s
    h.add(0.0005)
    h.add(120.0)  # past the last bucket: counted there, the maximum kept exactly
    assert h.count == 1002 and h.counts.nbytes == size
    assert h.quantile(0.5) == 0.5
    assert h.quantile(0.99) == 0.991
    assert h.quantile(1.0) == 120.0
    assert h.summary() == {"count": 1002, "p50_s": 0.5, "p99_s": 0.991, "max_s": 120.0}


def test_exact_milliseconds_land_in_their_own_bucket_and_nan_is_not_a_latency() -> None:
    h = LatencyHistogram()
    ms = np.arange(1, 60_001)
    h.add(ms / 1000)
    assert (h.counts[1:60_001] == 1).all() and h.counts[0] == 0
    h.add(np.array([np.nan, 0.002]))
    assert h.count == 60_001 and h.counts[2] == 2
