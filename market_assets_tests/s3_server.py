# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A real local S3 server for tests: moto in server mode, plus helpers.

Fixtures (import them into a test module, or list this module in ``pytest_plugins``):

- ``s3_server`` (session): starts moto's ``ThreadedMotoServer`` on 127.0.0.1 and a free
  port; yields its endpoint URL.
- ``s3_bucket`` (function): a fresh bucket; yields ``S3Bucket(client, bucket, endpoint_url)``,
  which unpacks as ``client, bucket, endpoint_url``.
- ``dropping_proxy`` (function): a :class:`DroppingProxy` in front of the server that can cut
  GET responses mid-body on a real socket, to test resume on dropped connections.
- ``hanging_s3`` (function): starts :class:`HangingS3` servers, S3-like endpoints that accept
  connections and then hang (no answer at all, or a body that stalls), to test timeouts.
- ``iam_credentials`` (function): turns on moto's IAM authentication for one test and yields
  an :class:`IamUser` whose policy allows only some key prefixes, so wrong secrets
  (SignatureDoesNotMatch), unknown key ids (InvalidAccessKeyId) and denied prefixes
  (AccessDenied, HTTP 403) come from the server itself.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

FAKE_KEY_ID = "testing"
FAKE_SECRET = "testing"
REGION = "us-east-1"


def _client(endpoint_url: str, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET, svc="s3"):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        svc,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def s3_client(endpoint_url: str, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET) -> Any:
    """A boto3 S3 client for the test server (path-style, SigV4, fake credentials)."""
    return _client(endpoint_url, key_id, secret)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server running in a thread for the whole session."""
    import logging

    from moto.server import ThreadedMotoServer

    # One INFO line per request from werkzeug would drown the logs of failing tests.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class S3Bucket(NamedTuple):
    client: Any
    bucket: str
    endpoint_url: str


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[S3Bucket]:
    """A fresh, uniquely named bucket on the session's server."""
    client = s3_client(s3_server)
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    yield S3Bucket(client, name, s3_server)
    # Best effort: another test may have turned authentication on and off again.
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


# --- IAM authentication --------------------------------------------------------------------


@dataclass
class IamUser:
    key_id: str
    secret: str
    allowed_prefixes: list[str]


def _set_auth(endpoint_url: str, count: float) -> None:
    import urllib.request

    req = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth",
        data=str(count).encode(),
        method="POST",
        # Not form-encoded, so the server reads the raw body as the count.
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


@pytest.fixture
def iam_credentials(s3_bucket: S3Bucket) -> Iterator[IamUser]:
    """An IAM user allowed to list the bucket and read only ``us_stocks_sip/*``.

    Authentication is switched on with moto's ``/moto-api/reset-auth`` endpoint (the
    server-mode form of ``INITIAL_NO_AUTH_ACTION_COUNT``) for the test only; the root
    ``testing`` credentials stop working until teardown switches it off again. Create any
    objects before requesting this fixture, or via ``s3_bucket.client`` before it starts.
    """
    client, bucket, endpoint = s3_bucket
    iam = _client(endpoint, svc="iam")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    allowed = ["us_stocks_sip/"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"arn:aws:s3:::{bucket}/{p}*" for p in allowed],
            },
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _set_auth(endpoint, 0)
    try:
        yield IamUser(key["AccessKeyId"], key["SecretAccessKey"], allowed)
    finally:
        _set_auth(endpoint, float("inf"))


# --- a TCP proxy that drops connections mid-response ---------------------------------------


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    # (method, body budget or None) for each request forwarded, in order.
    pending: list[tuple[str, int | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return first[0], first[1] if len(first) > 1 else "", headers


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that can cut GET responses.

    ``cut_gets([n0, n1, ...])`` makes the i-th following GET's connection close after its
    response headers and ``n_i`` body bytes (a real dropped socket: the client sees EOF
    before Content-Length); ``None`` entries and GETs past the list pass through. Every
    request head seen is kept in ``requests``. Assumes HTTP/1.1 without pipelining and
    request bodies framed by Content-Length (what botocore sends).
    """

    def __init__(self, upstream_url: str) -> None:
        hostport = upstream_url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._budgets: list[int | None] = []
        self._lock = threading.Lock()
        self.requests: list[SeenRequest] = []
        self.cuts = 0
        self._conns: list[_Conn] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        # accept() polls so stop() does not wait on a blocked accept.
        self._sock.settimeout(0.05)
        self.endpoint_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def cut_gets(self, body_bytes: Iterable[int | None]) -> None:
        """Cut the following GET responses after these many body bytes each."""
        with self._lock:
            self._budgets = list(body_bytes)

    def ranged_gets(self) -> list[SeenRequest]:
        """GET requests that carried a Range header."""
        return [r for r in self.requests if r.method == "GET" and "range" in r.headers]

    def stop(self) -> None:
        self._stopping = True
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._conns):
            c.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = _Conn(client, upstream)
            self._conns.append(conn)
            threading.Thread(target=self._pump_requests, args=(conn,), daemon=True).start()
            threading.Thread(target=self._pump_responses, args=(conn,), daemon=True).start()

    def _next_budget(self, method: str) -> int | None:
        if method != "GET":
            return None
        with self._lock:
            return self._budgets.pop(0) if self._budgets else None

    def _pump_requests(self, conn: _Conn) -> None:
        buf = b""
        body_left = 0
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while buf:
                    if body_left:
                        take = buf[:body_left]
                        out += take
                        body_left -= len(take)
                        buf = buf[len(take) :]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[: end + 4], buf[end + 4 :]
                    method, path, headers = _parse_head(head[:-4])
                    self.requests.append(SeenRequest(method, path, headers))
                    with conn.lock:
                        conn.pending.append((method, self._next_budget(method)))
                    body_left = int(headers.get("content-length", "0") or 0)
                    out += head
                if out:
                    conn.upstream.sendall(out)
        except OSError:
            pass
        conn.close()

    def _pump_responses(self, conn: _Conn) -> None:
        buf = b""
        body_left = 0  # -1: until the connection closes
        budget: int | None = None
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                buf += data
                while buf:
                    if body_left:
                        take = buf if body_left < 0 else buf[:body_left]
                        if budget is not None and len(take) >= budget:
                            conn.client.sendall(take[:budget])
                            self.cuts += 1
                            conn.close()
                            return
                        conn.client.sendall(take)
                        if budget is not None:
                            budget -= len(take)
                        if body_left > 0:
                            body_left -= len(take)
                        buf = buf[len(take) :]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[: end + 4], buf[end + 4 :]
                    _, _, headers = _parse_head(head[:-4])
                    status = int(head.split(b" ", 2)[1])
                    conn.client.sendall(head)
                    if 100 <= status < 200:
                        continue
                    with conn.lock:
                        method, budget = conn.pending.pop(0) if conn.pending else ("", None)
                    if method == "HEAD" or status in (204, 304):
                        body_left = 0
                    elif "content-length" in headers:
                        body_left = int(headers["content-length"])
                    else:
                        body_left = -1
                    if budget is not None and (body_left == 0 or budget == 0):
                        self.cuts += 1
                        conn.close()
                        return
                    if body_left == 0:
                        budget = None
        except OSError:
            pass
        conn.close()


@pytest.fixture
def dropping_proxy(s3_server: str) -> Iterator[DroppingProxy]:
    """A :class:`DroppingProxy` in front of the session's moto server."""
    proxy = DroppingProxy(s3_server)
    yield proxy
    proxy.stop()


# --- an endpoint that hangs ------------------------------------------------------------------


class HangingS3:
    """An S3-like HTTP server on 127.0.0.1 that hangs.

    ``silent``: accepts connections, reads the request and never answers.
    ``stall_body``: answers HEAD with the object's size and ETag; the first GET gets its
    headers and ``first_bytes`` of the body, later GETs (ranged resumes) their headers only,
    then each stalls with the connection open.
    """

    def __init__(self, mode: str, size: int = 100_000, first_bytes: int = 4096) -> None:
        self.mode = mode
        self.size = size
        self.first_bytes = first_bytes
        self.connections = 0
        self.requests: list[str] = []
        self._gets = 0
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.05)
        self.endpoint_url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for s in [self._server, *self._socks]:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                self.requests.append(lines[0])
                if self.mode == "silent":
                    break
                if method == "HEAD":
                    conn.sendall(self._head(200, self.size))
                    continue
                ranged = next((ln for ln in lines if ln.lower().startswith("range:")), None)
                self._gets += 1
                if ranged:
                    offset = int(re.search(r"bytes=(\d+)-", ranged).group(1))
                    extra = f"Content-Range: bytes {offset}-{self.size - 1}/{self.size}\r\n"
                    conn.sendall(self._head(206, self.size - offset, extra))
                else:
                    conn.sendall(self._head(200, self.size))
                if self._gets == 1:
                    conn.sendall(b"\x1f" * self.first_bytes)
                break
            self._stop.wait()  # stall: keep the connection open, send nothing more
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _head(status: int, length: int, extra: str = "") -> bytes:
        reason = {200: "OK", 206: "Partial Content"}[status]
        return (
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {length}\r\n"
            f'ETag: "0123456789abcdef"\r\nContent-Type: application/octet-stream\r\n'
            f"{extra}\r\n"
        ).encode()


@pytest.fixture
def hanging_s3() -> Iterator[Callable[..., HangingS3]]:
    """Starts :class:`HangingS3` servers (``hanging_s3("silent")``); stops them after the test."""
    servers: list[HangingS3] = []

    def start(mode: str, **kw) -> HangingS3:
        servers.append(HangingS3(mode, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
