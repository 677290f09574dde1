"""A request that gets no answer is described in words (connection refused, DNS, TLS, the egress
policy), through the same HTTP stack the senders use (`egress_client`), on loopback."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.processes import free_port
from wagate.egress import EgressPolicy, egress_client, parse_ranges
from wagate.net_errors import describe_failure

LOOPBACK = EgressPolicy(parse_ranges("127.0.0.0/8"))


async def _failure(url: str, policy: EgressPolicy = LOOPBACK) -> str:
    async with egress_client(policy, max_answer_bytes=1 << 20, timeout=5) as client:
        try:
            await client.post(url, content=b"{}")
        except httpx.HTTPError as exc:
            return describe_failure(exc)
    raise AssertionError(f"{url} answered")


async def test_nothing_listening_is_a_refused_connection_not_ssl_default() -> None:
    port = free_port()
    said = await _failure(f"http://127.0.0.1:{port}/events")
    assert said == (
        f"Connection refused by 127.0.0.1:{port} (nothing accepts connections on that port)."
    )


async def test_an_unknown_host_is_a_dns_failure() -> None:
    said = await _failure("http://no-such-host.invalid/events")
    assert said == "The host name could not be resolved (DNS)."


async def test_https_to_a_plain_http_port_is_a_tls_failure() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        said = await _failure(f"https://127.0.0.1:{port}/events")
    assert said.startswith("The TLS handshake failed ("), said


async def test_a_destination_the_policy_refuses_says_so() -> None:
    said = await _failure(f"http://127.0.0.1:{free_port()}/events", EgressPolicy())
    assert "egress policy" in said and "loopback" in said and "ssl" not in said, said
