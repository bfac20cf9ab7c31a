# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Arrow schemas of normalised quotes and of option trades as the WebSocket carries them.

Trades use the batch schemas of :mod:`market_assets.core.schemas`; the feed adds a sequence
number to option trades (OPRA flat files have none), kept in ``WIRE_OPTION_TRADES``.
"""

from __future__ import annotations

import pyarrow as pa

from market_assets.core.schemas import OPTION_QUOTE_ROWS, OPTION_TRADES, STOCK_QUOTE_ROWS

# Stock quotes as the flat-file reader gives them.
STOCK_QUOTES = STOCK_QUOTE_ROWS

# Option quotes as the feed carries them: the reader's rows without the parsed contract.
_PARSED = ("underlying", "expiration", "contract_type", "strike")
OPTION_QUOTES = pa.schema([f for f in OPTION_QUOTE_ROWS if f.name not in _PARSED])

WIRE_OPTION_TRADES = OPTION_TRADES.append(pa.field("sequence_number", pa.int64()))
