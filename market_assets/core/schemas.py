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

OPTION_TRADES = pa.schema(
    [
        ("ticker", pa.string()),
        ("underlying", pa.string()),
        ("expiration", pa.date32()),
        ("contract_type", pa.string()),  # "call" | "put"
        ("strike", pa.float64()),
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
