# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Event time for the live path: watermark, late and duplicate trades, feed gaps.

Pure state, no I/O; times are int64 ns since the epoch (SIP times) and wall-clock seconds
(any monotonic clock) passed in by the caller.

- **Watermark.** Each stream (stocks, options) has its latest SIP time seen. The watermark
  is the older of the *active* streams' latest times minus the allowed lateness; a stream
  that sent nothing for ``idle_s`` wall seconds (or never sent) does not hold it back, and
  with no active stream it is the latest time seen by any stream minus the lateness. It
  never goes back. The two sockets arrive out of step (the feed sends them separately), so
  one stream running ahead does not make the other's trades late.
- **Late.** :meth:`EventClock.advance` moves the close *frontier* to the watermark; every
  window ending at or before the frontier is closed. A trade older than the frontier is late:
  it is dropped and counted, never reopening a window.
- **Duplicates.** The batch's key: stocks ``(ticker, sequence_number)``; options
  ``(ticker, sequence_number)`` too, the feed's per-contract sequence (``q``). Keys are
  forgotten once older than the frontier (a copy that old is late anyway).
- **Gaps.** While a socket is down its stream may be missing messages: the interval from
  its last message before the loss to the first after it is a gap; a window overlapping a
  gap (or closing while one is still open) is marked.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

NS_PER_S = 1_000_000_000
NEVER = np.iinfo(np.int64).min
END_OF_TIME = np.iinfo(np.int64).max


@dataclass
class _Stream:
    latest_ns: int = NEVER
    last_wall: float | None = None


class EventClock:
    """Per-stream latest SIP times, the watermark and the close frontier."""

    def __init__(self, streams: Sequence[str], allowed_lateness_s: float, idle_s: float) -> None:
        self.lateness_ns = int(round(allowed_lateness_s * NS_PER_S))
        self.idle_s = float(idle_s)
        self.streams = {s: _Stream() for s in streams}
        self.frontier_ns = NEVER  # every window ending at or before it is closed
        self._watermark = NEVER

    def observe(self, stream: str, latest_ns: int, wall: float) -> None:
        """``stream`` delivered trades up to ``latest_ns`` at wall time ``wall``."""
        s = self.streams[stream]
        s.latest_ns = max(s.latest_ns, int(latest_ns))
        s.last_wall = wall

    def heard(self, stream: str, wall: float) -> None:
        """``stream`` delivered something (a frame without trades counts as a sign of life)."""
        if self.streams[stream].latest_ns != NEVER:
            self.streams[stream].last_wall = wall

    def latest_ns(self, stream: str | None = None) -> int:
        """The latest SIP time seen on ``stream`` (any stream if None); NEVER before any."""
        if stream is not None:
            return self.streams[stream].latest_ns
        return max(s.latest_ns for s in self.streams.values())

    def watermark(self, wall: float) -> int:
        """The watermark at wall time ``wall`` (NEVER before any trade)."""
        self._watermark = self.peek(wall)
        return self._watermark

    def peek(self, wall: float) -> int:
        """What :meth:`watermark` would return at ``wall``, without moving it."""
        seen = [s for s in self.streams.values() if s.latest_ns != NEVER]
        if not seen:
            return self._watermark
        active = [
            s.latest_ns
            for s in seen
            if s.last_wall is not None and wall - s.last_wall < self.idle_s
        ]
        ref = min(active) if active else max(s.latest_ns for s in seen)
        return max(self._watermark, ref - self.lateness_ns)

    def advance(self, to_ns: int) -> int:
        """Move the close frontier forward to ``to_ns`` (never back); returns it."""
        self.frontier_ns = max(self.frontier_ns, int(to_ns))
        return self.frontier_ns

    def is_late(self, ts_ns: np.ndarray) -> np.ndarray:
        """True for times older than the frontier (their windows are closed)."""
        return np.asarray(ts_ns, dtype=np.int64) < self.frontier_ns


class Deduplicator:
    """Keys seen recently, grouped by the second of their SIP time so old ones are dropped."""

    def __init__(self) -> None:
        self._by_second: dict[int, set[Hashable]] = {}
        self._seconds: list[int] = []  # a heap of the keys of _by_second

    def first_seen(self, keys: Iterable[Hashable] | np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
        """True where the key is new (and remember it); a repeat, even in the same call,
        is False. ``keys``: hashables, or an int64 array (checked a second at a time with
        set operations: no Python loop over keys unless a second holds a repeat)."""
        ts_ns = np.asarray(ts_ns, dtype=np.int64)
        if isinstance(keys, np.ndarray):
            return self._first_seen_ints(keys, ts_ns)
        return self._first_seen(keys, (ts_ns // NS_PER_S).tolist())

    def _first_seen_ints(self, keys: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
        out = np.ones(keys.size, dtype=bool)
        if not keys.size:
            return out
        seconds = ts_ns // NS_PER_S
        order = np.argsort(seconds, kind="stable")
        ordered = seconds[order]
        cuts = np.flatnonzero(np.diff(ordered)) + 1
        for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, keys.size].tolist(), strict=True):
            sec = int(ordered[a])
            rows = order[a:b]
            group = keys[rows].tolist()
            new = set(group)
            bucket = self._by_second.get(sec)
            if len(new) == len(group) and (bucket is None or bucket.isdisjoint(new)):
                if bucket is None:
                    self._by_second[sec] = new
                    heapq.heappush(self._seconds, sec)
                else:
                    bucket |= new
            else:
                out[rows] = self._first_seen(group, [sec] * len(group))
        return out

    def _first_seen(self, keys: Iterable[Hashable], seconds: list[int]) -> np.ndarray:
        out = np.ones(len(seconds), dtype=bool)
        for i, (key, sec) in enumerate(zip(keys, seconds, strict=True)):
            bucket = self._by_second.get(sec)
            if bucket is None:
                self._by_second[sec] = {key}
                heapq.heappush(self._seconds, sec)
            elif key in bucket:
                out[i] = False
            else:
                bucket.add(key)
        return out

    def forget_before(self, ts_ns: int) -> None:
        """Drop the keys of trades older than the second holding ``ts_ns``."""
        if ts_ns == NEVER:
            return
        cut = ts_ns // NS_PER_S
        while self._seconds and self._seconds[0] < cut:
            del self._by_second[heapq.heappop(self._seconds)]

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_second.values())


@dataclass
class Gap:
    stream: str
    start_ns: int
    end_ns: int = END_OF_TIME  # END_OF_TIME while the socket is still down


@dataclass
class GapTracker:
    """Intervals of event time in which a stream may have missed messages."""

    gaps: list[Gap] = field(default_factory=list)
    opened: int = 0

    def open(self, stream: str, start_ns: int) -> None:
        """``stream``'s socket went down after a message at ``start_ns``."""
        if any(g.stream == stream and g.end_ns == END_OF_TIME for g in self.gaps):
            return  # already down
        self.gaps.append(Gap(stream, int(start_ns)))
        self.opened += 1

    def is_open(self, stream: str) -> bool:
        return any(g.stream == stream and g.end_ns == END_OF_TIME for g in self.gaps)

    def move_start(self, stream: str, start_ns: int) -> None:
        """The open gap of ``stream`` starts later: a message before the loss came late."""
        for g in self.gaps:
            if g.stream == stream and g.end_ns == END_OF_TIME:
                g.start_ns = max(g.start_ns, int(start_ns))

    def close(self, stream: str, end_ns: int) -> None:
        """``stream`` is back; its first message after the loss is at ``end_ns``."""
        for g in self.gaps:
            if g.stream == stream and g.end_ns == END_OF_TIME:
                g.end_ns = max(int(end_ns), g.start_ns)

    def count(self, starts_ns: np.ndarray, window_ns: int) -> np.ndarray:
        """Gaps overlapping each window ``[start, start + window_ns)`` (a gap's interval is
        closed: a window holding either end is marked)."""
        starts = np.asarray(starts_ns, dtype=np.int64)
        out = np.zeros(starts.size, dtype=np.int64)
        for g in self.gaps:
            out += (g.start_ns < starts + window_ns) & (g.end_ns >= starts)
        return out

    def forget_before(self, ts_ns: int) -> None:
        """Drop the gaps that ended before ``ts_ns`` (no open window can overlap them)."""
        self.gaps = [g for g in self.gaps if g.end_ns >= ts_ns]
