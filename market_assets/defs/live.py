# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The Dagster view of ``market-assets live``: an external asset ``live_features`` (prelim
windows, partitioned by trading day like the batch ones) and a sensor that records an
observation for each live output partition that changed, so the UI shows prelim windows
beside the batch (final) ``features_<w>``. Dagster does not run ``live``; it only looks at
``realtime.output``."""

from __future__ import annotations

import json

import dagster as dg

from market_assets.io.live_store import live_partitions
from market_assets.settings import Settings

LIVE_ASSET = dg.AssetKey("live_features")


def build_live_spec(partitions: dg.PartitionsDefinition) -> dg.AssetSpec:
    return dg.AssetSpec(
        LIVE_ASSET,
        partitions_def=partitions,
        group_name="live",
        kinds={"parquet"},
        description=(
            "Prelim feature windows written by `market-assets live` to "
            "realtime.output/window=<w>/dt=<day>/ (quality = prelim; late_dropped, gaps). "
            "Observed by live_output_sensor; the batch features_<w> are the final values."
        ),
    )


def build_live_sensor(
    settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    output = settings.realtime.output

    @dg.sensor(
        name="live_output_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Records an observation of live_features per changed partition of {output}.",
    )
    def live_output_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        by_day: dict[str, dict[str, object]] = {}
        for p in live_partitions(output):
            key = p.day.isoformat()
            by_day.setdefault(key, {})[f"windows_{p.window}"] = p.rows
            by_day[key][f"files_{p.window}"] = p.files
            if p.last_window_start is not None:
                by_day[key][f"last_window_start_{p.window}"] = p.last_window_start.isoformat()
        valid = set(partitions.get_partition_keys())
        events = []
        for day, md in sorted(by_day.items()):
            total = sum(v for k, v in md.items() if k.startswith("windows_"))  # type: ignore[misc]
            if day not in valid or seen.get(day) == total:
                continue
            seen[day] = total
            events.append(
                dg.AssetObservation(
                    LIVE_ASSET,
                    partition=day,
                    metadata={**md, "quality": "prelim", "path": str(output)},  # type: ignore[dict-item]
                )
            )
        return dg.SensorResult(asset_events=events, cursor=json.dumps(seen))

    return live_output_sensor
