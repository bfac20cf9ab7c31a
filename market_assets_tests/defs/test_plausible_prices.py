# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Implausible stock prints (valid values, far from their ticker's day median): stock_trades'
plausible_prices check reports them from inside the ingest step, and neither the greeks nor
the features ever use them. Real files, real runs."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import NEW_YORK
from market_assets.core.statistics import StatsOptions
from market_assets.core.underlying import UnderlyingIndex
from market_assets.core.windows import features_for_day
from market_assets.devtools.sample_day import generate_day
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.parquet_store import ParquetStore
from market_assets.io.source import flat_file_key
from market_assets.settings import load_settings
from market_assets_tests.defs.test_checks import (
    SIP0,
    evaluations,
    failure_message,
    run,
    stored_rows,
    write_stock_file,
)
from market_assets_tests.defs.test_ingest_value_rules import NOON, inject

DAY = dt.date(2026, 11, 20)
KEY = DAY.isoformat()
WINDOWS = ["1m", "30m"]
# A regular-sale SPY print a million times SPY's price.
ABSURD = {"price": "600000000", "conditions": "", "correction": ""}


def _just_before_an_spy_option_trade(mirror: Path) -> int:
    """1 ns before the first SPY option trade after 12:00 ET: the print would be that
    trade's underlying price."""
    path = mirror / flat_file_key("option_trades", DAY)
    with gzip.open(path, "rt", newline="") as f:
        times = [int(r["sip_timestamp"]) for r in csv.DictReader(f) if r["ticker"][:6] == "O:SPY2"]
    return min(t for t in times if t >= NOON) - 1


def _new_york(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns // 10**9, NEW_YORK)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 10**9:09d} ET"


def _config(project_config, **checks) -> Path:
    return project_config(
        partitions={"start_date": "2026-11-02"},
        features={"windows": WINDOWS},
        checks=checks,
    )


def _features(store: ParquetStore, window: str) -> pa.Table:
    return store.dataset(f"features/symbol=SPY/window={window}", [KEY]).to_table()


def _greeks(store: ParquetStore) -> pa.Table:
    return store.dataset("option_trades_greeks", [KEY]).to_table()


def _materialized(result, node: str) -> dict:
    (m, *_) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in m.metadata.items()}


def test_a_print_a_million_times_the_median_is_reported_and_never_reaches_the_features(
    tmp_path, project_config
):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    config = _config(project_config)
    store = ParquetStore(load_settings(config).storage.root)
    assert run(config, None).success
    clean = {w: _features(store, w) for w in WINDOWS}
    clean_greeks = _greeks(store)
    clean_rows = stored_rows(config, "stock_trades")

    at = _just_before_an_spy_option_trade(tmp_path / "massive")
    absurd = {**ABSURD, "sip_timestamp": str(at)}
    inject(tmp_path / "massive" / flat_file_key("stock_trades", DAY), "SPY", [(absurd, None)])
    result = run(config, None)
    assert result.success  # one print in ~1,700: reported, not a failure of the day
    assert stored_rows(config, "stock_trades") == clean_rows + 1  # a valid value is stored

    ev = evaluations(result)[("stock_trades", "plausible_prices")]
    assert not ev.passed and ev.blocking and ev.severity == dg.AssetCheckSeverity.WARN
    md = {k: v.value for k, v in ev.metadata.items()}
    assert md["implausible_rows"] == 1 and md["by_ticker"] == "SPY: 1"
    assert f"| SPY | {_new_york(at)} | 600000000 |" in md["examples"]
    assert f"SPY at {_new_york(at)}: 600000000" in ev.description
    assert "Greeks and features leave them out" in ev.description

    # The greeks price no option against it, the features never see it: both are exactly
    # what they were without the print.
    assert _materialized(result, "option_trades_greeks")["underlying_implausible_excluded"] == 1
    assert _greeks(store).equals(clean_greeks)
    for w in WINDOWS:
        assert _features(store, w).equals(clean[w]), w
        assert _materialized(result, "features")["underlying_implausible_excluded"] == 1
    assert pc.max(_features(store, "1m").column("underlying_price_high")).as_py() < 1_000

    # Without the exclusion the print would set its minute's high and an option's price.
    s = load_settings(config)
    f = s.features
    unfiltered = features_for_day(
        store.dataset("stock_trades", [KEY]).to_table(),
        _greeks(store),
        DAY,
        "SPY",
        "1m",
        f.session,
        load_condition_rules(s.conditions.rules_file or None),
        StatsOptions(f.kde_grid, f.dip_pval_method, f.dip_bootstrap_draws, f.dip_seed),
    )
    assert pc.max(unfiltered.column("underlying_price_high")).as_py() == 6e8
    rules = load_condition_rules(s.conditions.rules_file or None)
    index = UnderlyingIndex(store.dataset("stock_trades", [KEY]).to_table(), rules)
    options = _greeks(store).filter(pc.field("underlying") == "SPY")
    prices, _ = index.asof(options.column("underlying"), options.column("sip_timestamp"), 10**12)
    assert 6e8 in prices
    assert 6e8 not in _greeks(store).column("underlying_price").to_pylist()


def test_implausible_prints_above_the_share_fail_the_check_and_keep_the_previous_partition(
    tmp_path, project_config
):
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=3)
    config = _config(project_config, max_implausible_share=0.0001)
    assert run(config, ["stock_trades"]).success
    before = stored_rows(config, "stock_trades")

    inject(tmp_path / "massive" / flat_file_key("stock_trades", DAY), "SPY", [(ABSURD, None)])
    result = run(config, ["stock_trades"])
    assert not result.success
    ev = evaluations(result)[("stock_trades", "plausible_prices")]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert "more than checks.max_implausible_share (0.0100%)" in ev.description
    msg = failure_message(result)
    assert "stock_trades 2026-11-20 was not replaced" in msg and "plausible_prices" in msg
    assert stored_rows(config, "stock_trades") == before


def _row(ticker: str, seq: int, price: float) -> str:
    return f"{ticker},,,4,{seq},{SIP0 + seq},{price},{seq},{SIP0 + seq},10,3,,0"


def test_prints_of_a_file_not_in_ticker_order_are_judged_exactly(tmp_path, project_config):
    config = project_config(
        partitions={"start_date": "2026-11-02"},
        ingest={"stock_tickers": ["*"]},
        checks={"max_implausible_share": 0.5},
    )
    prices = 600 + np.arange(9) / 10
    rows = [_row("SPY", i, p) for i, p in enumerate(prices[:4])]
    rows += [_row("AAPL", 10 + i, 230.0) for i in range(3)] + [_row("AAPL", 13, 2.3)]
    rows += [_row("SPY", 20, 6.0), *(_row("SPY", 21 + i, p) for i, p in enumerate(prices[4:]))]
    write_stock_file(tmp_path, rows)
    result = run(config, ["stock_trades"])
    assert result.success
    ev = evaluations(result)[("stock_trades", "plausible_prices")]
    md = {k: v.value for k, v in ev.metadata.items()}
    assert "two passes" in md["counted"] and "SPY appears again" in md["counted"]
    assert (md["rows"], md["tickers"], md["implausible_rows"]) == (len(rows), 2, 2)
    assert md["by_ticker"] == "AAPL: 1, SPY: 1"
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
