# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Asset checks: every check runs in its asset's step (ingest, greeks, features) and guards
the partition swap. Real files, real runs."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.core.feature_names import FEATURE_NAMES, IDENTITY_COLUMNS
from market_assets.core.prelim_final import FINAL, QUALITY_NAMES, with_quality
from market_assets.defs.checks import features_summary
from market_assets.defs.checks.features import windows_and_columns_check
from market_assets.defs.checks.in_step import tickers_parsed_check
from market_assets.defs.definitions import build_definitions
from market_assets.devtools.sample_day import generate_day
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings
from market_assets_tests.config_files import FIXTURES
from market_assets_tests.defs.test_ingest_assets import HEADER

DAY = dt.date(2026, 11, 20)
REAL_DAY = dt.date(2023, 3, 13)  # the day of the real option trades sample
# 15:00 UTC on DAY, inside the regular session.
SIP0 = int(dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def stock_row(ticker: str, seq: int, trade_id: int = 1) -> str:
    return f"{ticker},,,4,{trade_id},{SIP0 + seq},600.5,{seq},{SIP0 + seq},10,3,,0"


def write_stock_file(root: Path, rows: list[str], day: dt.date = DAY) -> Path:
    """The day's stock trades file in the test mirror (replaced if there)."""
    src = root / "massive" / flat_file_key("stock_trades", day)
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(gzip.compress(("\n".join([HEADER, *rows]) + "\n").encode()))
    return src


def run(config: Path, assets: list[str] | None, day: dt.date = DAY, instance=None):
    """Materialize ``assets`` (None: the whole graph) and their checks for ``day``."""
    job = build_definitions(load_settings(config)).resolve_job_def("daily_features_job")
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    with dg.instance_for_test() as own:
        return job.execute_in_process(
            instance=instance or own,
            partition_key=day.isoformat(),
            asset_selection=selection,
            raise_on_error=False,
        )


def evaluations(result) -> dict[tuple[str, str], object]:
    return {
        (d.asset_key.to_user_string(), d.check_name): d
        for d in (e.event_specific_data for e in result.all_events)
        if type(d).__name__ == "AssetCheckEvaluation"
    }


def failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    return error.message + (error.cause.message if error.cause else "")


def stored_rows(config: Path, asset: str, day: dt.date = DAY) -> int:
    return ParquetStore(load_settings(config).storage.root).dataset(asset, [str(day)]).count_rows()


@pytest.fixture
def tiny_day(tmp_path, project_config):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    return project_config(partitions={"start_date": "2026-11-02"}, features={"windows": ["30m"]})


def test_ingest_checks_run_in_the_assets_steps_one_result_per_partition(tiny_day):
    result = run(tiny_day, ["stock_trades", "option_trades"])
    assert result.success
    evals = evaluations(result)
    assert set(evals) == {
        ("stock_trades", "non_empty"),
        ("stock_trades", "no_duplicate_trades"),
        ("stock_trades", "plausible_prices"),
        ("option_trades", "non_empty"),
        ("option_trades", "exact_duplicates"),
        ("option_trades", "tickers_parsed"),
    }
    assert all(e.passed and e.partition == DAY.isoformat() for e in evals.values())
    blocking = {k for k, e in evals.items() if e.blocking}
    assert blocking == set(evals) - {("option_trades", "exact_duplicates")}
    assert evals[("option_trades", "exact_duplicates")].severity == dg.AssetCheckSeverity.WARN
    assert evals[("stock_trades", "non_empty")].metadata["rows"].value > 0
    # No separate check steps: each check is reported by its asset's step.
    steps = {
        e.step_key for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert steps == {"stock_trades", "option_trades"}
    assert len({e.step_key for e in result.all_events if e.step_key}) == 2


def test_a_repeated_sequence_number_fails_and_keeps_the_previous_partition(
    tmp_path, project_config
):
    config = project_config(partitions={"start_date": "2026-11-02"})
    # A correction repeats the trade id with a new sequence number: not a duplicate.
    write_stock_file(
        tmp_path, [stock_row("SPY", 10, 1), stock_row("SPY", 11, 1), stock_row("SPY", 12, 2)]
    )
    result = run(config, ["stock_trades"])
    assert result.success and evaluations(result)[("stock_trades", "no_duplicate_trades")].passed

    rows = [stock_row("SPY", s) for s in (10, 11, 11, 12, 12, 13)]
    write_stock_file(tmp_path, rows)
    result = run(config, ["stock_trades"])
    assert not result.success
    ev = evaluations(result)[("stock_trades", "no_duplicate_trades")]
    assert not ev.passed and ev.blocking and ev.severity == dg.AssetCheckSeverity.ERROR
    assert ev.metadata["duplicate_rows"].value == 2
    assert ev.metadata["example_tickers"].value == "SPY"
    assert ev.partition == DAY.isoformat()
    msg = failure_message(result)
    assert "stock_trades 2026-11-20 was not replaced" in msg and "no_duplicate_trades" in msg
    assert "previous partition is kept" in msg
    assert stored_rows(config, "stock_trades") == 3


def test_a_ticker_coming_back_after_its_run_is_still_counted_exactly(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2026-11-02"}, ingest={"stock_tickers": ["*"]}
    )
    rows = [stock_row("AAPL", 1), stock_row("SPY", 5), stock_row("SPY", 6)]
    rows += [stock_row("AAPL", 2), stock_row("SPY", 6), stock_row("AAPL", 1)]  # not in order
    write_stock_file(tmp_path, rows)
    result = run(config, ["stock_trades"])
    ev = evaluations(result)[("stock_trades", "no_duplicate_trades")]
    assert ev.metadata["duplicate_rows"].value == 2 and not ev.passed
    assert "hash-partitioned" in ev.metadata["counted"].value
    assert not result.success


@pytest.mark.parametrize(
    ("asset", "change"),
    [
        ("stock_trades", "header_only"),
        ("stock_trades", "unmatched"),
        ("option_trades", "header_only"),
        ("option_trades", "unmatched"),
    ],
)
def test_an_empty_result_never_replaces_the_previous_partition(
    tiny_day, tmp_path, project_config, asset, change
):
    assert run(tiny_day, [asset]).success
    before = stored_rows(tiny_day, asset)
    assert before > 0
    config = tiny_day
    if change == "header_only":
        src = tmp_path / "massive" / flat_file_key(asset, DAY)
        header = gzip.decompress(src.read_bytes()).split(b"\n", 1)[0]
        src.write_bytes(gzip.compress(header + b"\n"))
    else:
        setting = "stock_tickers" if asset == "stock_trades" else "option_underlyings"
        other = "option_underlyings" if asset == "stock_trades" else "stock_tickers"
        config = project_config(  # the features symbol must be ingested: ZZZZ
            partitions={"start_date": "2026-11-02"},
            features={"windows": ["30m"], "symbol": "ZZZZ"},
            realtime={"symbol": "ZZZZ"},
            ingest={setting: ["ZZZZ", "QQQQ"], other: ["*"]},
        )
    result = run(config, [asset])
    assert not result.success
    ev = evaluations(result)[(asset, "non_empty")]
    assert not ev.passed and ev.metadata["rows"].value == 0
    msg = failure_message(result)
    assert f"{asset} 2026-11-20 was not replaced" in msg and "non_empty" in msg
    assert "the previous partition is kept unchanged" in msg
    if change == "unmatched":
        assert "(ZZZZ, QQQQ) is in" in msg and flat_file_key(asset, DAY) in msg
    else:
        assert "has no trades (0 rows read)" in msg
    assert stored_rows(config, asset) == before
    assert not list((tmp_path / "warehouse" / "_staging").rglob("*.parquet"))


def test_an_empty_first_materialization_writes_nothing(tmp_path, project_config):
    config = project_config(partitions={"start_date": "2026-11-02"})
    write_stock_file(tmp_path, [])
    result = run(config, ["stock_trades"])
    assert "nothing was written for this day" in failure_message(result)
    assert not (tmp_path / "warehouse" / "stock_trades").exists()


def test_configured_tickers_absent_from_the_file_are_named(tiny_day, project_config):
    config = project_config(
        partitions={"start_date": "2026-11-02"}, ingest={"stock_tickers": ["SPY", "ZZZZ"]}
    )
    with dg.instance_for_test() as instance:
        result = run(config, ["stock_trades"], instance=instance)
        assert result.success
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    mat = result.asset_materializations_for_node("stock_trades")[0]
    assert mat.metadata["absent_tickers"].value == "ZZZZ"
    assert any("ingest.stock_tickers: ZZZZ not in" in m for m in logs)


def _ingest_real_option_sample(tmp_path: Path, project_config, copies: int = 1):
    """The real OPRA sample as 2023-03-13's option_trades file, ingested by the real asset."""
    dest = tmp_path / "massive" / flat_file_key("option_trades", REAL_DAY)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = gzip.decompress((FIXTURES / "options_trades_example.csv.gz").read_bytes()).splitlines()
    body = lines[1:] * copies
    dest.write_bytes(gzip.compress(b"\n".join([lines[0], *body]) + b"\n"))
    config = project_config(partitions={"start_date": "2023-01-03"})
    return config, run(config, ["option_trades"], day=REAL_DAY)


def test_real_option_sample_exact_duplicates_are_counted_but_only_warned_above_the_share(
    tmp_path, project_config
):
    config, result = _ingest_real_option_sample(tmp_path, project_config)
    assert result.success
    evals = evaluations(result)
    dup = evals[("option_trades", "exact_duplicates")]
    # Three identical pairs in Massive's real file: distinct prints, reported, not failed.
    assert dup.passed and dup.severity == dg.AssetCheckSeverity.WARN
    assert dup.metadata["rows"].value == 62
    assert dup.metadata["exact_duplicate_rows"].value == 3
    assert dup.metadata["counted"].value == "per ticker run"
    assert evals[("option_trades", "tickers_parsed")].passed
    assert evals[("option_trades", "non_empty")].passed

    # The same file loaded twice: more than half the rows repeat -> a warning, and (WARN
    # is not blocking) the partition is still replaced.
    shutil.rmtree(tmp_path / "warehouse")
    config, result = _ingest_real_option_sample(tmp_path, project_config, copies=2)
    assert result.success
    dup = evaluations(result)[("option_trades", "exact_duplicates")]
    assert not dup.passed and dup.severity == dg.AssetCheckSeverity.WARN
    assert dup.metadata["exact_duplicate_rows"].value == 65
    # One contract: its second copy goes back in time, so it is counted again from the
    # written rows.
    assert "1 run(s) out of time order counted again" in dup.metadata["counted"].value
    assert not dup.blocking
    assert stored_rows(config, "option_trades", REAL_DAY) == 124


def test_unparsed_option_ticker_fails_the_blocking_check():
    check = tickers_parsed_check()
    check.accumulator.update(
        pa.record_batch(
            {
                "ticker": ["O:SPY261120C00600000", "O:BROKEN"],
                "underlying": ["SPY", None],
                "expiration": pa.array([DAY, None], pa.date32()),
                "contract_type": ["call", None],
                "strike": [600.0, None],
            }
        )
    )
    result = check.judge(lambda: None)
    assert not result.passed and check.blocks(result)
    assert result.metadata["unparsed_rows"].value == 1
    assert result.metadata["examples"].value == "O:BROKEN"


def test_a_failed_blocking_greeks_check_keeps_its_partition_and_stops_the_features(
    tiny_day, project_config
):
    # A bound the generated day cannot meet (about 97% of its option trades price).
    config = project_config(
        partitions={"start_date": "2026-11-02"},
        features={"windows": ["30m"]},
        checks={"min_ok_share": 0.999},
    )
    names = ("stock_trades", "option_trades", "option_trades_greeks", "features_30m")
    with dg.instance_for_test() as instance:
        result = run(config, None, instance=instance)
        materialized = {a for a in names if instance.get_materialized_partitions(dg.AssetKey(a))}
    evals = evaluations(result)
    ev = evals[("option_trades_greeks", "status_shares")]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert "ok share" in ev.description and "checks.min_ok_share" in ev.description
    # The greeks partition is not swapped in, the features do not run, the run fails.
    assert materialized == {"stock_trades", "option_trades"}
    assert not result.success
    assert "option_trades_greeks 2026-11-20 was not replaced" in failure_message(result)
    assert not (Path(load_settings(config).storage.root) / "option_trades_greeks").exists()
    assert all(e.passed for k, e in evals.items() if k[0] in ("stock_trades", "option_trades"))


# --- features: checks inside the features step, on the staged windows --------------------


def test_a_full_run_starts_one_step_per_asset_every_check_inside_it(tiny_day):
    result = run(tiny_day, None)
    assert result.success
    steps = {e.step_key for e in result.all_events if e.step_key}
    quotes = {"stock_quotes", "option_quotes"}
    batch = {"stock_trades", "option_trades", "option_trades_greeks", "features"} | quotes
    assert steps == batch | {"features_reconciliation"}  # skipped: no live output
    evals = evaluations(result)
    assert evals[("features_30m", "windows_and_columns")].passed
    assert evals[("features_30m", "windows_and_columns")].blocking
    assert len(evals) == 8 + 2 * len(quotes) and all(e.passed for e in evals.values())
    reported_by = {
        (e.event_specific_data.asset_key.to_user_string(), e.step_key)
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert ("features_30m", "features") in reported_by
    assert all(a == step or a.startswith(f"{step}_") for a, step in reported_by)


def test_features_missing_a_window_never_replace_the_stored_windows(tiny_day, monkeypatch):
    from market_assets.defs.assets import features as features_asset

    assert run(tiny_day, None).success
    store = ParquetStore(load_settings(tiny_day).storage.root)
    stored = store.dataset("features/symbol=SPY/window=30m", [DAY.isoformat()]).to_table()
    assert stored.num_rows == 13

    real = features_asset._output  # a features computation that loses the first window
    monkeypatch.setattr(
        features_asset, "_output", lambda c, s, w, t, stats: real(c, s, w, t.slice(1), stats)
    )
    result = run(tiny_day, ["features_30m"])
    assert not result.success
    ev = evaluations(result)[("features_30m", "windows_and_columns")]
    assert not ev.passed and ev.metadata["missing_windows"].value == 1
    assert "12 rows, expected 13" in ev.description
    msg = failure_message(result)
    assert "was not replaced" in msg and "windows_and_columns" in msg
    again = store.dataset("features/symbol=SPY/window=30m", [DAY.isoformat()]).to_table()
    assert again.equals(stored)


def _judge_features(store: ParquetStore, path: str, key: str, window: str):
    """The in-step windows_and_columns result on a partition as the IO manager stages it."""
    check = windows_and_columns_check(window, DAY, "regular")
    return check.judge(lambda: store.dataset(path, [key]))


def _features_table(day: dt.date, window: str, extra: dict | None = None) -> pa.Table:
    starts = window_starts_ns(day, window_ns(window))
    n = len(starts)
    ts = pa.timestamp("ns", "UTC")
    cols: dict[str, pa.Array] = {
        "symbol": pa.array(["SPY"] * n),
        "window": pa.array([window] * n),
        "window_start": pa.array(starts, ts),
        "window_end": pa.array(starts + window_ns(window), ts),
        "underlying_trades": pa.array(np.ones(n, np.int64)),
        "call_trades": pa.array(np.ones(n, np.int64)),
        "put_trades": pa.array(np.ones(n, np.int64)),
    }
    for name in FEATURE_NAMES:
        cols[name] = pa.array(np.linspace(1.0, 2.0, n))
    cols.update(extra or {})
    return with_quality(pa.table(cols), FINAL)


def test_features_check_passes_on_the_contract_and_catches_each_breach(tmp_path):
    store = ParquetStore(str(tmp_path / "warehouse"))
    key = DAY.isoformat()
    path = "features/symbol=SPY/window=30m"

    def check(table: pa.Table):
        store.write_partition(path, key, table.to_batches(), table.schema)
        return _judge_features(store, path, key, "30m")

    good = _features_table(DAY, "30m")
    assert list(good.column_names) == [*IDENTITY_COLUMNS, *FEATURE_NAMES, *QUALITY_NAMES]
    ev = check(good)
    assert ev.passed and ev.metadata["rows"].value == 13
    assert ev.asset_key == dg.AssetKey("features_30m") and ev.check_name == "windows_and_columns"

    assert not check(good.slice(0, 12)).passed  # a window missing
    assert not check(pa.concat_tables([good, good.slice(3, 1)])).passed  # a window twice
    assert not check(good.drop_columns(["puts_dadvv_total"])).passed
    assert not check(good.append_column("surprise", pa.array(np.zeros(13)))).passed
    reordered = good.select([*IDENTITY_COLUMNS, *reversed(FEATURE_NAMES), *QUALITY_NAMES])
    assert not check(reordered).passed
    assert not check(good.drop_columns(["quality"])).passed  # batch rows carry quality
    inf = np.linspace(1.0, 2.0, 13)
    inf[5] = -np.inf
    bad = _features_table(DAY, "30m", {"calls_dadvv_mean": pa.array(inf)})
    ev = check(bad)
    assert not ev.passed and "calls_dadvv_mean" in ev.description
    assert ev.metadata["infinite_values"].value == 1
    assert ev.severity == dg.AssetCheckSeverity.ERROR


def test_features_summary_counts_an_early_close_session(tmp_path):
    early = dt.date(2026, 11, 27)  # the day after Thanksgiving closes at 13:00
    store = ParquetStore(str(tmp_path))
    t = _features_table(early, "1m")
    store.write_partition("f", "d", t.to_batches(), t.schema)
    s = features_summary(store.dataset("f", ["d"]), early, "1m", "regular")
    assert s.expected_rows == 210 and s.rows == 210 and s.columns_ok
    s = features_summary(store.dataset("f", ["d"]), DAY, "1m", "regular")
    assert s.expected_rows == 390 and s.missing_windows == 390 and s.unexpected_windows == 210
