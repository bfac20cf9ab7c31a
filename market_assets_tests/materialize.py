# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Materialize some assets of a project's definitions for one day, in a test instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg


def materialize_day(
    defs: dg.Definitions, keys: list[str], day: dt.date
) -> dg.ExecuteInProcessResult:
    """Run ``keys`` (and their checks) of ``defs`` for ``day`` in a fresh test instance;
    fails the test when the run fails."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            list(defs.assets or []),
            selection=keys,
            partition_key=day.isoformat(),
            resources=defs.resources,
            instance=instance,
        )
        assert result.success
        return result
