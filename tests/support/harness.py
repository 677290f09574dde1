"""The whole gateway wired to the sandbox in one process, through httpx.ASGITransport both ways
(the gateway's Cloud API client calls the mounted sandbox; the sandbox's webhooks call the
gateway), with real storage. Nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.api.app import create_app
from wagate.asgi import LateASGI
from wagate.bootstrap import SANDBOX_ACCOUNT, SandboxIdentity, ensure_sandbox
from wagate.clock import Clock, SystemClock
from wagate.config import Settings
from wagate.dispatch.worker import Dispatcher
from wagate.egress import graph_transport, media_transport
from wagate.sandbox import create_sandbox_app
from wagate.sandbox.fastpath import InProcessClient
from wagate.store import accounts as account_store
from wagate.store.accounts import Channel
from wagate.store.db import make_async_engine, migrate

BASE = "http://wagate.test"
LOOPBACK = "127.0.0.0/8,::1/128"
"""What tests allow the egress policy to reach: their peers (receivers, a sandbox) listen on
loopback ports."""


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    settings: Settings
    identity: SandboxIdentity
    token: str
    clock: Clock
    sent_to_meta: list[dict[str, Any]]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def dispatcher(self) -> Dispatcher:
        dispatcher: Dispatcher = self.app.state.dispatcher
        return dispatcher

    async def sandbox_channel(self) -> Channel:
        """The sandbox account's channel (its own webhook path is `webhook_path`)."""
        async with self.engine.connect() as conn:
            [channel] = await account_store.list_channels(conn, account_id=await self.account_id())
        return channel

    async def account_id(self) -> str:
        """The sandbox account's id."""
        async with self.engine.connect() as conn:
            found = await account_store.require_account(conn, name=SANDBOX_ACCOUNT)
        return str(found["id"])

    async def webhook_path(self) -> str:
        return f"/webhooks/whatsapp/{(await self.sandbox_channel()).id}"

    async def reply(self, phone: str, **fields: Any) -> dict[str, Any]:
        """The customer writes to the business through the sandbox (a signed webhook)."""
        response = await self.client.post(
            "/sandbox/customer/reply", json={"phone": phone, **fields}
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        assert data["delivered"], data
        return data

    async def send(self, **body: Any) -> httpx.Response:
        return await self.client.post("/v1/messages", json=body, headers=self.auth)

    async def message(self, message_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/messages/{message_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def wait_status(
        self, message_id: str, status: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            data = await self.message(message_id)
            if data["status"] == status:
                return data
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{message_id} is {data['status']}, not {status}: {data}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_gateway(
    database_url: str,
    data_dir: Path,
    *,
    clock: Clock | None = None,
    run_dispatcher: bool = True,
    status_delay: float = 0.01,
    graph_over_network: bool = False,
    **settings_overrides: Any,
) -> AsyncIterator[Harness]:
    """`graph_over_network`: the dispatcher's Cloud API client is wired as `wagate serve`
    wires it (the sandbox in-process, any other Graph URL over the network under the egress
    policy); `sent_to_meta` then stays empty. Otherwise every Graph request goes in-process."""
    settings_overrides.setdefault("egress_allow", LOOPBACK)
    settings = Settings(
        data_dir=data_dir, database_url=database_url, public_url=BASE, **settings_overrides
    )
    # The sandbox channel's Graph URL is built from local_url; make it reach the mounted app.
    settings.host = "wagate.test"
    settings.port = 80
    await asyncio.to_thread(migrate, database_url)
    engine = make_async_engine(database_url)
    clock = clock or SystemClock()
    identity = SandboxIdentity.load_or_create(data_dir)
    gateway = LateASGI()
    webhook_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url=BASE)
    sandbox = create_sandbox_app(
        identity.sandbox_config(
            webhook_url=BASE + "/webhooks/whatsapp",
            status_delay=status_delay,
            webhook_retry_initial=0.05,
            webhook_retry_max=0.2,
        ),
        webhook_client=webhook_client,
    )
    sent_to_meta: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/messages"):
            sent_to_meta.append(json.loads(request.content))

    cloud_http: httpx.AsyncClient
    media_http: httpx.AsyncClient | None = None
    if graph_over_network:
        media_http = InProcessClient(
            BASE,
            httpx.ASGITransport(app=gateway),
            media_transport(settings),
            timeout=httpx.Timeout(60.0, connect=5.0),
        )
        cloud_http = InProcessClient(
            BASE,
            httpx.ASGITransport(app=gateway),
            graph_transport(settings),
            timeout=httpx.Timeout(settings.send_timeout, connect=5.0),
        )
    else:
        cloud_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway),
            timeout=httpx.Timeout(settings.send_timeout, connect=5.0),
            event_hooks={"request": [record]},
        )
    app = create_app(
        settings,
        engine=engine,
        clock=clock,
        cloud_http=cloud_http,
        media_http=media_http,
        run_dispatcher=run_dispatcher,
        sandbox=sandbox,
    )
    gateway.app = app
    ready = await ensure_sandbox(settings, engine, clock)
    assert ready.new_token is not None
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        try:
            yield Harness(
                app, client, engine, settings, identity, ready.new_token, clock, sent_to_meta
            )
        finally:
            await sandbox.state.sandbox.aclose()
            await webhook_client.aclose()
            await cloud_http.aclose()
            if media_http is not None:
                await media_http.aclose()
    await engine.dispose()
