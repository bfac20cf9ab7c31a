# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Live benchmark: a generated day replayed at ``--speed max`` through the real client and
server on 127.0.0.1, against the same server feeding a client that only decodes.

On a generated day (default: the ``large`` scale, about 3M SPY stock trades and 0.7M SPY
option trades) it starts, each time with a fresh ``market-assets replay --speed max``
(trades only, SPY and its contracts):

  (a) the baseline: the official ``massive.WebSocketClient`` on both sockets with a
      processor that ``json.loads`` each frame and counts its trades (no pipeline)
  (b) ``market-assets live --date DAY --until 16:00``: the whole live path (decode, rules,
      greeks, windows, Parquet on disk), in its own process

and prints (b)'s trades/s sustained (first frame received to last frame processed) as a
ratio to (a)'s, the window-close latency p50/p99 (the watermark passing a window's end to
its row on disk, from ``live --stats-json``), the queue wait, and (b)'s resident memory
sampled every 0.25 s: RSS at 25/50/75/100% of the trades processed and the peak.
Targets (issue 12, 2 cores): >= 50,000 trades/s, close p99 < 250 ms, memory flat (RSS at
100% within 15% of RSS at 25%).

    .venv/bin/python benchmarks/live.py [--scale large] [--until 16:00] [--quotes]

``--quotes`` serves SPY's option quotes as well (the shipped config has features.aggression
on, so live classifies every option trade against them); trades/s still counts trades.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from market_assets.devtools import bench

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAY = bench.DAY
KEY = "bench-key"
SAMPLE_S = 0.25
TARGET_RATE = 50_000
TARGET_P99_S = 0.250
FLAT = 1.15


@dataclass(frozen=True)
class Server:
    port: int
    trades: int  # stock + option trades the server replays


@contextlib.contextmanager
def replay_server(
    env: dict[str, str], run_dir: Path, name: str, quotes: bool = False
) -> Iterator[Server]:
    """``market-assets replay --speed max`` (trades only unless ``quotes``) until the block
    ends (SIGTERM)."""
    cmd = [
        str(BIN / "market-assets"),
        *("replay", "--date", str(DAY), "--speed", "max", "--port", "0"),
        *("--wait-for", "stocks,options", "--api-key", KEY),
        *(() if quotes else ("--no-quotes",)),
    ]
    with (run_dir / f"replay-{name}.log").open("w") as err:
        proc = subprocess.Popen(
            cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        try:
            assert proc.stdout is not None
            head = proc.stdout.readline() + proc.stdout.readline()
            port = re.search(r"ws://127\.0\.0\.1:(\d+)/stocks", head)
            if port is None:
                raise RuntimeError(f"the replay server did not start: {head!r}")
            counts = re.findall(r"([\d,]+) (stock|option) trades", head)
            yield Server(int(port.group(1)), sum(int(n.replace(",", "")) for n, _ in counts))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def null_client(port: int, trades: int, quotes: bool = False, idle_s: float = 10.0) -> dict:
    """Runs in a child process: the official client on both sockets (subscribed to the
    option quotes too with ``quotes``), each frame ``json.loads``-ed and its trades
    counted, until ``trades`` arrived (or ``idle_s`` without a frame)."""
    from massive import WebSocketClient

    seen = {"trades": 0, "frames": 0, "first": None, "last": None}
    done = asyncio.Event()

    async def processor(frame: str | bytes) -> None:
        now = time.monotonic()
        seen["first"] = seen["first"] or now
        seen["last"] = now
        seen["frames"] += 1
        seen["trades"] += sum(1 for e in json.loads(frame) if e.get("ev") == "T")
        if seen["trades"] >= trades:
            done.set()

    async def main() -> None:
        clients = []
        for market, topics in (("stocks", ["T.SPY"]), ("options", ["T.*"] + ["Q.*"] * quotes)):
            c = WebSocketClient(
                api_key=KEY, feed=f"127.0.0.1:{port}", market=market, secure=False, raw=True
            )
            c.subscribe(*topics)
            clients.append(c)
        tasks = [asyncio.create_task(c.connect(processor, max_size=64 << 20)) for c in clients]
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
            if seen["last"] is not None and time.monotonic() - seen["last"] > idle_s:
                break
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t

    asyncio.run(main())
    span = (seen["last"] or 0) - (seen["first"] or 0)
    return {"trades": seen["trades"], "frames": seen["frames"], "seconds": span}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MiB) and CPU seconds (user + system) of a running process."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def scrape(port: int) -> dict[str, float]:
    """Trades accepted and the watermark from the live metrics endpoint."""
    out = {"trades": 0.0}
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("market_assets_live_trades_total{"):
                    out["trades"] += float(line.split()[-1])
                elif line.startswith("market_assets_live_watermark_seconds "):
                    out["watermark"] = float(line.split()[-1])
    return out


def run_live(env: dict[str, str], run_dir: Path, server: Server, until: str) -> dict:
    """``market-assets live`` against ``server`` to ``until``; its stats and memory samples."""
    metrics_port = free_port()
    stats_path = run_dir / "live-stats.json"
    cmd = [
        str(BIN / "market-assets"),
        *("live", "--date", str(DAY), "--feed", f"127.0.0.1:{server.port}", "--insecure"),
        *("--option-contracts", "all", "--until", until, "--idle-exit", "10", "--view", "off"),
        *("--metrics-port", str(metrics_port), "--stats-json", str(stats_path)),
    ]
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    with (run_dir / "live.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        last: dict[str, float] = {}
        while proc.poll() is None:
            sample = {"t": time.monotonic() - started, **proc_status(proc.pid)}
            if "VmRSS" in sample:
                last = sample
                samples.append({**sample, **scrape(metrics_port)})
            time.sleep(SAMPLE_S)
        if proc.returncode:
            raise RuntimeError(f"live failed ({proc.returncode}); see {run_dir / 'live.log'}")
    stats = json.loads(stats_path.read_text())
    stats["samples"] = samples
    stats["peak_rss_mb"] = max((s.get("VmHWM", 0) for s in samples), default=None)
    stats["cpu_s"] = last.get("cpu_s")
    return stats


def rss_by_progress(samples: list[dict[str, float]], total: float) -> list[tuple[float, dict]]:
    """The first sample at or past 25/50/75/100% of ``total`` trades processed."""
    out = []
    for q in (0.25, 0.5, 0.75, 1.0):
        hit = next((s for s in samples if s.get("trades", 0) >= q * total), samples[-1])
        out.append((q, hit))
    return out


def _et(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from datetime import datetime

    from market_assets.core.calendar import NEW_YORK

    return datetime.fromtimestamp(seconds, tz=NEW_YORK).strftime("%H:%M:%S")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="large")
    parser.add_argument("--until", default="16:00", help="live --until (ET)")
    parser.add_argument(
        "--quotes",
        action="store_true",
        help="serve the option quotes too (with features.aggression, live classifies against them)",
    )
    parser.add_argument("--null-client", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_client:
        port, trades, quotes = args.null_client
        print(json.dumps(null_client(port, trades, bool(quotes))))
        return

    work = bench.work_dir(__file__)
    mirror = bench.sample_day(work, args.scale)
    run_dir = work / "live"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = bench.write_run_config(REPO / "config.toml", run_dir, mirror)
    env = {
        **os.environ,
        "MARKET_ASSETS_CONFIG": str(config),
        "DAGSTER_HOME": str(run_dir),
        "MASSIVE_API_KEY": KEY,
    }
    print(f"{bench.machine()}; day {DAY} ({args.scale}), live --until {args.until}")

    load_a = os.getloadavg()[0]
    with replay_server(env, run_dir, "baseline", args.quotes) as server:
        print(f"(a) baseline: {server.trades:,} trades to a decode-only client ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--null-client", str(server.port), str(server.trades)]
            + [str(int(args.quotes))],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    base = json.loads(child.stdout.strip().splitlines()[-1])
    base_rate = base["trades"] / base["seconds"]

    load_b = os.getloadavg()[0]
    with replay_server(env, run_dir, "live", args.quotes) as server:
        print("(b) market-assets live ...", flush=True)
        live = run_live(env, run_dir, server, args.until)
    trades = live["stock_trades"] + live["option_trades"]
    rate = live["trades_per_s"]
    close, wait = live["close_latency"], live["queue_wait"]

    print()
    print(
        bench.format_table(
            ["run", "trades", "seconds", "trades/s", "x (a)", "load avg"],
            [
                [
                    "(a) client + json.loads",
                    f"{base['trades']:,}",
                    f"{base['seconds']:.1f}",
                    f"{base_rate:,.0f}",
                    "1.00",
                    f"{load_a:.2f}",
                ],
                [
                    "(b) market-assets live",
                    f"{trades:,}",
                    f"{live['seconds']:.1f}",
                    f"{rate:,.0f}",
                    f"{rate / base_rate:.2f}",
                    f"{load_b:.2f}",
                ],
            ],
        )  # fmt: skip
    )
    print(
        f"\n(b) windows written {live['windows_written']:,}; CPU {live['cpu_s']:.1f} s; "
        f"late {live['late_dropped']}, duplicates {live['duplicates']}, "
        f"malformed {sum(live['malformed'].values())}"
    )
    print(
        f"window close latency (ms): p50 {_ms(close['p50_s'])}, p99 {_ms(close['p99_s'])}, "
        f"max {_ms(close['max_s'])} over {close['count']:,} windows"
    )
    print(
        f"queue wait (ms, frame received -> pipeline): p50 {_ms(wait['p50_s'])}, "
        f"p99 {_ms(wait['p99_s'])} (with the wait of up to 10 ms that gathers a batch)"
    )
    points = rss_by_progress(live["samples"], trades)
    print()
    print(
        bench.format_table(
            ["trades processed", "wall s", "watermark ET", "RSS MB"],
            [
                [f"{q:.0%}", f"{s['t']:.1f}", _et(s.get("watermark")), f"{s['VmRSS']:,.0f}"]
                for q, s in points
            ],
        )
    )
    print(f"peak RSS (VmHWM) {live['peak_rss_mb']:,.0f} MB")
    first, final = points[0][1]["VmRSS"], points[-1][1]["VmRSS"]
    checks = {
        f"trades/s >= {TARGET_RATE:,}": rate >= TARGET_RATE,
        f"window close p99 < {TARGET_P99_S * 1000:.0f} ms": close["p99_s"] is not None
        and close["p99_s"] < TARGET_P99_S,
        f"memory flat (RSS at 100% <= {FLAT:.2f} x at 25%)": final <= FLAT * first,
    }
    print(bench.format_checks(checks))


if __name__ == "__main__":
    main()
