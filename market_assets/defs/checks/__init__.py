# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Asset checks: the ingest and greeks checks run inside their assets' steps
(:mod:`.in_step`, guarding the partition swap); the features checks are separate asset
checks over the stored windows (:mod:`.features`)."""

from market_assets.defs.checks.features import build_asset_checks, features_summary
from market_assets.defs.checks.in_step import check_specs, ingest_checks, status_shares_check

__all__ = [
    "build_asset_checks",
    "check_specs",
    "features_summary",
    "ingest_checks",
    "status_shares_check",
]
