# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Large option-quote flat files, fast: many underlyings in contract-ticker order.

``write_option_quotes`` writes a Massive ``quotes_v1`` option file (gzip CSV, the real
header) of ``rows`` quotes spread over ``roots`` (``weights`` gives some roots, e.g. SPY, a
bigger share), sorted by contract ticker then SIP time as Massive's files are. Columns are
generated with numpy a chunk of contracts at a time, written by pyarrow's CSV writer and
compressed with ISA-L, so tens of millions of rows take well under a minute.
"""

from __future__ import annotations

import datetime as dt
import itertools
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from isal import igzip

OPTION_QUOTES_HEADER = (
    "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,"
    "sequence_number,sip_timestamp"
)
_OPEN_NS = 1_763_649_000_000_000_000  # 2025-11-20 14:30 UTC
_SESSION_NS = 390 * 60 * 1_000_000_000


def roots(n: int, include: Sequence[str] = ("SPY",)) -> list[str]:
    """About ``n`` three-letter roots spread over the alphabet, sorted, ``include`` among them."""
    letters = ("".join(p) for p in itertools.product(string.ascii_uppercase, repeat=3))
    step = max(1, 26**3 // max(1, n))
    return sorted(set(include) | set(itertools.islice(letters, 0, None, step)))


def write_option_quotes(
    path: Path | str,
    rows: int,
    roots_: Sequence[str],
    *,
    weights: Mapping[str, float] | None = None,
    contracts_per_root: int = 200,
    seed: int = 1,
    level: int = 1,
) -> dict[str, int]:
    """Write the file; returns the rows written per root (sum ``rows``)."""
    rng = np.random.default_rng(seed)
    ordered = sorted(set(roots_))
    w = np.array([(weights or {}).get(r, 1.0) for r in ordered], dtype=float)
    per_root = np.floor(rows * w / w.sum()).astype(np.int64)
    per_root[-1] += rows - per_root.sum()
    counts: dict[str, int] = {}
    seq = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with igzip.open(tmp, "wb", compresslevel=level) as out:
        out.write((OPTION_QUOTES_HEADER + "\n").encode())
        for root, n in zip(ordered, per_root, strict=True):
            counts[root] = int(n)
            if n:
                table = _root_quotes(root, int(n), contracts_per_root, seq, rng)
                seq += int(n)
                pcsv.write_csv(
                    table,
                    out,
                    write_options=pcsv.WriteOptions(include_header=False, quoting_style="none"),
                )
    tmp.replace(path)
    return counts


def _root_quotes(
    root: str, n: int, contracts: int, seq0: int, rng: np.random.Generator
) -> pa.Table:
    """``n`` quotes over ``contracts`` contracts of one root, in ticker then time order."""
    expiries = [dt.date(2025, 11, 21) + dt.timedelta(days=7 * i) for i in range(4)]
    k = max(1, min(contracts, n))
    strikes = 100_000 + 1_000 * np.arange(k // (2 * len(expiries)) + 1)
    names = sorted(
        f"O:{root}{e:%y%m%d}{cp}{s:08d}" for e in expiries for cp in "CP" for s in strikes
    )[:k]
    sizes = rng.multinomial(n - k, np.full(k, 1.0 / k)) + 1 if n >= k else np.ones(n, np.int64)
    contract = np.repeat(np.arange(len(sizes)), sizes)
    ticker = pa.DictionaryArray.from_arrays(pa.array(contract, pa.int32()), pa.array(names))
    # SIP times rising within each contract: sorted uniform draws per contract.
    t = rng.integers(0, _SESSION_NS, n)
    t = np.sort(t + contract.astype(np.int64) * (_SESSION_NS * 2))
    t = t - contract.astype(np.int64) * (_SESSION_NS * 2) + _OPEN_NS
    mid = (rng.integers(5, 2_000, len(sizes))[contract] + rng.integers(-3, 4, n)).clip(2)
    half = rng.integers(1, 4, n)
    seq = seq0 + np.arange(n)
    return pa.table(
        {
            "ticker": ticker.cast(pa.string()),
            "ask_exchange": rng.integers(300, 323, n),
            "ask_price": (mid + half) / 100.0,
            "ask_size": rng.integers(1, 500, n),
            "bid_exchange": rng.integers(300, 323, n),
            "bid_price": (mid - half) / 100.0,
            "bid_size": rng.integers(1, 500, n),
            "sequence_number": seq,
            "sip_timestamp": t,
        }
    )
