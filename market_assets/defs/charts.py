# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Pictures and previews of a features table for the Dagster UI (no dagster import).

``features_chart_png`` draws the underlying's close per window with the window's call and
put dadvv totals (matplotlib, Agg backend, PNG bytes); ``chart_markdown`` embeds a PNG in
markdown as a data URI (what ``MetadataValue.md`` shows inline); ``preview_markdown`` is a
markdown table of the first windows; ``save_chart`` writes the PNG beside the warehouse
partition under ``{storage.root}/_charts/``.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import NEW_YORK_TZ
from market_assets.io.parquet_store import ParquetStore

if TYPE_CHECKING:  # matplotlib itself is imported only when a chart is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CHART_COLUMNS = ("window_start", "underlying_price_close", "calls_dadvv_total", "puts_dadvv_total")
PREVIEW_COLUMNS = (
    "window_start",
    "underlying_trades",
    "call_trades",
    "put_trades",
    "underlying_price_open",
    "underlying_price_close",
    "calls_dadvv_total",
    "puts_dadvv_total",
)
PREVIEW_ROWS = 10


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A float column as numpy, nulls as NaN (all NaN if absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = pc.cast(table.column(name), pa.float64())
    return col.to_numpy(zero_copy_only=False).astype(np.float64)


def _ny_wallclock(ts: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps (UTC, or naive meaning UTC) as naive New York wall-clock times."""
    if ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    return pc.local_timestamp(pc.cast(ts, pa.timestamp("ns", tz=NEW_YORK_TZ)))


def _finish(fig: Figure, ax: Axes, title: str) -> bytes:
    """The figure as PNG bytes (titled when ``title`` is given)."""
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def features_chart_png(table: pa.Table, title: str = "", dpi: int = 100) -> bytes:
    """PNG of the underlying close (line) and call/put dadvv totals (bars) per window."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    # New York wall-clock times on the x axis (naive datetimes, so matplotlib does no tz work).
    x = _ny_wallclock(table.column("window_start")).to_numpy(zero_copy_only=False)
    x = x.astype("datetime64[ns]")
    close = _column(table, "underlying_price_close")
    calls = np.nan_to_num(_column(table, "calls_dadvv_total"))
    puts = np.nan_to_num(_column(table, "puts_dadvv_total"))

    fig = Figure(figsize=(10, 4.5), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.twinx()
    # One filled step outline per series (far faster to draw than a bar per window).
    edges = x
    if len(x):
        step = np.median(np.diff(x)) if len(x) > 1 else np.timedelta64(60, "s")
        edges = np.append(x, x[-1] + step)
        bars.stairs(
            calls / 1e6,
            edges,
            baseline=0,
            fill=True,
            color="#2e7d32",
            alpha=0.45,
            label="calls dadvv",
        )
        bars.stairs(
            -puts / 1e6,
            edges,
            baseline=0,
            fill=True,
            color="#c62828",
            alpha=0.45,
            label="puts dadvv",
        )
    bars.axhline(0, color="#555", linewidth=0.5)
    bars.set_ylabel("dadvv total, $M (calls up, puts down)")
    # A window's close is its last price: drawn at the window's end.
    ax.plot(edges[1:], close, color="#1a237e", linewidth=1.4, label="underlying close")
    ax.set_ylabel("underlying close")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel(f"time ({NEW_YORK_TZ}); bars span their window")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + bars.get_legend_handles_labels()[1]
    ax.legend(handles, labels, loc="upper left", fontsize=8)
    return _finish(fig, ax, title)


AGGRESSION_SERIES = (
    ("calls_dadvv_agg_buy_total", "calls bought", "#2e7d32", 1),
    ("puts_dadvv_agg_buy_total", "puts bought", "#c62828", 1),
    ("calls_dadvv_agg_sell_total", "calls sold", "#81c784", -1),
    ("puts_dadvv_agg_sell_total", "puts sold", "#ef9a9a", -1),
)


def aggression_chart_png(table: pa.Table, title: str = "", dpi: int = 100) -> bytes:
    """PNG of buyer- (up) vs seller-initiated (down) call and put dadvv totals per window."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    x = _ny_wallclock(table.column("window_start")).to_numpy(zero_copy_only=False)
    x = x.astype("datetime64[ns]")
    fig = Figure(figsize=(10, 4.5), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    if len(x):
        step = np.median(np.diff(x)) if len(x) > 1 else np.timedelta64(60, "s")
        edges = np.append(x, x[-1] + step)
        bottom = {1: np.zeros(len(x)), -1: np.zeros(len(x))}
        for name, label, color, sign in AGGRESSION_SERIES:
            v = np.nan_to_num(_column(table, name)) / 1e6 * sign
            ax.stairs(
                bottom[sign] + v, edges, baseline=bottom[sign], fill=True, color=color, label=label
            )
            bottom[sign] = bottom[sign] + v
    ax.axhline(0, color="#555", linewidth=0.5)
    ax.set_ylabel("dadvv total, $M (buyer-initiated up, seller-initiated down)")
    ax.set_xlabel(f"time ({NEW_YORK_TZ}); bars span their window")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, ax, title)


def chart_markdown(png: bytes, alt: str = "chart") -> str:
    """Markdown showing ``png`` inline (a base64 data URI)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if hasattr(v, "strftime"):
        return v.strftime("%H:%M")  # type: ignore[union-attr]
    return str(v).replace("|", "\\|")


def preview_markdown(
    table: pa.Table, rows: int = PREVIEW_ROWS, columns: tuple[str, ...] = PREVIEW_COLUMNS
) -> str:
    """A markdown table of the first ``rows`` windows (window_start in New York time)."""
    cols = [c for c in columns if c in table.column_names]
    head = table.select(cols).slice(0, rows)
    if "window_start" in cols:
        ws = _ny_wallclock(head.column("window_start"))
        head = head.set_column(cols.index("window_start"), "window_start", ws)
    lines = [
        "| " + " | ".join(cols) + " |",
        "| " + " | ".join("---" for _ in cols) + " |",
    ]
    data = head.to_pydict()
    for i in range(head.num_rows):  # at most `rows` lines: a preview, not the data
        lines.append("| " + " | ".join(_cell(data[c][i]) for c in cols) + " |")
    more = table.num_rows - head.num_rows
    if more > 0:
        lines.append(f"\n{head.num_rows} of {table.num_rows} windows shown.")
    return "\n".join(lines)


def chart_relpath(asset_path: str, partition: str) -> str:
    """Where a partition's chart lives under the warehouse root."""
    return f"_charts/{asset_path}/dt={partition}/chart.png"


def save_chart(png: bytes, store: ParquetStore, asset_path: str, partition: str) -> str:
    """Write ``png`` beside the warehouse (:func:`chart_relpath`); returns its URI."""
    return store.write_bytes(chart_relpath(asset_path, partition), png)


def reconciliation_chart_png(
    starts_ns: np.ndarray,
    window_ns: int,
    differing: list[tuple[int, int]],
    gap_starts: list[int],
    title: str = "",
    dpi: int = 100,
) -> bytes:
    """PNG of the session's windows (``starts_ns``): per window, how many feature columns of
    prelim are beyond tolerance of final (bars), with the prelim windows that had feed gaps
    shaded."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    def wallclock(ns: np.ndarray) -> np.ndarray:
        ts = pa.chunked_array([pa.array(np.asarray(ns, dtype=np.int64), pa.timestamp("ns"))])
        return _ny_wallclock(ts).to_numpy(zero_copy_only=False).astype("datetime64[ns]")

    starts = np.asarray(starts_ns, dtype=np.int64)
    counts = np.zeros(len(starts))
    where = {int(s): i for i, s in enumerate(starts)}
    for s, n in differing:
        if s in where:
            counts[where[s]] = n
    edges = wallclock(np.append(starts, starts[-1] + window_ns)) if len(starts) else starts
    fig = Figure(figsize=(10, 3.2), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    if len(starts):
        ax.stairs(
            counts, edges, fill=True, color="#6a1b9a", alpha=0.7, label="columns beyond tolerance"
        )
        step = np.timedelta64(window_ns, "ns")
        for i, g in enumerate(wallclock(np.asarray(gap_starts, dtype=np.int64))):
            ax.axvspan(
                g, g + step, color="#ef6c00", alpha=0.25, label="feed gaps" if i == 0 else None
            )
    ax.set_ylabel("columns beyond tolerance")
    ax.set_xlabel(f"window start ({NEW_YORK_TZ})")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, ax, title)
