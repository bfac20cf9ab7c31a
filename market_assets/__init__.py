# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""market_assets: Massive flat files -> Parquet -> per-window options-flow features."""

from market_assets.core.feature_names import AGGRESSION_FEATURE_NAMES, FEATURE_NAMES

__all__ = ["AGGRESSION_FEATURE_NAMES", "FEATURE_NAMES"]
