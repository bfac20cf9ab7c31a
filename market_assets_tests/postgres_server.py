# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A real, throwaway PostgreSQL server for tests (Debian's postgresql binaries).

Fixture ``postgres_server`` (module scope): ``initdb`` in a fresh temp folder, ``postgres``
on 127.0.0.1 and a free port with password (SCRAM) authentication, a database for Dagster;
yields a :class:`PostgresServer`; stops the server (``pg_ctl stop -m fast``) and removes the
folder afterwards. PostgreSQL refuses to run as root, so under root the folder is given
to the ``postgres`` user (or ``nobody``) and the binaries run through ``runuser``.
When the binaries are missing the fixture fails (run ``make system-deps``); it never skips.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "dagster"
PASSWORD = "dagster-test-pw"
DB = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    username: str
    password: str
    db_name: str

    def env(self) -> dict[str, str]:
        """The variables dagster_home/dagster.postgres.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def create_database(self, name: str) -> PostgresServer:
        """A new empty database on this server (one per test keeps tests independent)."""
        conn = self.connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return PostgresServer(self.host, self.port, self.username, self.password, name)

    def connect(self, db: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=db or self.db_name,
        )


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run "
            "`make system-deps` (installs Debian's postgresql)"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> tuple[list[str], int | None, int | None]:
    """Command prefix, uid and gid to run PostgreSQL under (not root)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], pw.pw_uid, pw.pw_gid
    pytest.fail("running as root and neither a postgres nor a nobody user exists")


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bin_dir()
    prefix, uid, gid = _run_as()
    # Under /tmp itself: pytest's own temp folders are private to root.
    base = Path(tempfile.mkdtemp(prefix="market-assets-pg-"))
    data, sock, log = base / "data", base / "sock", base / "postgres.log"
    sock.mkdir()
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if uid is not None:
        for p in (base, sock, pwfile):
            os.chown(p, uid, gid)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    started = False
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env=env,
            cwd=base,
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "30",
                "-o",
                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off",
                "start",
            ],
            check=True,
            capture_output=True,
            env=env,
            cwd=base,
        )
        started = True
        server = PostgresServer("127.0.0.1", port, USER, PASSWORD, DB)
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = server.connect("postgres")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
        conn.close()
        yield server
    except subprocess.CalledProcessError as e:
        logged = log.read_text() if log.exists() else ""
        pytest.fail(f"PostgreSQL did not start: {e.cmd}\n{e.stdout}\n{e.stderr}\n{logged}")
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                env=env,
                cwd=base,
            )
        shutil.rmtree(base, ignore_errors=True)
