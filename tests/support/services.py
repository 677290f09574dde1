"""Services of a test's own, to stop and start at will: a redis-server, and a second PostgreSQL
cluster. The machine's default instances are never touched (other tests depend on them)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from tests.support.processes import free_port


class RedisServer:
    """`redis-server` on a free loopback port, without persistence (a restart starts empty, as
    a Redis that lost its data would)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log_dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), Redis.from_url(self.url) as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # as a crash or a lost host would: no goodbye to the clients
            self.proc.wait(timeout=10)

    def keys(self, pattern: str) -> list[bytes]:
        with Redis.from_url(self.url) as client:
            return list(client.scan_iter(match=pattern))


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(log_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PostgresCluster:
    """A second PostgreSQL cluster (`pg_createcluster`) on a free port, trusting loopback
    connections, dropped afterwards."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        if not versions or shutil.which("pg_createcluster") is None:
            pytest.skip("needs PostgreSQL's server and pg_createcluster (postgresql-common)")
        self.version = versions[-1].parts[-3]
        self.name = f"wagate_t{secrets.token_hex(3)}"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def create(self) -> None:
        try:
            self._ctl(
                "pg_createcluster", self.version, self.name, "--port", str(self.port),
                "--", "--auth-host=trust", "--auth-local=trust",
            )  # fmt: skip
        except AssertionError as error:
            pytest.skip(f"cannot make a second PostgreSQL cluster here: {error}")
        self.start()

    def start(self) -> None:
        self._ctl("pg_ctlcluster", self.version, self.name, "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            time.sleep(0.1)
        raise AssertionError("the test's PostgreSQL cluster did not start")

    def stop(self) -> None:
        self._ctl("pg_ctlcluster", self.version, self.name, "stop", "-m", "fast")

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", self.version, self.name, "--stop"],
            capture_output=True,
            timeout=120,
        )

    def database(self, name: str = "wagate") -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.create()
    try:
        yield cluster
    finally:
        cluster.drop()
