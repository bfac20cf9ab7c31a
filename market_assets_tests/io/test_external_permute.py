# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Putting numeric rows at known positions on disk: the same columns as an in-memory
scatter whatever the bucket size, and a streamed day classified through it equals the
whole-day classification."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.classify import ClassifyParams, classify_table
from market_assets.core.classify_day import DayTickers, classify_day, permute_in_memory
from market_assets.io.external_sort import permuted
from market_assets_tests.core.test_classify import generated_day


def _chunks(n: int, seed: int, size: int):
    rng = np.random.default_rng(seed)
    dest = rng.permutation(n)
    value = rng.normal(size=n)
    code = rng.integers(-5, 5, n).astype(np.int8)
    return [
        (dest[i : i + size], {"value": value[i : i + size], "code": code[i : i + size]})
        for i in range(0, n, size)
    ], (dest, value, code)


@pytest.mark.parametrize("bucket_rows", [1, 7, 1000, 10**6])
def test_columns_land_at_their_positions_in_order_for_any_bucket_size(tmp_path, bucket_rows):
    chunks, (dest, value, code) = _chunks(5003, seed=1, size=97)
    out = list(permuted(chunks, 5003, bucket_rows=bucket_rows, tmp_dir=str(tmp_path)))
    got = {k: np.concatenate([c[k] for c in out]) for k in ("value", "code")}
    want_value, want_code = np.empty(5003), np.empty(5003, np.int8)
    want_value[dest], want_code[dest] = value, code
    np.testing.assert_array_equal(got["value"], want_value)
    np.testing.assert_array_equal(got["code"], want_code)
    assert got["code"].dtype == np.int8
    assert os.listdir(tmp_path) == []  # the bucket files are gone
    mem = list(permute_in_memory(chunks, 5003))
    np.testing.assert_array_equal(np.concatenate([c["value"] for c in mem]), want_value)


def test_a_missing_or_stray_position_is_an_error(tmp_path):
    chunks, _ = _chunks(100, seed=2, size=10)
    with pytest.raises(ValueError, match="rows for positions"):
        list(permuted(chunks[:-1], 100, bucket_rows=16, tmp_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="outside"):
        list(permuted(chunks, 50, bucket_rows=16, tmp_dir=str(tmp_path)))
    assert list(permuted([], 0)) == []


@pytest.mark.parametrize("bucket_rows", [16, 1000])
def test_a_position_given_twice_and_one_never_is_an_error_not_garbage(tmp_path, bucket_rows):
    chunks, (dest, _, _) = _chunks(100, seed=3, size=10)
    twice = dest.copy()
    twice[twice == 7] = 8  # position 8 twice, 7 never: the row count still adds up
    bad = [
        (twice[i : i + 10], cols) for i, (_, cols) in zip(range(0, 100, 10), chunks, strict=True)
    ]
    with pytest.raises(ValueError, match="position 7 got no row"):
        list(permuted(bad, 100, bucket_rows=bucket_rows, tmp_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="position 7 got no row"):
        list(permute_in_memory(bad, 100))


@pytest.mark.parametrize("tick_rule,hash_below", [(False, 100_000), (True, 0)])
def test_a_streamed_day_through_bucket_files_equals_the_whole_day(
    tmp_path, monkeypatch, tick_rule, hash_below
):
    monkeypatch.setattr(DayTickers, "hash_below", hash_below)  # 0: tickers by binary search
    q, t = generated_day(seed=11)
    q = q.sort_by([("ticker", "ascending")])
    params = ClassifyParams(tick_rule_fallback=tick_rule)

    def scan(columns):
        return (t if columns is None else t.select(columns)).to_batches(max_chunksize=700)

    def permute(chunks, n):
        return permuted(chunks, n, bucket_rows=997, tmp_dir=str(tmp_path))

    got = pa.concat_tables(classify_day(scan, q.to_batches(max_chunksize=1500), params, permute))
    assert got.equals(classify_table(t, q, params))
