# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The ``market-assets`` CLI as a user meets it: one-line errors with the cause and a
documented exit code, and a line per step while a run goes."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from market_assets.cli import EXIT_FAILED, EXIT_NOT_YET, EXIT_OK, EXIT_USAGE, main
from market_assets.core.calendar import NEW_YORK, trading_days
from market_assets.devtools.sample_day import generate_day
from market_assets.io.source import flat_file_key

DAY = dt.date(2026, 11, 19)  # a Thursday session


@pytest.fixture
def cli(project_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project in tmp_path (config, Dagster instance); returns the config writer."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    project_config(features={"windows": ["30m"]})
    return project_config


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


def test_a_weekend_date_is_refused_naming_the_nearest_trading_days(cli, capsys):
    code, _, err = _run(capsys, "materialize", "--date", "2026-11-21")
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0, err
    assert "2026-11-21 is not an NYSE trading day (Saturday)" in err
    assert "previous trading day is 2026-11-20 (Friday), the next 2026-11-23 (Monday)" in err


def test_a_holiday_is_refused_with_its_name(cli, capsys):
    code, _, err = _run(capsys, "materialize", "--date", "2026-11-26")
    assert code == EXIT_USAGE
    assert "2026-11-26 is not an NYSE trading day (holiday: Thanksgiving)" in err
    assert "2026-11-25 (Wednesday)" in err and "2026-11-27 (Friday)" in err
    assert "Traceback" not in err


def test_a_date_before_the_start_date_names_the_key_and_its_value(cli, capsys):
    cli(partitions={"start_date": "2026-06-01"}, features={"windows": ["30m"]})
    code, _, err = _run(capsys, "materialize", "--date", "2026-05-29")
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0, err
    assert "2026-05-29 is before partitions.start_date = 2026-06-01" in err


def test_a_day_that_has_not_ended_is_not_available_yet(cli, capsys):
    today = dt.datetime.now(NEW_YORK).date()
    day = trading_days(today + dt.timedelta(days=1), today + dt.timedelta(days=10))[0]
    code, _, err = _run(capsys, "materialize", "--date", day.isoformat())
    assert code == EXIT_NOT_YET
    assert f"{day} is in the future in New York" in err
    assert "partition does not exist yet" in err


def test_an_unknown_asset_lists_the_valid_ones(cli, capsys):
    code, _, err = _run(capsys, "materialize", "--date", DAY.isoformat(), "--assets", "featurs_30m")
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0, err
    assert "unknown asset 'featurs_30m' (did you mean 'features_30m'?)" in err
    assert (
        "valid assets: stock_trades, stock_quotes, option_trades, option_quotes, "
        "option_trades_greeks, features_30m" in err
    )


def test_a_bad_date_argument_is_a_usage_error(cli, capsys):
    code, _, err = _run(capsys, "materialize", "--date", "2026-13-01")
    assert code == EXIT_USAGE
    assert "is not a date as YYYY-MM-DD" in err


def test_sample_refuses_a_weekend(cli, capsys, tmp_path):
    code, _, err = _run(capsys, "sample", "--date", "2026-11-22", "--out", str(tmp_path / "m"))
    assert code == EXIT_USAGE
    assert "not an NYSE trading day (Sunday)" in err
    assert not (tmp_path / "m").exists()


def test_help_documents_the_exit_codes(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == EXIT_OK
    assert "exit codes:" in out
    for n in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^  {n} +\S", out, flags=re.M), n


def test_a_missing_flat_file_names_the_file_and_runs_nothing(cli, capsys, tmp_path):
    code, _, err = _run(capsys, "materialize", "--date", DAY.isoformat())
    assert code == EXIT_NOT_YET
    [line] = _error_lines(err)
    missing = tmp_path / "massive" / flat_file_key("stock_trades", DAY)
    assert f"flat file {missing} does not exist" in line
    assert "market-assets sample --date 2026-11-19" in err  # how to get a day locally
    assert "started" not in err
    assert not (tmp_path / "warehouse").exists()


def test_a_truncated_flat_file_fails_the_run_with_the_readers_message(cli, capsys, tmp_path):
    paths = generate_day(DAY, tmp_path / "massive", scale="tiny")
    data = paths["stock_trades"].read_bytes()
    paths["stock_trades"].write_bytes(data[: len(data) // 2])
    code, _, err = _run(
        capsys, "materialize", "--date", DAY.isoformat(), "--assets", "stock_trades"
    )
    assert code == EXIT_FAILED
    [line] = _error_lines(err)
    assert line.startswith(f"error: stock_trades failed: IngestError: {paths['stock_trades']}")
    assert "truncated gzip stream" in line
    assert "Error occurred while" not in err


def test_an_io_manager_error_prints_the_real_cause_not_dagsters_wrapper(cli, capsys, tmp_path):
    generate_day(DAY, tmp_path / "massive", scale="tiny")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    cli(storage={"root": str(blocker)}, features={"windows": ["30m"]})
    code, _, err = _run(
        capsys, "materialize", "--date", DAY.isoformat(), "--assets", "stock_trades"
    )
    assert code == EXIT_FAILED
    [line] = _error_lines(err)
    assert line.startswith("error: stock_trades failed: NotADirectoryError:")
    assert str(blocker) in line
    assert "Error occurred while handling output" not in err
    assert "Traceback" not in err


def test_a_tiny_day_prints_start_and_finish_lines_for_every_step(cli, capsys, tmp_path):
    generate_day(DAY, tmp_path / "massive", scale="tiny")
    code, out, err = _run(capsys, "materialize", "--date", DAY.isoformat())
    assert code == EXIT_OK, err
    started = re.findall(r"^ +\d+\.\ds  (\w+): started$", err, flags=re.M)
    done = dict(re.findall(r"^ +\d+\.\ds  (\w+): done in (\d+\.\d\d) s", err, flags=re.M))
    # features is one step: every window size from one read of the day
    for step in ("stock_trades", "option_trades", "option_trades_greeks", "features"):
        assert step in started and step in done, err
    assert set(started) == set(done)
    assert re.search(r"option_trades_greeks: done in \d+\.\d\d s \(\d[\d,]* rows", err)
    assert "stock_trades: stock_trades 2026-11-19: streaming" in err  # the assets' own lines
    assert re.search(r"^  features_30m +dt=2026-11-19", out, flags=re.M)
    assert "error:" not in err


def test_missing_s3_credentials_are_a_configuration_error(cli, capsys, monkeypatch):
    monkeypatch.delenv("MASSIVE_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("MASSIVE_SECRET_ACCESS_KEY", raising=False)
    cli(massive={"source": "s3"}, features={"windows": ["30m"]})
    code, _, err = _run(capsys, "materialize", "--date", DAY.isoformat())
    assert code == EXIT_USAGE
    [line] = _error_lines(err)
    assert "MASSIVE_ACCESS_KEY_ID and MASSIVE_SECRET_ACCESS_KEY are not set" in line


def test_a_day_missing_from_the_bucket_names_its_s3_key(cli, capsys, s3_bucket, monkeypatch):
    client, bucket, endpoint = s3_bucket
    monkeypatch.setenv("MASSIVE_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("MASSIVE_SECRET_ACCESS_KEY", "testing")
    cli(
        massive={"source": "s3", "endpoint_url": endpoint, "bucket": bucket},
        features={"windows": ["30m"]},
    )
    for name in ("stock_trades", "stock_quotes", "option_quotes"):
        client.put_object(Bucket=bucket, Key=flat_file_key(name, DAY), Body=b"x")
    code, _, err = _run(capsys, "materialize", "--date", DAY.isoformat())
    assert code == EXIT_NOT_YET
    [line] = _error_lines(err)
    assert f"s3://{bucket}/{flat_file_key('option_trades', DAY)} does not exist" in line
    assert err.count("\n") == 1 and "started" not in err
