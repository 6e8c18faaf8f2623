"""Pytest plugin: ``postgres_server``, one real PostgreSQL server per test session.

The server comes from Debian's ``postgresql`` package (``/usr/lib/postgresql/<v>/bin``;
``scripts/setup.sh`` installs it with ``WITH_TEST_TOOLS=1``): ``initdb`` into a temporary
directory, then ``pg_ctl start`` on a free loopback port, trust authentication, no fsync (test
data). PostgreSQL refuses to run as root, so as root both run as the ``postgres`` user the
package creates (``runuser``). ``PG_TEST_URL`` (a server URL) skips all that and uses it.

Tests that request the fixture are skipped, with the reason, only where no server binary
is installed; a server that is installed but will not start is an error.
``postgres_url`` gives each test its own fresh database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class ServerUnavailable(Exception):
    """No PostgreSQL server binaries here (the package is not installed)."""


@contextlib.contextmanager
def temporary_server() -> Iterator[str]:
    """Start a throw-away server (see the module docstring); yield its URL, then stop it.

    Raises `ServerUnavailable` when no server binary is installed, `RuntimeError` when one is
    but it will not start.
    """
    bindir = _bin_dir()
    if bindir is None:
        raise ServerUnavailable(
            "PostgreSQL server not installed (/usr/lib/postgresql/*/bin/initdb missing): "
            "install Debian's postgresql package (scripts/setup.sh with WITH_TEST_TOOLS=1)"
        )
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError(
                "running as root and no `postgres` user to run the server as"
            ) from exc
    root = Path(tempfile.mkdtemp(prefix="dispatch-rl-pg-"))
    data, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    if owner is not None:
        for p in (root, sockdir):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    log = root / "server.log"

    def run(*cmd: str) -> None:
        out = subprocess.run(_as_server_user(list(cmd)), capture_output=True, text=True)
        if out.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}\n{tail}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E",
            "UTF8", "--no-sync")  # fmt: skip
        opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t",
            "60", "start")  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A server URL (``postgresql+psycopg://postgres@127.0.0.1:PORT``), without a database."""
    if os.environ.get("PG_TEST_URL"):
        yield os.environ["PG_TEST_URL"].rstrip("/")
        return
    try:
        with temporary_server() as url:
            yield url
    except ServerUnavailable as exc:
        if os.environ.get("CI") == "true":  # CI installs postgresql: its absence is a failure
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def create_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped after the test."""
    import psycopg

    url = create_database(postgres_server)
    try:
        yield url
    finally:
        plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
