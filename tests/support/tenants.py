"""More tenants beside the harness's sandbox account: accounts with their own channels (each
with its own app secret and Graph URL), tokens, and open customer service windows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.support.harness import Harness
from wagate.domain.models import InboundMessage
from wagate.ids import new_id
from wagate.store import accounts as account_store
from wagate.store import statuses as status_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx


def sqlite_url(tmp_path: Path) -> str:
    """For tests where storage does not matter (the policy, not the queries, is under test)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'wagate.db'}"


@dataclass
class Tenant:
    account_id: str
    name: str
    token: str
    channel: Channel

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def add_channel(
    gateway: Harness, *, account_id: str, graph_url: str = "https://graph.example.com"
) -> Channel:
    """A channel with its own phone number id, app secret and access token."""
    async with write_tx(gateway.engine) as conn:
        return await account_store.add_channel(
            conn,
            account_id=account_id,
            phone_number_id=str(100_000_000_000_000 + secrets.randbelow(10**12)),
            waba_id=str(200_000_000_000_000 + secrets.randbelow(10**12)),
            access_token="EAAG" + secrets.token_hex(16),
            app_secret=secrets.token_hex(16),
            verify_token="verify-" + secrets.token_hex(4),
            graph_url=graph_url,
            mps=80,
            now=gateway.clock.now(),
        )


async def add_tenant(
    gateway: Harness, name: str, *, graph_url: str = "https://graph.example.com"
) -> Tenant:
    """An account with one channel (its default) and an API token."""
    async with write_tx(gateway.engine) as conn:
        account = await account_store.create_account(conn, name=name, now=gateway.clock.now())
        token, _ = await account_store.create_token(
            conn, account_id=account["id"], name="test", now=gateway.clock.now()
        )
    channel = await add_channel(gateway, account_id=account["id"], graph_url=graph_url)
    return Tenant(account["id"], name, token, channel)


async def open_window(gateway: Harness, channel: Channel, phone: str) -> None:
    """The customer `phone` has just written to `channel` (as a signed webhook would record)."""
    async with write_tx(gateway.engine) as conn:
        await status_store.record_inbound(
            conn,
            channel=channel,
            message=InboundMessage(
                phone_number_id=channel.phone_number_id,
                wa_id=phone.lstrip("+"),
                wamid=new_id("wamid.test"),
                timestamp=datetime.now(UTC),
                kind="text",
                text="hello",
            ),
            now=gateway.clock.now(),
        )
