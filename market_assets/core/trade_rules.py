# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Value rules every trade must pass to be stored: the same rules for a day's flat file and
for a live stream.

A row can parse and still be impossible: a price of ``nan`` or 0, a size of -5, a SIP time
of 0 (1970) in a file for 2026-11-20. Such rows are quarantined with the reason instead of
reaching the features. The rules (docs/data_quality.md):

- ``price`` is a finite number above 0;
- ``size`` is a finite number above 0;
- ``sip_timestamp`` falls on the partition's day in New York time, from 00:00 to 24:00
  (23 or 25 hours on daylight-saving change days);
- an option's ``strike`` (from its ticker) is above 0.

Valid but implausible values (a print at 100x its ticker's median) are not rule
violations: see :mod:`market_assets.core.implausible_prices`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import NEW_YORK_TZ, day_bounds_ns

_TS = pa.timestamp("ns", tz="UTC")
_NY_TS = pa.timestamp("ns", tz=NEW_YORK_TZ)


@dataclass(frozen=True)
class Violations:
    """Rows that break a rule: their indices (ascending) and one reason each; a row that
    breaks several rules names them all, separated by ``"; "``."""

    rows: np.ndarray
    reasons: pa.Array

    def __len__(self) -> int:
        return len(self.rows)


_NONE = Violations(np.empty(0, dtype=np.int64), pa.array([], pa.string()))


def find_violations(trades: pa.RecordBatch | pa.Table, day: dt.date) -> Violations:
    """Rows of ``trades`` (stock or option trades in their stored schema; ``strike`` is
    checked when present) that break a value rule for a partition of ``day``.

    Vectorized: a clean batch costs a few numpy comparisons; reasons are built only for
    the violating rows.
    """
    price = _floats(trades.column("price"))
    size = _floats(trades.column("size"))
    sip = trades.column("sip_timestamp")
    sip_ns = _ints(sip)
    lo, hi = day_bounds_ns(day)
    bad = {
        "price": ~(np.isfinite(price) & (price > 0)),
        "size": ~(np.isfinite(size) & (size > 0)),
        "sip_timestamp": (sip_ns < lo) | (sip_ns >= hi) | _nulls(sip),
    }
    if "strike" in trades.column_names:
        strike = _floats(trades.column("strike"))
        bad["strike"] = ~(np.isfinite(strike) & (strike > 0))
    any_bad = np.logical_or.reduce(list(bad.values()))
    if not any_bad.any():
        return _NONE
    rows = np.flatnonzero(any_bad)
    idx = pa.array(rows)
    messages = []
    for name, mask in bad.items():
        hit = pa.array(mask[rows])
        if not pc.any(hit).as_py():
            continue
        values = _column(trades, name).take(idx)
        if name == "sip_timestamp":
            ts = values.cast(pa.int64()).cast(_TS)
            text = pc.binary_join_element_wise(
                "sip_timestamp: ",
                pc.fill_null(values.cast(pa.int64()).cast(pa.string()), "missing"),
                " (",
                pc.fill_null(pc.strftime(ts.cast(_NY_TS), format="%Y-%m-%d %H:%M:%S%z"), "-"),
                f") is not on {day.isoformat()} (00:00-24:00 New York time)",
                "",
            )
        else:
            text = pc.binary_join_element_wise(
                f"{name}: ",
                pc.fill_null(values.cast(pa.string()), "missing"),
                " is not a finite number above 0",
                "",
            )
        messages.append(pc.if_else(hit, text, pa.scalar(None, pa.string())))
    reasons = pc.binary_join_element_wise(*messages, "; ", null_handling="skip")
    return Violations(rows, reasons)


def _column(trades: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    col = trades.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _floats(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values, null as nan (which fails every rule on numbers)."""
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _ints(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 values of a timestamp or integer column, null as 0 (also flagged by _nulls)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    ints = col.cast(pa.int64())
    if ints.null_count:
        ints = pc.fill_null(ints, 0)
    return ints.to_numpy(zero_copy_only=False)


def _nulls(col: pa.Array | pa.ChunkedArray) -> np.ndarray | bool:
    if not col.null_count:
        return False
    return pc.is_null(col).to_numpy(zero_copy_only=False)
