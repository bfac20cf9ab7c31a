# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Write variants of the project's config.toml for tests."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Real Massive samples, copied into the repository (a clone stands alone).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "massive"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(doc: dict[str, dict[str, Any]]) -> str:
    out = []
    for section, table in doc.items():
        out.append(f"[{section}]")
        out += [f"{k} = {_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


def base_config() -> dict[str, dict[str, Any]]:
    return tomllib.loads((REPO / "config.toml").read_text())


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    """The project's config.toml with ``section={key: value}`` changes, written to ``path``.

    ``features.aggression`` is false unless a test sets it: config.toml turns it on for the
    demo, the tests of the aggression path (option_trades_classified) ask for it."""
    doc = base_config()
    doc["features"]["aggression"] = False
    for name, changes in sections.items():
        doc.setdefault(name, {}).update(changes)
    path.write_text(dump_toml(doc))
    return path
