# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Giving Arrow's freed memory back to the operating system."""

import pyarrow as pa


def release_unused_arrow_memory() -> None:
    """Return the pages Arrow's memory pool keeps after frees (mimalloc, pyarrow's default,
    holds them for reuse) to the operating system, so that a long streaming step's RSS
    follows what it holds rather than the largest batch it ever decoded."""
    pa.default_memory_pool().release_unused()
