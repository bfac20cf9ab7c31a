# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Prelim against final on hand-built feature tables: equal days, a feature off, windows
on one side only, gaps, nulls, FEATURES.md's tolerances and the families."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.core.feature_names import (
    AGGRESSION_FEATURE_NAMES,
    FEATURE_NAMES,
    IDENTITY_COLUMNS,
)
from market_assets.core.prelim_final import FINAL, PRELIM, with_quality
from market_assets.core.reconcile import (
    COMPARED_COLUMNS,
    FAMILY_NAMES,
    family_of,
    reconcile,
    tolerance_of,
)

DAY = dt.date(2026, 11, 20)
W = "30m"
N = 13  # 30m windows of a regular session


def _features(aggression: bool = False) -> pa.Table:
    starts = window_starts_ns(DAY, window_ns(W))
    ts = pa.timestamp("ns", "UTC")
    rng = np.random.default_rng(1)
    cols: dict[str, pa.Array] = {
        "symbol": pa.array(["SPY"] * N),
        "window": pa.array([W] * N),
        "window_start": pa.array(starts, ts),
        "window_end": pa.array(starts + window_ns(W), ts),
    }
    for name in IDENTITY_COLUMNS[4:]:
        cols[name] = pa.array(rng.integers(1, 100, N), pa.int64())
    names = FEATURE_NAMES + (AGGRESSION_FEATURE_NAMES if aggression else ())
    for name in names:
        cols[name] = pa.array(rng.uniform(0.5, 2.0, N))
    return pa.table(cols)


def _final(t: pa.Table) -> pa.Table:
    return with_quality(t, FINAL)


def _prelim(t: pa.Table, late: int = 0, gaps: object = 0) -> pa.Table:
    return with_quality(t, PRELIM, late, gaps)


def _set(t: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = t[name].to_pylist()
    values[row] = value
    return t.set_column(t.schema.get_field_index(name), name, pa.array(values, t[name].type))


def _run(final: pa.Table, prelim: pa.Table, final_rows: int = 64, prelim_rows: int = 64):
    return reconcile(final.to_batches(final_rows), prelim.to_batches(prelim_rows))


def test_identical_days_compare_every_window_and_differ_nowhere():
    t = _features()
    r = _run(_final(t), _prelim(t))
    assert (r.windows_compared, r.windows_differing) == (N, 0)
    assert (r.windows_only_final, r.windows_only_prelim, r.windows_with_gaps) == (0, 0, 0)
    assert list(r.families) == [f for f in FAMILY_NAMES if f != "aggression"]
    assert all(f.max_rel_diff == 0 and f.windows_differing == 0 for f in r.families.values())
    assert sum(f.columns for f in r.families.values()) == 3 + len(FEATURE_NAMES)
    assert r.examples == [] and r.max_rel_diff == 0


def test_one_feature_off_in_one_window_is_that_family_and_window():
    t = _features()
    v = t["calls_dadvv_mean"][4].as_py()
    prelim = _set(t, "calls_dadvv_mean", 4, v * (1 + 1e-6))
    prelim = _set(prelim, "puts_gadvv_total", 7, prelim["puts_gadvv_total"][7].as_py() * 1.0001)
    # Within FEATURES.md's 1e-9: not a difference, but shown as the family's largest.
    prelim = _set(
        prelim, "underlying_price_close", 2, t["underlying_price_close"][2].as_py() * (1 + 1e-12)
    )
    r = _run(_final(t), _prelim(prelim))
    assert (r.windows_compared, r.windows_differing) == (N, 2)
    calls = r.families["calls_dadvv"]
    assert calls.windows_differing == 1 and calls.worst_column == "calls_dadvv_mean"
    assert calls.max_rel_diff == pytest.approx(1e-6, rel=1e-3)
    assert calls.worst_window_start_ns == int(window_starts_ns(DAY, window_ns(W))[4])
    assert r.families["puts_gadvv"].max_rel_diff == pytest.approx(1e-4, rel=1e-3)
    price = r.families["underlying_price"]
    assert price.windows_differing == 0 and 0 < price.max_rel_diff < 1e-11
    assert all(
        f.windows_differing == 0
        for n, f in r.families.items()
        if n not in ("calls_dadvv", "puts_gadvv")
    )
    assert [e.worst_column for e in r.examples] == ["calls_dadvv_mean", "puts_gadvv_total"]
    starts = window_starts_ns(DAY, window_ns(W))
    assert r.differing == [(int(starts[4]), 1), (int(starts[7]), 1)]
    assert r.examples[0].prelim == pytest.approx(v * (1 + 1e-6)) and r.examples[0].final == v
    assert r.max_rel_diff == pytest.approx(1e-4, rel=1e-3)


def test_windows_live_missed_or_batch_lacks_are_counted_not_compared():
    t = _features()
    final = _final(t).filter(pa.array([i != 1 for i in range(N)]))  # batch lacks window 1
    prelim = _prelim(t.slice(0, 5))  # live stopped after five windows
    r = _run(final, prelim, final_rows=3, prelim_rows=2)
    assert r.windows_compared == 4  # windows 0, 2, 3, 4
    assert (r.windows_only_final, r.windows_only_prelim) == (8, 1)
    assert r.windows_differing == 0


def test_live_output_starting_late_in_the_day_is_joined_by_window_start():
    t = _features()
    r = _run(_final(t), _prelim(t.slice(9)), final_rows=2, prelim_rows=1)
    assert (r.windows_compared, r.windows_only_final, r.windows_only_prelim) == (4, 9, 0)


def test_gaps_and_late_drops_are_reported_and_tied_to_differences():
    t = _features()
    gaps = np.zeros(N, dtype=np.int64)
    gaps[[3, 8]] = [1, 2]
    prelim = _set(t, "call_trades", 3, t["call_trades"][3].as_py() - 1)  # a missed trade
    late = np.arange(N)  # cumulative: the last row holds the run's count
    batches = [
        _prelim(prelim.slice(i, 1), int(late[i]), int(gaps[i])).to_batches()[0] for i in range(N)
    ]
    r = reconcile(_final(t).to_batches(), batches)
    assert (r.windows_with_gaps, r.differing_with_gaps, r.windows_differing) == (2, 1, 1)
    assert r.late_dropped == N - 1
    counts = r.families["trade_counts"]
    assert counts.windows_differing == 1 and counts.worst_column == "call_trades"
    assert r.examples[0].gaps == 1
    starts = window_starts_ns(DAY, window_ns(W))
    assert r.gap_starts == [int(starts[3]), int(starts[8])]


def test_a_value_on_one_side_only_is_a_difference_of_one():
    t = _features()
    r = _run(_final(t), _prelim(_set(t, "puts_dadvv_skew", 6, None)))
    fam = r.families["puts_dadvv"]
    assert (fam.null_mismatches, fam.windows_differing, fam.max_rel_diff) == (1, 1, 1.0)
    # Null on both sides is equal.
    both = _set(t, "puts_dadvv_skew", 6, None)
    assert _run(_final(both), _prelim(both)).windows_differing == 0


def test_tolerances_are_features_md_per_column():
    assert tolerance_of("calls_dadvv_bc").rtol == 1e-6
    assert tolerance_of("puts_gadvv_dip_pval") == tolerance_of("puts_gadvv_dip_pval").__class__(
        0.0, 1e-12
    )
    t = _features()
    bc = _set(t, "calls_gadvv_bc", 0, t["calls_gadvv_bc"][0].as_py() * (1 + 1e-7))
    assert _run(_final(t), _prelim(bc)).windows_differing == 0
    mode = _set(t, "calls_gadvv_mode", 0, t["calls_gadvv_mode"][0].as_py() * (1 + 1e-15))
    assert _run(_final(t), _prelim(mode)).windows_differing == 1  # exact
    dip = _set(t, "calls_gadvv_dip_pval", 0, t["calls_gadvv_dip_pval"][0].as_py() + 1e-11)
    assert _run(_final(t), _prelim(dip)).windows_differing == 1  # 1e-12 absolute
    mean = _set(t, "calls_gadvv_mean", 0, t["calls_gadvv_mean"][0].as_py() * (1 + 1e-10))
    assert _run(_final(t), _prelim(mean)).windows_differing == 0  # 1e-9 relative


def test_every_contract_column_has_one_family():
    families = {c: family_of(c) for c in COMPARED_COLUMNS}
    assert set(families.values()) == set(FAMILY_NAMES)
    assert {family_of(c) for c in AGGRESSION_FEATURE_NAMES} == {"aggression"}
    assert family_of("calls_dadvv_q2") == "calls_dadvv"
    assert family_of("calls_above_intrinsic_pct") == "intrinsic"
    assert family_of("underlying_trades") == "trade_counts"
    with pytest.raises(ValueError, match="quality"):
        family_of("quality")


def test_aggression_on_one_side_only_is_listed_not_compared():
    plain, agg = _features(), _features(aggression=True)
    r = _run(_final(plain), _prelim(agg))
    assert r.columns_only_prelim == list(AGGRESSION_FEATURE_NAMES)
    assert "aggression" not in r.families and r.columns_only_final == []
    r = _run(_final(agg), _prelim(agg))
    assert r.families["aggression"].columns == 68 and r.windows_differing == 0


def test_batch_sizes_do_not_change_the_result():
    t = _features()
    prelim = _set(_set(t, "calls_gadvv_q1", 11, 9.0), "put_trades", 0, 0)
    whole = _run(_final(t), _prelim(prelim.slice(2)))
    for fr, pr in [(1, 1), (1, 5), (4, 1), (13, 2)]:
        assert _run(_final(t), _prelim(prelim.slice(2)), fr, pr) == whole


def test_repeated_or_unordered_windows_are_an_error_naming_the_side():
    t = _features()
    twice = pa.concat_tables([t.slice(0, 3), t.slice(2, 3)])
    with pytest.raises(ValueError, match="prelim rows are not one per window"):
        _run(_final(t), _prelim(twice), prelim_rows=3)
    with pytest.raises(ValueError, match="final rows"):
        _run(_final(t.take([1, 0, 2])), _prelim(t))
    # The message names the window that repeats, not the first of its batch.
    third = int(t["window_start"].cast(pa.int64())[2].as_py())
    with pytest.raises(ValueError, match=f"the window at {third} ns"):
        _run(_final(t), _prelim(twice), prelim_rows=5)


def test_an_infinite_value_differs_and_hides_no_other_difference():
    t = _features()
    prelim = _set(_set(t, "calls_gadvv_q1", 3, float("inf")), "calls_gadvv_q3", 7, 3.0)
    final = _set(t, "calls_gadvv_q1", 3, float("inf"))
    r = _run(_final(final), _prelim(prelim))
    fam = r.families[family_of("calls_gadvv_q3")]
    assert fam.worst_column == "calls_gadvv_q3" and fam.max_rel_diff > 0


def test_another_symbol_is_an_error():
    t = _features()
    other = t.set_column(0, "symbol", pa.array(["QQQ"] * N))
    with pytest.raises(ValueError, match="QQQ"):
        _run(_final(t), _prelim(other))
