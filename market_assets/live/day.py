# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""One trading day of feed events for the replay server, in SIP-time order, memory bounded.

Flat files are sorted by ticker; the feed is in time order. :func:`prepare_day` streams each
dataset's rows for the served symbols (stock trades, stock quotes, option trades, option
quotes), encodes them as wire events once (:func:`market_assets.live.protocol.encode_events`)
and spills them to one lz4 Arrow IPC file on disk, cut into one-minute buckets of SIP time.
:meth:`ReplayDay.segments` then reads the buckets back one at a time, each sorted by SIP time
(ties in file order). Memory holds one spill buffer (``SPILL_ROWS`` events) while preparing
and one minute of events while replaying, whatever the size of the day.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.calendar import day_bounds_ns
from market_assets.io.reader import TradeReader
from market_assets.io.sizes import DEFAULT_BLOCK_SIZE
from market_assets.io.source import FlatFileStore, flat_file_key
from market_assets.live.protocol import encode_events
from market_assets.live.quotes import QuoteReader

log = logging.getLogger("market_assets.live.day")

# (market, channel) of each stream; a stream is one dataset of the day.
STREAMS: tuple[tuple[str, str], ...] = (
    ("stocks", "T"),
    ("stocks", "Q"),
    ("options", "T"),
    ("options", "Q"),
)
DATASETS = ("stock_trades", "stock_quotes", "option_trades", "option_quotes")
EVENTS = pa.schema(
    [
        ("t_ns", pa.int64()),  # SIP time, ns (the wire carries ms)
        ("seq", pa.int64()),  # order of preparation: file order within a dataset
        ("stream", pa.int8()),  # index into STREAMS
        ("topic", pa.string()),  # e.g. "T.SPY", "Q.O:SPY261120C00600000"
        ("msg", pa.string()),  # the event's JSON object
    ]
)
BUCKET_NS = 60 * 1_000_000_000
SPILL_ROWS = 262_144


@dataclass
class DayStats:
    """What was prepared: events per dataset, rows rejected by the readers, the time span."""

    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))
    missing: list[str] = field(default_factory=list)  # quote files not found
    first_ns: int | None = None
    last_ns: int | None = None
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.events.values())


class _Spill:
    """Events appended in any order, written per one-minute bucket to one IPC file."""

    def __init__(self, path: Path, origin_ns: int) -> None:
        self.path = path
        self.origin_ns = origin_ns
        self._writer = pa.ipc.new_file(
            str(path), EVENTS, options=pa.ipc.IpcWriteOptions(compression="lz4")
        )
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._seq = 0
        self._batches = 0
        self.index: dict[int, list[int]] = defaultdict(list)

    def add(self, t_ns: pa.Array, stream: int, topic: pa.Array, msg: pa.Array) -> None:
        n = len(t_ns)
        if not n:
            return
        seq = pa.array(np.arange(self._seq, self._seq + n, dtype=np.int64))
        self._seq += n
        streams = pa.array(np.full(n, stream, dtype=np.int8))
        self._pending.append(pa.table([t_ns, seq, streams, topic, msg], schema=EVENTS))
        self._pending_rows += n
        if self._pending_rows >= SPILL_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows = [], 0
        t = table.column("t_ns").to_numpy()
        # Clipping is monotonic, so bucket order stays time order at both ends.
        bucket = np.clip((t - self.origin_ns) // BUCKET_NS, 0, 4 * 24 * 60)
        order = np.argsort(bucket, kind="stable")
        table, bucket = table.take(pa.array(order)), bucket[order]
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(bucket)], strict=True):
            piece = table.slice(int(a), int(b - a)).combine_chunks()
            for batch in piece.to_batches():
                self._writer.write_batch(batch)
                self.index[int(bucket[a])].append(self._batches)
                self._batches += 1

    def close(self) -> None:
        self.flush()
        self._writer.close()


class _ContractOrdinals:
    """1-based position of each option trade among its contract's trades, in file order."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, tickers: pa.Array) -> pa.Array:
        enc = pc.dictionary_encode(tickers)
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        order = np.argsort(codes, kind="stable")
        ordered = codes[order]
        starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
        sizes = np.diff(np.r_[starts, len(codes)])
        groups = [names[c] for c in ordered[starts]]
        base = np.array([self.counts.get(g, 0) for g in groups], dtype=np.int64)
        ranks = np.arange(len(codes)) - np.repeat(starts, sizes) + np.repeat(base, sizes) + 1
        out = np.empty(len(codes), dtype=np.int64)
        out[order] = ranks
        for g, b, s in zip(groups, base, sizes, strict=True):
            self.counts[g] = int(b + s)
        return pa.array(out)


class ReplayDay:
    """A prepared day: the spill file and its bucket index; delete it with :meth:`close`."""

    def __init__(self, day: dt.date, folder: Path, index: dict[int, list[int]], stats: DayStats):
        self.day = day
        self.folder = folder
        self.index = dict(index)
        self.stats = stats

    @property
    def path(self) -> Path:
        return self.folder / "events.arrow"

    def segments(self) -> Iterator[pa.Table]:
        """The day's events, one minute of SIP time per table, each sorted by time."""
        if not self.index:
            return
        # A plain file, not a memory map: lz4 batches are decompressed into new buffers
        # anyway, and mapped pages would count as the process's memory.
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            for bucket in sorted(self.index):
                batches = [reader.get_batch(i) for i in self.index[bucket]]
                table = pa.Table.from_batches(batches, schema=EVENTS)
                yield table.sort_by([("t_ns", "ascending"), ("seq", "ascending")])

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ReplayDay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_day(
    store: FlatFileStore,
    day: dt.date,
    symbols: Sequence[str],
    *,
    quotes: bool = True,
    start_ns: int | None = None,
    spill_dir: str | Path | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_reject_fraction: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> ReplayDay:
    """Read ``day`` for ``symbols`` (stock tickers, also the option underlyings; ``["*"]``
    for every one) from ``store`` and spill its events; events before ``start_ns`` are left
    out. Trade files must exist; quote files are used when present and ``quotes`` is true."""
    keep = ["*"] if "*" in symbols else sorted({s.strip().upper() for s in symbols if s.strip()})
    if not keep:
        raise ValueError("no symbols to replay")
    say = progress or (lambda msg: log.info("%s", msg))
    folder = Path(tempfile.mkdtemp(prefix="market-assets-replay-", dir=spill_dir))
    stats = DayStats()
    started = time.monotonic()
    spill = _Spill(folder / "events.arrow", day_bounds_ns(day)[0])
    try:
        for stream, dataset in enumerate(DATASETS):
            key = flat_file_key(dataset, day)
            is_quotes = dataset.endswith("_quotes")
            if is_quotes and (not quotes or not store.exists(key)):
                if quotes:
                    stats.missing.append(store.uri(key))
                    say(f"{dataset}: no file {store.uri(key)}; no {dataset.replace('_', ' ')}")
                continue
            t0 = time.monotonic()
            n = _spill_dataset(
                store, key, dataset, stream, keep, spill, stats, start_ns, block_size,
                max_reject_fraction, day,
            )  # fmt: skip
            say(f"{dataset}: {n:,} events for {', '.join(keep)} in {time.monotonic() - t0:.1f} s")
        spill.close()
    except BaseException:
        spill.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    stats.seconds = time.monotonic() - started
    return ReplayDay(day, folder, spill.index, stats)


def _spill_dataset(
    store: FlatFileStore,
    key: str,
    dataset: str,
    stream: int,
    keep: list[str],
    spill: _Spill,
    stats: DayStats,
    start_ns: int | None,
    block_size: int,
    max_reject_fraction: float,
    day: dt.date,
) -> int:
    market, channel = STREAMS[stream]
    opened = store.open(key)
    if dataset.endswith("_trades"):
        reader: TradeReader | QuoteReader = TradeReader(
            opened,
            dataset,
            day,
            keep=keep,
            block_size=block_size,
            max_reject_fraction=max_reject_fraction,
            reopen=lambda: store.open(key),
        )
    else:
        reader = QuoteReader(opened, dataset, keep=keep, block_size=block_size)
    ordinals = _ContractOrdinals() if dataset == "option_trades" else None
    n = 0
    try:
        for batch in reader:
            if ordinals is not None:
                batch = batch.append_column("sequence_number", ordinals(batch.column("ticker")))
            t_ns = pc.cast(batch.column("sip_timestamp"), pa.int64())
            if start_ns is not None:
                later = pc.greater_equal(t_ns, start_ns)
                batch, t_ns = batch.filter(later), t_ns.filter(later)
            if not batch.num_rows:
                continue
            topic = pc.binary_join_element_wise(f"{channel}.", batch.column("ticker"), "")
            spill.add(t_ns, stream, topic, encode_events(batch, market, channel))
            lo, hi = pc.min_max(t_ns).values()
            lo, hi = lo.as_py(), hi.as_py()
            stats.first_ns = lo if stats.first_ns is None else min(stats.first_ns, lo)
            stats.last_ns = hi if stats.last_ns is None else max(stats.last_ns, hi)
            n += batch.num_rows
    finally:
        opened.close()
    stats.events[dataset] = n
    if isinstance(reader, TradeReader) and reader.stats.rows_rejected:
        stats.rejected[dataset] = reader.stats.rows_rejected
        first = reader.rejects[0]
        log.warning(
            "%s: %d malformed rows not replayed; first at line %d: %s",
            opened.name,
            reader.stats.rows_rejected,
            first.line,
            first.reason,
        )
    return n
