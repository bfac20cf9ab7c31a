# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""How far the prelim (live) windows of one day and window size were from the final
(batch) ones: :func:`reconcile` joins the two by ``window_start`` and compares every
feature column both carry.

Both sides are streams of record batches in ascending ``window_start`` order (as the batch
``features_<w>`` partition and the live store hold them); they are merge-joined, so memory
holds a batch or two of rows, not the day.

**Tolerances** (FEATURES.md's, per column): ``*_bc`` relative 1e-6; ``*_mode`` and
``*_kde_peaks`` exactly; ``*_dip_pval`` 1e-12 absolute; the trade counts exactly; every
other float relative 1e-9 (with 1e-12 absolute, for values that should be 0). A null on one
side and a value on the other is a difference (``null_mismatches``); nulls or NaNs on both
sides are equal. A window *differs* when any compared column is beyond its tolerance.

**Relative difference** of two values ``a`` and ``b``: ``|a - b| / max(|a|, |b|)`` (0 when
equal), so 1.0 means one side is 0 (or null) and the other not; the largest per family
includes the differences within tolerance (how close prelim came, not only whether it
passed).

**Families** (:data:`FAMILIES`, first matching name prefix wins; every column of
``IDENTITY_COLUMNS``' counts, ``FEATURE_NAMES`` and ``AGGRESSION_FEATURE_NAMES`` has one):
``trade_counts`` (underlying/call/put trades), ``underlying_price`` (open/high/low/close),
``underlying_dollar_value``, ``intrinsic`` (the three ``*_intrinsic_pct``),
``calls_dollar_value``, ``calls_dadvv``, ``calls_gadvv``, ``puts_dadvv``, ``puts_gadvv``
and ``aggression`` (the 68 ``*_agg_buy_*`` / ``*_agg_sell_*``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)

COUNT_COLUMNS: tuple[str, ...] = IDENTITY_COLUMNS[4:]  # underlying_trades, call/put_trades
COMPARED_COLUMNS: tuple[str, ...] = (*COUNT_COLUMNS, *FEATURE_NAMES, *AGGRESSION_FEATURE_NAMES)
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("trade_counts", COUNT_COLUMNS),
    ("underlying_price", ("underlying_price_",)),
    ("underlying_dollar_value", ("underlying_dollar_value_",)),
    ("intrinsic", ("puts_below_intrinsic", "puts_above_intrinsic", "calls_above_intrinsic")),
    ("calls_dollar_value", ("calls_dollar_value",)),
    ("aggression", ("calls_dadvv_agg_", "puts_dadvv_agg_")),
    ("calls_dadvv", ("calls_dadvv_",)),
    ("calls_gadvv", ("calls_gadvv_",)),
    ("puts_dadvv", ("puts_dadvv_",)),
    ("puts_gadvv", ("puts_gadvv_",)),
)
FAMILY_NAMES: tuple[str, ...] = tuple(f for f, _ in FAMILIES)
MAX_EXAMPLES = 10  # differing windows listed in a report
_NO_START = np.iinfo(np.int64).max


def family_of(column: str) -> str:
    """The family of a compared column (ValueError for a column outside the contract)."""
    for family, prefixes in FAMILIES:
        if column.startswith(prefixes):
            return family
    raise ValueError(f"{column!r} is not a feature column of the contract")


@dataclass(frozen=True)
class Tolerance:
    """``|a - b| <= atol + rtol * |b|`` (numpy.isclose); both 0: exactly equal."""

    rtol: float
    atol: float


EXACT = Tolerance(0.0, 0.0)


def tolerance_of(column: str) -> Tolerance:
    """FEATURES.md's tolerance for ``column`` (see the module docstring)."""
    if column in COUNT_COLUMNS or column.endswith(("_mode", "_kde_peaks")):
        return EXACT
    if column.endswith("_dip_pval"):
        return Tolerance(0.0, 1e-12)
    if column.endswith("_bc"):
        return Tolerance(1e-6, 1e-12)
    return Tolerance(1e-9, 1e-12)


@dataclass
class FamilyDiff:
    """One family's comparison over the matched windows."""

    family: str
    columns: int
    windows_differing: int = 0
    null_mismatches: int = 0  # (window, column) pairs with a value on one side only
    max_rel_diff: float = 0.0
    worst_column: str | None = None
    worst_window_start_ns: int | None = None


@dataclass
class DifferingWindow:
    """A matched window beyond tolerance: its worst column and that column's values."""

    window_start_ns: int
    columns: int  # columns beyond tolerance
    worst_column: str
    prelim: float | None
    final: float | None
    gaps: int


@dataclass
class Reconciliation:
    """Prelim against final for one day and window size."""

    windows_compared: int = 0  # windows on both sides
    windows_only_final: int = 0  # e.g. live was not running then
    windows_only_prelim: int = 0
    windows_differing: int = 0
    windows_with_gaps: int = 0  # prelim windows with gaps > 0 (all of them, matched or not)
    differing_with_gaps: int = 0
    late_dropped: int = 0  # largest late_dropped on a prelim row (a run's count so far)
    families: dict[str, FamilyDiff] = field(default_factory=dict)
    columns_only_final: list[str] = field(default_factory=list)
    columns_only_prelim: list[str] = field(default_factory=list)
    examples: list[DifferingWindow] = field(default_factory=list)
    # Every differing window: (window_start ns, columns beyond tolerance); and every prelim
    # window with gaps (starts). One entry per such window, for the report's chart.
    differing: list[tuple[int, int]] = field(default_factory=list)
    gap_starts: list[int] = field(default_factory=list)

    @property
    def max_rel_diff(self) -> float:
        return max((f.max_rel_diff for f in self.families.values()), default=0.0)


class _Side:
    """One side's batches, pulled one at a time, with their ascending order checked."""

    def __init__(self, name: str, batches: Iterable[pa.RecordBatch]) -> None:
        self.name = name
        self._it: Iterator[pa.RecordBatch] = iter(batches)
        self.rows: pa.Table | None = None
        self.starts = np.empty(0, np.int64)
        self.last = np.iinfo(np.int64).min
        self.done = False

    def pull(self) -> None:
        try:
            batch = next(self._it)
        except StopIteration:
            self.done = True
            return
        starts = pc.cast(batch.column("window_start"), pa.int64()).to_numpy(zero_copy_only=False)
        if len(starts) and starts[0] <= self.last:
            wrong = np.array([0])
        else:
            wrong = np.flatnonzero(np.diff(starts) <= 0) + 1
        if wrong.size:
            at = int(starts[wrong[0]])
            raise ValueError(
                f"{self.name} rows are not one per window in window_start order: the window "
                f"at {at} ns ({pd_utc(at)}) is repeated or out of order"
            )
        if not len(starts):
            return
        self.last = int(starts[-1])
        # Pulled only once the buffer is empty (take_until emptied it).
        self.rows, self.starts = pa.Table.from_batches([batch]), starts

    def take_until(self, horizon: int) -> tuple[pa.Table | None, np.ndarray]:
        """The buffered rows with ``window_start <= horizon``, removed from the buffer."""
        n = int(np.searchsorted(self.starts, horizon, side="right"))
        if self.rows is None or n == 0:
            return None, self.starts[:0]
        head, starts = self.rows.slice(0, n), self.starts[:n]
        self.rows = self.rows.slice(n) if n < self.rows.num_rows else None
        self.starts = self.starts[n:]
        return head, starts


def pd_utc(ns: int) -> str:
    """A window start in ns, readable (UTC)."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


def _values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(float values, present mask): nulls are not present; NaN counts as absent too. An
    infinite value (never a feature's) is compared as a present one: inf - inf is NaN,
    which would hide every other difference of its batch, so it counts as differing."""
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    return values, ~np.isnan(values)


class _Comparer:
    def __init__(self, final: pa.Schema, prelim: pa.Schema, out: Reconciliation) -> None:
        f, p = set(final.names), set(prelim.names)
        self.columns = [c for c in COMPARED_COLUMNS if c in f and c in p]
        self.out = out
        out.columns_only_final = [c for c in COMPARED_COLUMNS if c in f and c not in p]
        out.columns_only_prelim = [c for c in COMPARED_COLUMNS if c in p and c not in f]
        self.family = [family_of(c) for c in self.columns]
        for fam in FAMILY_NAMES:
            n = self.family.count(fam)
            if n:
                out.families[fam] = FamilyDiff(fam, n)

    def matched(self, final: pa.Table, prelim: pa.Table, starts: np.ndarray) -> None:
        """Compare rows already aligned (row i of each is window ``starts[i]``)."""
        out, n = self.out, len(starts)
        if "symbol" in final.column_names and "symbol" in prelim.column_names:
            a, b = set(final["symbol"].to_pylist()), set(prelim["symbol"].to_pylist())
            if a != b:
                raise ValueError(f"prelim rows are of {sorted(b)}, final rows of {sorted(a)}")
        gaps = _gaps(prelim)
        beyond = np.zeros((len(self.columns), n), dtype=bool)
        worst_rel = np.full(n, -1.0)
        worst_col = np.zeros(n, dtype=np.int64)
        fam_differs: dict[str, np.ndarray] = {}
        for j, (name, fam) in enumerate(zip(self.columns, self.family, strict=True)):
            fv, f_ok = _values(final[name])
            pv, p_ok = _values(prelim[name])
            both = f_ok & p_ok
            tol = tolerance_of(name)
            diff = np.zeros(n)
            scale = np.maximum(np.abs(fv), np.abs(pv))
            with np.errstate(invalid="ignore"):  # inf - inf: handled below
                np.divide(np.abs(pv - fv), scale, out=diff, where=both & (scale > 0))
            mismatch = f_ok != p_ok
            if tol == EXACT:
                close = pv == fv
            else:
                close = np.isclose(pv, fv, rtol=tol.rtol, atol=tol.atol)
            bad = mismatch | (both & ~close)
            beyond[j] = bad
            fam_differs[fam] = fam_differs.get(fam, np.zeros(n, dtype=bool)) | bad
            fd = out.families[fam]
            fd.null_mismatches += int(mismatch.sum())
            # A one-sided value, or an infinity against another value (NaN from inf - inf
            # or inf / inf): the largest relative difference; equal values (equal infinities
            # too): none.
            rel = np.where(mismatch, 1.0, diff)
            rel[both & (pv == fv)] = 0.0
            rel[np.isnan(rel)] = 1.0
            if n and rel.max() > fd.max_rel_diff:
                i = int(rel.argmax())
                fd.max_rel_diff = float(rel[i])
                fd.worst_column, fd.worst_window_start_ns = name, int(starts[i])
            score = np.where(bad, rel + 2.0, rel)  # a column beyond tolerance ranks first
            better = score > worst_rel
            worst_rel[better], worst_col[better] = score[better], j
        for fam, d in fam_differs.items():
            out.families[fam].windows_differing += int(d.sum())
        differs = beyond.any(axis=0) if self.columns else np.zeros(n, dtype=bool)
        out.windows_compared += n
        out.windows_differing += int(differs.sum())
        out.differing_with_gaps += int((differs & (gaps > 0)).sum())
        columns_beyond = beyond.sum(axis=0)
        out.differing += [(int(starts[i]), int(columns_beyond[i])) for i in np.flatnonzero(differs)]
        for i in np.flatnonzero(differs)[: MAX_EXAMPLES - len(out.examples)]:
            name = self.columns[int(worst_col[i])]
            out.examples.append(
                DifferingWindow(
                    int(starts[i]),
                    int(columns_beyond[i]),
                    name,
                    prelim[name][int(i)].as_py(),
                    final[name][int(i)].as_py(),
                    int(gaps[i]),
                )
            )


def _gaps(prelim: pa.Table) -> np.ndarray:
    if "gaps" not in prelim.column_names:
        return np.zeros(prelim.num_rows, dtype=np.int64)
    return pc.fill_null(prelim["gaps"], 0).to_numpy(zero_copy_only=False).astype(np.int64)


def reconcile(final: Iterable[pa.RecordBatch], prelim: Iterable[pa.RecordBatch]) -> Reconciliation:
    """Compare the prelim (live) rows of one day and window size with the final (batch)
    ones, both in ascending ``window_start`` order, one row per window (a repeated or
    out-of-order window is a ValueError naming the side)."""
    out = Reconciliation()
    sides = (_Side("final", final), _Side("prelim", prelim))
    f, p = sides
    comparer: _Comparer | None = None
    while True:
        for s in sides:
            while not s.done and s.rows is None:
                s.pull()
        if f.done and p.done and f.rows is None and p.rows is None:
            break
        # Every window up to the horizon has arrived on both sides (or never will).
        horizon = min(s.last if not s.done else _NO_START for s in sides)
        f_rows, f_starts = f.take_until(horizon)
        p_rows, p_starts = p.take_until(horizon)
        if p_rows is not None:
            _prelim_counts(p_rows, out)
        common, fi, pi = np.intersect1d(f_starts, p_starts, assume_unique=True, return_indices=True)
        out.windows_only_final += len(f_starts) - len(common)
        out.windows_only_prelim += len(p_starts) - len(common)
        if len(common) and f_rows is not None and p_rows is not None:
            if comparer is None:
                comparer = _Comparer(f_rows.schema, p_rows.schema, out)
            comparer.matched(f_rows.take(fi), p_rows.take(pi), common)
    return out


def _prelim_counts(prelim: pa.Table, out: Reconciliation) -> None:
    """What the prelim rows say of themselves: gaps and the late-dropped count."""
    with_gaps = _gaps(prelim) > 0
    out.windows_with_gaps += int(with_gaps.sum())
    if with_gaps.any():
        starts = pc.cast(prelim["window_start"], pa.int64()).to_numpy(zero_copy_only=False)
        out.gap_starts += [int(s) for s in starts[with_gaps]]
    if "late_dropped" in prelim.column_names and prelim.num_rows:
        late = pc.max(prelim["late_dropped"]).as_py()
        out.late_dropped = max(out.late_dropped, int(late or 0))
