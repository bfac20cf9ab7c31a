# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Batch (final) and live (prelim) rows end with the same three quality columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.prelim_final import FINAL, PRELIM, QUALITY_COLUMNS, with_quality


def _rows(n: int = 4) -> pa.Table:
    return pa.table({"window_start": pa.array(np.arange(n), pa.int64()), "x": np.ones(n)})


def test_final_and_prelim_rows_have_one_schema():
    final = with_quality(_rows(), FINAL)
    prelim = with_quality(_rows(), PRELIM, late_dropped=3, gaps=np.array([0, 1, 0, 2]))
    assert final.schema == prelim.schema
    assert final.schema.names[-3:] == QUALITY_COLUMNS.names
    assert final["quality"].to_pylist() == ["final"] * 4
    assert final["late_dropped"].to_pylist() == final["gaps"].to_pylist() == [0] * 4
    assert prelim["quality"].to_pylist() == ["prelim"] * 4
    assert prelim["late_dropped"].to_pylist() == [3] * 4
    assert prelim["gaps"].to_pylist() == [0, 1, 0, 2]
    assert with_quality(_rows(0), FINAL).schema == final.schema


def test_an_unknown_quality_or_a_second_application_is_refused():
    with pytest.raises(ValueError, match="'draft'"):
        with_quality(_rows(), "draft")
    with pytest.raises(ValueError, match="already"):
        with_quality(with_quality(_rows(), FINAL), PRELIM)
    with pytest.raises(ValueError, match=r"gaps: \d+ values for \d+ rows"):
        with_quality(_rows(), PRELIM, gaps=[1, 2])  # one per row, or one for all
