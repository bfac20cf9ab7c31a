# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""What people see: the chart and preview builders, and the real Dagster UI end to end.

The UI test starts ``dagster dev`` on a free port over a tiny generated day, launches the
day's partition of daily_features_job through the GraphQL API, waits for it to succeed,
then opens the asset graph in headless Chromium (Playwright, the system browser) and saves
a screenshot to test-artifacts/ui-asset-graph.png, then opens features_30m's page, where the
materialization's preview table and chart show (test-artifacts/ui-features-chart.png).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from market_assets.core.calendar import window_ns, window_starts_ns
from market_assets.defs.charts import (
    chart_markdown,
    chart_relpath,
    features_chart_png,
    preview_markdown,
    save_chart,
)
from market_assets.io.parquet_store import ParquetStore
from market_assets_tests.config_files import REPO

DAY = dt.date(2026, 11, 20)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = "/usr/bin/chromium"
GROUPS = ("raw", "derived", "features")
ASSETS = ("stock_trades", "option_trades", "option_trades_greeks", "features_30m")
GRAPH_STATE_KEY = "asset-graph-open-graph-nodes-global-__GLOBAL__"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _features(n_nulls: int = 0) -> pa.Table:
    starts = window_starts_ns(DAY, window_ns("30m"))
    n = len(starts)
    close = np.linspace(600.0, 603.0, n)
    close_arr = pa.array(close, mask=np.arange(n) < n_nulls)
    return pa.table(
        {
            "symbol": ["SPY"] * n,
            "window_start": pa.array(starts, pa.timestamp("ns", "UTC")),
            "underlying_trades": pa.array(np.arange(n), pa.int64()),
            "call_trades": pa.array(np.arange(n), pa.int64()),
            "put_trades": pa.array(np.arange(n), pa.int64()),
            "underlying_price_open": close_arr,
            "underlying_price_close": close_arr,
            "calls_dadvv_total": np.linspace(1e6, 5e6, n),
            "puts_dadvv_total": np.linspace(3e6, 1e6, n),
        }
    )


def test_chart_is_a_png_and_embeds_as_markdown(tmp_path):
    png = features_chart_png(_features(n_nulls=2), title="SPY 30m 2026-11-20")
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    md = chart_markdown(png)
    assert md.startswith("![chart](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")")) == png
    # An empty day still draws (axes, no data) rather than failing the asset.
    assert features_chart_png(_features().slice(0, 0)).startswith(PNG_MAGIC)


def test_chart_is_saved_beside_the_partition(tmp_path):
    png = features_chart_png(_features())
    store = ParquetStore(str(tmp_path / "wh"))
    uri = save_chart(png, store, "features/symbol=SPY/window=30m", DAY.isoformat())
    assert (
        uri
        == f"{tmp_path / 'wh'}/{chart_relpath('features/symbol=SPY/window=30m', DAY.isoformat())}"
    )
    assert uri == str(
        tmp_path / "wh" / "_charts/features/symbol=SPY/window=30m/dt=2026-11-20/chart.png"
    )
    assert Path(uri).read_bytes() == png


def test_preview_shows_the_first_windows_in_new_york_time():
    md = preview_markdown(_features(n_nulls=1), rows=3)
    lines = md.splitlines()
    assert lines[0].startswith("| window_start | underlying_trades |")
    assert lines[2].startswith("| 09:30 | 0 |") and lines[4].startswith("| 10:30 | 2 |")
    assert "calls_dadvv_total" in lines[0] and "1,000,000" in lines[2]
    assert "| |" in lines[2].replace("|  |", "| |")  # a null close is an empty cell
    assert lines[-1] == "3 of 13 windows shown."


# --- the real UI ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.loads(r.read())
    assert "errors" not in body, body
    return body["data"]


LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message }
} }
"""
RUN_STATUS = """
query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""


def _wait_for_location(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            data = _graphql(port, LOCATION_QUERY)
            entries = data["workspaceOrError"]["locationEntries"]
            last = entries
            if entries and entries[0]["loadStatus"] == "LOADED":
                loc = entries[0]["locationOrLoadError"]
                assert loc["__typename"] == "RepositoryLocation", loc
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
            pass
        time.sleep(0.5)
    pytest.fail(f"code location did not load in {timeout} s: {last}\n{log.read_text()[-4000:]}")


def _launch_partition(port: int, partition: str) -> str:
    params = {
        "selector": {
            "repositoryLocationName": "market_assets",
            "repositoryName": "__repository__",
            "jobName": "daily_features_job",
        },
        # One process for all steps: the same run as the UI's default, minus a Python
        # process start per step (the test's time budget is small).
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    out = _graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def _wait_for_run(port: int, run_id: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = _graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status == "SUCCESS":
            return
        if status in ("FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    pytest.fail(f"run {run_id} ended {status}\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to dagster dev's process group; SIGKILL whatever is left after a few seconds
    (its webserver and code servers do not always exit on SIGTERM)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=8)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=10)


@pytest.mark.slow
def test_dagster_ui_runs_a_partition_and_shows_the_asset_graph(tmp_path, project_config):
    from playwright.sync_api import sync_playwright

    from market_assets.devtools.sample_day import generate_day

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `make system-deps` (installs Debian's chromium)")
    generate_day(DAY, tmp_path / "massive", scale="tiny")
    config = project_config(partitions={"start_date": "2026-11-02"}, features={"windows": ["30m"]})
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    log = tmp_path / "dagster-dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKET_ASSETS_CONFIG": str(config)}
    dagster = str(REPO / ".venv" / "bin" / "dagster")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_location(port, proc, log, timeout=45)
        run_id = _launch_partition(port, DAY.isoformat())
        _wait_for_run(port, run_id, log, timeout=60)

        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shot = artifacts / "ui-asset-graph.png"
        # A fresh instance greets its first visitor with a newsletter prompt: mark it seen.
        assert _graphql(port, "mutation { setNuxSeen }")["setNuxSeen"] is True
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                # The global graph starts with groups collapsed; open them the way the UI
                # remembers a user's clicks (localStorage), so the asset nodes are drawn.
                expanded = json.dumps({"expanded": ",".join(f"global@global:{g}" for g in GROUPS)})
                context.add_init_script(
                    f"window.localStorage.setItem({json.dumps(GRAPH_STATE_KEY)}, "
                    f"{json.dumps(expanded)});"
                )
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/asset-groups", wait_until="networkidle")
                try:
                    for name in ASSETS:
                        page.get_by_text(name, exact=True).first.wait_for(
                            state="visible", timeout=20_000
                        )
                    # The nodes' live data: the run's asset checks, all passed
                    # (stock_trades 3, option_trades 3, greeks and features 1 each).
                    for text in ("3 / 3 Passed", "1 / 1 Passed"):
                        page.get_by_text(text).first.wait_for(state="visible", timeout=20_000)
                        assert page.get_by_text(text).count() == 2
                finally:
                    page.screenshot(path=str(shot))
                # The features asset's page: the preview table inline, the chart as an image.
                page.goto(f"http://127.0.0.1:{port}/assets/features_30m", wait_until="networkidle")
                page.get_by_text("10 of 13 windows shown.").wait_for(timeout=20_000)
                page.get_by_text("[Show Markdown]").first.click()
                chart = page.locator('img[src^="data:image/png;base64,"]').first
                chart.wait_for(state="visible", timeout=10_000)
                assert chart.evaluate("e => e.naturalWidth") > 500
                page.wait_for_timeout(500)  # let the dialog finish fading in
                page.screenshot(path=str(artifacts / "ui-features-chart.png"))
            finally:
                browser.close()
        assert shot.read_bytes().startswith(PNG_MAGIC)
    finally:
        _stop(proc)


def test_features_materialization_carries_the_chart_and_preview(tmp_path, project_config):
    import dagster as dg

    from market_assets.defs.definitions import build_definitions
    from market_assets.devtools.sample_day import generate_day
    from market_assets.settings import load_settings

    generate_day(DAY, tmp_path / "massive", scale="tiny")
    config = project_config(partitions={"start_date": "2026-11-02"}, features={"windows": ["30m"]})
    job = build_definitions(load_settings(config)).resolve_job_def("daily_features_job")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=DAY.isoformat()
    )
    (mat,) = [
        m
        for m in result.asset_materializations_for_node("features")  # the multi-asset's node
        if m.asset_key == dg.AssetKey("features_30m")
    ]
    md = mat.metadata
    assert md["chart"].value.startswith("![")
    png = base64.b64decode(md["chart"].value.split("base64,", 1)[1].rstrip(")"))
    assert png.startswith(PNG_MAGIC)
    saved = Path(md["chart_path"].value)
    assert (
        saved
        == tmp_path / "warehouse/_charts/features/symbol=SPY/window=30m/dt=2026-11-20/chart.png"
    )
    assert saved.read_bytes() == png
    preview = md["preview"].value.splitlines()
    assert preview[0].startswith("| window_start |") and preview[2].startswith("| 09:30 |")
    assert preview[-1] == "10 of 13 windows shown."
