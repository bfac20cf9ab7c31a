# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from market_assets.core.calendar import window_ns
from market_assets.settings import ConfigError, load_settings
from market_assets_tests.config_files import REPO, base_config, dump_toml, write_config


def test_project_config_loads_with_every_section():
    s = load_settings(REPO / "config.toml")
    assert s.features.windows == ["1m", "5m", "15m", "30m"]
    assert s.partitions.start_date == dt.date(2026, 1, 2)
    assert s.ingest.stock_tickers == ["SPY"]
    assert s.massive.local_root == REPO / "data" / "massive"  # relative to the config file
    assert s.storage.root == str(REPO / "data" / "warehouse")


def test_config_path_comes_from_environment(tmp_path, monkeypatch):
    path = write_config(tmp_path / "other.toml", features={"symbol": "QQQ"})
    monkeypatch.setenv("MARKET_ASSETS_CONFIG", str(path))
    assert load_settings().features.symbol == "QQQ"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("features", "windows", ["5m", "7x"], "features.windows = ['5m', '7x']: window '7x'"),
        ("features", "windows", ["7m"], "does not divide a day evenly"),
        ("features", "windows", ["5m", "5m"], "listed twice"),
        ("features", "session", "overnight", "features.session = 'overnight': expected one of"),
        ("partitions", "start_date", "2026-13-01", "partitions.start_date = '2026-13-01'"),
        ("ingest", "max_reject_fraction", 2.0, "ingest.max_reject_fraction = 2.0: must be <= 1"),
        ("ingest", "stock_tickers", [], "ingest.stock_tickers = []"),
        ("storage", "row_group_rows", "big", "storage.row_group_rows = 'big': expected an integer"),
        ("storage", "root", "http://example.com/x", "storage.root"),
        ("massive", "source", "ftp", "massive.source = 'ftp'"),
        ("greeks", "contract_multiplier", 0, "greeks.contract_multiplier = 0: must be > 0"),
        ("features", "kde_grid", True, "features.kde_grid = True: expected an integer"),
        ("conditions", "overrides", [{"id": 10, "updates_everything": True}], "unknown keys"),
    ],
)
def test_bad_values_name_the_key_and_value(tmp_path, section, key, value, message):
    path = write_config(tmp_path / "c.toml", **{section: {key: value}})
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert message in str(e.value)


def test_unknown_key_is_an_error(tmp_path):
    path = write_config(tmp_path / "c.toml", features={"windowz": ["5m"]})
    with pytest.raises(ConfigError, match=r"unknown key features.windowz"):
        load_settings(path)


def test_unknown_section_is_an_error(tmp_path):
    doc = base_config()
    doc["feature"] = {"symbol": "SPY"}
    (tmp_path / "c.toml").write_text(dump_toml(doc))
    with pytest.raises(ConfigError, match=r"unknown section \[feature\]"):
        load_settings(tmp_path / "c.toml")


def test_missing_key_and_missing_file(tmp_path):
    doc = base_config()
    del doc["storage"]["row_group_rows"]
    (tmp_path / "c.toml").write_text(dump_toml(doc))
    with pytest.raises(ConfigError, match="missing key storage.row_group_rows"):
        load_settings(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    p = Path(tmp_path / "c.toml")
    p.write_text("[features\nsymbol = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(p)


def test_window_strings():
    assert window_ns("1m") == 60 * 10**9
    assert window_ns("1h") == 3600 * 10**9
    assert window_ns("30s") == 30 * 10**9
    with pytest.raises(ValueError):
        window_ns("0m")
