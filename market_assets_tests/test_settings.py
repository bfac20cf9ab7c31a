# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from pydantic import ValidationError

from market_assets import settings as settings_module
from market_assets.core.calendar import window_ns
from market_assets.defs import definitions
from market_assets.defs.resources import FlatFileSource, SettingsResource
from market_assets.devtools.sample_day import generate_day
from market_assets.settings import ConfigError, load_settings
from market_assets_tests.config_files import REPO, base_config, dump_toml, write_config

DAY = dt.date(2026, 11, 20)


def test_project_config_loads_with_every_section():
    s = load_settings(REPO / "config.toml")
    assert s.features.windows == ["1m", "5m", "15m", "30m"]
    assert s.partitions.start_date == dt.date(2026, 1, 2)
    assert s.ingest.stock_tickers == ["SPY"]
    assert s.massive.local_root == REPO / "data" / "massive"  # relative to the config file
    assert s.storage.root == str(REPO / "data" / "warehouse")


def test_config_path_comes_from_environment(tmp_path, monkeypatch):
    path = write_config(
        tmp_path / "other.toml",
        features={"symbol": "QQQ"},
        ingest={"stock_tickers": ["*"], "option_underlyings": ["SPY", "QQQ"]},
    )
    monkeypatch.setenv("MARKET_ASSETS_CONFIG", str(path))
    assert load_settings().features.symbol == "QQQ"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("features", "windows", ["5m", "7x"], "features.windows = ['5m', '7x']: window '7x'"),
        ("features", "windows", ["7m"], "does not divide a day evenly"),
        ("features", "windows", ["5m", "5m"], "listed twice"),
        (
            "features",
            "session",
            "overnight",
            "features.session = 'overnight': expected 'regular' or 'extended'",
        ),
        ("partitions", "start_date", "2026-13-01", "partitions.start_date = '2026-13-01'"),
        ("ingest", "max_reject_fraction", 2.0, "ingest.max_reject_fraction = 2.0: must be <= 1"),
        ("ingest", "stock_tickers", [], "ingest.stock_tickers = []"),
        ("storage", "row_group_rows", "big", "storage.row_group_rows = 'big': expected an integer"),
        ("storage", "root", "http://example.com/x", "storage.root"),
        ("massive", "source", "ftp", "massive.source = 'ftp'"),
        ("greeks", "contract_multiplier", 0, "greeks.contract_multiplier = 0: must be > 0"),
        ("features", "kde_grid", True, "features.kde_grid = True: expected an integer"),
        (
            "conditions",
            "overrides",
            [{"id": 10, "updates_everything": True}],
            "unknown key conditions.overrides[0].updates_everything = True; known keys: id,",
        ),
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


# --- every kind of problem names the key ----------------------------------------------------


def _error(tmp_path: Path, doc: dict) -> str:
    (tmp_path / "c.toml").write_text(dump_toml(doc))
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path / "c.toml")
    return str(e.value)


def test_each_kind_of_problem_is_one_line_naming_file_and_key(tmp_path):
    doc = base_config()
    doc["bogus"] = {"x": 1}  # unknown section
    del doc["checks"]  # missing section
    doc["massive"]["colour"] = "red"  # unknown key
    del doc["storage"]["file_target_mb"]  # missing key
    doc["ingest"]["block_size_mb"] = "4"  # wrong type
    doc["greeks"]["risk_free_rate"] = 2.5  # out of range
    doc["features"]["dip_pval_method"] = "exact"  # not a choice
    lines = _error(tmp_path, doc).splitlines()
    where = f"{(tmp_path / 'c.toml').resolve()}: "
    assert all(line.startswith(where) for line in lines)
    assert sorted(line.removeprefix(where) for line in lines) == sorted(
        [
            "unknown section [bogus]; known sections: massive, partitions, ingest, quotes, storage, "
            "greeks, rates, features, conditions, checks, realtime",
            "missing section [checks]",
            "unknown key massive.colour = 'red'; known keys in [massive]: source, local_root, "
            "endpoint_url, bucket, region, max_retries, retry_backoff_s, connect_timeout_s, "
            "read_timeout_s, max_total_retry_s",
            "missing key storage.file_target_mb",
            "ingest.block_size_mb = '4': expected a number",
            "greeks.risk_free_rate = 2.5: must be <= 1",
            "features.dip_pval_method = 'exact': expected 'table' or 'bootstrap'",
        ]
    )


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("massive", "endpoint_url", "ftp://files", "massive.endpoint_url = 'ftp://files': expected an http(s):// URL"),
        ("storage", "s3_endpoint_url", "localhost:9000", "storage.s3_endpoint_url = 'localhost:9000': expected an http(s):// URL or an empty string"),
        ("storage", "root", "s3://", "storage.root = 's3://': an s3:// URI needs a bucket"),
        ("massive", "retry_backoff_s", float("inf"), "massive.retry_backoff_s = inf: must be a finite number"),
        ("massive", "bucket", " ", "massive.bucket = ' ': must not be empty"),
        ("massive", "read_timeout_s", 0, "massive.read_timeout_s = 0: must be > 0"),
        ("ingest", "option_underlyings", ["SPY", ""], "ingest.option_underlyings[1] = '': must not be empty"),
        ("features", "windows", ["5m", 5], "features.windows[1] = 5: expected a string"),
        ("features", "windows", ["1m", "60s"], "window '60s' is listed twice"),
        ("features", "dip_bootstrap_draws", 1.5, "features.dip_bootstrap_draws = 1.5: expected an integer"),
        ("realtime", "windows", [], "realtime.windows = []: must not be empty"),
        ("conditions", "overrides", [{"id": -1}], "conditions.overrides[0].id = -1: must be >= 0"),
        ("conditions", "overrides", [{"updates_volume": True}], "missing key conditions.overrides[0].id"),
        ("conditions", "overrides", [{"id": 10, "updates_volume": "yes"}], "conditions.overrides[0].updates_volume = 'yes': expected true or false"),
        ("conditions", "rules_file", "rules.csv", "conditions.rules_file = 'rules.csv': no such file"),
        ("partitions", "start_date", "2026-01-02T00:00:00", "partitions.start_date = '2026-01-02T00:00:00': expected a date"),
        ("greeks", "risk_free_rate", "flat", "greeks.risk_free_rate = 'flat': expected a number or \"curve\""),
        ("greeks", "risk_free_rate", True, "greeks.risk_free_rate = True: expected a number or \"curve\""),
        ("greeks", "risk_free_rate", -1.5, "greeks.risk_free_rate = -1.5: must be >= -1"),
        ("greeks", "risk_free_rate", float("nan"), "greeks.risk_free_rate = nan: must be a finite number"),
        ("rates", "rest_base_url", "api.massive.com", "rates.rest_base_url = 'api.massive.com': expected an http(s):// URL"),
        ("rates", "lookback_days", 0, "rates.lookback_days = 0: must be >= 1"),
    ],
)  # fmt: skip
def test_more_bad_values_name_the_key_and_value(tmp_path, section, key, value, message):
    path = write_config(tmp_path / "c.toml", **{section: {key: value}})
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert message in str(e.value)


def test_a_section_that_is_not_a_table_is_named(tmp_path):
    doc = base_config()
    del doc["checks"]
    (tmp_path / "c.toml").write_text("checks = 5\n" + dump_toml(doc))
    with pytest.raises(ConfigError, match=r"\[checks\] must be a table, not 5"):
        load_settings(tmp_path / "c.toml")


def test_valid_values_are_normalised(tmp_path):
    path = write_config(
        tmp_path / "c.toml",
        ingest={"stock_tickers": [" spy ", "*"], "option_underlyings": ["spy"]},
        conditions={"overrides": [{"id": 10, "updates_open_close": True}]},
        realtime={"output": "~/live"},
        storage={"root": "s3://bucket/prefix"},
    )
    s = load_settings(path)
    assert s.ingest.stock_tickers == ["SPY", "*"] and s.ingest.option_underlyings == ["SPY"]
    assert s.conditions.overrides == [{"id": 10, "updates_open_close": True}]
    assert s.realtime.output == Path("~/live").expanduser()
    assert s.storage.root == "s3://bucket/prefix"
    assert isinstance(s.greeks.contract_multiplier, float)  # 100 in the file
    assert s.path == path.resolve()


def test_the_risk_free_rate_is_a_number_or_the_curve(tmp_path):
    s = load_settings(write_config(tmp_path / "a.toml", greeks={"risk_free_rate": "curve"}))
    assert s.greeks.risk_free_rate == "curve"
    s = load_settings(write_config(tmp_path / "b.toml", greeks={"risk_free_rate": 0}))
    assert s.greeks.risk_free_rate == 0.0 and isinstance(s.greeks.risk_free_rate, float)
    assert s.rates.rest_base_url == "https://api.massive.com" and s.rates.lookback_days == 7


def test_settings_are_read_only(tmp_path):
    s = load_settings(REPO / "config.toml")
    with pytest.raises(ValidationError):
        s.features.symbol = "QQQ"  # type: ignore[misc]


def test_quote_lists_default_to_the_features_symbol(tmp_path):
    s = load_settings(REPO / "config.toml")
    assert s.quotes.enabled and s.quotes.tickers == [] == s.quotes.underlyings
    assert s.quote_keep("stock_quotes") == ["SPY"] == s.quote_keep("option_quotes")
    s = load_settings(
        write_config(
            tmp_path / "q.toml",
            quotes={"tickers": ["spy", "qqq"], "underlyings": ["*"]},
            checks={"max_nbbo_crossed_share": 0.0},
        )
    )
    assert s.quote_keep("stock_quotes") == ["SPY", "QQQ"] and s.quote_keep("option_quotes") == ["*"]
    for changes, message in (
        ({"quotes": {"enabled": "yes"}}, "quotes.enabled = 'yes': expected true or false"),
        ({"quotes": {"tickers": [""]}}, "quotes.tickers[0] = '': must not be empty"),
        (
            {"checks": {"max_nbbo_locked_share": 1.5}},
            "checks.max_nbbo_locked_share = 1.5: must be <= 1",
        ),
    ):
        with pytest.raises(ConfigError) as e:
            load_settings(write_config(tmp_path / "bad.toml", **changes))
        assert message in str(e.value)


# --- features.symbol and realtime.symbol must be ingested -----------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"features": {"symbol": "QQQ"}},
            "features.symbol = 'QQQ': not among ingest.stock_tickers ['SPY']",
        ),
        (
            {"realtime": {"symbol": "QQQ"}, "ingest": {"stock_tickers": ["SPY", "QQQ"]}},
            "realtime.symbol = 'QQQ': not among ingest.option_underlyings ['SPY']",
        ),
        (
            {"features": {"symbol": "spy"}},
            "features.symbol = 'spy': not among ingest.stock_tickers ['SPY']",
        ),
    ],
)
def test_a_symbol_that_is_not_ingested_is_an_error(tmp_path, changes, message):
    path = write_config(tmp_path / "c.toml", **changes)
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert message in str(e.value)


def test_a_symbol_is_ingested_when_every_ticker_is_kept(tmp_path):
    path = write_config(
        tmp_path / "c.toml",
        features={"symbol": "QQQ"},
        realtime={"symbol": "IWM"},
        ingest={"stock_tickers": ["*"], "option_underlyings": ["*"]},
    )
    s = load_settings(path)
    assert (s.features.symbol, s.realtime.symbol) == ("QQQ", "IWM")


# --- loaded once per process, again when the file changes -----------------------------------


@pytest.fixture
def parse_count(monkeypatch) -> list[Path]:
    """Every config parse of this test, by file."""
    parsed: list[Path] = []
    real = settings_module.parse_settings

    def counting(raw, base_dir, path=None):
        parsed.append(path)
        return real(raw, base_dir, path)

    monkeypatch.setattr(settings_module, "parse_settings", counting)
    return parsed


def test_definitions_and_a_daily_run_read_the_config_once(tmp_path, project_config, parse_count):
    config = project_config(partitions={"start_date": "2023-01-03"}, features={"windows": ["30m"]})
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=5)
    defs = definitions._load()  # what `dagster` runs when it imports the module
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("daily_features_job").execute_in_process(
            instance=instance, partition_key=DAY.isoformat()
        )
    assert result.success
    # Ingest (trades and quotes), greeks, features and every check used the settings; one
    # parse in all.
    assert len(result.get_asset_materialization_events()) == 6
    assert len(result.get_asset_check_evaluations()) == 12
    assert parse_count == [config.resolve()]
    assert load_settings() is load_settings(config)


def test_an_edited_config_file_is_picked_up(tmp_path, parse_count):
    path = write_config(tmp_path / "c.toml", massive={"max_retries": 5})
    assert load_settings(path).massive.max_retries == 5
    # Same size, rewritten at once: the file's stamp may not change, its content does.
    write_config(tmp_path / "c.toml", massive={"max_retries": 7})
    assert load_settings(path).massive.max_retries == 7
    assert SettingsResource(config_path=str(path)).settings.massive.max_retries == 7
    assert len(parse_count) == 2


def test_an_unchanged_config_file_is_not_parsed_again(tmp_path, parse_count):
    path = write_config(tmp_path / "c.toml")
    first = load_settings(path)
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # touched, same content
    assert load_settings(path) is first
    assert load_settings(path) is first  # now by its stamp alone
    assert len(parse_count) == 1


def test_flat_file_source_opens_files_without_reading_the_config_again(
    tmp_path, project_config, parse_count
):
    config = project_config()
    generate_day(DAY, tmp_path / "massive", scale="tiny", seed=5)
    source = FlatFileSource(settings=SettingsResource(config_path=str(config)))
    with source.open("stock_trades", DAY) as first, source.open("option_trades", DAY) as second:
        assert first.size > 0 and second.size > 0
    assert len(parse_count) == 1
