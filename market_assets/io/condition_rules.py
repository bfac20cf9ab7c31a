# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Reading Massive's trade-condition rules: the bundled copy or a configured file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from market_assets.core.conditions import ConditionRules, parse_condition_rules

BUNDLED_RULES = "data/condition_rules.csv"


def load_condition_rules(
    rules_file: str | Path | None = None, overrides: Sequence[Mapping[str, object]] = ()
) -> ConditionRules:
    """Read a rules CSV (default: the bundled copy) and apply config overrides."""
    if rules_file:
        return parse_condition_rules(Path(rules_file).read_text(), str(rules_file), overrides)
    text = resources.files("market_assets").joinpath(BUNDLED_RULES).read_text()
    return parse_condition_rules(text, "bundled condition_rules.csv", overrides)
