"""Slow clients (SPEC §10): a stranger cannot hold the HTTP server's connections.

Against a real `wagate serve` with short deadlines: connections that send nothing, that send
half their headers, or half their body are closed by the server within their deadline, and a
real client still gets its answer while more idle connections than the cap are open.
(Before: 200 idle or half-sent connections were all still open after 150 s.)
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env

pytestmark = pytest.mark.slow

DEADLINE = 1.0  # each of the server's timeouts here, in seconds
CAP = 50


@contextlib.contextmanager
def serving(data: Path, deadline: float) -> Iterator[ServerProcess]:
    env = wagate_env(
        data,
        WAGATE_HEADER_TIMEOUT=str(deadline),
        WAGATE_BODY_TIMEOUT=str(deadline),
        WAGATE_KEEP_ALIVE_TIMEOUT=str(deadline),
        WAGATE_MAX_CONNECTIONS=str(CAP),
    )
    process = ServerProcess(env, free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("bounds") / "data", DEADLINE) as process:
        yield process


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Deadlines long enough that only the cap closes connections during a test."""
    with serving(tmp_path_factory.mktemp("patient") / "data", 60.0) as process:
        yield process


def connect(server: ServerProcess, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (EOF or reset); waits at most a moment."""
    sock.settimeout(0.05)
    try:
        while chunk := sock.recv(65536):
            del chunk  # an answer (a 503 or a 408) before the close: read on
        return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def all_closed_within(socks: list[socket.socket], seconds: float) -> list[socket.socket]:
    """The sockets still open after `seconds` (generous: the server's own deadline is 1 s)."""
    deadline = time.monotonic() + seconds
    still = list(socks)
    while still and time.monotonic() < deadline:
        still = [s for s in still if not closed_by_server(s)]
    return still


@contextlib.contextmanager
def opened(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


HALF_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
HALF_BODY = (
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"phone": "+1'
)


def test_idle_and_half_sent_connections_are_closed(server: ServerProcess) -> None:
    with opened(
        [connect(server) for _ in range(10)]
        + [connect(server, HALF_HEADERS) for _ in range(10)]
        + [connect(server, HALF_BODY) for _ in range(10)]
    ) as socks:
        # Each keeps trickling (a byte now and then) but never finishes.
        for s in socks[10:]:
            s.sendall(b"a")
        still = all_closed_within(socks, 15 * DEADLINE)
    assert still == [], f"{len(still)} of {len(socks)} connections are still open"


def test_a_kept_alive_connection_is_closed_when_idle(server: ServerProcess) -> None:
    with opened([connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")]) as socks:
        socks[0].settimeout(5)
        assert socks[0].recv(65536).startswith(b"HTTP/1.1 200")
        assert all_closed_within(socks, 15 * DEADLINE) == []


def test_a_real_client_gets_through_200_idle_connections(patient: ServerProcess) -> None:
    """Four times the cap of idle connections and half-sent headers and bodies, well within
    their deadlines: the longest idle (then the longest sending) make room for newcomers, so a
    real request is answered, not refused or left waiting, and no more than the cap stay open."""
    kinds = (b"", HALF_HEADERS, HALF_BODY)
    with opened([connect(patient, kinds[i % 3]) for i in range(4 * CAP)]) as socks:
        time.sleep(0.5)  # every connection reached the server
        answer = httpx.get(patient.url + "/healthz", timeout=10)
        assert answer.status_code == 200
        open_now = [s for s in socks if not closed_by_server(s)]
        assert len(open_now) <= CAP
        assert len(open_now) >= CAP // 2  # the deadlines did not do it: the cap did


def test_a_200_mb_chunked_sign_in_is_cut_off(server: ServerProcess) -> None:
    """The body limit holds for a chunked body on a real server: the answer is 413 and the
    connection is closed, so the rest is never read (before: all 200 MB were)."""
    sock = connect(server, b"POST /sign-in HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"a" * 64 * 1024)
    sent = 0
    with opened([sock]):
        sock.settimeout(5)
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection: the rest cannot be sent
            pass
        answer = b""
        with contextlib.suppress(OSError):
            while part := sock.recv(65536):
                answer += part
    assert sent < 32 * 1024 * 1024, f"{sent:,} bytes went in before the server stopped reading"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()


def test_the_settings_are_documented() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    security = (Path(__file__).parents[2] / "SECURITY.md").read_text()
    for name in (
        "WAGATE_MAX_CONNECTIONS",
        "WAGATE_HEADER_TIMEOUT",
        "WAGATE_BODY_TIMEOUT",
        "WAGATE_KEEP_ALIVE_TIMEOUT",
    ):
        assert name in readme and name in security, name
