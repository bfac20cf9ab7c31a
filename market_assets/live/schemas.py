# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Arrow schemas of normalised quotes and of option trades as the WebSocket carries them.

Trades use the batch schemas of :mod:`market_assets.core.schemas`; the feed adds a sequence
number to option trades (OPRA flat files have none), kept in ``WIRE_OPTION_TRADES``.
"""

from __future__ import annotations

import pyarrow as pa

from market_assets.core.schemas import OPTION_TRADES, STOCK_QUOTE_ROWS, TS

# Stock quotes as the flat-file reader gives them.
STOCK_QUOTES = STOCK_QUOTE_ROWS

OPTION_QUOTES = pa.schema(
    [
        ("ticker", pa.string()),
        ("sip_timestamp", TS),
        ("ask_exchange", pa.int32()),
        ("ask_price", pa.float64()),
        ("ask_size", pa.float64()),
        ("bid_exchange", pa.int32()),
        ("bid_price", pa.float64()),
        ("bid_size", pa.float64()),
        ("sequence_number", pa.int64()),
    ]
)

WIRE_OPTION_TRADES = OPTION_TRADES.append(pa.field("sequence_number", pa.int64()))
