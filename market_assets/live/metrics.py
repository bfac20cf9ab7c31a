# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Prometheus endpoint of ``market-assets live``: the terminal view's counters, read at
scrape time, plus a histogram of window-close latency."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from market_assets.core.watermark import NEVER
from market_assets.live.feed import FeedState
from market_assets.live.pipeline import LiveCounters

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _LiveCollector(Collector):
    def __init__(
        self,
        counters: Callable[[], LiveCounters],
        feeds: Callable[[], Sequence[FeedState]],
        queue_depth: Callable[[], int],
    ) -> None:
        self.counters = counters
        self.feeds = feeds
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        c = self.counters()
        p = "market_assets_live_"

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(p + name, doc, value=value)

        yield counter("frames", "Frames received from the feed", c.frames)
        trades = CounterMetricFamily(p + "trades", "Trades accepted", labels=["market"])
        trades.add_metric(["stocks"], c.stock_trades)
        trades.add_metric(["options"], c.option_trades)
        yield trades
        quotes = CounterMetricFamily(p + "quotes", "Quotes applied to the NBBO", labels=["market"])
        quotes.add_metric(["stocks"], c.stock_quotes)
        quotes.add_metric(["options"], c.option_quotes)
        yield quotes
        sides = CounterMetricFamily(
            p + "option_trades_classified", "Option trades by aggressor side", labels=["side"]
        )
        for side in ("buy", "sell", "unknown"):
            sides.add_metric([side], c.aggressor.get(side, 0))
        yield sides
        rejected = CounterMetricFamily(
            p + "rejected", "Trades dropped for breaking a value rule", labels=["rule"]
        )
        for rule in ("price", "size", "sip_timestamp", "strike"):
            rejected.add_metric([rule], c.rejected.get(rule, 0))
        yield rejected
        yield counter("late_dropped", "Trades dropped as late (window closed)", c.late_dropped)
        yield counter("duplicates", "Duplicate trades dropped", c.duplicates)
        bad = CounterMetricFamily(p + "malformed", "Malformed or unknown messages", labels=["kind"])
        for kind in ("invalid_json", "unknown_event", "missing_field", "bad_field", "bad_frame"):
            bad.add_metric([kind], c.malformed.get(kind, 0))
        yield bad
        yield counter(
            "server_errors", "Error statuses sent by the server", sum(c.server_errors.values())
        )
        yield counter("windows_written", "Windows written", c.windows_written)
        yield counter("gaps", "Feed gaps (socket losses)", c.gaps)
        feeds = list(self.feeds())
        for name, doc, attr in (
            ("connections", "Sockets opened", "connections"),
            ("reconnect_backoffs", "Reconnects after a backoff wait", "backoffs"),
            (
                "backpressure_waits",
                "Frames that waited for room in the queue",
                "backpressure_waits",
            ),
            (
                "backpressure_seconds",
                "Seconds sockets waited for room in the queue",
                "backpressure_s",
            ),
        ):
            m = CounterMetricFamily(p + name, doc, labels=["market"])
            for f in feeds:
                m.add_metric([f.market], getattr(f, attr))
            yield m
        up = GaugeMetricFamily(
            p + "connected", "1 while the socket is connected", labels=["market"]
        )
        for f in feeds:
            up.add_metric([f.market], 1.0 if f.state == "connected" else 0.0)
        yield up
        yield GaugeMetricFamily(
            p + "subscriptions", "Topics confirmed by the server", value=len(c.subscribed)
        )
        yield GaugeMetricFamily(
            p + "queue_frames", "Frames waiting in the queue", value=self.queue_depth()
        )
        yield GaugeMetricFamily(
            p + "pending_option_trades",
            "Option trades waiting to be priced",
            value=c.pending_options,
        )
        if c.watermark_ns != NEVER:
            yield GaugeMetricFamily(
                p + "watermark_seconds",
                "Watermark (Unix seconds, event time)",
                value=c.watermark_ns / 1e9,
            )
            yield GaugeMetricFamily(
                p + "watermark_lag_seconds",
                "Latest SIP time seen minus the watermark",
                value=(c.latest_ns - c.watermark_ns) / 1e9,
            )


class LiveMetrics:
    """A registry with the live counters and the window-close latency histogram."""

    def __init__(
        self,
        counters: Callable[[], LiveCounters],
        feeds: Callable[[], Sequence[FeedState]],
        queue_depth: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_LiveCollector(counters, feeds, queue_depth))
        self.close_latency = Histogram(
            "market_assets_live_window_close_latency_seconds",
            "Watermark passing a window's end -> its row on disk",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.server: object | None = None

    def observe_closed(self, latencies_s: np.ndarray) -> None:
        """The close latency of each window written (NaN: closed by the run's end)."""
        for v in latencies_s[~np.isnan(latencies_s)].tolist():
            self.close_latency.observe(v)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the /metrics endpoint; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self.server = server
        return int(server.server_port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]
            self.server.server_close()  # type: ignore[attr-defined]
            self.server = None
