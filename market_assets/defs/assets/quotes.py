# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""stock_quotes and option_quotes: NBBO deltas of Massive's daily ``quotes_v1`` files.

compressed stream -> :class:`~market_assets.io.quote_reader.QuoteReader` (only the
configured tickers' line spans are parsed; blocks before them are skipped, and the read
stops, closing the source, after the last of them) -> :func:`~market_assets.core.nbbo.
nbbo_deltas` (a row per change of bid, ask, a size or the NBBO state; the last NBBO per
ticker carried across batches) -> the same rotated, atomic Parquet writer as the trades.

Stored like the trade assets: ``{storage.root}/stock_quotes/dt=YYYY-MM-DD/part-*.parquet``
(columns :data:`~market_assets.core.schemas.STOCK_QUOTES`) and ``option_quotes``
(:data:`~market_assets.core.schemas.OPTION_QUOTES`), rows in file order (ticker, then
SIP time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pyarrow as pa

from market_assets.core.nbbo import nbbo_delta_stream
from market_assets.core.quality import NbboStateCounts
from market_assets.core.schemas import OPTION_QUOTES, STOCK_QUOTES
from market_assets.defs.assets.ingest import IngestRun, build_flat_file_asset
from market_assets.io.quote_reader import QuoteReader
from market_assets.io.sizes import MIB
from market_assets.io.source import OpenedFile
from market_assets.settings import Settings

QUOTE_ASSETS = ("stock_quotes", "option_quotes")

DESCRIPTIONS = {
    "stock_quotes": (
        "NBBO deltas of quotes.tickers ([] = features.symbol) from Massive's "
        "us_stocks_sip/quotes_v1 file: a row per change of bid, ask, a size or nbbo_state "
        "(Normal, Locked, Crossed, Invalid)."
    ),
    "option_quotes": (
        "NBBO deltas of the contracts of quotes.underlyings ([] = features.symbol) "
        "from us_options_opra/quotes_v1, the ticker parsed into underlying, expiration, "
        "contract_type and strike. Only the underlyings' part of the file is read."
    ),
}


def build_quote_assets(
    partitions_def: dg.PartitionsDefinition, source: str = "local"
) -> list[dg.AssetsDefinition]:
    """``stock_quotes`` and ``option_quotes``; ``source`` (massive.source) labels them."""
    return [
        build_flat_file_asset(name, partitions_def, DESCRIPTIONS[name], QuoteRun, source)
        for name in QUOTE_ASSETS
    ]


class QuoteRun(IngestRun):
    """One quote file streamed into its NBBO deltas, with the states counted."""

    noun = "quotes"

    def configured(self, s: Settings) -> list[str]:
        return s.quote_keep(self.name)

    def open_reader(self, s: Settings, reopen: Callable[[], OpenedFile]) -> QuoteReader:
        self.options = self.name == "option_quotes"
        self.schema = OPTION_QUOTES if self.options else STOCK_QUOTES
        self.states = NbboStateCounts()
        self.quotes = QuoteReader(
            self.opened,
            self.name,
            keep=self.keep,
            block_size=int(s.ingest.block_size_mb * MIB),
            on_progress=self.progress(s),
            max_reject_fraction=s.ingest.max_reject_fraction,
            reject_sink=self.spool_reject,
        )
        return self.quotes

    def rows(self) -> Iterator[pa.RecordBatch]:
        """The NBBO deltas of the reader's rows, in file order."""
        # Massive sorts quote files by ticker (the reader checks it when it skips ahead).
        stream = nbbo_delta_stream(self.quotes, options=self.options, sorted_by_ticker=True)
        for deltas in stream:
            self.states.update(deltas)
            yield from deltas.to_batches()
        r, size = self.quotes, self.opened.size
        if r.stopped_early:
            rest = (
                f"the source was closed there, the remaining {size - r.bytes_read:,} bytes "
                "are not read"
                if r.bytes_read < size
                else "the source was closed (the file's end had already been read ahead)"
            )
            self.log.info(
                f"{self.name} {self.day}: past the last of {', '.join(self.keep)} at compressed "
                f"byte {r.bytes_read:,} of {size:,} ({r.bytes_read / max(size, 1):.1%}): {rest}"
            )

    def _metadata(self) -> dict[str, Any]:
        r, size = self.quotes, self.opened.size
        read, elapsed = r.bytes_read, max(r.stats.elapsed_s, 1e-9)
        return super()._metadata() | {
            "quote_rows": r.stats.rows_kept,
            "rows_out": self.states.rows,
            "source_bytes_read": read,
            "source_read_share": round(read / size, 4) if size else 1.0,
            "stopped_early": r.stopped_early,
            "blocks_skipped": r.blocks_skipped,
            "throughput_mb_s": round(read / 1e6 / elapsed, 1),
            **{f"nbbo_{state.lower()}": n for state, n in self.states.counts.items()},
        }
