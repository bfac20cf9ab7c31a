# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Byte source for Massive flat files: a local mirror or Massive's S3-compatible endpoint.

``store_from_settings`` builds a :class:`FlatFileStore` from ``[massive]``; ``open(key)``
returns an :class:`OpenedFile` whose stream yields the compressed bytes of one day's file.
The S3 stream resumes a dropped connection with a ranged GET from the byte offset reached,
so a consumer sees exactly the bytes of an uninterrupted read, without the object being
buffered in memory. Every S3 request has explicit connect/read timeouts; failures are
retried under a :class:`RetryPolicy` (each retry logged, the total bounded in time) and
every error names the endpoint, bucket and key.
"""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import io
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

_log = logging.getLogger("market_assets.io.source")
_T = TypeVar("_T")

DATASETS = {
    "stock_trades": "us_stocks_sip/trades_v1",
    "stock_quotes": "us_stocks_sip/quotes_v1",
    "option_trades": "us_options_opra/trades_v1",
    "option_quotes": "us_options_opra/quotes_v1",
}

ACCESS_KEY_ENV = "MASSIVE_ACCESS_KEY_ID"
SECRET_KEY_ENV = "MASSIVE_SECRET_ACCESS_KEY"

PUBLISH_NOTE = "Massive publishes each trading day's file by about 11:00 ET the next trading day"

_DAY_IN_KEY = re.compile(r"(\d{4}-\d{2}-\d{2})\.csv(\.gz)?$")
_BAD_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def flat_file_key(dataset: str, day: dt.date) -> str:
    """The bucket key of ``dataset``'s file for ``day``, e.g. ``us_stocks_sip/trades_v1/2026/01/2026-01-02.csv.gz``."""
    try:
        prefix = DATASETS[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}"
        ) from None
    return f"{prefix}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


def dataset_for_key(key: str) -> str | None:
    """The dataset name whose prefix ``key`` starts with, or None."""
    for name, prefix in DATASETS.items():
        if key.startswith(prefix + "/"):
            return name
    return None


def day_for_key(key: str) -> dt.date | None:
    """The trading day named by a flat-file key (``...YYYY-MM-DD.csv.gz``), or None."""
    m = _DAY_IN_KEY.search(key)
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


# --- errors ---------------------------------------------------------------------------------


class SourceError(RuntimeError):
    """Flat-file bytes could not be read; the message says which file and why."""


class FileNotPublished(SourceError):
    """The file for a day does not exist (not yet published, or not a trading day).

    ``where`` says where it was looked for (an S3 store names endpoint, bucket and key);
    ``check`` names the settings to check when the file is overdue.
    """

    def __init__(self, name: str, key: str, where: str = "", check: str = "") -> None:
        self.name = name
        self.key = key
        self.day = day_for_key(key)
        msg = f"flat file {name} does not exist{' ' + where if where else ''}: {PUBLISH_NOTE}"
        trading, publish_day = _trading_status(self.day) if self.day else (None, None)
        if self.day is not None and trading is False:
            msg += (
                f"; {self.day.isoformat()} ({self.day:%A}) is not an NYSE trading day, "
                "so there is no file for it"
            )
        elif self.day is not None and publish_day is not None:
            if publish_day < _today_in_new_york():
                msg += (
                    f" (the file for {self.day.isoformat()} was due by about 11:00 ET on "
                    f"{publish_day.isoformat()}; unless Massive is late, check "
                    f"{check or 'the [massive] settings'})"
                )
            else:
                msg += (
                    f" (the file for {self.day.isoformat()} is due by about 11:00 ET on "
                    f"{publish_day.isoformat()})"
                )
        elif check:
            msg += f"; check {check}"
        super().__init__(msg)


def _today_in_new_york() -> dt.date:
    from market_assets.core.calendar import NEW_YORK

    return dt.datetime.now(NEW_YORK).date()


def _trading_status(day: dt.date) -> tuple[bool | None, dt.date | None]:
    """Whether ``day`` is a session, and the next session (when its file is published)."""
    from market_assets.core.calendar import is_trading_day, trading_days

    try:
        if not is_trading_day(day):
            return False, None
        later = trading_days(day + dt.timedelta(days=1), day + dt.timedelta(days=10))
        return True, (later[0] if later else None)
    except Exception:  # noqa: BLE001 - outside the calendar's range: say nothing more
        return None, None


class AccessDenied(SourceError):
    """HTTP 403: the Massive plan does not include the dataset."""

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.dataset = dataset_for_key(key)
        what = (
            f"the {self.dataset} dataset ({DATASETS[self.dataset]})"
            if self.dataset
            else f"the files under {key.rsplit('/', 1)[0] or key}"
        )
        super().__init__(
            f"access denied (HTTP 403) reading {name}: your Massive plan does not include "
            f"{what}; upgrade the plan for flat-file access to it or stop materializing it"
        )


class BadCredentials(SourceError):
    """The S3 credentials are missing or rejected; never carries the secret."""


def _mask_key_id(key_id: str) -> str:
    return f"...{key_id[-4:]}" if len(key_id) >= 8 else "(too short to show)"


def _bad_credentials(code: str, key_id: str, endpoint_url: str) -> BadCredentials:
    return BadCredentials(
        f"Massive rejected the S3 credentials ({code}) at {endpoint_url} for access key id "
        f"{_mask_key_id(key_id)}: check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} (the flat-file "
        "S3 access key id and secret from the Massive dashboard, not the REST API key)"
    )


# --- streams ----------------------------------------------------------------------------------


@dataclass
class OpenedFile:
    """One opened flat file: ``stream`` yields its compressed bytes."""

    name: str
    size: int
    stream: BinaryIO

    @property
    def bytes_read(self) -> int:
        """Compressed bytes consumed from ``stream`` so far (for progress)."""
        return self.stream.bytes_read  # type: ignore[attr-defined]

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CountingFile(io.RawIOBase):
    """An unbuffered local file that counts the bytes read from it."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b) or 0
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size) if size is not None and size >= 0 else self._f.readall()
        self.bytes_read += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def tell(self) -> int:
        return self.bytes_read

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Errors of a request that may succeed when tried again (no answer, dropped socket)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

    return (
        BotoConnectionError,  # connect timeouts, refused connections, ...
        HTTPClientError,  # read timeouts, connections closed mid-answer, ...
        IncompleteReadError,
        ProtocolError,
        Urllib3ReadTimeout,
        http.client.IncompleteRead,
        ConnectionError,
        TimeoutError,
    )


def _not_retryable(e: BaseException) -> bool:
    from botocore.exceptions import SSLError

    return isinstance(e, SSLError)  # a certificate problem does not go away by retrying


_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)


def _retryable_client_error(e: BaseException) -> bool:
    """An S3 error answer worth retrying: HTTP 5xx or throttling."""
    from botocore.exceptions import ClientError

    if not isinstance(e, ClientError):
        return False
    code = str(e.response.get("Error", {}).get("Code", ""))
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code in _RETRYABLE_CODES or int(status) >= 500 or int(status) == 429


class RetryLog(Protocol):
    """Where retry lines go: a ``logging.Logger`` or a Dagster ``context.log``."""

    def warning(self, msg: str) -> None: ...

    def info(self, msg: str) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing S3 request is retried.

    Up to ``max_retries`` retries in a row, waiting ``backoff_s * 2**(n-1)`` before the
    n-th; a retry is started only if it could time out (``attempt_timeout_s``, connect plus
    read timeout) before ``max_total_s`` have passed since the request last made progress,
    so the final error arrives within ``max_total_s``.
    """

    max_retries: int = 5
    backoff_s: float = 1.0
    max_total_s: float = 120.0
    attempt_timeout_s: float = 40.0

    def wait_before_retry(self, failures: int, elapsed_s: float) -> float | None:
        """Seconds to wait before retry number ``failures``, or None to give up."""
        if failures > self.max_retries:
            return None
        wait = self.backoff_s * 2 ** (failures - 1)
        if elapsed_s + wait + self.attempt_timeout_s > self.max_total_s:
            return None
        return wait


class _ShortRead(Exception):
    """The body ended before the object's size."""


class _ResumableS3Stream(io.RawIOBase):
    """Streams one S3 object; a dropped connection is resumed with ``Range: bytes=offset-``.

    Failures in a row (no bytes delivered in between) are retried under the store's
    :class:`RetryPolicy`, each one logged; each ranged GET carries ``IfMatch=etag`` and its
    ETag is checked, so a changed object fails rather than splicing two versions together.
    """

    def __init__(self, store: S3Store, key: str, size: int, etag: str | None) -> None:
        self._store = store
        self._key = key
        self._name = store.uri(key)
        self.size = size
        self._etag = etag
        self._body: Any = None
        self._offset = 0
        self._failures = 0
        self._last_progress = time.monotonic()
        self.resumes = 0

    @property
    def bytes_read(self) -> int:
        return self._offset

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def _connect(self) -> None:
        """Open the body from the current offset, retrying until it answers or gives up."""
        while self._body is None:
            try:
                self._body = self._store._get_body(self._key, self._offset, self._etag)
            except Exception as e:
                if not self._store._is_transient(e):
                    raise
                self._failed(e)

    def _failed(self, e: BaseException) -> None:
        """Log a retry and wait, or raise the final error (naming endpoint, bucket, key)."""
        self._drop_body()
        self._failures += 1
        how = f"a ranged GET from byte {self._offset}" if self._offset else "a new GET"
        self._store._retry_or_give_up(
            "reading",
            self._key,
            e,
            self._failures,
            time.monotonic() - self._last_progress,
            at=f" at byte offset {self._offset} of {self.size}",
            then=f" with {how}",
        )
        self.resumes += 1

    def _read_some(self, n: int) -> bytes:
        """Up to ``n`` (> 0) bytes from the current offset, resuming on dropped connections."""
        while True:
            self._connect()
            try:
                data = self._body.read(n)
                if not data:
                    raise _ShortRead(f"body ended at byte {self._offset} of {self.size}")
            except (*_connection_errors(), _ShortRead) as e:
                self._failed(e)
                continue
            if len(data) > self.size - self._offset:
                raise SourceError(
                    f"{self._name} returned more bytes than its size {self.size}: "
                    "the object changed while it was read"
                )
            self._offset += len(data)
            self._failures = 0
            self._last_progress = time.monotonic()
            return data

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes (fewer only at end of file); ``-1`` reads to the end."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        remaining = self.size - self._offset
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want <= 0:
            self._drop_body()
            return b""
        first = self._read_some(want)
        if len(first) == want:
            return first
        parts = [first]
        got = len(first)
        while got < want:
            chunk = self._read_some(want - got)
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


# --- stores ---------------------------------------------------------------------------------


class FlatFileStore(ABC):
    """Where flat files come from; keys are the bucket's keys (``us_stocks_sip/...``)."""

    @abstractmethod
    def open(self, key: str) -> OpenedFile:
        """Open ``key`` for streaming; raises FileNotPublished / AccessDenied / BadCredentials."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (False for a missing file; errors for denied access)."""

    @abstractmethod
    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        """Keys starting with ``prefix`` in ascending order, only those after ``start_after``."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """A display name for ``key`` (``s3://bucket/key`` or a local path)."""

    def with_log(self, log: RetryLog | None) -> FlatFileStore:
        """This store, writing its retry lines to ``log`` (None: where it writes now)."""
        return self


class LocalStore(FlatFileStore):
    """A local mirror: the bucket's keys as relative paths under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid flat-file key {key!r}")
        return self.root.joinpath(*parts)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def open(self, key: str) -> OpenedFile:
        path = self._path(key)
        try:
            stream = _CountingFile(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            err = FileNotPublished(str(path), key)
            if not self.root.is_dir():
                err.args = (
                    f"{err.args[0]}; the local mirror root {self.root} does not exist "
                    "(check massive.local_root)",
                )
            raise err from None
        return OpenedFile(name=str(path), size=os.fstat(stream._f.fileno()).st_size, stream=stream)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        if not self.root.is_dir():
            raise SourceError(
                f"the local mirror root {self.root} does not exist (check massive.local_root)"
            )
        # Walk only the deepest folder the prefix fully names.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            rel = "" if rel == "." else rel + "/"
            for f in files:
                k = rel + f
                if k.startswith(prefix) and (start_after is None or k > start_after):
                    keys.append(k)
        # Code-point order of str equals the UTF-8 byte order S3 lists in.
        keys.sort()
        return iter(keys)


class S3Store(FlatFileStore):
    """Massive's S3-compatible endpoint (SigV4, path-style addressing) via boto3.

    Every request has explicit connect and read timeouts; a request that times out, drops
    its connection or gets an HTTP 5xx/throttling answer is retried under ``retry`` (a
    :class:`RetryPolicy`), each retry logged to ``log``, and the final error names the
    endpoint, bucket and key. botocore's own silent retries are off.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        max_retries: int = 5,
        retry_backoff_s: float = 1.0,
        client: Any = None,
        page_size: int = 1000,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        max_total_retry_s: float = 120.0,
        log: RetryLog | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.max_retries = int(max_retries)
        self.retry_backoff_s = float(retry_backoff_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.retry = RetryPolicy(
            max_retries=self.max_retries,
            backoff_s=self.retry_backoff_s,
            max_total_s=float(max_total_retry_s),
            attempt_timeout_s=self.connect_timeout_s + self.read_timeout_s,
        )
        self.page_size = int(page_size)
        self.log: RetryLog = log if log is not None else _log
        self._key_id = access_key_id
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                signature_version="s3v4",
                region_name=region,
                # One attempt per call: retries are ours, logged and bounded in time.
                retries={"total_max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": "path"},
                connect_timeout=self.connect_timeout_s,
                read_timeout=self.read_timeout_s,
                # S3-compatible endpoints need not implement the newer default checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )
        self.client = client

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def with_log(self, log: RetryLog | None) -> S3Store:
        """A copy sharing this store's client, logging retries to ``log`` (e.g. a run's
        ``context.log``)."""
        if log is None:
            return self
        other = copy.copy(self)
        other.log = log
        return other

    def where(self, key: str) -> str:
        """``at endpoint E (bucket B, key K)``: every S3 error message names all three."""
        return f"at endpoint {self.endpoint_url} (bucket {self.bucket!r}, key {key!r})"

    # -- retries --

    def _is_transient(self, e: BaseException) -> bool:
        if isinstance(e, _connection_errors()):
            return not _not_retryable(e)
        return _retryable_client_error(e)

    def _retry_or_give_up(
        self,
        doing: str,
        key: str,
        cause: BaseException,
        failures: int,
        elapsed_s: float,
        at: str = "",
        then: str = "",
    ) -> None:
        """After the ``failures``-th failure in a row: log and wait, or raise SourceError."""
        # A body read that times out names no endpoint ("None"): say what timed out.
        detail = str(cause).replace(
            'Read timeout on endpoint URL: "None"', f"no data for {self.read_timeout_s:g} s"
        )
        reason = f"{type(cause).__name__}: {detail}"
        wait = self.retry.wait_before_retry(failures, elapsed_s)
        if wait is None:
            limit = (
                f"massive.max_retries = {self.max_retries} reached"
                if failures > self.max_retries
                else f"another retry would pass massive.max_total_retry_s = "
                f"{self.retry.max_total_s:g}"
            )
            raise SourceError(
                f"gave up {doing} {self.uri(key)} {self.where(key)}{at} after "
                f"{failures - 1} retries ({failures} attempts over {elapsed_s:.1f} s without "
                f"progress; {limit}; timeouts: connect {self.connect_timeout_s:g} s, read "
                f"{self.read_timeout_s:g} s): {reason}"
            ) from cause
        self.log.warning(
            f"S3 {doing} {self.uri(key)} from {self.endpoint_url}{at}: attempt {failures} "
            f"failed after {elapsed_s:.1f} s without progress ({reason}); retry "
            f"{failures}/{self.max_retries} in {wait:.3g} s{then}"
        )
        if wait > 0:
            time.sleep(wait)

    def _call(self, doing: str, key: str, request: Callable[[], _T]) -> _T:
        """``request()``, retried while it fails transiently (timeouts, drops, 5xx)."""
        started = time.monotonic()
        failures = 0
        while True:
            try:
                return request()
            except Exception as e:
                if not self._is_transient(e):
                    raise
                failures += 1
                self._retry_or_give_up(doing, key, e, failures, time.monotonic() - started)

    # -- error mapping --

    def _not_found(self, key: str) -> FileNotPublished:
        return FileNotPublished(
            self.uri(key), key, self.where(key), "massive.endpoint_url and massive.bucket"
        )

    def _map_error(self, e: Exception, key: str, what: str) -> SourceError:
        from botocore.exceptions import ClientError

        if not isinstance(e, ClientError):
            return SourceError(
                f"could not {what} {self.uri(key)} {self.where(key)}: {type(e).__name__}: {e}"
            )
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _BAD_CREDENTIAL_CODES:
            return _bad_credentials(code, self._key_id, self.endpoint_url)
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return self._not_found(key)
        if code == "NoSuchBucket":
            return SourceError(
                f"bucket {self.bucket!r} does not exist at {self.endpoint_url} (check "
                f"massive.bucket and massive.endpoint_url; looking for key {key!r})"
            )
        if code in ("403", "AccessDenied", "Forbidden") or status == 403:
            return AccessDenied(self.uri(key), key)
        if code in ("412", "PreconditionFailed") or status == 412:
            return SourceError(f"{self.uri(key)} changed while it was being read; run again")
        return SourceError(
            f"could not {what} {self.uri(key)} {self.where(key)}: S3 error {code} (HTTP {status})"
        )

    def _clarify_403(self, key: str) -> SourceError:
        """A HEAD 403 has no error body: a one-byte GET tells bad credentials from no access."""
        from botocore.exceptions import ClientError

        def probe() -> None:
            self.client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0")["Body"].close()

        try:
            self._call("looking up", key, probe)
        except ClientError as e:
            err = self._map_error(e, key, "read")
            if isinstance(err, BadCredentials | AccessDenied | FileNotPublished):
                return err
        return AccessDenied(self.uri(key), key)

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._call(
                "looking up", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as e:
            err = self._map_error(e, key, "look up")
            if isinstance(err, AccessDenied):
                err = self._clarify_403(key)
            if isinstance(err, FileNotPublished):
                return None
            raise err from None
        except _connection_errors() as e:  # one not worth retrying (a TLS failure)
            raise self._map_error(e, key, "look up") from e

    def _get_body(self, key: str, offset: int, etag: str | None) -> Any:
        """The body of ``key`` from ``offset`` on (a ranged GET past byte 0).

        A transient failure is raised as is (the stream retries it); any other error answer
        as a SourceError.
        """
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        if etag:
            kwargs["IfMatch"] = etag
        try:
            resp = self.client.get_object(**kwargs)
        except ClientError as e:
            if _retryable_client_error(e):
                raise
            raise self._map_error(e, key, "read") from None
        if not offset:
            return resp["Body"]
        got = resp.get("ETag")
        content_range = str(resp.get("ContentRange") or "")
        if (etag and got and got != etag) or not content_range.startswith(f"bytes {offset}-"):
            resp["Body"].close()
            raise SourceError(
                f"{self.uri(key)} changed while it was being read (resume at byte {offset} got "
                f"ETag {got}, range {content_range!r}); run again"
            )
        self.log.info(f"resumed {self.uri(key)} at byte {offset} with a ranged GET")
        return resp["Body"]

    # -- public --

    def open(self, key: str) -> OpenedFile:
        head = self._head(key)
        if head is None:
            raise self._not_found(key)
        size = int(head["ContentLength"])
        stream = _ResumableS3Stream(self, key, size, head.get("ETag"))
        try:
            stream._connect()  # the first GET: error answers surface here, not at first read
        except BaseException:
            stream.close()
            raise
        return OpenedFile(name=self.uri(key), size=size, stream=stream)  # type: ignore[arg-type]

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "MaxKeys": self.page_size,
        }
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            try:
                resp = self._call("listing", prefix, lambda: self.client.list_objects_v2(**kwargs))
            except ClientError as e:
                raise self._map_error(e, prefix, "list") from None
            except _connection_errors() as e:
                raise self._map_error(e, prefix, "list") from e
            for obj in resp.get("Contents", ()):
                yield obj["Key"]
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token


def store_from_settings(
    massive_settings: Any, environ: Mapping[str, str] = os.environ, log: RetryLog | None = None
) -> FlatFileStore:
    """The store named by ``[massive]``; for ``s3`` the credentials come from ``environ``
    and retry lines go to ``log`` (default: this module's logger)."""
    s = massive_settings
    if s.source == "local":
        return LocalStore(s.local_root)
    if s.source != "s3":
        raise ValueError(f"massive.source = {s.source!r}: expected 'local' or 's3'")
    key_id = (environ.get(ACCESS_KEY_ENV) or "").strip()
    secret = (environ.get(SECRET_KEY_ENV) or "").strip()
    missing = [n for n, v in ((ACCESS_KEY_ENV, key_id), (SECRET_KEY_ENV, secret)) if not v]
    if missing:
        raise BadCredentials(
            f"massive.source = 's3' needs the flat-file S3 credentials from the Massive "
            f"dashboard in the environment: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set (set both {ACCESS_KEY_ENV} and "
            f"{SECRET_KEY_ENV}, or use massive.source = 'local' with a mirror)"
        )
    return S3Store(
        bucket=s.bucket,
        endpoint_url=s.endpoint_url,
        region=s.region,
        access_key_id=key_id,
        secret_access_key=secret,
        max_retries=s.max_retries,
        retry_backoff_s=s.retry_backoff_s,
        connect_timeout_s=s.connect_timeout_s,
        read_timeout_s=s.read_timeout_s,
        max_total_retry_s=s.max_total_retry_s,
        log=log,
    )
