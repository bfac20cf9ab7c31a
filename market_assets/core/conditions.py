# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Massive's consolidated trade-condition rules and vectorized masks over condition lists.

The rules are data (read by :mod:`market_assets.io.condition_rules`): a bundled copy of Massive's /v3/reference/conditions
``update_rules.consolidated`` (``data/condition_rules.csv``), optionally replaced by a file
and patched per condition from config. A trade passes a rule when EVERY condition on it
passes (a trade with no conditions is a regular sale and passes everything). A condition
id absent from the table fails every rule: an unknown condition is never allowed to move a
price silently.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Rule = Literal["high_low", "open_close", "volume"]
RULES: tuple[Rule, ...] = ("high_low", "open_close", "volume")

FORM_T_EXTENDED_HOURS = 12
ODD_LOT = 37

# Regular Sale (id 0) is not in the bundled excerpt but is the plain trade in Massive's table.
_IMPLIED = {0: (True, True, True)}


@dataclass(frozen=True)
class ConditionRules:
    """Per condition id: (updates_high_low, updates_open_close, updates_volume)."""

    table: Mapping[int, tuple[bool, bool, bool]]

    def allowed_ids(self, rule: Rule, extra: Iterable[int] = ()) -> np.ndarray:
        i = RULES.index(rule)
        ids = {c for c, flags in self.table.items() if flags[i]} | set(extra)
        return np.array(sorted(ids), dtype=np.int32)

    def mask(
        self, conditions: pa.Array | pa.ChunkedArray, rule: Rule, extra: Iterable[int] = ()
    ) -> np.ndarray:
        """Boolean mask: every condition of each row passes ``rule`` (or is in ``extra``)."""
        return all_conditions_in(conditions, self.allowed_ids(rule, extra))


def all_conditions_in(conditions: pa.Array | pa.ChunkedArray, allowed: Sequence[int]) -> np.ndarray:
    """For a list<int32> column, True where every element is in ``allowed`` (empty/null lists pass)."""
    if isinstance(conditions, pa.ChunkedArray):
        conditions = (
            conditions.combine_chunks()
            if conditions.num_chunks
            else pa.array([], pa.list_(pa.int32()))
        )
    n = len(conditions)
    if n == 0:
        return np.zeros(0, dtype=bool)
    flat = pc.list_flatten(conditions)
    bad = ~np.isin(flat.to_numpy(zero_copy_only=False), np.asarray(allowed))
    parents = pc.list_parent_indices(conditions).to_numpy(zero_copy_only=False)
    out = np.ones(n, dtype=bool)
    out[parents[bad]] = False
    return out


def parse_condition_rules(
    text: str, source: str, overrides: Sequence[Mapping[str, object]] = ()
) -> ConditionRules:
    """Rules from a rules CSV's text (``source`` names it in errors), with config overrides."""
    table: dict[int, tuple[bool, bool, bool]] = dict(_IMPLIED)
    reader = csv.DictReader(text.splitlines())
    need = {"id", "updates_high_low", "updates_open_close", "updates_volume"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise ValueError(f"{source}: header must contain {sorted(need)}, found {reader.fieldnames}")
    for lineno, row in enumerate(reader, start=2):
        try:
            flags = tuple(
                _bool(row[k]) for k in ("updates_high_low", "updates_open_close", "updates_volume")
            )
            table[int(row["id"])] = flags  # type: ignore[assignment]
        except (ValueError, TypeError) as e:
            raise ValueError(f"{source} line {lineno}: {e}") from None
    for o in overrides:
        cid = int(o["id"])  # type: ignore[arg-type]
        cur = list(table.get(cid, (False, False, False)))
        for i, k in enumerate(("updates_high_low", "updates_open_close", "updates_volume")):
            if k in o:
                cur[i] = bool(o[k])
        table[cid] = tuple(cur)  # type: ignore[assignment]
    return ConditionRules(table)


def _bool(s: str | None) -> bool:
    v = (s or "").strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true/false, got {s!r}")
