# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Latencies of a live run in fixed memory: a histogram of 1 ms buckets up to a minute.

The live path keeps two: window close (the watermark passing a window's end to its row on
disk) and queue wait (a frame received to the pipeline taking it). Quantiles are read to
the millisecond, whatever the length of the run (the Prometheus histogram in
:mod:`market_assets.live.metrics` has a few coarse buckets).
"""

from __future__ import annotations

import numpy as np

BUCKET_S = 0.001
MAX_S = 60.0


class LatencyHistogram:
    """Counts of latencies per millisecond; anything over ``MAX_S`` counts in the last
    bucket (its true maximum is kept apart)."""

    def __init__(self) -> None:
        self.counts = np.zeros(int(MAX_S / BUCKET_S) + 1, dtype=np.int64)
        self.max_s = 0.0

    def add(self, seconds: float | np.ndarray) -> None:
        """Count one latency or an array of them (negative ones count as 0; NaN, no
        latency, is not counted)."""
        values = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
        values = values[~np.isnan(values)]
        if not values.size:
            return
        # Whole microseconds first: 4.001 s / 1 ms is 4001.0000000000005 in floats, which
        # ceil would put a bucket too high.
        micros = np.round(values * 1e6)
        buckets = np.clip(np.ceil(micros / 1000), 0, self.counts.size - 1).astype(np.int64)
        np.add.at(self.counts, buckets, 1)
        self.max_s = max(self.max_s, float(values.max()))

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), rounded up to the millisecond; None before any."""
        total = self.count
        if not total:
            return None
        rank = max(1, int(np.ceil(q * total)))
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(bucket * BUCKET_S, self.max_s) if bucket < self.counts.size - 1 else self.max_s

    def summary(self) -> dict[str, float | int | None]:
        """Count, p50, p99 and max in seconds."""
        return {
            "count": self.count,
            "p50_s": self.quantile(0.5),
            "p99_s": self.quantile(0.99),
            "max_s": self.max_s if self.count else None,
        }
