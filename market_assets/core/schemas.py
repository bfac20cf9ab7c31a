# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Arrow schemas of the stored assets: the one definition every reader and writer uses."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

TS = pa.timestamp("ns", tz="UTC")
CONDITIONS = pa.list_(pa.int32())

STOCK_TRADES = pa.schema(
    [
        ("ticker", pa.string()),
        ("sip_timestamp", TS),
        ("participant_timestamp", TS),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("exchange", pa.int32()),
        ("conditions", CONDITIONS),
        ("correction", pa.int32()),
        ("sequence_number", pa.int64()),
        ("id", pa.string()),
        ("tape", pa.int32()),
        ("trf_id", pa.int32()),
        ("trf_timestamp", TS),
    ]
)

# An option row's contract: the OPRA ticker and what it parses into (core.option_symbols).
CONTRACT_FIELDS = [
    ("ticker", pa.string()),
    ("underlying", pa.string()),
    ("expiration", pa.date32()),
    ("contract_type", pa.string()),  # "call" | "put"
    ("strike", pa.float64()),
]

OPTION_TRADES = pa.schema(
    [
        *CONTRACT_FIELDS,
        ("sip_timestamp", TS),
        ("participant_timestamp", TS),  # null for 7-column source files
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("exchange", pa.int32()),
        ("conditions", CONDITIONS),
        ("correction", pa.int32()),
    ]
)

GREEKS_COLUMNS = pa.schema(
    [
        ("underlying_price", pa.float64()),
        ("underlying_price_time", TS),
        ("time_to_expiry", pa.float64()),
        ("rate", pa.float64()),
        ("dividend_yield", pa.float64()),
        ("iv", pa.float64()),
        ("delta", pa.float64()),
        ("gamma", pa.float64()),
        ("vega", pa.float64()),
        ("theta", pa.float64()),
        ("intrinsic_value", pa.float64()),
        ("dollar_value", pa.float64()),
        ("dadvv", pa.float64()),
        ("gadvv", pa.float64()),
        ("greeks_status", pa.string()),
    ]
)

OPTION_TRADES_GREEKS = pa.schema(list(OPTION_TRADES) + list(GREEKS_COLUMNS))

GREEKS_STATUSES = ("ok", "no_underlying", "expired", "below_intrinsic", "above_max", "bad_input")

# NBBO deltas (quotes_v1 reduced to a row per change of bid, ask, a size or the state).
NBBO_STATES = ("Normal", "Locked", "Crossed", "Invalid")
_NBBO_COLUMNS = [
    ("sip_timestamp", TS),
    ("bid_price", pa.float64()),
    ("bid_size", pa.float64()),
    ("ask_price", pa.float64()),
    ("ask_size", pa.float64()),
    ("nbbo_state", pa.string()),  # one of NBBO_STATES
    ("sequence_number", pa.int64()),
]
STOCK_QUOTES = pa.schema([("ticker", pa.string())] + _NBBO_COLUMNS)
OPTION_QUOTES = pa.schema(CONTRACT_FIELDS + _NBBO_COLUMNS)
# The quote columns the NBBO book, the as-of index and the classifier read (stock or option
# NBBO rows); readers select only these.
NBBO_INPUT_COLUMNS = (
    "ticker",
    "sip_timestamp",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "sequence_number",
)

# What the classifier adds to a trade row (core.classify); the raw columns stay as they are.
AGGRESSOR_SIDES = ("buy", "sell", "unknown")
CLASS_METHODS = ("touch", "beyond", "tick_rule", "unknown")
UNKNOWN_REASONS = (
    "bad_trade",
    "no_quote",
    "stale",
    "invalid",
    "locked",
    "crossed",
    "inside_spread",
)
CLASSIFICATION_COLUMNS = pa.schema(
    [
        ("aggressor_side", pa.string()),  # one of AGGRESSOR_SIDES
        ("class_method", pa.string()),  # one of CLASS_METHODS
        ("unknown_reason", pa.string()),  # one of UNKNOWN_REASONS, null when classified
        ("nbbo_bid", pa.float64()),
        ("nbbo_ask", pa.float64()),
        ("nbbo_bid_size", pa.float64()),
        ("nbbo_ask_size", pa.float64()),
        ("nbbo_ts", TS),
        ("nbbo_age_us", pa.int64()),
        ("nbbo_state", pa.string()),
        ("tick_size_used", pa.float64()),
        ("mid_offset_bp", pa.float64()),
        ("touch_offset_ticks", pa.float64()),
        ("staleness_limit_us", pa.int64()),
    ]
)


# Quote rows as read (the stored assets keep NBBO deltas of them, see core.nbbo).
STOCK_QUOTE_ROWS = pa.schema(
    [
        ("ticker", pa.string()),
        ("sip_timestamp", TS),
        ("participant_timestamp", TS),
        ("ask_exchange", pa.int32()),
        ("ask_price", pa.float64()),
        ("ask_size", pa.float64()),
        ("bid_exchange", pa.int32()),
        ("bid_price", pa.float64()),
        ("bid_size", pa.float64()),
        ("conditions", CONDITIONS),
        ("indicators", CONDITIONS),
        ("sequence_number", pa.int64()),
        ("tape", pa.int32()),
        ("trf_timestamp", TS),
    ]
)

OPTION_QUOTE_ROWS = pa.schema(
    [
        *CONTRACT_FIELDS,
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

# option_trades_classified: the greeked trades, unchanged, then the classification.
OPTION_TRADES_CLASSIFIED = pa.schema(list(OPTION_TRADES_GREEKS) + list(CLASSIFICATION_COLUMNS))
