# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The feature column contract, loaded from the bundled feature_names.json (the data is the
single definition; FEATURES.md explains each name)."""

from __future__ import annotations

import json
from importlib import resources

IDENTITY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "window",
    "window_start",
    "window_end",
    "underlying_trades",
    "call_trades",
    "put_trades",
)

_names = json.loads(
    resources.files("market_assets").joinpath("data/feature_names.json").read_text()
)

FEATURE_NAMES: tuple[str, ...] = tuple(_names["FEATURE_NAMES"])
AGGRESSION_FEATURE_NAMES: tuple[str, ...] = tuple(_names["AGGRESSION_FEATURE_NAMES"])
