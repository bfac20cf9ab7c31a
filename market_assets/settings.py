# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Load and validate config.toml.

One pydantic model per section (strict types, unknown keys forbidden) under :class:`Settings`.
Every problem is reported as ``<file>: section.key = value: reason``, one line per problem.
:func:`load_settings` parses a file once per process and again only when the file changes.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Required, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from market_assets.core.calendar import window_ns

CONFIG_ENV = "MARKET_ASSETS_CONFIG"
DEFAULT_CONFIG = "config.toml"
_DAY_NS = 86_400 * 10**9


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the value."""


class _KeyProblem(ValueError):
    """A rule across keys, raised from a model validator with the key it is about."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.key, self.value = key, value


# --- field types: the validators return the cleaned value or raise ValueError(reason) ------


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _nonempty(v: Any) -> str:
    if not _string(v).strip():
        raise ValueError("must not be empty")
    return v


def _date(v: Any) -> Any:
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


def _ticker(v: str) -> str:
    s = _nonempty(v).strip()
    return s if s == "*" else s.upper()


_HTTP_URL = TypeAdapter(HttpUrl)


def _is_http_url(v: str) -> bool:
    try:
        _HTTP_URL.validate_python(v)
    except ValidationError:
        return False
    return True


def _url_or_empty(v: str) -> str:
    if v and not _is_http_url(v):
        raise ValueError("expected an http(s):// URL or an empty string")
    return v


def _url(v: str) -> str:
    if not _is_http_url(v):
        raise ValueError("expected an http(s):// URL")
    return v


def _rate_or_curve(v: Any) -> float | str:
    if v == "curve":
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError('expected a number or "curve"')
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    if not -1 <= v <= 1:
        raise ValueError("must be >= -1" if v < -1 else "must be <= 1")
    return float(v)


def _windows(v: list[str]) -> list[str]:
    seen: set[int] = set()
    for w in v:
        ns = window_ns(w)
        if _DAY_NS % ns:
            raise ValueError(f"window {w!r} does not divide a day evenly")
        if ns in seen:
            raise ValueError(f"window {w!r} is listed twice")
        seen.add(ns)
    return v


def _resolve(p: str | Path, info: ValidationInfo) -> Path:
    """``p`` against the config file's folder (the ``base_dir`` of the validation context)."""
    q = Path(p).expanduser()
    base = (info.context or {}).get("base_dir")
    return q if q.is_absolute() or base is None else Path(base) / q


def _local_path(v: Any, info: ValidationInfo) -> Path:
    return _resolve(v if isinstance(v, Path) else _nonempty(v), info)


NonEmptyStr = Annotated[str, AfterValidator(_nonempty)]
Url = Annotated[str, AfterValidator(_url)]
UrlOrEmpty = Annotated[str, AfterValidator(_url_or_empty)]
LocalPath = Annotated[Path, BeforeValidator(_local_path)]
Tickers = Annotated[list[Annotated[str, AfterValidator(_ticker)]], Field(min_length=1)]
TickersOrEmpty = list[Annotated[str, AfterValidator(_ticker)]]
Windows = Annotated[list[str], Field(min_length=1), AfterValidator(_windows)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --- sections ------------------------------------------------------------------------------


class MassiveSettings(_Section):
    source: Literal["local", "s3"]
    local_root: LocalPath
    endpoint_url: Url
    bucket: NonEmptyStr
    region: NonEmptyStr
    max_retries: Annotated[int, Field(ge=0, le=100)]
    retry_backoff_s: NonNegative
    connect_timeout_s: Positive
    read_timeout_s: Positive
    max_total_retry_s: Positive


class PartitionSettings(_Section):
    start_date: Annotated[dt.date, BeforeValidator(_date)]


class IngestSettings(_Section):
    stock_tickers: Tickers
    option_underlyings: Tickers
    block_size_mb: Annotated[float, Field(ge=0.0625, le=256)]
    progress_interval_s: Positive
    max_reject_fraction: Fraction


class QuoteSettings(_Section):
    enabled: bool
    # Empty lists mean [features.symbol]: see :meth:`Settings.quote_keep`.
    tickers: TickersOrEmpty
    underlyings: TickersOrEmpty


class StorageSettings(_Section):
    root: NonEmptyStr
    s3_endpoint_url: UrlOrEmpty
    row_group_rows: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)]
    file_target_mb: Annotated[float, Field(ge=1)]

    @field_validator("root")
    @classmethod
    def _local_or_s3(cls, v: str, info: ValidationInfo) -> str:
        if v.startswith("s3://"):
            if len(v) == len("s3://"):
                raise ValueError("an s3:// URI needs a bucket")
            return v
        if "://" in v:
            raise ValueError("expected a local path or an s3://bucket/prefix URI")
        return str(_resolve(v, info))


class GreeksSettings(_Section):
    # A constant continuously compounded rate, or "curve": the Treasury curve (see [rates]).
    risk_free_rate: Annotated[float | Literal["curve"], BeforeValidator(_rate_or_curve)]
    dividend_yield: Annotated[float, Field(ge=-1, le=1)]
    contract_multiplier: Positive
    # "trade": the last genuine trade; "nbbo_mid": the NBBO mid from stock_quotes.
    underlying_price: Literal["trade", "nbbo_mid"]
    max_underlying_staleness_s: NonNegative


class RatesSettings(_Section):
    rest_base_url: Url
    lookback_days: Annotated[int, Field(ge=1, le=31)]


class FeatureSettings(_Section):
    symbol: NonEmptyStr
    windows: Windows
    session: Literal["regular", "extended"]
    gadvv_scale: Positive
    dip_pval_method: Literal["table", "bootstrap"]
    dip_bootstrap_draws: Annotated[int, Field(ge=100, le=10_000_000)]
    dip_seed: Annotated[int, Field(ge=0)]
    kde_grid: Annotated[int, Field(ge=8, le=1_000_000)]
    # The 68 AGGRESSION_FEATURE_NAMES after FEATURE_NAMES (option trades classified
    # against the NBBO: quote assets in the batch, Q.* subscriptions live).
    aggression: bool = False


@with_config(ConfigDict(extra="forbid", strict=True))
class ConditionOverride(TypedDict, total=False):
    """One ``conditions.overrides`` entry; a plain dict at run time."""

    id: Required[Annotated[int, Field(ge=0)]]
    updates_high_low: bool
    updates_open_close: bool
    updates_volume: bool


class ConditionSettings(_Section):
    rules_file: str
    overrides: list[ConditionOverride]

    @field_validator("rules_file")
    @classmethod
    def _existing_file(cls, v: str, info: ValidationInfo) -> str:
        if not v:
            return v  # the bundled copy
        path = _resolve(v, info)
        if not path.is_file():
            raise ValueError(f"no such file ({path})")
        return str(path)


class CheckSettings(_Section):
    max_no_underlying_share: Fraction
    max_bad_input_share: Fraction
    min_ok_share: Fraction
    implausible_price_factor: Annotated[float, Field(gt=1, le=1_000_000)]
    max_implausible_share: Fraction
    max_nbbo_locked_share: Fraction
    max_nbbo_crossed_share: Fraction
    max_nbbo_invalid_share: Fraction
    # option_trades_classified: Unknown for lack of a usable NBBO above this share warns.
    max_unknown_share: Fraction


class RealtimeSettings(_Section):
    symbol: NonEmptyStr
    windows: Windows
    output: LocalPath
    allowed_lateness_s: NonNegative
    feed: NonEmptyStr
    secure: bool
    rest_url: Url
    option_contracts: Literal["snapshot", "all"]
    max_option_contracts: Annotated[int, Field(ge=1, le=100_000)]
    queue_frames: Annotated[int, Field(ge=1, le=1_000_000)]
    reconnect_backoff_s: Positive
    max_reconnect_backoff_s: Positive
    stream_idle_s: Positive
    metrics_port: Annotated[int, Field(ge=0, le=65535)]


class Settings(_Section):
    """The whole config file; ``path`` is the file it was read from."""

    massive: MassiveSettings
    partitions: PartitionSettings
    ingest: IngestSettings
    quotes: QuoteSettings
    storage: StorageSettings
    greeks: GreeksSettings
    rates: RatesSettings
    features: FeatureSettings
    conditions: ConditionSettings
    checks: CheckSettings
    realtime: RealtimeSettings
    _path: Path = PrivateAttr(default=Path(DEFAULT_CONFIG))

    @property
    def path(self) -> Path:
        return self._path

    def model_post_init(self, context: Any) -> None:
        if context and context.get("path") is not None:
            self._path = Path(context["path"])
        elif context and context.get("base_dir") is not None:
            self._path = Path(context["base_dir"]) / DEFAULT_CONFIG

    def quote_keep(self, asset: str) -> list[str]:
        """What ``stock_quotes`` / ``option_quotes`` keep: ``quotes.tickers`` /
        ``quotes.underlyings``, or ``[features.symbol]`` when that list is empty."""
        kept = self.quotes.tickers if asset == "stock_quotes" else self.quotes.underlyings
        return list(kept) or [self.features.symbol]

    @model_validator(mode="after")
    def _symbols_are_ingested(self) -> Settings:
        # A symbol whose trades are filtered out at ingest would give empty windows.
        for key, symbol in (
            ("features.symbol", self.features.symbol),
            ("realtime.symbol", self.realtime.symbol),
        ):
            for list_key, kept in (
                ("ingest.stock_tickers", self.ingest.stock_tickers),
                ("ingest.option_underlyings", self.ingest.option_underlyings),
            ):
                if "*" not in kept and symbol not in kept:
                    raise _KeyProblem(
                        key, symbol, f"not among {list_key} {kept} (add it there or use ['*'])"
                    )
        return self

    @model_validator(mode="after")
    def _quotes_when_needed(self) -> Settings:
        # The classified trades and the NBBO mid read the quote assets.
        needs = (
            ("features.aggression", self.features.aggression, True),
            ("greeks.underlying_price", self.greeks.underlying_price, "nbbo_mid"),
        )
        for key, value, needing in needs:
            if value == needing and not self.quotes.enabled:
                raise _KeyProblem(key, value, "needs the quote assets: set quotes.enabled = true")
        return self


# --- error messages ------------------------------------------------------------------------

_TYPE_REASONS = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "finite_number": "must be a finite number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _key_name(loc: tuple[int | str, ...]) -> str:
    out = str(loc[0])
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the table at ``loc`` (a section or a nested table)."""
    tp: Any = Settings
    for part in loc:
        if isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            tp = get_type_hints(tp)[part]
        while get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
    return [k for k in get_type_hints(tp) if not k.startswith("_")]


def _reason(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        bound = ctx[name]
        return f"must be {op} {int(bound) if float(bound).is_integer() else bound}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}"
    if kind == "too_short":
        n = ctx["min_length"]
        return "must not be empty" if n == 1 else f"needs at least {n} entries"
    return _TYPE_REASONS.get(kind, err["msg"])


def _describe(err: ErrorDetails) -> str:
    """One pydantic error as ``section.key = value: reason``."""
    problem = err.get("ctx", {}).get("error")
    if isinstance(problem, _KeyProblem):
        return f"{problem.key} = {problem.value!r}: {problem}"
    loc, kind = err["loc"], err["type"]
    if not loc:
        return _reason(err)
    name = _key_name(loc)
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown section [{name}]; known sections: {', '.join(_known_keys(()))}"
        known = ", ".join(_known_keys(loc[:-1]))
        where = f" in [{loc[0]}]" if len(loc) == 2 else ""
        return f"unknown key {name} = {err['input']!r}; known keys{where}: {known}"
    if kind == "missing":
        return f"missing section [{name}]" if len(loc) == 1 else f"missing key {name}"
    if len(loc) == 1:
        return f"[{name}] must be a table, not {err['input']!r}"
    return f"{name} = {err['input']!r}: {_reason(err)}"


# --- loading -------------------------------------------------------------------------------


def config_path() -> Path:
    """The config file in use: $MARKET_ASSETS_CONFIG or ./config.toml."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def parse_settings(raw: dict[str, Any], base_dir: Path, path: Path | None = None) -> Settings:
    """Validate an already-parsed TOML document; relative paths are resolved from ``base_dir``."""
    try:
        return Settings.model_validate(raw, context={"base_dir": base_dir, "path": path})
    except ValidationError as e:
        where = f"{path}: " if path else ""
        raise ConfigError("\n".join(where + _describe(err) for err in e.errors())) from None


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int, int]  # mtime_ns, size, inode
    data: bytes
    read_ns: int
    settings: Settings


# A file changed twice within the file system's timestamp granularity keeps its stamp, so
# an entry read less than this long after the file's mtime is checked by content (as git
# does for "racily clean" index entries).
_RACY_NS = 2 * 10**9
_loaded: dict[Path, _Loaded] = {}
_lock = threading.Lock()


def load_settings(path: str | Path | None = None) -> Settings:
    """The validated settings of a config file (default: :func:`config_path`).

    Parsed once per process and file: later calls return the same object until the file's
    content changes.
    """
    p = (Path(path) if path is not None else config_path()).expanduser().resolve()
    with _lock:
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ConfigError(
                f"config file {p} not found (set {CONFIG_ENV} or run from the project folder)"
            ) from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = _loaded.get(p)
        if cached and cached.stamp == stamp and cached.read_ns - st.st_mtime_ns >= _RACY_NS:
            return cached.settings
        read_ns = time.time_ns()
        data = p.read_bytes()
        if cached and cached.data == data:
            settings = cached.settings
        else:
            settings = _parse_file(data, p)
        _loaded[p] = _Loaded(stamp, data, read_ns, settings)
        return settings


def _parse_file(data: bytes, path: Path) -> Settings:
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_settings(raw, base_dir=path.parent, path=path)
