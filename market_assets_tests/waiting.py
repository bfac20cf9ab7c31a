# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Wait for something other processes do, with the logs that explain a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def log_tails(logs: Sequence[Path], chars: int = 3000) -> str:
    """The last ``chars`` characters of each log that exists, under its name."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in logs if p.exists())


def wait_until(check: Callable[[], T], timeout: float, what: str, logs: Sequence[Path] = ()) -> T:
    """``check()``'s first truthy result, polled every 0.5 s; after ``timeout`` seconds an
    AssertionError naming ``what`` with the tail of each log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log_tails(logs)}")
