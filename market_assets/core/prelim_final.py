# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The quality columns every feature row ends with, batch and live alike.

``quality`` is ``"final"`` for the batch ``features_<w>`` (computed from the flat files
published the next morning) and ``"prelim"`` for the windows ``market-assets live`` writes
from the WebSocket feed. ``late_dropped`` (trades dropped as late so far in the live run
when the window was written) and ``gaps`` (feed gaps overlapping the window: > 0 means it
may miss trades) are 0 on final rows. Both paths append them with :func:`with_quality`, so
the two schemas are the same column for column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

PRELIM = "prelim"
FINAL = "final"
QUALITY_COLUMNS = pa.schema(
    [("quality", pa.string()), ("late_dropped", pa.int64()), ("gaps", pa.int64())]
)
QUALITY_NAMES: tuple[str, ...] = tuple(QUALITY_COLUMNS.names)


def with_quality(
    table: pa.Table,
    quality: str,
    late_dropped: int = 0,
    gaps: int | Sequence[int] | np.ndarray = 0,
) -> pa.Table:
    """``table`` with the three quality columns appended: ``quality`` on every row,
    ``late_dropped`` on every row, ``gaps`` one value for all rows or one per row."""
    if quality not in (PRELIM, FINAL):
        raise ValueError(f"quality must be {PRELIM!r} or {FINAL!r}, not {quality!r}")
    present = [n for n in QUALITY_NAMES if n in table.column_names]
    if present:
        raise ValueError(f"the rows already have the quality column(s) {present}")
    n = table.num_rows
    values = np.asarray(gaps, dtype=np.int64)
    if values.ndim and values.size != n:
        raise ValueError(f"gaps: {values.size} values for {n} rows (one, or one per row)")
    per_row = np.broadcast_to(values, (n,))
    columns = [
        pa.repeat(pa.scalar(quality, pa.string()), n),
        pa.array(np.full(n, late_dropped, dtype=np.int64), pa.int64()),
        pa.array(per_row, pa.int64()),
    ]
    for field, column in zip(QUALITY_COLUMNS, columns, strict=True):
        table = table.append_column(field, column)
    return table
