"""Dashboard users (argon2 password hashes) and their sign-in sessions (only a SHA-256 of each
session cookie is stored, next to the session's CSRF token)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.ids import new_id
from wagate.store.accounts import AlreadyExists
from wagate.store.tables import accounts, channels, dashboard_sessions, users

SESSION_LIFETIME = timedelta(days=14)
"""A session lasts this long from sign-in (fixed, not sliding: no write per page view)."""

_hasher = PasswordHasher()  # argon2id with the library's current defaults


def hash_password(password: str) -> str:
    """Slow on purpose (tens of milliseconds): call it off the event loop in a server."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """Checked for unknown emails, so that they take as long as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """Who a session cookie speaks for, with what every page needs to draw its frame."""

    user_id: str
    account_id: str
    account_name: str
    email: str
    is_admin: bool
    csrf_token: str
    expires_at: datetime
    has_sandbox: bool


_PUBLIC_COLUMNS = (
    users.c.id,
    users.c.account_id,
    users.c.email,
    users.c.is_admin,
    users.c.created_at,
    users.c.last_sign_in_at,
)


async def create_user(
    conn: AsyncConnection,
    *,
    account_id: str,
    email: str,
    password_hash: str,
    is_admin: bool,
    now: datetime,
) -> dict[str, Any]:
    email = normalize_email(email)
    taken = await conn.execute(select(users.c.id).where(users.c.email == email))
    if taken.first() is not None:
        raise AlreadyExists(f"a user with email {email!r} exists already")
    row = {
        "id": new_id("usr"),
        "account_id": account_id,
        "email": email,
        "password_hash": password_hash,
        "is_admin": is_admin,
        "failed_sign_ins": 0,
        "blocked_until": None,
        "created_at": now,
        "last_sign_in_at": None,
    }
    await conn.execute(users.insert().values(**row))
    return {k: v for k, v in row.items() if k != "password_hash"}


async def list_users(conn: AsyncConnection, *, account_id: str | None) -> list[dict[str, Any]]:
    """Users without their password hashes, with their account's name."""
    query = (
        select(*_PUBLIC_COLUMNS, accounts.c.name.label("account"))
        .join(accounts, accounts.c.id == users.c.account_id)
        .order_by(users.c.created_at)
    )
    if account_id is not None:
        query = query.where(users.c.account_id == account_id)
    result = await conn.execute(query)
    return [dict(r) for r in result.mappings()]


async def count_users(conn: AsyncConnection) -> int:
    result = await conn.execute(select(func.count()).select_from(users))
    return int(result.scalar_one())


async def find_user(conn: AsyncConnection, *, email: str) -> dict[str, Any] | None:
    """The user with this email, password hash and sign-in counters included."""
    result = await conn.execute(select(users).where(users.c.email == normalize_email(email)))
    row = result.mappings().first()
    return dict(row) if row else None


async def set_password(conn: AsyncConnection, *, email: str, password_hash: str) -> bool:
    """Replace a password, lift any sign-in block and end the user's sessions."""
    user = await find_user(conn, email=email)
    if user is None:
        return False
    await conn.execute(
        update(users)
        .where(users.c.id == user["id"])
        .values(password_hash=password_hash, failed_sign_ins=0, blocked_until=None)
    )
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.user_id == user["id"]))
    return True


class UnknownUser(LookupError):
    """No such user in this account."""


class LastAdmin(Exception):
    """The change would leave the account without an admin (nobody could manage it)."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} is this account's last admin; make another user an admin first")


async def _account_user(
    conn: AsyncConnection, *, account_id: str | None, user_id: str | None, email: str | None
) -> dict[str, Any]:
    """The user by id or email, within `account_id` when given; its account's admins are locked
    (PostgreSQL) so that two changes at once cannot both remove the last admin."""
    query = select(*_PUBLIC_COLUMNS)
    if user_id is not None:
        query = query.where(users.c.id == user_id)
    if email is not None:
        query = query.where(users.c.email == normalize_email(email))
    if account_id is not None:
        query = query.where(users.c.account_id == account_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise UnknownUser("no such user" + (" in this account" if account_id else ""))
    await conn.execute(
        select(users.c.id)
        .where(users.c.account_id == row["account_id"], users.c.is_admin)
        .with_for_update()
    )
    return dict(row)


async def _other_admins(conn: AsyncConnection, user: dict[str, Any]) -> int:
    result = await conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.account_id == user["account_id"], users.c.is_admin, users.c.id != user["id"])
    )
    return int(result.scalar_one())


async def remove_user(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    user_id: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """Remove a user and end their sessions; never the account's last admin."""
    user = await _account_user(conn, account_id=account_id, user_id=user_id, email=email)
    if user["is_admin"] and not await _other_admins(conn, user):
        raise LastAdmin(user["email"])
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.user_id == user["id"]))
    await conn.execute(delete(users).where(users.c.id == user["id"]))
    return user


async def set_admin(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    is_admin: bool,
    user_id: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """Make a user an admin or a member; never demotes the account's last admin. Takes effect
    on the user's next page (the role is read with the session)."""
    user = await _account_user(conn, account_id=account_id, user_id=user_id, email=email)
    if user["is_admin"] and not is_admin and not await _other_admins(conn, user):
        raise LastAdmin(user["email"])
    await conn.execute(update(users).where(users.c.id == user["id"]).values(is_admin=is_admin))
    return user | {"is_admin": is_admin}


async def reset_password(
    conn: AsyncConnection, *, account_id: str, user_id: str, password_hash: str
) -> dict[str, Any]:
    """An admin's reset of a user of their account: the new password, any sign-in block lifted,
    and every session of the user ended."""
    user = await _account_user(conn, account_id=account_id, user_id=user_id, email=None)
    await set_password(conn, email=user["email"], password_hash=password_hash)
    return user


async def count_failed_sign_in(conn: AsyncConnection, *, user_id: str) -> int:
    """One more failed sign-in in a row; returns the count (one atomic statement, so that
    attempts made at the same moment are all counted)."""
    result = await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(failed_sign_ins=users.c.failed_sign_ins + 1)
        .returning(users.c.failed_sign_ins)
    )
    return int(result.scalar_one())


async def block_sign_in(conn: AsyncConnection, *, user_id: str, until: datetime) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(blocked_until=until))


async def start_session(
    conn: AsyncConnection, *, user_id: str, now: datetime, lifetime: timedelta = SESSION_LIFETIME
) -> str:
    """Record a successful sign-in and open a session; returns the cookie's token (never
    stored). Expired sessions of every user are cleared out here, the one place that adds any."""
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(failed_sign_ins=0, blocked_until=None, last_sign_in_at=now)
    )
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now))
    token = secrets.token_urlsafe(32)
    await conn.execute(
        dashboard_sessions.insert().values(
            token_hash=hash_session_token(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


_HAS_SANDBOX = (
    exists()
    .where(channels.c.account_id == users.c.account_id, channels.c.is_sandbox)
    .correlate(users)
)

_SESSION_USER = (
    select(
        users.c.id,
        users.c.account_id,
        accounts.c.name,
        users.c.email,
        users.c.is_admin,
        dashboard_sessions.c.csrf_token,
        dashboard_sessions.c.expires_at,
        _HAS_SANDBOX.label("has_sandbox"),
    )
    .join(users, users.c.id == dashboard_sessions.c.user_id)
    .join(accounts, accounts.c.id == users.c.account_id)
)


async def session_user(conn: AsyncConnection, *, token: str, now: datetime) -> SignedInUser | None:
    """The signed-in user of a live session (one query), or None."""
    result = await conn.execute(
        _SESSION_USER.where(
            dashboard_sessions.c.token_hash == hash_session_token(token),
            dashboard_sessions.c.expires_at > now,
        )
    )
    row = result.first()
    if row is None:
        return None
    return SignedInUser(
        user_id=row.id,
        account_id=row.account_id,
        account_name=row.name,
        email=row.email,
        is_admin=bool(row.is_admin),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
        has_sandbox=bool(row.has_sandbox),
    )


async def end_session(conn: AsyncConnection, *, token: str) -> None:
    await conn.execute(
        delete(dashboard_sessions).where(
            dashboard_sessions.c.token_hash == hash_session_token(token)
        )
    )
