# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""``market-assets live``: the configured symbol's windows from Massive's WebSocket feed.

Two sockets (stocks: ``T.<symbol>``; options: the symbol's contracts), frames through a
bounded queue into one :class:`~market_assets.live.pipeline.LivePipeline` on the same
asyncio loop, closed windows written as they close. Stops on ``--until HH:MM`` (ET, on the
run's day: once the watermark passes it), ``--idle-exit S`` (no frame for S seconds),
SIGINT or SIGTERM; then closes and writes every window ending by ``--until`` (or by the
latest event time seen) and exits 0. A rejected key exits 2 (the key is never printed).

The run's day is ``--date`` (``LiveOptions.day``), else today's session in New York (the
wall clock); a day that is not an NYSE trading day is an error before connecting. With
``greeks.risk_free_rate = "curve"`` the day's Treasury curve is fetched first, as the batch's
``treasury_yields`` asset does (:func:`market_assets.io.treasury.fetch_curve`).

Option contracts (``realtime.option_contracts``): ``snapshot`` asks the REST options chain
snapshot for the ``realtime.max_option_contracts`` most active contracts (volume, then open
interest) and subscribes ``T.<contract>`` for each in chunks; ``all`` subscribes ``T.*`` on
the options socket and keeps the symbol's contracts (the replay server serves only those;
on the real feed that is every OPRA trade). With ``features.aggression`` the same sockets
also carry quotes: ``Q.<symbol>`` and ``Q.<contract>`` for the first ``MAX_QUOTED_CONTRACTS``
contracts (Massive's limit per connection), ``Q.*`` with ``all``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from market_assets.core.calendar import NEW_YORK, closed_reason
from market_assets.core.classify import ClassifyParams
from market_assets.core.enrich import GreeksParams
from market_assets.core.rates import TreasuryCurve
from market_assets.core.statistics import StatsOptions
from market_assets.live.feed import FeedConnection, snapshot_contracts
from market_assets.live.metrics import LiveMetrics
from market_assets.live.pipeline import LivePipeline
from market_assets.live.view import Rate, render, summary_line
from market_assets.settings import Settings

log = logging.getLogger("market_assets.live")

API_KEY_ENV = "MASSIVE_API_KEY"
EXIT_AUTH = 2
# Frames handled together between two ticks: what arrives within BATCH_WAIT_S of the first
# (the sockets are read on this loop: taking frames as they come would hand the pipeline
# one or two at a time), up to DRAIN_BYTES (about 10,000 trades: some tens of ms of work,
# so a window closes soon after the watermark passes it).
DRAIN_BYTES = 1 << 20
BATCH_WAIT_S = 0.01
MAX_QUOTED_CONTRACTS = 1000  # Massive: option quotes for at most 1,000 contracts per connection


class LiveSetupError(RuntimeError):
    """``live`` cannot start; ``code`` is the CLI's exit code (2: a day without a session,
    1: the Treasury curve could not be read)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LiveOptions:
    until: dt.time | None = None
    idle_exit_s: float | None = None
    view: bool = False
    metrics_port: int | None = None  # None: realtime.metrics_port; 0: off
    day: dt.date | None = None  # None: today's session in New York
    classify: ClassifyParams | None = None  # None: the classifier's defaults (as the batch)


def _until_ns(day: dt.date, at: dt.time) -> int:
    return int(dt.datetime.combine(day, at, NEW_YORK).timestamp()) * 1_000_000_000


def session_day(day: dt.date | None, now: dt.datetime | None = None) -> dt.date:
    """The run's trading day: ``day``, else the date in New York at ``now`` (default: the
    wall clock). Raises :class:`LiveSetupError` when NYSE does not trade that day."""
    chosen = day or (now or dt.datetime.now(tz=NEW_YORK)).astimezone(NEW_YORK).date()
    reason = closed_reason(chosen)
    if reason is not None:
        where = "--date" if day else "today in New York"
        raise LiveSetupError(
            f"{chosen} ({where}) is not an NYSE trading day ({reason}): pass --date "
            "YYYY-MM-DD for another day (e.g. the day a replay server serves)"
        )
    return chosen


async def _rate(settings: Settings, api_key: str, day: dt.date) -> float | TreasuryCurve:
    """``greeks.risk_free_rate``: the number, or the Treasury curve pricing ``day``."""
    rate = settings.greeks.risk_free_rate
    if rate != "curve":
        return rate
    from market_assets.core.rates import MissingCurveError
    from market_assets.io.treasury import TreasuryFetchError, fetch_curve

    r = settings.rates
    try:
        return await asyncio.to_thread(fetch_curve, day, r.rest_base_url, api_key, r.lookback_days)
    except (MissingCurveError, TreasuryFetchError) as e:
        raise LiveSetupError(str(e), code=1) from None


def subscription_topics(
    symbol: str, contracts: list[str] | None, quotes: bool
) -> dict[str, list[str]]:
    """Each socket's topics: the symbol's trades (and quotes) on ``stocks``; on ``options``
    ``T.*`` (``contracts`` None) or each contract's trades, with ``quotes`` also ``Q.*`` or
    the quotes of the first ``MAX_QUOTED_CONTRACTS`` contracts (most active first: each
    contract's ``T`` and ``Q`` together, so the subscription in chunks starts with them)."""
    stocks = [f"T.{symbol}"] + ([f"Q.{symbol}"] if quotes else [])
    if contracts is None:
        return {"stocks": stocks, "options": ["T.*"] + (["Q.*"] if quotes else [])}
    options = []
    for i, c in enumerate(contracts):
        options.append(f"T.{c}")
        if quotes and i < MAX_QUOTED_CONTRACTS:
            options.append(f"Q.{c}")
    return {"stocks": stocks, "options": options}


async def _batch(queue: asyncio.Queue, first: Any) -> list[Any]:
    """``first`` and the frames that follow it within ``BATCH_WAIT_S``, up to
    ``DRAIN_BYTES``."""
    items, size = [first], len(first[3])
    deadline = time.monotonic() + BATCH_WAIT_S
    while size < DRAIN_BYTES:
        if queue.empty():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = await asyncio.wait_for(queue.get(), timeout=left)
            except TimeoutError:
                break
        else:
            item = queue.get_nowait()
        items.append(item)
        size += len(item[3])
    return items


async def run_live(
    settings: Settings,
    api_key: str,
    options: LiveOptions,
    stop: asyncio.Event | None = None,
    ready: Callable[[dict[str, Any]], None] | None = None,
) -> LivePipeline:
    """Run until a stop condition; returns the pipeline (its counters tell what happened).
    Raises :class:`FeedAuthError` when the key is rejected and :class:`LiveSetupError` when
    the run cannot start."""
    from market_assets.io.condition_rules import load_condition_rules

    rt, f, g = settings.realtime, settings.features, settings.greeks
    day = session_day(options.day)
    rules = load_condition_rules(
        settings.conditions.rules_file or None, settings.conditions.overrides
    )
    params = GreeksParams(
        rate=await _rate(settings, api_key, day),
        dividend_yield=g.dividend_yield,
        contract_multiplier=g.contract_multiplier,
        gadvv_scale=f.gadvv_scale,
        max_underlying_staleness_s=g.max_underlying_staleness_s,
    )
    stats = StatsOptions(
        kde_grid=f.kde_grid,
        dip_method=f.dip_pval_method,
        dip_bootstrap_draws=f.dip_bootstrap_draws,
        dip_seed=f.dip_seed,
    )
    stop = stop or asyncio.Event()
    queue: asyncio.Queue = asyncio.Queue(maxsize=rt.queue_frames)
    metrics: LiveMetrics | None = None
    feeds: list[FeedConnection] = []
    pipeline = LivePipeline(
        rt.symbol,
        list(rt.windows),
        f.session,
        rules,
        params,
        stats,
        rt.output,
        rt.allowed_lateness_s,
        rt.stream_idle_s,
        day,
        on_closed=lambda c: (
            metrics.observe_closed(c.latencies_s) if metrics and c.written else None
        ),
        aggression=f.aggression,
        classify=options.classify,
    )
    contracts = None
    if rt.option_contracts == "snapshot":
        contracts = await asyncio.to_thread(
            snapshot_contracts, api_key, rt.rest_url, rt.symbol, rt.max_option_contracts
        )
        quoted = min(len(contracts), MAX_QUOTED_CONTRACTS) if f.aggression else 0
        log.info(
            "options: %d contracts of %s from the chain snapshot (quotes of %d)",
            len(contracts),
            rt.symbol,
            quoted,
        )
    for market, topics in subscription_topics(rt.symbol, contracts, f.aggression).items():
        feeds.append(
            FeedConnection(
                market,
                topics,
                api_key=api_key,
                feed=rt.feed,
                secure=rt.secure,
                queue=queue,
                backoff_s=rt.reconnect_backoff_s,
                max_backoff_s=rt.max_reconnect_backoff_s,
                on_lost=pipeline.connection_lost,
            )
        )
    port = rt.metrics_port if options.metrics_port is None else options.metrics_port
    if port:
        metrics = LiveMetrics(
            lambda: pipeline.counters, lambda: [x.state for x in feeds], queue.qsize
        )
        port = metrics.serve(port)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
    tasks = [asyncio.create_task(x.run(), name=f"feed-{x.market}") for x in feeds]
    if ready is not None:
        ready({"metrics_port": port or None, "feeds": [x.state for x in feeds]})
    rate = Rate()
    live_view = None
    if options.view:
        from rich.live import Live

        live_view = Live(auto_refresh=False, transient=False)
        live_view.start()
    last_frame = time.monotonic()
    last_draw = 0.0
    until_ns = _until_ns(day, options.until) if options.until is not None else None
    try:
        while not stop.is_set():
            try:
                item = await asyncio.wait_for(queue.get(), timeout=0.1)
            except TimeoutError:
                item = None
            if item is not None:
                items = await _batch(queue, item)
                now = time.monotonic()
                pipeline.frames(items, now)
                last_frame = now
            now = time.monotonic()
            pipeline.tick(now, until_ns)
            for t in tasks:  # a feed that ended with an error (e.g. auth_failed) ends the run
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if until_ns is not None and pipeline.counters.watermark_ns >= until_ns:
                log.info("the watermark passed --until %s", options.until)
                break
            if options.idle_exit_s is not None and now - last_frame >= options.idle_exit_s:
                log.info("no message for %.1f s (--idle-exit)", options.idle_exit_s)
                break
            if now - last_draw >= 0.5:
                last_draw = now
                r = rate.update(pipeline.counters.stock_trades + pipeline.counters.option_trades)
                if live_view is not None:
                    live_view.update(
                        render(
                            rt.symbol, pipeline.counters, [x.state for x in feeds], queue.qsize(), r
                        ),
                        refresh=True,
                    )
        pipeline.finish(until_ns)
    finally:
        for x in feeds:
            await x.stop()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        # Also when the run fails: what is on disk is whole files, merged into one per
        # window size and day rather than left as one file per close.
        try:
            for w, path in pipeline.store.compact().items():
                log.info("%s windows of %s merged into %s", w, day, path.name)
        except Exception:  # the run's own error, if any, is the one to surface
            log.exception("merging the day's live files failed; they are left as they are")
        if live_view is not None:
            live_view.stop()
        if metrics is not None:
            metrics.stop()
    c = pipeline.counters
    log.info(summary_line(c, c.trades_per_s))
    return pipeline
