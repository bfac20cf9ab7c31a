# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A real, throwaway Redis server for tests (Debian's redis-server), the Celery broker.

Fixture ``redis_server`` (module scope): ``redis-server`` on 127.0.0.1 and a free port,
without persistence, its working folder in a fresh temp folder; yields a
:class:`RedisServer` once it answers PING; stops it (SIGTERM, then SIGKILL) and removes the
folder afterwards. When the binary is missing the fixture fails (run ``make system-deps``);
it never skips.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from market_assets_tests.postgres_server import free_port


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        """``redis://host:port/db``, as Celery and redis-py take it."""
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self) -> bool:
        """Whether the server answers PING with PONG (a raw RESP exchange on a socket)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server not found: run `make system-deps` (installs Debian's redis-server)"
        )
    base = Path(tempfile.mkdtemp(prefix="market-assets-redis-"))
    server = RedisServer("127.0.0.1", free_port())
    log = base / "redis.log"
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            server.host,
            "--port",
            str(server.port),
            "--dir",
            str(base),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log),
        ],  # fmt: skip
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not server.ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                logged = log.read_text() if log.exists() else ""
                pytest.fail(f"redis-server did not start (exit {proc.poll()}):\n{logged}")
            time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
