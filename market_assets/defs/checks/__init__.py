# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Asset checks, all run inside their assets' steps and judged on the staged partition
before it is swapped in: ingest and greeks (:mod:`.in_step`), features (:mod:`.features`)."""

from market_assets.defs.checks.features import build_asset_checks, features_summary
from market_assets.defs.checks.in_step import check_specs, ingest_checks, status_shares_check

__all__ = [
    "build_asset_checks",
    "check_specs",
    "features_summary",
    "ingest_checks",
    "status_shares_check",
]
