"""Syncing message templates: every page of each channel's templates fetched from Meta's Graph
API, then stored, a channel's whole set at once (`POST /v1/templates/sync` and
`wagate templates sync`, which needs no running server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.cloud.client import CloudApiError
from wagate.cloud.templates import fetch_templates
from wagate.config import Settings
from wagate.domain.templates import Template
from wagate.egress import graph_client
from wagate.store import templates as template_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx

HttpFor = Callable[[Channel], httpx.AsyncClient]


@dataclass
class ChannelSync:
    """One channel's templates as fetched, or why they could not be."""

    channel: Channel
    templates: list[Template] = field(default_factory=list)
    error: CloudApiError | None = None

    def problem(self) -> str:
        return (
            f"could not fetch the templates of channel {self.channel.id} (WABA "
            f"{self.channel.waba_id}) from Meta: {self.error}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel.id,
            "phone_number_id": self.channel.phone_number_id,
            "waba_id": self.channel.waba_id,
            "templates": None if self.error else len(self.templates),
            "error": self.problem() if self.error else None,
        }


async def fetch_channels(
    channels: Sequence[Channel], http_for: HttpFor, *, version: str
) -> list[ChannelSync]:
    """Every channel's templates, fetched concurrently; a failure is kept, not raised."""

    async def one(channel: Channel) -> ChannelSync:
        try:
            found = await fetch_templates(
                http_for(channel),
                graph_url=channel.graph_url,
                version=version,
                waba_id=channel.waba_id,
                access_token=channel.access_token,
            )
        except CloudApiError as error:
            return ChannelSync(channel, error=error)
        return ChannelSync(channel, found)

    return list(await asyncio.gather(*(one(c) for c in channels)))


async def store_synced(
    engine: AsyncEngine, synced: Sequence[ChannelSync], *, now: datetime
) -> None:
    """Replace the templates of every channel that was fetched, in one transaction."""
    async with write_tx(engine) as conn:
        for item in synced:
            if item.error is None:
                await template_store.replace_channel_templates(
                    conn, channel=item.channel, synced=item.templates, now=now
                )


@asynccontextmanager
async def graph_clients(settings: Settings) -> AsyncIterator[HttpFor]:
    """HTTP clients for the CLI: each channel's Graph API over the network, except the built-in
    sandbox's channel, which an in-process sandbox answers (its templates are fixed), so that a
    sync works whether or not `wagate serve` is running."""
    network = graph_client(settings)
    in_process: httpx.AsyncClient | None = None
    sandbox: Any = None

    def http_for(channel: Channel) -> httpx.AsyncClient:
        nonlocal in_process, sandbox
        if not channel.is_sandbox:
            return network
        if in_process is None:
            from starlette.applications import Starlette
            from starlette.routing import Mount

            from wagate.bootstrap import SandboxIdentity
            from wagate.sandbox import create_sandbox_app

            identity = SandboxIdentity.load_or_create(settings.data_dir)
            # Only its Graph API is used: no state kept, no webhook ever sent.
            sandbox = create_sandbox_app(identity.sandbox_config(webhook_url="http://127.0.0.1:9"))
            app = Starlette(routes=[Mount("/sandbox", app=sandbox)])
            in_process = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        return in_process

    try:
        yield http_for
    finally:
        await network.aclose()
        if in_process is not None:
            await in_process.aclose()
            await sandbox.state.sandbox.aclose()
