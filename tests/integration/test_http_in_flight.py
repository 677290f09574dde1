"""The HTTP server's count of requests read and not yet answered (`requests_in_flight`), which
tells the accept path whether a send is alone (api/acceptor.py): counted from the moment
uvicorn reads a request, before its handler runs, until the handler has finished, however
the request ends. A real uvicorn server with wagate's protocol, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.support.processes import free_port
from wagate.http_server import ClientBounds, bounded_protocol, requests_in_flight


class Holding:
    """An ASGI app: `/hold` waits until released; `/count` answers the server's count."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.inside = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/count":
            body = str(requests_in_flight()).encode()
        else:
            self.inside += 1
            await self.release.wait()
            body = b"ok"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Holding, str]]:
    app = Holding()
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=bounded_protocol(ClientBounds(10.0, 60.0, 100)),
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await _until(lambda: server.started)
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        app.release.set()
        server.should_exit = True
        await task


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_requests_are_counted_until_answered(served: tuple[Holding, str]) -> None:
    app, url = served
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get("/count")).text == "1"  # itself
        held = [asyncio.ensure_future(client.get("/hold")) for _ in range(3)]
        await _until(lambda: app.inside == 3)
        assert (await client.get("/count")).text == "4"
        app.release.set()
        assert [r.text for r in await asyncio.gather(*held)] == ["ok"] * 3
        assert (await client.get("/count")).text == "1"


async def test_a_client_that_leaves_is_not_counted_for_ever(served: tuple[Holding, str]) -> None:
    app, url = served
    async with httpx.AsyncClient(base_url=url, timeout=10) as leaving:
        gone = asyncio.ensure_future(leaving.get("/hold"))
        await _until(lambda: app.inside == 1)
        gone.cancel()  # the client hangs up while its request is being answered
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get("/count")).text == "2"  # its handler still runs
        app.release.set()
        await _until(lambda: requests_in_flight() == 0)
        assert (await client.get("/count")).text == "1"
