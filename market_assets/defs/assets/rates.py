# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""treasury_yields: the Treasury curve that prices each trading day's options."""

import datetime as dt

import dagster as dg
import pyarrow as pa

from market_assets.core.rates import TENORS, MissingCurveError, TreasuryCurve
from market_assets.defs.resources import SettingsResource
from market_assets.io.treasury import (
    ENDPOINT,
    TreasuryFetchError,
    api_key_from_env,
    fetch_curve,
)


def build_treasury_yields_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="treasury_yields",
        partitions_def=partitions_def,
        io_manager_key="parquet_io_manager",
        group_name="reference",
        kinds={"parquet", "api"},
        description=(
            f"The Treasury par yield curve (1M..30Y, percent) from Massive's {ENDPOINT}: one "
            "row per trading day; a day without its own curve carries the last one published "
            "within rates.lookback_days forward (carried_forward, curve_date)."
        ),
    )
    def treasury_yields(context: dg.AssetExecutionContext, settings: SettingsResource) -> pa.Table:
        s = settings.settings
        day = dt.date.fromisoformat(context.partition_key)
        try:
            curve = fetch_curve(
                day, s.rates.rest_base_url, api_key_from_env(), s.rates.lookback_days
            )
        except (MissingCurveError, TreasuryFetchError) as e:
            raise dg.Failure(str(e)) from None
        context.add_output_metadata(curve_metadata(curve))
        return curve.to_table()

    return treasury_yields


def curve_metadata(curve: TreasuryCurve) -> dict[str, object]:
    """The curve as materialization metadata: its date, the flag, and the yields."""
    md: dict[str, object] = {
        "curve_date": curve.curve_date.isoformat(),
        "carried_forward": curve.carried_forward,
    }
    for k in TENORS:
        v = curve.yields.get(k)
        md[k] = dg.MetadataValue.float(v) if v is not None else dg.MetadataValue.null()
    return md
