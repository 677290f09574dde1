"""Hostile peers for the egress tests: raw HTTP/1.1 servers on loopback that answer too much,
too slowly or elsewhere, and count what they got and what they managed to send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

MiB = 1 << 20


@dataclass
class Peer:
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # each request's head and body
    bytes_sent: int = 0  # of answer bodies, as far as the client let them be written

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.bytes_sent += len(data)


Behaviour = Callable[[Peer, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[tuple[str, Peer]]:
    """Yields the server's base URL (http://127.0.0.1:<port>) and its counts."""
    peer = Peer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while True:
                peer.requests.append(await _read_request(reader))
                await behaviour(peer, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", peer
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def huge(total: int, *, status: int = 200, declared: bool = False) -> Behaviour:
    """An answer of `total` bytes, streamed in 64 KiB chunks (chunked, or with its length)."""

    async def answer(peer: Peer, writer: asyncio.StreamWriter) -> None:
        framing = f"Content-Length: {total}" if declared else "Transfer-Encoding: chunked"
        writer.write(
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
        )
        chunk = b"x" * (64 * 1024)
        for _ in range(total // len(chunk)):
            await peer.write(writer, chunk if declared else b"10000\r\n" + chunk + b"\r\n")
        if not declared:
            await peer.write(writer, b"0\r\n\r\n")

    return answer


def drip(interval: float, *, status: int = 200) -> Behaviour:
    """An answer whose status line and headers come one byte every `interval` seconds."""

    async def answer(peer: Peer, writer: asyncio.StreamWriter) -> None:
        for byte in f"HTTP/1.1 {status} OK\r\nX-Slow: ".encode() + b"z" * 10_000:
            await peer.write(writer, bytes([byte]))
            await asyncio.sleep(interval)

    return answer


def fixed(
    status: int, body: bytes, *, content_type: str = "application/json", **headers: str
) -> Behaviour:
    """The same answer to every request."""
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())

    async def answer(peer: Peer, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        await peer.write(writer, body)

    return answer
