# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Flat-file byte source: local mirror and S3 (a real moto server), resume, clear errors."""

# ruff: noqa: F811 - pytest fixtures are imported and then named as test parameters

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import logging
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from market_assets.core.calendar import NEW_YORK, trading_days
from market_assets.io.source import (
    DATASETS,
    AccessDenied,
    BadCredentials,
    FileNotPublished,
    LocalStore,
    S3Store,
    SourceError,
    flat_file_key,
    store_from_settings,
)
from market_assets.settings import MassiveSettings
from market_assets_tests.s3_server import (  # noqa: F401 - fixtures used by parameter name
    dropping_proxy,
    hanging_s3,
    iam_credentials,
    s3_bucket,
    s3_server,
)

FAKE_KEY_ID = FAKE_SECRET = "testing"  # what moto accepts while IAM authentication is off

TRADING_DAY = dt.date(2026, 1, 2)  # a Friday session
HOLIDAY = dt.date(2026, 1, 1)  # New Year's Day
MIB = 1 << 20


def _rand(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _gzip_payload(n: int, seed: int = 7) -> bytes:
    # Random bytes do not compress, so the object is about n bytes.
    return gzip.compress(_rand(n, seed), compresslevel=1)


def _store(endpoint: str, bucket: str, **kw) -> S3Store:
    kw.setdefault("retry_backoff_s", 0.001)
    return S3Store(
        bucket=bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id=kw.pop("key_id", FAKE_KEY_ID),
        secret_access_key=kw.pop("secret", FAKE_SECRET),
        **kw,
    )


def _read_all(opened, block: int = 4 * MIB) -> bytes:
    parts = []
    while True:
        chunk = opened.stream.read(block)
        if not chunk:
            break
        parts.append(chunk)
        assert opened.bytes_read == sum(map(len, parts))
    return b"".join(parts)


def _settings(**kw) -> MassiveSettings:
    base = dict(
        source="s3",
        local_root=Path("/nonexistent"),
        endpoint_url="https://files.massive.com",
        bucket="flatfiles",
        region="us-east-1",
        max_retries=5,
        retry_backoff_s=1.0,
        connect_timeout_s=10.0,
        read_timeout_s=30.0,
        max_total_retry_s=120.0,
    )
    base.update(kw)
    return MassiveSettings(**base)


# --- keys -------------------------------------------------------------------------------------


def test_flat_file_key_uses_the_bucket_layout_for_every_dataset():
    assert flat_file_key("stock_trades", TRADING_DAY) == (
        "us_stocks_sip/trades_v1/2026/01/2026-01-02.csv.gz"
    )
    assert flat_file_key("option_quotes", dt.date(2025, 11, 3)) == (
        "us_options_opra/quotes_v1/2025/11/2025-11-03.csv.gz"
    )
    for name, prefix in DATASETS.items():
        assert flat_file_key(name, TRADING_DAY).startswith(prefix + "/2026/01/")


def test_flat_file_key_rejects_an_unknown_dataset_naming_the_known_ones():
    with pytest.raises(ValueError, match="stock_trades"):
        flat_file_key("minute_aggs", TRADING_DAY)


# --- local mirror -----------------------------------------------------------------------------


def _mirror(tmp_path: Path, keys: dict[str, bytes]) -> Path:
    for key, data in keys.items():
        p = tmp_path.joinpath(*key.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return tmp_path


def test_local_store_opens_reads_and_reports_size_and_progress(tmp_path):
    data = _gzip_payload(300_000)
    key = flat_file_key("stock_trades", TRADING_DAY)
    store = LocalStore(_mirror(tmp_path, {key: data}))
    assert store.exists(key)
    assert not store.exists(flat_file_key("stock_trades", dt.date(2026, 1, 5)))
    with store.open(key) as f:
        assert f.size == len(data)
        assert f.name == str(tmp_path / key)
        assert f.bytes_read == 0
        assert _read_all(f, 64 * 1024) == data
        assert f.bytes_read == len(data)
    assert f.stream.closed


def test_local_store_lists_keys_sorted_by_prefix_and_after_start_after(tmp_path):
    days = [dt.date(2026, 1, d) for d in (2, 5, 6, 7)] + [dt.date(2026, 2, 2)]
    keys = {flat_file_key("option_trades", d): b"x" for d in days}
    keys[flat_file_key("stock_trades", TRADING_DAY)] = b"y"
    store = LocalStore(_mirror(tmp_path, keys))
    prefix = DATASETS["option_trades"] + "/"
    expected = sorted(k for k in keys if k.startswith(prefix))
    assert list(store.list_keys(prefix)) == expected
    assert list(store.list_keys(prefix, start_after=expected[1])) == expected[2:]
    # A prefix that ends inside a file name.
    assert list(store.list_keys(prefix + "2026/01/2026-01-0")) == expected[:4]
    assert list(store.list_keys("us_options_opra/quotes_v1/")) == []


def test_local_store_missing_file_says_when_files_are_published(tmp_path):
    store = LocalStore(_mirror(tmp_path, {"README": b""}))
    key = flat_file_key("stock_trades", TRADING_DAY)
    with pytest.raises(FileNotPublished, match="11:00 ET the next trading day") as e:
        store.open(key)
    assert key in str(e.value)
    assert "not an NYSE trading day" not in str(e.value)


def test_missing_file_for_a_holiday_says_it_is_not_a_trading_day(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(FileNotPublished, match="2026-01-01 .* not an NYSE trading day"):
        store.open(flat_file_key("option_trades", HOLIDAY))


def test_local_store_with_a_missing_root_names_the_setting(tmp_path):
    store = LocalStore(tmp_path / "nope")
    with pytest.raises(FileNotPublished, match="massive.local_root"):
        store.open(flat_file_key("stock_trades", TRADING_DAY))
    with pytest.raises(SourceError, match="massive.local_root"):
        list(store.list_keys("us_stocks_sip/"))


# --- S3 (moto server) -------------------------------------------------------------------------


def test_s3_store_streams_the_uploaded_bytes_exactly(s3_bucket):
    client, bucket, endpoint = s3_bucket
    data = _gzip_payload(5 * MIB)
    key = flat_file_key("stock_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=data)
    store = _store(endpoint, bucket)
    assert store.exists(key)
    assert not store.exists(flat_file_key("stock_trades", dt.date(2026, 1, 5)))
    with store.open(key) as f:
        assert f.size == len(data)
        assert f.name == f"s3://{bucket}/{key}"
        got = _read_all(f, 1 * MIB)
    assert got == data
    assert gzip.decompress(got) == _rand(5 * MIB, 7)


def test_s3_stream_supports_readinto(s3_bucket):
    client, bucket, endpoint = s3_bucket
    data = _rand(300_000, 3)
    client.put_object(Bucket=bucket, Key="k/a.csv.gz", Body=data)
    with _store(endpoint, bucket).open("k/a.csv.gz") as f:
        buf = bytearray(200_000)
        n1 = f.stream.readinto(buf)
        first = bytes(buf[:n1])
        n2 = f.stream.readinto(buf)
        assert first + bytes(buf[:n2]) == data
        assert f.stream.readinto(buf) == 0


def test_s3_list_keys_paginates_and_honours_start_after(s3_bucket):
    client, bucket, endpoint = s3_bucket
    days = [dt.date(2026, 1, d) for d in (2, 5, 6, 7, 8, 9, 12)]
    keys = [flat_file_key("option_trades", d) for d in days]
    for k in [*keys, flat_file_key("stock_trades", TRADING_DAY)]:
        client.put_object(Bucket=bucket, Key=k, Body=b"x")
    store = _store(endpoint, bucket, page_size=2)
    calls: list[dict] = []
    store.client.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    prefix = DATASETS["option_trades"] + "/"
    assert list(store.list_keys(prefix)) == keys
    assert len(calls) == 4  # 7 keys, 2 a page
    assert all(c["MaxKeys"] == 2 and c["Prefix"] == prefix for c in calls)
    assert "ContinuationToken" not in calls[0]
    assert all(c["ContinuationToken"] for c in calls[1:])
    calls.clear()
    assert list(store.list_keys(prefix, start_after=keys[2])) == keys[3:]
    assert calls[0]["StartAfter"] == keys[2]
    assert list(store.list_keys("us_options_opra/quotes_v1/")) == []


def _next_session() -> dt.date:
    """Today's session in New York or the next one: its file is not due yet."""
    today = dt.datetime.now(NEW_YORK).date()
    return trading_days(today, today + dt.timedelta(days=10))[0]


def test_s3_404_names_endpoint_bucket_and_key_and_says_when_files_are_published(s3_bucket):
    _, bucket, endpoint = s3_bucket
    store = _store(endpoint, bucket)
    key = flat_file_key("option_trades", TRADING_DAY)
    with pytest.raises(FileNotPublished, match="11:00 ET the next trading day") as e:
        store.open(key)
    msg = str(e.value)
    assert f"s3://{bucket}/{key}" in msg
    assert f"at endpoint {endpoint} (bucket '{bucket}', key '{key}')" in msg
    # Long overdue: say what to check besides Massive being late.
    assert "was due by about 11:00 ET on 2026-01-05" in msg  # the session after Fri 01-02
    assert "check massive.endpoint_url and massive.bucket" in msg
    with pytest.raises(FileNotPublished, match="not an NYSE trading day"):
        store.open(flat_file_key("option_trades", dt.date(2026, 1, 3)))  # a Saturday


def test_s3_404_for_a_day_not_yet_due_keeps_the_publication_hint(s3_bucket):
    _, bucket, endpoint = s3_bucket
    day = _next_session()
    key = flat_file_key("stock_trades", day)
    with pytest.raises(FileNotPublished) as e:
        _store(endpoint, bucket).open(key)
    msg = str(e.value)
    assert f"at endpoint {endpoint} (bucket '{bucket}', key '{key}')" in msg
    assert f"the file for {day.isoformat()} is due by about 11:00 ET on" in msg
    assert "check massive" not in msg


class _NotFoundEverywhere(http.server.BaseHTTPRequestHandler):
    """A web server that is not S3: every request gets an empty 404."""

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _not_found

    def log_message(self, *args) -> None:
        pass


def test_a_wrong_endpoint_answering_404_is_named_in_the_error():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundEverywhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    key = flat_file_key("stock_trades", TRADING_DAY)
    try:
        with pytest.raises(FileNotPublished) as e:
            _store(endpoint, "flatfiles").open(key)
    finally:
        server.shutdown()
        server.server_close()
    assert f"at endpoint {endpoint} (bucket 'flatfiles', key '{key}')" in str(e.value)
    assert "check massive.endpoint_url" in str(e.value)


# --- a hanging endpoint: timeouts, logged retries, a bounded total ------------------------------


class _Lines:
    """Collects log lines, as a Dagster ``context.log`` would receive them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def info(self, msg: str) -> None:
        self.infos.append(msg)


SECRET_KEY_ID = "AKIAHANGINGTEST98765"
SECRET = "never-shown-s3cr3t-value"
BOUND_S = 3.0


def _short_timeouts(endpoint: str, lines: _Lines) -> S3Store:
    return _store(
        endpoint,
        "flatfiles",
        key_id=SECRET_KEY_ID,
        secret=SECRET,
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        retry_backoff_s=0.05,
        max_retries=50,
        max_total_retry_s=BOUND_S,
        log=lines,
    )


def _assert_no_credentials(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and SECRET_KEY_ID not in text


def test_a_silent_endpoint_fails_within_the_bound_naming_endpoint_bucket_and_key(hanging_s3):
    server = hanging_s3("silent")
    lines = _Lines()
    store = _short_timeouts(server.endpoint_url, lines)
    key = flat_file_key("stock_trades", TRADING_DAY)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as e:
        store.open(key)
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    assert elapsed < BOUND_S
    assert f"gave up looking up s3://flatfiles/{key}" in msg
    assert f"at endpoint {server.endpoint_url} (bucket 'flatfiles', key '{key}')" in msg
    assert "ReadTimeoutError" in msg
    assert "another retry would pass massive.max_total_retry_s = 3" in msg
    # Every attempt was a request on its own connection, and every retry was logged.
    attempts = len(server.requests)
    assert attempts >= 3 and server.connections == attempts
    assert len(lines.warnings) == attempts - 1
    for n, line in enumerate(lines.warnings, 1):
        assert f"attempt {n} failed" in line
        assert re.search(rf"retry {n}/50 in \d", line)
        assert "ReadTimeoutError" in line and server.endpoint_url in line and key in line
    _assert_no_credentials(msg, *lines.warnings)


def test_a_body_that_stalls_midway_resumes_then_fails_within_the_bound(hanging_s3):
    server = hanging_s3("stall_body")
    lines = _Lines()
    store = _short_timeouts(server.endpoint_url, lines)
    key = flat_file_key("option_trades", TRADING_DAY)
    with store.open(key) as f:  # HEAD and the GET's headers come back
        assert f.size == server.size
        t0 = time.monotonic()
        with pytest.raises(SourceError) as e:
            _read_all(f, 1024)
        elapsed = time.monotonic() - t0
        assert f.bytes_read == server.first_bytes  # then the body stalled
    msg = str(e.value)
    # The bound counts from the last bytes received, which came at once.
    assert elapsed < BOUND_S
    assert f"gave up reading s3://flatfiles/{key}" in msg
    assert f"at endpoint {server.endpoint_url} (bucket 'flatfiles', key '{key}')" in msg
    assert f"at byte offset {server.first_bytes} of {server.size}" in msg
    assert "ReadTimeoutError: no data for 0.5 s" in msg
    assert len(lines.warnings) >= 2
    for n, line in enumerate(lines.warnings, 1):
        assert f"at byte offset {server.first_bytes} of {server.size}: attempt {n} failed" in line
        assert re.search(rf"retry {n}/50 in [\d.]+ s with a ranged GET from byte 4096", line)
    # Each retry was a ranged GET from the byte reached, and each answered before stalling.
    gets = [r for r in server.requests if r.startswith("GET")]
    assert len(gets) == len(lines.warnings) + 1
    assert len(lines.infos) == len(lines.warnings)
    assert all("resumed" in i and "at byte 4096" in i for i in lines.infos)
    _assert_no_credentials(msg, *lines.warnings, *lines.infos)


def test_dropped_connection_resumes_with_a_ranged_get_and_identical_bytes(
    s3_bucket, dropping_proxy, caplog
):
    client, bucket, _ = s3_bucket
    data = _gzip_payload(6 * MIB, seed=11)
    key = flat_file_key("option_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=data)
    store = _store(dropping_proxy.endpoint_url, bucket, max_retries=3)
    # First GET dies after 1 MiB of body, the first resume after 700 kB more.
    dropping_proxy.cut_gets([MIB, 700_000])
    caplog.set_level(logging.INFO, logger="market_assets.io.source")
    with store.open(key) as f:
        got = _read_all(f)
        resumes = f.stream.resumes
    assert got == data
    assert dropping_proxy.cuts == 2
    assert resumes == 2
    offsets = [
        int(re.match(r"bytes=(\d+)-$", r.headers["range"]).group(1))
        for r in dropping_proxy.ranged_gets()
    ]
    assert len(offsets) == 2
    assert 0 < offsets[0] <= MIB < offsets[1] <= MIB + 700_000
    assert all(r.headers.get("if-match") for r in dropping_proxy.ranged_gets())
    assert "retry 1/3" in caplog.text and "ranged GET" in caplog.text


def test_dropped_connections_give_up_after_max_retries_naming_key_and_offset(
    s3_bucket, dropping_proxy
):
    client, bucket, _ = s3_bucket
    data = _rand(3 * MIB, 5)
    key = flat_file_key("stock_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=data)
    store = _store(dropping_proxy.endpoint_url, bucket, max_retries=2)
    # 1 MiB comes through, then every resume is cut before any body byte.
    dropping_proxy.cut_gets([MIB, 0, 0, 0, 0, 0])
    f = store.open(key)
    with pytest.raises(SourceError, match="after 2 retries") as e:
        _read_all(f)
    offset = f.bytes_read
    assert 0 < offset <= MIB
    assert key in str(e.value)
    assert f"byte offset {offset} " in str(e.value)
    assert len(dropping_proxy.ranged_gets()) == 2
    f.close()


def test_object_replaced_during_a_resume_fails_instead_of_splicing(s3_bucket, dropping_proxy):
    client, bucket, _ = s3_bucket
    key = flat_file_key("stock_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=_rand(2 * MIB, 1))
    store = _store(dropping_proxy.endpoint_url, bucket)
    dropping_proxy.cut_gets([MIB // 2])
    f = store.open(key)
    f.stream.read(MIB // 4)
    client.put_object(Bucket=bucket, Key=key, Body=_rand(2 * MIB, 2))
    with pytest.raises(SourceError, match="changed while it was being read"):
        _read_all(f)
    f.close()


# --- credentials and permissions (moto IAM authentication on) --------------------------------


def test_dataset_outside_the_plan_raises_access_denied_naming_it(s3_bucket, request):
    client, bucket, endpoint = s3_bucket
    stock = flat_file_key("stock_trades", TRADING_DAY)
    option = flat_file_key("option_quotes", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=stock, Body=b"stock")
    client.put_object(Bucket=bucket, Key=option, Body=b"option")
    user = request.getfixturevalue("iam_credentials")
    store = _store(endpoint, bucket, key_id=user.key_id, secret=user.secret)
    with store.open(stock) as f:  # allowed by the user's policy
        assert f.stream.read() == b"stock"
    with pytest.raises(AccessDenied, match="option_quotes") as e:
        store.open(option)
    assert "403" in str(e.value) and "plan" in str(e.value)
    assert user.secret not in str(e.value)
    with pytest.raises(AccessDenied):
        store.exists(option)


def test_wrong_secret_raises_bad_credentials_without_leaking_it(s3_bucket, request, caplog):
    client, bucket, endpoint = s3_bucket
    key = flat_file_key("stock_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=b"x")
    user = request.getfixturevalue("iam_credentials")
    wrong = "WRONG" + user.secret[5:]
    store = _store(endpoint, bucket, key_id=user.key_id, secret=wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BadCredentials, match="SignatureDoesNotMatch") as e:
        store.open(key)
    msg = str(e.value)
    assert "MASSIVE_ACCESS_KEY_ID" in msg and "MASSIVE_SECRET_ACCESS_KEY" in msg
    assert user.key_id[-4:] in msg and user.key_id not in msg
    for secret in (wrong, user.secret):
        assert secret not in msg
        assert secret not in caplog.text
    with pytest.raises(BadCredentials):
        list(store.list_keys("us_stocks_sip/"))


def test_unknown_access_key_id_raises_bad_credentials(s3_bucket, request):
    client, bucket, endpoint = s3_bucket
    key = flat_file_key("stock_trades", TRADING_DAY)
    client.put_object(Bucket=bucket, Key=key, Body=b"x")
    request.getfixturevalue("iam_credentials")
    store = _store(endpoint, bucket, key_id="AKIANOTAREALKEY12345", secret="s3cr3t-value-xyz")
    with pytest.raises(BadCredentials, match="InvalidAccessKeyId") as e:
        store.open(key)
    assert "s3cr3t-value-xyz" not in str(e.value)
    assert "AKIANOTAREALKEY12345" not in str(e.value)


# --- settings -----------------------------------------------------------------------------------


def test_store_from_settings_s3_without_env_credentials_names_the_variables():
    with pytest.raises(BadCredentials, match="MASSIVE_ACCESS_KEY_ID and MASSIVE_SECRET_ACCESS_KEY"):
        store_from_settings(_settings(), environ={})
    with pytest.raises(BadCredentials, match="MASSIVE_SECRET_ACCESS_KEY is not set") as e:
        store_from_settings(_settings(), environ={"MASSIVE_ACCESS_KEY_ID": "AKIA1234"})
    assert "AKIA1234" not in str(e.value)


def test_store_from_settings_builds_s3_and_local_stores(tmp_path):
    env = {"MASSIVE_ACCESS_KEY_ID": "AKIAEXAMPLE9876", "MASSIVE_SECRET_ACCESS_KEY": "sekrit"}
    store = store_from_settings(_settings(max_retries=7, retry_backoff_s=0.5), environ=env)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.endpoint_url, store.max_retries) == (
        "flatfiles",
        "https://files.massive.com",
        7,
    )
    assert store.client.meta.config.signature_version == "s3v4"
    assert store.client.meta.region_name == "us-east-1"
    assert "sekrit" not in repr(store)
    local = store_from_settings(_settings(source="local", local_root=tmp_path), environ={})
    assert isinstance(local, LocalStore) and local.root == tmp_path


def test_store_from_settings_sets_the_timeouts_and_leaves_retries_to_the_store():
    env = {"MASSIVE_ACCESS_KEY_ID": "AKIAEXAMPLE9876", "MASSIVE_SECRET_ACCESS_KEY": "sekrit"}
    settings = _settings(connect_timeout_s=4.0, read_timeout_s=12.0, max_total_retry_s=50.0)
    store = store_from_settings(settings, environ=env)
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (4.0, 12.0)
    # botocore retries nothing by itself (its retries were silent): one attempt per call.
    assert config.retries["total_max_attempts"] == 1
    assert store.retry.max_total_s == 50.0 and store.retry.attempt_timeout_s == 16.0


def test_retry_policy_waits_longer_each_time_and_stops_before_the_bound():
    from market_assets.io.source import RetryPolicy

    policy = RetryPolicy(max_retries=5, backoff_s=1.0, max_total_s=120.0, attempt_timeout_s=40.0)
    assert [policy.wait_before_retry(n, 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert policy.wait_before_retry(6, 0.0) is None  # max_retries
    # A hanging endpoint (30 s read timeout): retries at 30 s and 61 s, gives up at 93 s,
    # since a third retry could time out only after 137 s.
    assert policy.wait_before_retry(1, 30.0) == 1.0
    assert policy.wait_before_retry(2, 61.0) == 2.0
    assert policy.wait_before_retry(3, 93.0) is None
