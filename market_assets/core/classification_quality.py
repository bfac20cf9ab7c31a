# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""What a day's classified option trades look like, accumulated batch by batch (the
option_trades_classified checks and metadata): sides, Unknown reasons, the state of the
NBBO in force, and NBBO age percentiles from a log-spaced histogram (bins 1% wide, so a
percentile is the upper edge of its bin: within 1% above the exact value)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.schemas import AGGRESSOR_SIDES, NBBO_STATES, UNKNOWN_REASONS

# Unknown for lack of a usable NBBO (inside the spread is a market outcome, not a gap).
DATA_REASONS = tuple(r for r in UNKNOWN_REASONS if r != "inside_spread")
_GROWTH = math.log(1.01)
_BINS = 3000  # 1.01 ** 3000 us is far beyond a day


def value_counter(col: pa.Array | pa.ChunkedArray) -> Counter[str]:
    """How often each non-null value occurs (pyarrow's value_counts, as a Counter)."""
    out: Counter[str] = Counter()
    for d in pc.value_counts(col.drop_null()).to_pylist():
        out[d["values"]] += d["counts"]
    return out


class ClassificationStats:
    """Counts per side, Unknown reason and NBBO state, and the NBBO ages (us)."""

    def __init__(self) -> None:
        self.rows = 0
        self.sides: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.states: Counter[str] = Counter()
        self.ages = np.zeros(_BINS + 1, np.int64)

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.sides += value_counter(batch.column("aggressor_side"))
        self.reasons += value_counter(batch.column("unknown_reason"))
        self.states += value_counter(batch.column("nbbo_state"))
        age = batch.column("nbbo_age_us").drop_null().to_numpy(zero_copy_only=False)
        if len(age):
            idx = np.floor(np.log1p(np.maximum(age, 0).astype(np.float64)) / _GROWTH)
            self.ages += np.bincount(np.minimum(idx, _BINS).astype(np.int64), minlength=_BINS + 1)

    def share(self, counter: Counter[str], key: str) -> float:
        return counter.get(key, 0) / self.rows if self.rows else 0.0

    @property
    def data_unknown_share(self) -> float:
        """Share of trades Unknown for lack of a usable NBBO (every reason but inside_spread)."""
        return sum(self.share(self.reasons, r) for r in DATA_REASONS)

    def age_percentile_us(self, q: float) -> float | None:
        """The ``q`` (0-1) percentile of the NBBO ages, to 1%; None without ages."""
        n = int(self.ages.sum())
        if n == 0:
            return None
        i = int(np.searchsorted(np.cumsum(self.ages), math.ceil(q * n), side="left"))
        return round(math.expm1((i + 1) * _GROWTH), 1)

    def metadata(self) -> dict[str, float | int | None]:
        md: dict[str, float | int | None] = {"rows": self.rows}
        md.update({f"share_{s}": round(self.share(self.sides, s), 6) for s in AGGRESSOR_SIDES})
        md.update(
            {f"share_unknown_{r}": round(self.share(self.reasons, r), 6) for r in UNKNOWN_REASONS}
        )
        md.update(
            {f"share_nbbo_{s.lower()}": round(self.share(self.states, s), 6) for s in NBBO_STATES}
        )
        for q in (50, 90, 99):
            md[f"nbbo_age_p{q}_us"] = self.age_percentile_us(q / 100)
        return md
