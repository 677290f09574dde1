"""Accounts, their API tokens (stored only as SHA-256 hashes) and their channels."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate import secret_box
from wagate.ids import new_id
from wagate.store.sql import from_driver, marks
from wagate.store.tables import accounts, api_tokens, channels

TOKEN_PREFIX = "wg_"
# last_used_at is a hint for humans; writing it on every request would cost a write per send.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AlreadyExists(Exception):
    """A name or number that must be unique is taken."""


class UnknownAccount(LookupError):
    """No account by that name or id."""


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    account_id: str
    phone_number_id: str
    waba_id: str
    display_phone_number: str | None
    access_token: str
    app_secret: str
    verify_token: str
    graph_url: str
    mps: int
    is_default: bool
    is_sandbox: bool
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """What may be shown: secrets are never echoed back."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "display_phone_number": self.display_phone_number,
            "graph_url": self.graph_url,
            "mps": self.mps,
            "is_default": self.is_default,
            "is_sandbox": self.is_sandbox,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }


def hash_token(token: str) -> str:
    # Tokens are 32 random bytes, so a fast hash is as safe as a slow one and costs nothing
    # per request.
    return hashlib.sha256(token.encode()).hexdigest()


async def create_account(
    conn: AsyncConnection, *, name: str, now: datetime, api_rate: int = 1000
) -> dict[str, Any]:
    if await find_account(conn, name=name) is not None:
        raise AlreadyExists(f"an account named {name!r} exists already")
    row = {"id": new_id("acc"), "name": name, "api_rate": api_rate, "created_at": now}
    await conn.execute(accounts.insert().values(**row))
    return row


async def find_account(conn: AsyncConnection, *, name: str) -> dict[str, Any] | None:
    result = await conn.execute(select(accounts).where(accounts.c.name == name))
    row = result.mappings().first()
    return dict(row) if row else None


async def require_account(conn: AsyncConnection, *, name: str) -> dict[str, Any]:
    account = await find_account(conn, name=name)
    if account is None:
        raise UnknownAccount(f"no account named {name!r}; create it with `wagate accounts create`")
    return account


async def list_accounts(conn: AsyncConnection) -> list[dict[str, Any]]:
    result = await conn.execute(select(accounts).order_by(accounts.c.created_at))
    return [dict(r) for r in result.mappings()]


async def create_token(
    conn: AsyncConnection, *, account_id: str, name: str, now: datetime
) -> tuple[str, dict[str, Any]]:
    """Returns the token (shown once, never stored) and its stored row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": new_id("tok"),
        "account_id": account_id,
        "name": name,
        "prefix": token[:10],
        "token_hash": hash_token(token),
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    await conn.execute(api_tokens.insert().values(**row))
    return token, row


async def list_tokens(conn: AsyncConnection, *, account_id: str | None) -> list[dict[str, Any]]:
    query = select(api_tokens).order_by(api_tokens.c.created_at)
    if account_id is not None:
        query = query.where(api_tokens.c.account_id == account_id)
    result = await conn.execute(query)
    return [dict(r) for r in result.mappings()]


async def revoke_token(
    conn: AsyncConnection, *, token_id: str, account_id: str | None, now: datetime
) -> bool:
    """Revoke by token id or by its prefix; returns whether a live token was revoked."""
    query = update(api_tokens).where(
        (api_tokens.c.id == token_id) | (api_tokens.c.prefix == token_id),
        api_tokens.c.revoked_at.is_(None),
    )
    if account_id is not None:
        query = query.where(api_tokens.c.account_id == account_id)
    result = await conn.execute(query.values(revoked_at=now))
    return result.rowcount > 0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an API token speaks for."""

    account_id: str
    api_rate: int  # requests per second; 0 = no limit
    stale_token_id: str | None = None  # set when the token's last_used_at needs refreshing


async def authenticate(conn: AsyncConnection, *, token: str, now: datetime) -> Caller | None:
    """The account of a live token, or None for unknown and revoked tokens alike (one
    indexed lookup either way, so the two cannot be told apart by timing)."""
    result = await conn.execute(
        select(
            api_tokens.c.id, api_tokens.c.account_id, api_tokens.c.last_used_at, accounts.c.api_rate
        )
        .join(accounts, accounts.c.id == api_tokens.c.account_id)
        .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None))
    )
    row = result.first()
    if row is None:
        return None
    stale = row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION
    return Caller(str(row.account_id), int(row.api_rate), row.id if stale else None)


async def touch_token(conn: AsyncConnection, *, token_id: str, now: datetime) -> None:
    await conn.execute(
        update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
    )


def channel_from_row(row: Any) -> Channel:
    """A channel as stored, its secrets opened (wagate.secret_box caches each opening)."""
    fields = {k: row[k] for k in Channel.__dataclass_fields__}
    fields["access_token"] = secret_box.open_secret(fields["access_token"])
    fields["app_secret"] = secret_box.open_secret(fields["app_secret"])
    return Channel(**fields)


async def add_channel(
    conn: AsyncConnection,
    *,
    account_id: str,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    app_secret: str,
    verify_token: str,
    graph_url: str,
    mps: int,
    now: datetime,
    display_phone_number: str | None = None,
    is_sandbox: bool = False,
) -> Channel:
    existing = await conn.execute(
        select(channels.c.id).where(channels.c.phone_number_id == phone_number_id)
    )
    if existing.first() is not None:
        raise AlreadyExists(f"phone number id {phone_number_id} is already a channel")
    has_default = await conn.execute(
        select(channels.c.id).where(channels.c.account_id == account_id, channels.c.is_default)
    )
    row = {
        "id": new_id("ch"),
        "account_id": account_id,
        "phone_number_id": phone_number_id,
        "waba_id": waba_id,
        "display_phone_number": display_phone_number,
        "access_token": secret_box.seal(access_token),
        "app_secret": secret_box.seal(app_secret),
        "verify_token": verify_token,
        "graph_url": graph_url.rstrip("/"),
        "mps": mps,
        "is_default": has_default.first() is None,
        "is_sandbox": is_sandbox,
        "created_at": now,
    }
    await conn.execute(channels.insert().values(**row))
    return channel_from_row(row)


async def list_channels(conn: AsyncConnection, *, account_id: str | None = None) -> list[Channel]:
    query = select(channels).order_by(channels.c.created_at)
    if account_id is not None:
        query = query.where(channels.c.account_id == account_id)
    result = await conn.execute(query)
    return [channel_from_row(r) for r in result.mappings()]


class _ChannelSelect:
    """`SELECT <a channel's columns> FROM channels WHERE …` as the driver's SQL, for the lookups
    every webhook and every send makes: built once per dialect, each column's conversion looked
    up once. (Through SQLAlchemy's `select()`, building the statement, its cache key and the
    expanding IN lists cost more CPU than the query; a signed webhook makes one or two.)"""

    def __init__(self) -> None:
        self._prepared: dict[str, tuple[str, tuple[Callable[[Any], Any], ...]]] = {}

    def _prepare(self, dialect: Dialect) -> tuple[str, tuple[Callable[[Any], Any], ...]]:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            quote = dialect.identifier_preparer.quote
            head = "SELECT {} FROM {} WHERE ".format(
                ", ".join(quote(name) for name in _CHANNEL_FIELDS),
                dialect.identifier_preparer.format_table(channels),
            )
            converters = tuple(from_driver(dialect, channels.c[name]) for name in _CHANNEL_FIELDS)
            prepared = self._prepared[dialect.name] = (head, converters)
        return prepared

    async def fetch(
        self, conn: AsyncConnection, where: Callable[[Dialect], str], params: Sequence[Any]
    ) -> list[Channel]:
        """The channels matching `where` (SQL built for the dialect, with its marks)."""
        head, converters = self._prepare(conn.dialect)
        result = await conn.exec_driver_sql(head + where(conn.dialect), tuple(params))
        found = []
        for row in result:
            fields = dict(
                zip(
                    _CHANNEL_FIELDS,
                    (convert(value) for convert, value in zip(converters, row, strict=True)),
                    strict=True,
                )
            )
            found.append(channel_from_row(fields))
        return found


_CHANNEL_FIELDS = tuple(Channel.__dataclass_fields__)
_SELECT_CHANNELS = _ChannelSelect()


async def get_channel(conn: AsyncConnection, *, channel_id: str) -> Channel | None:
    found = await _SELECT_CHANNELS.fetch(
        conn, lambda dialect: f"{channels.c.id.name} = {marks(dialect, 1)}", [channel_id]
    )
    return found[0] if found else None


async def channels_named(
    conn: AsyncConnection, *, phone_number_ids: Sequence[str] = (), waba_ids: Sequence[str] = ()
) -> list[Channel]:
    """The channels with any of these phone number ids or WABA ids (both indexed)."""
    numbers, wabas = list(phone_number_ids), list(waba_ids)
    if not numbers and not wabas:
        return []

    def where(dialect: Dialect) -> str:
        tests = []
        if numbers:
            tests.append(f"phone_number_id IN ({marks(dialect, len(numbers))})")
        if wabas:
            tests.append(f"waba_id IN ({marks(dialect, len(wabas))})")
        return " OR ".join(tests)

    return await _SELECT_CHANNELS.fetch(conn, where, numbers + wabas)


async def channel_for_send(
    conn: AsyncConnection,
    *,
    account_id: str,
    wanted: str | None,
    unavailable: Container[str] = (),
) -> Channel | None:
    """The account's channel named by id, phone number id or display number; else its default,
    or, when the default cannot be reached (`unavailable`: the sandbox's, once a real channel
    was added), the account's first channel that can."""
    query = select(channels).where(channels.c.account_id == account_id)
    if wanted:
        digits = wanted.lstrip("+")
        query = query.where(
            (channels.c.id == wanted)
            | (channels.c.phone_number_id == wanted)
            | (channels.c.display_phone_number == digits)
        )
    else:
        query = query.order_by(channels.c.is_default.desc(), channels.c.created_at)
    if wanted or not unavailable:
        row = (await conn.execute(query.limit(1))).mappings().first()
        return channel_from_row(row) if row else None
    rows = (await conn.execute(query)).mappings().all()
    reachable = [r for r in rows if r["id"] not in unavailable] or rows
    return channel_from_row(reachable[0]) if reachable else None


async def channels_by_verify_token(conn: AsyncConnection, token: str) -> list[Channel]:
    result = await conn.execute(select(channels).where(channels.c.verify_token == token))
    return [channel_from_row(r) for r in result.mappings()]


async def set_channel_graph_url(conn: AsyncConnection, *, channel_id: str, graph_url: str) -> None:
    await conn.execute(
        update(channels).where(channels.c.id == channel_id).values(graph_url=graph_url.rstrip("/"))
    )
