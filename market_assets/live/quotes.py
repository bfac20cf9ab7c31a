# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The replay server's quote reader: :class:`market_assets.io.quote_reader.QuoteReader`
failing on the first malformed row (the replay serves a day as it is or not at all).

Columns are found by header name, in any case (real stock quote files start with
``Ticker``); rows are filtered by ticker (stocks) or by the contract's underlying (options),
skipping and stopping early by Massive's ticker order. Option rows also carry the parsed
``underlying``/``expiration``/``contract_type``/``strike``, which the wire encoder ignores.
"""

from __future__ import annotations

from collections.abc import Sequence

from market_assets.io import quote_reader
from market_assets.io.reader import ByteSource
from market_assets.io.sizes import DEFAULT_BLOCK_SIZE

QUOTE_KINDS = quote_reader.QUOTE_KINDS


class QuoteReader(quote_reader.QuoteReader):
    """Iterate normalised record batches of one quote flat file; a malformed row raises
    :class:`~market_assets.io.reader.IngestError` naming the file, the line and the value
    once the file is read. ``keep`` lists stock tickers or underlyings; ``["*"]`` keeps all."""

    def __init__(
        self,
        source: ByteSource,
        kind: str,
        keep: Sequence[str] = ("*",),
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        super().__init__(source, kind, keep=keep, block_size=block_size, max_reject_fraction=0.0)
