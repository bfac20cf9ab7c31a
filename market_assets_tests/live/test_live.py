# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""``market-assets live`` against the replay server over real sockets on 127.0.0.1: parity
with the batch features, reconnects, late/duplicate/bad messages and a rejected key."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from market_assets.core.calendar import NEW_YORK
from market_assets.core.classify import ClassifyParams, Staleness, classify_table
from market_assets.core.enrich import GreeksParams, enrich_option_trades
from market_assets.core.feature_names import AGGRESSION_FEATURE_NAMES
from market_assets.core.nbbo import NbboCarry, nbbo_deltas
from market_assets.core.prelim_final import FINAL, QUALITY_NAMES, with_quality
from market_assets.core.statistics import StatsOptions
from market_assets.core.underlying import UnderlyingIndex
from market_assets.core.windows import features_for_day
from market_assets.devtools.sample_day import generate_day
from market_assets.io.condition_rules import load_condition_rules
from market_assets.io.live_store import live_partitions
from market_assets.io.quote_reader import QuoteReader
from market_assets.io.reader import TradeReader
from market_assets.io.source import LocalStore, flat_file_key
from market_assets.live.day import prepare_day
from market_assets.live.feed import FeedAuthError
from market_assets.live.replay import Injection, ReplayOptions, serve_in_thread
from market_assets.live.run import LiveOptions, LiveSetupError, run_live
from market_assets.settings import Settings, load_settings
from market_assets_tests.config_files import write_config
from market_assets_tests.treasury_server import curve_row, treasury_server

DAY = dt.date(2026, 11, 20)
KEY = "live-test-key"
WINDOWS = ["1m", "5m"]
CLOSE = dt.time(16, 0)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("massive")
    generate_day(DAY, root, scale="tiny", seed=3)
    _whole_millisecond_option_times(root / flat_file_key("option_trades", DAY))
    _quote_updates_after_trades(root)
    return root


def _whole_millisecond_option_times(path: Path) -> None:
    """Floor the generated option trades' SIP times to whole milliseconds, as in Massive's
    OPRA flat files (the generator writes nanoseconds; the feed carries milliseconds)."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("sip_timestamp")
    for row in rows[1:]:
        row[col] = str(int(row[col]) // 1_000_000 * 1_000_000)
    with gzip.open(path, "wt", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _quote_updates_after_trades(root: Path) -> None:
    """Add to each option trade's contract a quote in the trade's own millisecond, after
    it (OPRA quotes move right after prints), moving the bid above the trade's price: the
    batch (quotes at or before the trade's nanosecond) never uses it; a live rule taking
    quotes of the trade's millisecond would make the trade a sell."""
    with gzip.open(root / flat_file_key("option_trades", DAY), "rt", newline="") as f:
        trades = list(csv.DictReader(f))
    path = root / flat_file_key("option_quotes", DAY)
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    rng = np.random.default_rng(5)
    for t, after in zip(trades, rng.integers(1_000, 999_000, len(trades)), strict=True):
        price = float(t["price"])
        rows.append(
            {
                **rows[0],
                "ticker": t["ticker"],
                "bid_price": f"{price + 0.01:.2f}",
                "ask_price": f"{price + 0.11:.2f}",
                "sip_timestamp": str(int(t["sip_timestamp"]) + int(after)),
            }
        )
    rows.sort(key=lambda r: (r["ticker"], int(r["sip_timestamp"])))
    by_time = sorted(range(len(rows)), key=lambda i: int(rows[i]["sip_timestamp"]))
    for seq, i in enumerate(by_time, start=1):  # the SIP's sequence follows time
        rows[i]["sequence_number"] = str(seq)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.DictWriter(f, header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def spy_day(mirror: Path):
    with prepare_day(LocalStore(mirror), DAY, ["SPY"], quotes=False) as day:
        yield day


@pytest.fixture(scope="module")
def spy_day_with_quotes(mirror: Path):
    with prepare_day(LocalStore(mirror), DAY, ["SPY"]) as day:
        assert day.stats.events["option_quotes"] > 0 and day.stats.events["stock_quotes"] > 0
        yield day


def _read(mirror: Path, dataset: str) -> pa.Table:
    store = LocalStore(mirror)
    reader = TradeReader(store.open(flat_file_key(dataset, DAY)), dataset, DAY, keep=["SPY"])
    return pa.Table.from_batches(list(reader))


# Fixed staleness: live's adaptive limit is causal, the batch's uses the whole day.
CLASSIFY = ClassifyParams(
    option_staleness=Staleness.options(adaptive=False),
    equity_staleness=Staleness.equities(adaptive=False),
    tick_rule_fallback=True,
)


def _option_deltas(mirror: Path) -> pa.Table:
    """The day's NBBO deltas of SPY's contracts, as the batch keeps them."""
    key = flat_file_key("option_quotes", DAY)
    carry, parts = NbboCarry.empty(), []
    for batch in QuoteReader(LocalStore(mirror).open(key), "option_quotes", keep=["SPY"]):
        deltas, carry = nbbo_deltas(batch, carry, options=True)
        parts.append(deltas)
    return pa.concat_tables(parts)


def _batch_features(
    mirror: Path,
    s: Settings,
    rate: object = None,
    classify: ClassifyParams | None = None,
) -> dict[str, pa.Table]:
    """The batch features of the day (the assets' core calls), per window size; with
    ``classify`` the option trades are classified against the day's NBBO deltas and the
    68 aggression columns follow."""
    rules = load_condition_rules()
    stock = _read(mirror, "stock_trades")
    options = _read(mirror, "option_trades")
    g, f = s.greeks, s.features
    params = GreeksParams(
        g.risk_free_rate if rate is None else rate,
        g.dividend_yield,
        g.contract_multiplier,
        f.gadvv_scale,
        g.max_underlying_staleness_s,
    )
    greeked = enrich_option_trades(options, UnderlyingIndex(stock, rules), params, rules)
    if classify is not None:
        greeked = classify_table(greeked, _option_deltas(mirror), classify)
    stats = StatsOptions(f.kde_grid, f.dip_pval_method, f.dip_bootstrap_draws, f.dip_seed)
    return {
        w: with_quality(
            features_for_day(
                stock, greeked, DAY, "SPY", w, f.session, rules, stats, classify is not None
            ),
            FINAL,
        )
        for w in WINDOWS
    }


@pytest.fixture(scope="module")
def batch(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    """The batch features of the day (the assets' core calls), per window size."""
    s = _settings(tmp_path_factory.mktemp("cfg"), mirror, 1)
    out = _batch_features(mirror, s)
    stock = _read(mirror, "stock_trades")
    out["_corrected_ns"] = pa.table(
        {
            "t": pc.cast(
                stock.filter(pc.fill_null(pc.not_equal(stock["correction"], 0), False))[
                    "sip_timestamp"
                ],
                pa.int64(),
            )
        }
    )
    return out


def _settings(
    tmp: Path,
    mirror: Path,
    port: int,
    features: dict | None = None,
    greeks: dict | None = None,
    rates: dict | None = None,
    **realtime: object,
) -> Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = write_config(
        tmp / "config.toml",
        massive={"local_root": str(mirror)},
        features=features or {},
        greeks=greeks or {},
        rates=rates or {},
        realtime={
            "feed": f"127.0.0.1:{port}",
            "secure": False,
            "option_contracts": "all",
            "output": str(tmp / "live"),
            "windows": WINDOWS,
            "metrics_port": 0,
            "reconnect_backoff_s": 0.05,
            "max_reconnect_backoff_s": 0.5,
            **realtime,
        },
    )
    return load_settings(cfg)


def _live(settings: Settings, key: str = KEY, **options: object):
    opts = LiveOptions(**{"until": CLOSE, "idle_exit_s": 3.0, "day": DAY, **options})  # type: ignore[arg-type]
    return asyncio.run(run_live(settings, key, opts))


def _written(settings: Settings, window: str) -> pa.Table:
    folder = settings.realtime.output / f"window={window}" / f"dt={DAY}"
    table = pq.ParquetDataset(folder).read()
    return table.sort_by("window_start")


def _replay(spy_day, speed: float | None = None, **kw: object):
    return serve_in_thread(
        spy_day, ReplayOptions(speed=speed, api_key=KEY, wait_for=("stocks", "options"), **kw)
    )


def _assert_rows_equal(live: pa.Table, batch: pa.Table, skip: set[int] = frozenset()) -> None:
    """Every batch column but the quality ones equal (FEATURES.md tolerances) on every row
    not in ``skip``."""
    assert live.schema == batch.schema  # prelim and final rows: one schema
    for name in batch.column_names:
        if name in QUALITY_NAMES:
            continue
        a, b = live.column(name).to_pylist(), batch.column(name).to_pylist()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if i in skip:
                continue
            if isinstance(y, float) and x is not None:
                rtol = 1e-6 if name.endswith("_bc") else 1e-9
                assert np.isclose(x, y, rtol=rtol, atol=1e-12, equal_nan=True), (name, i, x, y)
            else:
                assert x == y, (name, i, x, y)


def _windows_holding(times_ns: np.ndarray, starts_ns: np.ndarray, wns: int) -> set[int]:
    return (
        {int(i) for i in np.searchsorted(starts_ns, times_ns, side="right") - 1}
        & set(range(len(starts_ns)))
        if len(times_ns)
        else set()
    )


def test_every_closed_window_equals_the_batch_features(spy_day, batch, mirror, tmp_path):
    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port)
        pipeline = _live(settings)
    c = pipeline.counters
    assert c.late_dropped == 0 and c.duplicates == 0 and not c.malformed and c.gaps == 0
    corrected = batch["_corrected_ns"]["t"].to_numpy()
    for w in WINDOWS:
        live, want = _written(settings, w), batch[w]
        assert live.num_rows == want.num_rows
        assert live.column_names == want.column_names
        assert set(live["quality"].to_pylist()) == {"prelim"}
        assert sum(live["gaps"].to_pylist()) == 0
        starts = pc.cast(want["window_start"], pa.int64()).to_numpy()
        wns = int(starts[1] - starts[0])
        # The feed has no correction code: a corrected trade counts live (prelim) and not in
        # the batch (final); those windows are the only ones allowed to differ.
        differ = _windows_holding(corrected, starts, wns)
        _assert_rows_equal(live, want, skip=differ)
        assert len(differ) < want.num_rows / 10


def test_the_aggression_columns_equal_the_batch_classified_against_the_days_quotes(
    spy_day_with_quotes, batch, mirror, tmp_path
):
    s = _settings(tmp_path / "ref", mirror, 1)
    want_all = _batch_features(mirror, s, classify=CLASSIFY)
    with _replay(spy_day_with_quotes) as server:
        settings = _settings(tmp_path, mirror, server.port, features={"aggression": True})
        pipeline = _live(settings, classify=CLASSIFY)
    c = pipeline.counters
    assert c.late_dropped == 0 and c.duplicates == 0 and not c.malformed and c.gaps == 0
    assert c.option_quotes > 0 and c.stock_quotes > 0
    assert c.aggressor["buy"] > 0 and c.aggressor["sell"] > 0
    assert sum(c.aggressor.values()) == c.option_trades
    corrected = batch["_corrected_ns"]["t"].to_numpy()
    # The documented difference: a quote stamped exactly at its trade's millisecond counts
    # in the batch and not live (the feed cannot tell it from a later one). None here.
    assert not _trades_with_a_quote_at_their_time(mirror)
    for w in WINDOWS:
        live, want = _written(settings, w), want_all[w]
        assert live.column_names == want.column_names
        assert live.column_names[-71:-3] == list(AGGRESSION_FEATURE_NAMES)
        assert live.num_rows == want.num_rows
        starts = pc.cast(want["window_start"], pa.int64()).to_numpy()
        differ = _windows_holding(corrected, starts, int(starts[1] - starts[0]))
        _assert_rows_equal(live, want, skip=differ)
        filled = sum(live[name].null_count < live.num_rows for name in AGGRESSION_FEATURE_NAMES)
        assert filled >= 50  # the comparison is not of empty columns


def _trades_with_a_quote_at_their_time(mirror: Path) -> set[tuple[str, int]]:
    deltas = _option_deltas(mirror)
    stamped = set(
        zip(
            deltas["ticker"].to_pylist(),
            pc.cast(deltas["sip_timestamp"], pa.int64()).to_pylist(),
            strict=True,
        )
    )
    trades = _read(mirror, "option_trades")
    times = pc.cast(trades["sip_timestamp"], pa.int64()).to_pylist()
    return {k for k in zip(trades["ticker"].to_pylist(), times, strict=True) if k in stamped}


def test_with_the_treasury_curve_live_prices_with_the_days_curve(spy_day, batch, mirror, tmp_path):
    rows = [curve_row("2026-11-18", 3.1, 0.2), curve_row("2026-11-19", 5.0, 0.3)]
    with treasury_server(rows) as rates, _replay(spy_day) as server:
        settings = _settings(
            tmp_path,
            mirror,
            server.port,
            greeks={"risk_free_rate": "curve"},
            rates={"rest_base_url": rates.base_url},
        )
        pipeline = _live(settings, until=dt.time(11, 0))
        curve = pipeline.params.rate
    # No curve dated 2026-11-20: the 19th's is carried forward, as the batch asset does.
    assert (curve.curve_date, curve.carried_forward) == (dt.date(2026, 11, 19), True)
    assert [r[0] for r in rates.requests] == ["/fed/v1/treasury-yields"]
    want = _batch_features(mirror, settings, rate=curve)
    corrected = batch["_corrected_ns"]["t"].to_numpy()
    live = _written(settings, "5m")
    assert live.num_rows == 18  # 09:30-11:00
    starts = pc.cast(want["5m"]["window_start"], pa.int64()).to_numpy()
    differ = _windows_holding(corrected, starts, int(starts[1] - starts[0]))
    _assert_rows_equal(live, want["5m"].slice(0, live.num_rows), skip=differ)
    # ... and not with the constant rate of the config.
    assert live["calls_dadvv_mean"].to_pylist() != batch["5m"]["calls_dadvv_mean"][:18].to_pylist()


def test_a_missing_curve_stops_live_before_it_connects(spy_day, mirror, tmp_path):
    with treasury_server([curve_row("2026-10-01", 4.0)]) as rates:
        settings = _settings(
            tmp_path,
            mirror,
            1,  # nothing listens there: the curve is fetched first
            greeks={"risk_free_rate": "curve"},
            rates={"rest_base_url": rates.base_url, "lookback_days": 7},
        )
        with pytest.raises(LiveSetupError, match="no Treasury curve published for 2026-11-20"):
            _live(settings)


def test_a_restart_the_same_day_writes_no_window_twice(spy_day, mirror, tmp_path):
    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port)
        # 1m windows are on disk to 11:03, 5m ones to 11:00: the restart resumes at 11:00
        # and closes 11:00-11:03 again without writing them.
        _live(settings, until=dt.time(11, 3))
    first = {w: _written(settings, w).num_rows for w in WINDOWS}
    assert first == {"1m": 93, "5m": 18}
    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port)
        pipeline = _live(settings)
    for w in WINDOWS:
        rows = _written(settings, w)
        starts = rows["window_start"].to_pylist()
        assert len(starts) == len(set(starts)) > first[w]
    assert pipeline.counters.windows_skipped > 0
    # Latencies are of the windows written, not of those already on disk.
    assert pipeline.counters.close_latency.count == pipeline.counters.windows_written
    parts = {(p.window, p.day): p.rows for p in live_partitions(settings.realtime.output)}
    assert parts[("1m", DAY)] == 390 and parts[("5m", DAY)] == 78


def test_reconnects_write_each_window_once_and_mark_the_gaps(spy_day, mirror, tmp_path):
    with _replay(spy_day, drop_every=100, record=True) as server:
        settings = _settings(tmp_path, mirror, server.port)
        pipeline = _live(settings)
        conns = list(server.stats.connections)
    drops = sum(c.dropped for c in conns)
    assert drops >= 2
    assert pipeline.counters.gaps == drops
    received = set()
    for conn in conns:
        received |= {m for m in conn.sent}
    for w in WINDOWS:
        rows = _written(settings, w)
        starts = rows["window_start"].to_pylist()
        assert len(starts) == len(set(starts)) == (390 if w == "1m" else 78)
        assert sum(rows["gaps"].to_pylist()) > 0
    # Every window holding a trade the client never received is marked.
    sent_t = set()
    for conn in conns:
        for m in conn.sent:
            if '"ev":"T"' in m:
                sent_t.add(m)
    missed = _missed_times(spy_day, sent_t)
    rows = _written(settings, "1m")
    starts = pc.cast(rows["window_start"], pa.int64()).to_numpy()
    gaps = np.asarray(rows["gaps"].to_pylist())
    for i in _windows_holding(missed, starts, 60_000_000_000):
        assert gaps[i] > 0, f"window {i} missed trades but has no gap"


def _missed_times(spy_day, sent: set[str]) -> np.ndarray:
    """SIP times (ns, ms precision) of the day's trades no connection was sent."""
    out = []
    for seg in spy_day.segments():
        for topic, msg, t in zip(
            seg["topic"].to_pylist(), seg["msg"].to_pylist(), seg["t_ns"].to_pylist(), strict=True
        ):
            if topic.startswith("T.") and msg not in sent:
                out.append(t // 1_000_000 * 1_000_000)
    return np.array(sorted(out), dtype=np.int64)


def test_late_and_duplicate_trades_are_counted_never_double_counted(
    spy_day, batch, mirror, tmp_path
):
    inject = Injection(duplicates=7, late=50, late_by_s=600.0)
    # 15,000x real time: a 10-minute-late trade arrives 40 ms after its time, later than
    # live's batches of frames (10 ms) take (at `max` speed it can come in the same batch
    # as trades 10 minutes younger, before they move the watermark: then it is on time).
    with _replay(spy_day, speed=15_000.0, inject=inject) as server:
        settings = _settings(tmp_path, mirror, server.port)
        pipeline = _live(settings, until=None)
        injected = list(server.stats.injected)
    c = pipeline.counters
    late_ns = np.array(
        [json.loads(i.text)["t"] * 1_000_000 for i in injected if i.kind == "late"], np.int64
    )
    dups = sum(1 for i in injected if i.kind == "duplicate")
    assert dups > 0 and late_ns.size > 0
    # A socket lost under load (gaps > 0) misses messages, copies included.
    assert c.duplicates == dups if c.gaps == 0 else 0 < c.duplicates <= dups
    # Ten minutes late is late whenever both streams keep trading (regular hours); before
    # the open stock trades are minutes apart, after the close the options stream is silent.
    in_session = (late_ns >= _et_ns(dt.time(9, 45))) & (late_ns < _et_ns(dt.time(15, 45)))
    assert (0.8 * in_session.sum() if c.gaps == 0 else 1) <= c.late_dropped <= late_ns.size
    corrected = batch["_corrected_ns"]["t"].to_numpy()
    counts = ["underlying_trades", "call_trades", "put_trades"]
    for w in WINDOWS:
        live, want = _written(settings, w), batch[w]
        starts = pc.cast(want["window_start"], pa.int64()).to_numpy()
        wns = int(starts[1] - starts[0])
        touched = _windows_holding(late_ns, starts, wns) | _windows_holding(corrected, starts, wns)
        _assert_rows_equal(live, want, skip=touched)  # nothing counted twice
        for name in counts:
            a, b = np.asarray(live[name].to_pylist()), np.asarray(want[name].to_pylist())
            assert (a <= b + 2).all()
    assert max(live["late_dropped"].to_pylist()) <= c.late_dropped


def _et_ns(at: dt.time) -> int:
    return int(dt.datetime.combine(DAY, at, NEW_YORK).timestamp()) * 1_000_000_000


def test_bad_messages_are_counted_and_the_process_lives(spy_day, mirror, tmp_path):
    with _replay(spy_day, inject=Injection(bad=40)) as server:
        settings = _settings(tmp_path, mirror, server.port, metrics_port=0)
        pipeline = _live(settings, until=None)
        injected = [i.kind for i in server.stats.injected]
    c = pipeline.counters
    for kind in ("invalid_json", "unknown_event", "missing_field"):
        assert c.malformed[kind] == injected.count(kind) > 0
    assert _written(settings, "1m").num_rows == 390


def test_the_metrics_endpoint_shows_the_counters(spy_day, mirror, tmp_path):
    seen: dict[str, str] = {}

    async def scrape_at_end(settings: Settings) -> None:
        def ready(info: dict) -> None:
            seen["port"] = str(info["metrics_port"])

        opts = LiveOptions(until=CLOSE, idle_exit_s=2.0, day=DAY)
        task = asyncio.create_task(run_live(settings, KEY, opts, ready=ready))
        while "port" not in seen:
            await asyncio.sleep(0.05)
        body = ""
        while not task.done():
            body = await asyncio.to_thread(_get, f"http://127.0.0.1:{seen['port']}/metrics")
            await asyncio.sleep(0.2)
        await task
        seen["body"] = body

    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port, metrics_port=_free_port())
        asyncio.run(scrape_at_end(settings))
    body = seen["body"]
    for name in (
        "market_assets_live_trades_total",
        "market_assets_live_late_dropped_total",
        "market_assets_live_duplicates_total",
        "market_assets_live_malformed_total",
        "market_assets_live_window_close_latency_seconds_bucket",
        "market_assets_live_connected",
    ):
        assert name in body


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_rejected_key_is_a_clear_error(spy_day, mirror, tmp_path):
    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port)
        with pytest.raises(FeedAuthError, match="rejected"):
            _live(settings, key="wrong-key-12345")


def test_the_cli_exits_non_zero_on_a_rejected_key_without_printing_it(spy_day, mirror, tmp_path):
    secret = "sekrit-key-9f8e7d"
    with _replay(spy_day) as server:
        cfg = write_config(
            tmp_path / "config.toml",
            massive={"local_root": str(mirror)},
            realtime={"feed": f"127.0.0.1:{server.port}", "secure": False,
                      "option_contracts": "all", "output": str(tmp_path / "live"),
                      "metrics_port": 0},
        )  # fmt: skip
        env = {**os.environ, "MARKET_ASSETS_CONFIG": str(cfg), "MASSIVE_API_KEY": secret}
        proc = subprocess.run(
            [sys.executable, "-m", "market_assets.cli", "live", "--date", str(DAY)]
            + ["--idle-exit", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "API key was rejected" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_a_run_that_fails_still_merges_what_it_wrote(spy_day, mirror, tmp_path, monkeypatch):
    # The run's error surfaces; its day is not left as one file per close.
    from market_assets.live.pipeline import LivePipeline

    def fail(self, until_ns):
        raise RuntimeError("the run broke at the end")

    monkeypatch.setattr(LivePipeline, "finish", fail)
    with _replay(spy_day) as server:
        settings = _settings(tmp_path, mirror, server.port)
        with pytest.raises(RuntimeError, match="broke at the end"):
            _live(settings, until=dt.time(10, 5))
    for w in WINDOWS:
        folder = settings.realtime.output / f"window={w}" / f"dt={DAY}"
        names = [p.name for p in folder.iterdir() if p.suffix == ".parquet"]
        assert len(names) == 1 and names[0].startswith("day-"), names
