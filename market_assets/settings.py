# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Load and validate config.toml.

Every key is declared once in ``_SCHEMA`` with its type and a validator, so an unknown key,
a missing section or a bad value fails at load with a message naming ``section.key`` and
the offending value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market_assets.core.calendar import window_ns

CONFIG_ENV = "MARKET_ASSETS_CONFIG"
DEFAULT_CONFIG = "config.toml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the value."""


# --- validators: each returns the cleaned value or raises ValueError(reason) ---------------


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _nonempty_str(v: Any) -> str:
    s = _str(v)
    if not s.strip():
        raise ValueError("must not be empty")
    return s


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(repr(o) for o in options)}")
        return v

    return check


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("expected a number")
        v = float(v)
        if v != v:
            raise ValueError("must not be NaN")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ValueError(f"must be {'>' if lo_open else '>='} {lo:g}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi:g}")
        return v

    return check


def _int(lo: int | None = None, hi: int | None = None):
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("expected an integer")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi}")
        return v

    return check


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        raise ValueError("expected a date (YYYY-MM-DD), not a date-time")
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise ValueError("expected a date as YYYY-MM-DD")


def _str_list(v: Any) -> list[str]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x.strip() for x in v):
        raise ValueError("expected a non-empty list of non-empty strings")
    return [x.strip().upper() if x != "*" else x for x in v]


def _windows(v: Any) -> list[str]:
    if not isinstance(v, list) or not v:
        raise ValueError("expected a non-empty list of window strings such as '5m'")
    seen: set[int] = set()
    for w in v:
        if not isinstance(w, str):
            raise ValueError(f"window {w!r} is not a number followed by s, m or h (e.g. '5m')")
        ns = window_ns(w)
        if 86_400 * 10**9 % ns:
            raise ValueError(f"window {w!r} does not divide a day evenly")
        if ns in seen:
            raise ValueError(f"window {w!r} is listed twice")
        seen.add(ns)
    return list(v)


def _path_or_uri(v: Any) -> str:
    s = _nonempty_str(v)
    if "://" in s and not s.startswith("s3://"):
        raise ValueError("expected a local path or an s3://bucket/prefix URI")
    if s.startswith("s3://") and len(s) <= len("s3://"):
        raise ValueError("an s3:// URI needs a bucket")
    return s


def _url_or_empty(v: Any) -> str:
    s = _str(v)
    if s and not re.match(r"^https?://[^\s/]+", s):
        raise ValueError("expected an http(s):// URL or an empty string")
    return s


def _url(v: Any) -> str:
    s = _url_or_empty(v)
    if not s:
        raise ValueError("expected an http(s):// URL")
    return s


_RULE_FLAGS = ("updates_high_low", "updates_open_close", "updates_volume")


def _overrides(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list):
        raise ValueError("expected a list of tables such as { id = 10, updates_open_close = true }")
    out = []
    for i, o in enumerate(v):
        if not isinstance(o, dict) or "id" not in o:
            raise ValueError(f"entry {i} must be a table with an 'id'")
        bad = set(o) - {"id", *_RULE_FLAGS}
        if bad:
            raise ValueError(
                f"entry {i} has unknown keys {sorted(bad)}; allowed: id, {', '.join(_RULE_FLAGS)}"
            )
        if isinstance(o["id"], bool) or not isinstance(o["id"], int) or o["id"] < 0:
            raise ValueError(f"entry {i}: id must be a non-negative integer")
        for f in _RULE_FLAGS:
            if f in o and not isinstance(o[f], bool):
                raise ValueError(f"entry {i}: {f} must be true or false")
        out.append(dict(o))
    return out


_SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "massive": {
        "source": _choice("local", "s3"),
        "local_root": _nonempty_str,
        "endpoint_url": _url,
        "bucket": _nonempty_str,
        "region": _nonempty_str,
        "max_retries": _int(0, 100),
        "retry_backoff_s": _number(0),
    },
    "partitions": {"start_date": _date},
    "ingest": {
        "stock_tickers": _str_list,
        "option_underlyings": _str_list,
        "block_size_mb": _number(0.0625, 256),
        "progress_interval_s": _number(0, lo_open=True),
        "max_reject_fraction": _number(0, 1),
    },
    "storage": {
        "root": _path_or_uri,
        "s3_endpoint_url": _url_or_empty,
        "row_group_rows": _int(1024, 64 * 1024 * 1024),
        "file_target_mb": _number(1),
    },
    "greeks": {
        "risk_free_rate": _number(-1, 1),
        "dividend_yield": _number(-1, 1),
        "contract_multiplier": _number(0, lo_open=True),
        "underlying_price": _choice("trade"),
        "max_underlying_staleness_s": _number(0),
    },
    "features": {
        "symbol": _nonempty_str,
        "windows": _windows,
        "session": _choice("regular", "extended"),
        "gadvv_scale": _number(0, lo_open=True),
        "dip_pval_method": _choice("table", "bootstrap"),
        "dip_bootstrap_draws": _int(100, 10_000_000),
        "dip_seed": _int(0),
        "kde_grid": _int(8, 1_000_000),
    },
    "conditions": {"rules_file": _str, "overrides": _overrides},
    "checks": {
        "max_no_underlying_share": _number(0, 1),
        "max_bad_input_share": _number(0, 1),
        "min_ok_share": _number(0, 1),
    },
    "realtime": {
        "symbol": _nonempty_str,
        "windows": _windows,
        "output": _nonempty_str,
        "allowed_lateness_s": _number(0),
    },
}


@dataclass(frozen=True)
class MassiveSettings:
    source: str
    local_root: Path
    endpoint_url: str
    bucket: str
    region: str
    max_retries: int
    retry_backoff_s: float


@dataclass(frozen=True)
class PartitionSettings:
    start_date: dt.date


@dataclass(frozen=True)
class IngestSettings:
    stock_tickers: list[str]
    option_underlyings: list[str]
    block_size_mb: float
    progress_interval_s: float
    max_reject_fraction: float


@dataclass(frozen=True)
class StorageSettings:
    root: str
    s3_endpoint_url: str
    row_group_rows: int
    file_target_mb: float


@dataclass(frozen=True)
class GreeksSettings:
    risk_free_rate: float
    dividend_yield: float
    contract_multiplier: float
    underlying_price: str
    max_underlying_staleness_s: float


@dataclass(frozen=True)
class FeatureSettings:
    symbol: str
    windows: list[str]
    session: str
    gadvv_scale: float
    dip_pval_method: str
    dip_bootstrap_draws: int
    dip_seed: int
    kde_grid: int


@dataclass(frozen=True)
class ConditionSettings:
    rules_file: str
    overrides: list[dict[str, Any]]


@dataclass(frozen=True)
class CheckSettings:
    max_no_underlying_share: float
    max_bad_input_share: float
    min_ok_share: float


@dataclass(frozen=True)
class RealtimeSettings:
    symbol: str
    windows: list[str]
    output: Path
    allowed_lateness_s: float


@dataclass(frozen=True)
class Settings:
    massive: MassiveSettings
    partitions: PartitionSettings
    ingest: IngestSettings
    storage: StorageSettings
    greeks: GreeksSettings
    features: FeatureSettings
    conditions: ConditionSettings
    checks: CheckSettings
    realtime: RealtimeSettings
    path: Path = field(default=Path(DEFAULT_CONFIG))


_SECTION_TYPES = {
    "massive": MassiveSettings,
    "partitions": PartitionSettings,
    "ingest": IngestSettings,
    "storage": StorageSettings,
    "greeks": GreeksSettings,
    "features": FeatureSettings,
    "conditions": ConditionSettings,
    "checks": CheckSettings,
    "realtime": RealtimeSettings,
}


def config_path() -> Path:
    """The config file in use: $MARKET_ASSETS_CONFIG or ./config.toml."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate a config file (default: :func:`config_path`)."""
    p = Path(path) if path is not None else config_path()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} not found (set {CONFIG_ENV} or run from the project folder)"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_settings(raw, base_dir=p.resolve().parent, path=p.resolve())


def parse_settings(raw: dict[str, Any], base_dir: Path, path: Path | None = None) -> Settings:
    """Validate an already-parsed TOML document."""
    where = f"{path}: " if path else ""
    unknown = sorted(set(raw) - set(_SCHEMA))
    if unknown:
        raise ConfigError(
            f"{where}unknown section [{unknown[0]}]; known sections: {', '.join(_SCHEMA)}"
        )
    sections: dict[str, Any] = {}
    for name, keys in _SCHEMA.items():
        table = raw.get(name)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}missing section [{name}]")
        extra = sorted(set(table) - set(keys))
        if extra:
            raise ConfigError(
                f"{where}unknown key {name}.{extra[0]} = {table[extra[0]]!r}; "
                f"known keys in [{name}]: {', '.join(keys)}"
            )
        values = {}
        for key, check in keys.items():
            if key not in table:
                raise ConfigError(f"{where}missing key {name}.{key}")
            try:
                values[key] = check(table[key])
            except ValueError as e:
                raise ConfigError(f"{where}{name}.{key} = {table[key]!r}: {e}") from None
        sections[name] = values

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (base_dir / q)

    sections["massive"]["local_root"] = resolve(sections["massive"]["local_root"])
    if not sections["storage"]["root"].startswith("s3://"):
        sections["storage"]["root"] = str(resolve(sections["storage"]["root"]))
    sections["realtime"]["output"] = resolve(sections["realtime"]["output"])
    rf = sections["conditions"]["rules_file"]
    if rf:
        rp = resolve(rf)
        if not rp.is_file():
            raise ConfigError(f"{where}conditions.rules_file = {rf!r}: no such file ({rp})")
        sections["conditions"]["rules_file"] = str(rp)

    return Settings(
        **{n: _SECTION_TYPES[n](**v) for n, v in sections.items()},
        path=path or base_dir / DEFAULT_CONFIG,
    )
