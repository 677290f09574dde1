"""Getting a server ready: migrations, the sandbox's account, channel and first token, and the
dashboard's first admin."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import secret_box
from wagate.clock import Clock
from wagate.config import Settings
from wagate.store import accounts as account_store
from wagate.store import users as user_store
from wagate.store.db import write_tx

if TYPE_CHECKING:
    from wagate.sandbox import SandboxConfig

SANDBOX_ACCOUNT = "sandbox"
FIRST_ADMIN_EMAIL = "admin@localhost"


@dataclass(frozen=True)
class SandboxIdentity:
    """The sandbox's fake Meta credentials, made once per data folder and kept there."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    verify_token: str

    def sandbox_config(self, *, webhook_url: str, **knobs: Any) -> SandboxConfig:
        """The simulator's settings for this identity (`knobs`: other SandboxConfig fields)."""
        from wagate.sandbox import SandboxConfig

        return SandboxConfig(
            phone_number_id=self.phone_number_id,
            waba_id=self.waba_id,
            display_phone_number=self.display_phone_number,
            access_token=self.access_token,
            app_secret=self.app_secret,
            webhook_url=webhook_url,
            **knobs,
        )

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SandboxIdentity:
        path = data_dir / "sandbox.json"
        if path.exists():
            return cls(**json.loads(path.read_text()))
        identity = cls(
            phone_number_id="100000000000001",
            waba_id="200000000000001",
            display_phone_number="15550000001",
            access_token="sandbox-" + secrets.token_urlsafe(24),
            app_secret=secrets.token_hex(16),
            verify_token=secrets.token_urlsafe(12),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(identity), indent=2))
        path.chmod(0o600)
        return identity


@dataclass(frozen=True)
class SandboxReady:
    identity: SandboxIdentity
    graph_url: str
    account_name: str
    new_token: str | None  # set only when this start created the account's first token


def sandbox_forced(settings: Settings) -> bool:
    """WAGATE_SANDBOX=on: the sandbox runs whatever channels there are."""
    return settings.sandbox.lower() in ("on", "true", "1", "yes")


async def sandbox_wanted(settings: Settings, engine: AsyncEngine) -> bool:
    mode = settings.sandbox.lower()
    if sandbox_forced(settings):
        return True
    if mode in ("off", "false", "0", "no"):
        return False
    async with engine.connect() as conn:
        channels = await account_store.list_channels(conn)
    return not any(not c.is_sandbox for c in channels)


async def ensure_sandbox(settings: Settings, engine: AsyncEngine, clock: Clock) -> SandboxReady:
    """Make sure the sandbox account and channel exist; mint a token on the very first start."""
    identity = SandboxIdentity.load_or_create(settings.data_dir)
    secret_box.configure(settings)  # its channel's secrets are sealed like any other's
    graph_url = settings.local_url + "/sandbox/graph"
    new_token = None
    async with write_tx(engine) as conn:
        now = clock.now()
        account = await account_store.find_account(conn, name=SANDBOX_ACCOUNT)
        if account is None:
            account = await account_store.create_account(conn, name=SANDBOX_ACCOUNT, now=now)
        existing = {
            c.phone_number_id: c
            for c in await account_store.list_channels(conn, account_id=account["id"])
        }
        if identity.phone_number_id not in existing:
            await account_store.add_channel(
                conn,
                account_id=account["id"],
                phone_number_id=identity.phone_number_id,
                waba_id=identity.waba_id,
                display_phone_number=identity.display_phone_number,
                access_token=identity.access_token,
                app_secret=identity.app_secret,
                verify_token=identity.verify_token,
                graph_url=graph_url,
                mps=80,
                now=now,
                is_sandbox=True,
            )
        elif existing[identity.phone_number_id].graph_url != graph_url:
            await account_store.set_channel_graph_url(
                conn, channel_id=existing[identity.phone_number_id].id, graph_url=graph_url
            )
        if not await account_store.list_tokens(conn, account_id=account["id"]):
            new_token, _ = await account_store.create_token(
                conn, account_id=account["id"], name="sandbox", now=now
            )
    return SandboxReady(identity, graph_url, SANDBOX_ACCOUNT, new_token)


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: str  # shown once, never stored


async def ensure_first_admin(
    engine: AsyncEngine, clock: Clock, *, account_name: str
) -> FirstAdmin | None:
    """On the very first start (no dashboard users at all), an admin of `account_name` with a
    generated password; None when there are users already (or no such account)."""
    async with engine.connect() as conn:
        if await user_store.count_users(conn):
            return None
    password = secrets.token_urlsafe(12)
    password_hash = await asyncio.to_thread(user_store.hash_password, password)
    async with write_tx(engine) as conn:
        if await user_store.count_users(conn):
            return None
        account = await account_store.find_account(conn, name=account_name)
        if account is None:
            return None
        await user_store.create_user(
            conn,
            account_id=account["id"],
            email=FIRST_ADMIN_EMAIL,
            password_hash=password_hash,
            is_admin=True,
            now=clock.now(),
        )
    return FirstAdmin(FIRST_ADMIN_EMAIL, password)
