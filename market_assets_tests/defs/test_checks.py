# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Asset checks against real Parquet partitions written to a temp warehouse."""

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
from market_assets.core.schemas import OPTION_TRADES_GREEKS, STOCK_TRADES
from market_assets.defs.checks import (
    features_summary,
    greeks_share_violations,
    greeks_summary,
    option_exact_duplicates,
)
from market_assets.defs.definitions import build_definitions
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings
from market_assets_tests.config_files import FIXTURES

DAY = dt.date(2026, 11, 20)
REAL_DAY = dt.date(2023, 3, 13)  # the day of the real option trades sample


def _run_checks(config: Path, partition: str, assets: list[str]) -> dict[tuple[str, str], object]:
    """Run only the checks of ``assets`` for ``partition``; evaluations by (asset, check)."""
    job = build_definitions(load_settings(config)).resolve_job_def("daily_features_job")
    wanted = {
        k for k in job.asset_layer.asset_graph.asset_check_keys if k.asset_key.path[0] in assets
    }
    job_def = job.get_subset(asset_selection=set(), asset_check_selection=wanted)
    result = job_def.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=partition, raise_on_error=False
    )
    out = {}
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            d = ev.event_specific_data
            out[(d.asset_key.to_user_string(), d.check_name)] = d
    return out


def _store(config: Path) -> ParquetStore:
    return ParquetStore(load_settings(config).storage.root)


def _stock_table(seq: list[int]) -> pa.Table:
    n = len(seq)
    ts = pa.array(
        np.arange(n, dtype=np.int64) + 1_763_650_000_000_000_000, pa.timestamp("ns", "UTC")
    )
    return pa.table(
        {
            "ticker": ["SPY"] * n,
            "sip_timestamp": ts,
            "participant_timestamp": ts,
            "price": [600.0] * n,
            "size": [100.0] * n,
            "exchange": pa.array([4] * n, pa.int32()),
            "conditions": pa.array([[]] * n, pa.list_(pa.int32())),
            "correction": pa.array([0] * n, pa.int32()),
            "sequence_number": pa.array(seq, pa.int64()),
            "id": [str(i) for i in range(n)],
            "tape": pa.array([2] * n, pa.int32()),
            "trf_id": pa.array([None] * n, pa.int32()),
            "trf_timestamp": pa.array([None] * n, pa.timestamp("ns", "UTC")),
        },
        schema=STOCK_TRADES,
    )


def test_stock_checks_pass_on_unique_sequence_numbers_and_fail_on_a_repeat(project_config):
    config = project_config()
    store = _store(config)
    store.write_partition("stock_trades", DAY.isoformat(), [], STOCK_TRADES)
    evals = _run_checks(config, DAY.isoformat(), ["stock_trades"])
    assert not evals[("stock_trades", "non_empty")].passed
    assert evals[("stock_trades", "non_empty")].severity == dg.AssetCheckSeverity.ERROR
    assert evals[("stock_trades", "non_empty")].blocking

    # A correction repeats the trade id with a new sequence number: not a duplicate.
    table = _stock_table([10, 11, 12])
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array(["1", "1", "2"]))
    store.write_partition("stock_trades", DAY.isoformat(), table.to_batches(), STOCK_TRADES)
    evals = _run_checks(config, DAY.isoformat(), ["stock_trades"])
    assert evals[("stock_trades", "non_empty")].passed
    assert evals[("stock_trades", "no_duplicate_trades")].passed

    store.write_partition(
        "stock_trades",
        DAY.isoformat(),
        _stock_table([10, 11, 11, 12, 12]).to_batches(),
        STOCK_TRADES,
    )
    ev = _run_checks(config, DAY.isoformat(), ["stock_trades"])[
        ("stock_trades", "no_duplicate_trades")
    ]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert ev.metadata["duplicate_rows"].value == 2
    assert ev.partition == DAY.isoformat()


def _ingest_real_option_sample(tmp_path: Path, project_config, copies: int = 1) -> Path:
    """The real OPRA sample as 2023-03-13's option_trades file, ingested by the real asset."""
    dest = tmp_path / "massive" / flat_file_key("option_trades", REAL_DAY)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = gzip.decompress((FIXTURES / "options_trades_example.csv.gz").read_bytes()).splitlines()
    body = lines[1:] * copies
    dest.write_bytes(gzip.compress(b"\n".join([lines[0], *body]) + b"\n"))
    config = project_config(partitions={"start_date": "2023-01-03"})
    defs = build_definitions(load_settings(config))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("daily_features_job").execute_in_process(
            instance=instance,
            partition_key=REAL_DAY.isoformat(),
            asset_selection=[dg.AssetKey("option_trades")],
        )
    assert result.success
    return config


def test_real_option_sample_exact_duplicates_are_counted_but_only_warned_above_the_share(
    tmp_path, project_config
):
    config = _ingest_real_option_sample(tmp_path, project_config)
    evals = _run_checks(config, REAL_DAY.isoformat(), ["option_trades"])
    dup = evals[("option_trades", "exact_duplicates")]
    # Three identical pairs in Massive's real file: distinct prints, reported, not failed.
    assert dup.passed and dup.severity == dg.AssetCheckSeverity.WARN
    assert dup.metadata["rows"].value == 62
    assert dup.metadata["exact_duplicate_rows"].value == 3
    assert evals[("option_trades", "tickers_parsed")].passed
    assert evals[("option_trades", "non_empty")].passed

    # The same file loaded twice: more than half the rows repeat -> a warning.
    shutil.rmtree(tmp_path / "warehouse")
    config = _ingest_real_option_sample(tmp_path, project_config, copies=2)
    dup = _run_checks(config, REAL_DAY.isoformat(), ["option_trades"])[
        ("option_trades", "exact_duplicates")
    ]
    assert not dup.passed and dup.severity == dg.AssetCheckSeverity.WARN
    assert dup.metadata["exact_duplicate_rows"].value == 65
    assert not dup.blocking


def test_option_exact_duplicates_distinguish_conditions(tmp_path):
    store = ParquetStore(str(tmp_path))
    t = pa.table(
        {
            "ticker": ["O:SPY261120C00600000"] * 3,
            "sip_timestamp": pa.array([1, 1, 1], pa.timestamp("ns", "UTC")),
            "exchange": pa.array([300, 300, 300], pa.int32()),
            "price": [1.0, 1.0, 1.0],
            "size": [1.0, 1.0, 1.0],
            "conditions": pa.array([[209], [209, 1], None], pa.list_(pa.int32())),
            "correction": pa.array([0, 0, 0], pa.int32()),
        }
    )
    store.write_partition("option_trades", "2026-11-20", t.to_batches(), t.schema)
    assert option_exact_duplicates(store.dataset("option_trades", ["2026-11-20"]))[:2] == (3, 0)
    t2 = pa.concat_tables([t, t.slice(2, 1)])
    store.write_partition("option_trades", "2026-11-20", t2.to_batches(), t2.schema)
    assert option_exact_duplicates(store.dataset("option_trades", ["2026-11-20"]))[:2] == (4, 1)


def test_unparsed_option_ticker_fails_the_blocking_check(project_config):
    config = project_config()
    t = pa.table(
        {
            "ticker": ["O:SPY261120C00600000", "O:BROKEN"],
            "underlying": ["SPY", None],
            "expiration": pa.array([DAY, None], pa.date32()),
            "contract_type": ["call", None],
            "strike": [600.0, None],
        }
    )
    _store(config).write_partition("option_trades", DAY.isoformat(), t.to_batches(), t.schema)
    ev = _run_checks(config, DAY.isoformat(), ["option_trades"])[
        ("option_trades", "tickers_parsed")
    ]
    assert not ev.passed and ev.blocking and ev.severity == dg.AssetCheckSeverity.ERROR
    assert ev.metadata["unparsed_rows"].value == 1
    assert ev.metadata["examples"].value == "O:BROKEN"


def _greeks_table(statuses: list[str], iv: list[float | None]) -> pa.Table:
    n = len(statuses)
    cols = {f.name: pa.nulls(n, f.type) for f in OPTION_TRADES_GREEKS}
    cols["greeks_status"] = pa.array(statuses)
    cols["iv"] = pa.array(iv, pa.float64())
    return pa.table(cols, schema=OPTION_TRADES_GREEKS)


@pytest.mark.parametrize(
    ("statuses", "iv", "passed"),
    [
        (["ok"] * 95 + ["below_intrinsic"] * 4 + ["no_underlying"], [0.2] * 95 + [None] * 5, True),
        (["ok"] * 70 + ["expired"] * 30, [0.2] * 70 + [None] * 30, False),  # ok share < 0.80
        (["ok"] * 90 + ["no_underlying"] * 10, [0.2] * 90 + [None] * 10, False),  # > 0.05
        (["ok"] * 99 + ["bad_input"], [0.2] * 99 + [None], False),  # bad_input > 0.001
        (["ok"] * 100, [0.2] * 98 + [float("nan"), 0.0], False),  # ok trades need a real iv
        (["ok"] * 100, [0.2] * 99 + [float("inf")], False),
    ],
)
def test_greeks_status_shares_and_iv(project_config, statuses, iv, passed):
    config = project_config()
    t = _greeks_table(statuses, iv)
    _store(config).write_partition(
        "option_trades_greeks", DAY.isoformat(), t.to_batches(), t.schema
    )
    ev = _run_checks(config, DAY.isoformat(), ["option_trades_greeks"])[
        ("option_trades_greeks", "status_shares")
    ]
    assert ev.passed is passed
    assert ev.severity == dg.AssetCheckSeverity.ERROR and ev.blocking
    summary = greeks_summary(_store(config).dataset("option_trades_greeks", [DAY.isoformat()]))
    assert summary.rows == len(statuses)
    assert (
        not greeks_share_violations(summary, load_settings(config).checks) and not summary.ok_bad_iv
    ) is passed


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
    return pa.table(cols)


def test_features_check_passes_on_the_contract_and_catches_each_breach(project_config):
    config = project_config(features={"windows": ["30m"]})
    store = _store(config)
    key = DAY.isoformat()
    path = "features/window=30m"

    def check(table: pa.Table):
        store.write_partition(path, key, table.to_batches(), table.schema)
        return _run_checks(config, key, ["features_30m"])[("features_30m", "windows_and_columns")]

    good = _features_table(DAY, "30m")
    assert list(good.column_names) == [*IDENTITY_COLUMNS, *FEATURE_NAMES]
    ev = check(good)
    assert ev.passed and ev.metadata["rows"].value == 13 and ev.blocking

    assert not check(good.slice(0, 12)).passed  # a window missing
    assert not check(pa.concat_tables([good, good.slice(3, 1)])).passed  # a window twice
    assert not check(good.drop_columns(["puts_dadvv_total"])).passed
    assert not check(good.append_column("surprise", pa.array(np.zeros(13)))).passed
    reordered = good.select([*IDENTITY_COLUMNS, *reversed(FEATURE_NAMES)])
    assert not check(reordered).passed
    inf = np.linspace(1.0, 2.0, 13)
    inf[5] = -np.inf
    bad = _features_table(DAY, "30m", {"calls_dadvv_mean": pa.array(inf)})
    ev = check(bad)
    assert not ev.passed and "calls_dadvv_mean" in ev.description
    assert ev.metadata["infinite_values"].value == 1


def test_features_summary_counts_an_early_close_session(tmp_path):
    early = dt.date(2026, 11, 27)  # the day after Thanksgiving closes at 13:00
    store = ParquetStore(str(tmp_path))
    t = _features_table(early, "1m")
    store.write_partition("f", "d", t.to_batches(), t.schema)
    s = features_summary(store.dataset("f", ["d"]), early, "1m", "regular")
    assert s.expected_rows == 210 and s.rows == 210 and s.columns_ok
    s = features_summary(store.dataset("f", ["d"]), DAY, "1m", "regular")
    assert s.expected_rows == 390 and s.missing_windows == 390 and s.unexpected_windows == 210


def test_a_failed_blocking_check_stops_the_days_downstream_assets(tmp_path, project_config):
    from market_assets.devtools.sample_day import generate_day

    generate_day(DAY, tmp_path / "massive", scale="tiny")
    # A bound the generated day cannot meet (about 97% of its option trades price).
    config = project_config(
        partitions={"start_date": "2026-11-02"},
        features={"windows": ["30m"]},
        checks={"min_ok_share": 0.999},
    )
    job = build_definitions(load_settings(config)).resolve_job_def("daily_features_job")
    names = ("stock_trades", "option_trades", "option_trades_greeks", "features_30m")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=DAY.isoformat(), raise_on_error=False
        )
        materialized = {a for a in names if instance.get_materialized_partitions(dg.AssetKey(a))}
    evals = {
        (d.asset_key.to_user_string(), d.check_name): d
        for d in (e.event_specific_data for e in result.all_events)
        if type(d).__name__ == "AssetCheckEvaluation"
    }
    ev = evals[("option_trades_greeks", "status_shares")]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert "ok share" in ev.description and "checks.min_ok_share" in ev.description
    # The failed check blocks the day's features; the run fails loudly.
    assert materialized == {"stock_trades", "option_trades", "option_trades_greeks"}
    assert not result.success
    assert all(e.passed for k, e in evals.items() if k[0] in ("stock_trades", "option_trades"))
