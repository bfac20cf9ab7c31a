# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Duplicate keys and the watermark of the live path (core.watermark)."""

from __future__ import annotations

import numpy as np

from market_assets.core.watermark import NS_PER_S, Deduplicator, EventClock


def test_int_keys_and_hashable_keys_find_the_same_duplicates() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 400, 3_000)
    ts = np.sort(rng.integers(0, 20 * NS_PER_S, 3_000))
    as_ints, as_tuples = Deduplicator(), Deduplicator()
    for a, b in ((0, 1_000), (1_000, 1_001), (1_001, 3_000)):
        fast = as_ints.first_seen(keys[a:b], ts[a:b])
        slow = as_tuples.first_seen([("X", int(k)) for k in keys[a:b]], ts[a:b])
        assert (fast == slow).all()
    # A key repeats within a second of SIP time (a copy carries its original's time).
    seen: set[tuple[int, int]] = set()
    want = []
    for k, t in zip(keys.tolist(), (ts // NS_PER_S).tolist(), strict=True):
        want.append((k, t) not in seen)
        seen.add((k, t))
    again = Deduplicator().first_seen(keys, ts)
    assert again.tolist() == want and not again.all()


def test_forgotten_seconds_no_longer_count_as_duplicates() -> None:
    d = Deduplicator()
    d.first_seen(np.array([1, 2]), np.array([5 * NS_PER_S, 9 * NS_PER_S]))
    d.forget_before(9 * NS_PER_S)
    assert len(d) == 1
    assert d.first_seen(np.array([1, 2]), np.array([5 * NS_PER_S, 9 * NS_PER_S])).tolist() == [
        True,
        False,
    ]


def test_peek_tells_the_watermark_without_moving_it() -> None:
    clock = EventClock(("stocks", "options"), allowed_lateness_s=1.0, idle_s=5.0)
    clock.observe("stocks", 100 * NS_PER_S, wall=0.0)
    clock.observe("options", 50 * NS_PER_S, wall=0.0)
    assert clock.peek(1.0) == 49 * NS_PER_S  # the slower stream holds it
    assert clock.peek(6.0) == 99 * NS_PER_S  # both idle: the latest time seen
    assert clock.watermark(1.0) == 49 * NS_PER_S  # peek(6.0) moved nothing
