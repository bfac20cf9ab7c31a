# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Byte sizes shared by the readers, the writer and their callers."""

MIB = 1 << 20  # bytes in a mebibyte (sizes in config.toml are in MiB)
DEFAULT_BLOCK_SIZE = 4 * MIB  # compressed-file bytes the reader parses at a time
