"""What a business sets and sees of its callbacks: the account's callback URL and signing
secret, and the delivery log (each event's state, the dead letters, replaying one)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate import secret_box
from wagate.domain.callbacks import iso
from wagate.store import callback_lanes
from wagate.store.callbacks import PENDING
from wagate.store.tables import accounts, callback_accounts, callback_deliveries

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- the account's URL


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    account_id: str
    callback_url: str | None
    callback_secret: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "callback_url": self.callback_url,
            "callback_secret": self.callback_secret,
        }


async def get_callback(conn: AsyncConnection, *, account_id: str) -> CallbackSettings | None:
    result = await conn.execute(
        select(accounts.c.callback_url, accounts.c.callback_secret).where(
            accounts.c.id == account_id
        )
    )
    row = result.first()
    if row is None:
        return None
    return CallbackSettings(
        account_id, row.callback_url, secret_box.open_optional(row.callback_secret)
    )


async def set_callback(
    conn: AsyncConnection, *, account_id: str, url: str | None, rotate_secret: bool = False
) -> CallbackSettings:
    """Set (or, with None, clear) the account's callback URL. An account gets its signing
    secret with its first URL; `rotate_secret` replaces it (the old one stops at once). A
    cleared URL keeps the secret, so setting a URL again does not change what receivers check."""
    current = await get_callback(conn, account_id=account_id)
    if current is None:
        raise LookupError(f"no account {account_id}")
    secret = current.callback_secret
    if rotate_secret or (url is not None and secret is None):
        secret = new_secret()
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(callback_url=url, callback_secret=secret_box.seal_optional(secret))
    )
    return CallbackSettings(account_id, url, secret)


# --------------------------------------------------------------------------- the delivery log


_WITH_ACCOUNT = select(
    callback_deliveries,
    callback_accounts.c.due_at.label("account_due_at"),
    callback_accounts.c.failures.label("account_failures"),
).outerjoin(callback_accounts, callback_accounts.c.account_id == callback_deliveries.c.account_id)


def delivery_view(row: Any) -> dict[str, Any]:
    """A delivery as the API and the dashboard show it: its state and the event it carries.
    A pending event waits for its account's next try when the receiver is backing off."""
    pending = row["status"] == PENDING
    next_attempt = row["available_at"]
    backing_off = row.get("account_failures") and row.get("account_due_at") is not None
    if pending and backing_off and row["account_due_at"] > next_attempt:
        next_attempt = row["account_due_at"]
    return {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "message_id": row["message_id"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "next_attempt_at": iso(next_attempt) if pending else None,
        "delivered_at": iso(row["delivered_at"]) if row["delivered_at"] else None,
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "event": row["payload"],
    }


async def list_deliveries(
    conn: AsyncConnection,
    *,
    account_id: str,
    status: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The account's deliveries, newest first; returns the page and the next page's cursor."""
    conditions = [callback_deliveries.c.account_id == account_id]
    if status is not None:
        conditions.append(callback_deliveries.c.status == status)
    if cursor is not None:
        conditions.append(callback_deliveries.c.seq < cursor)
    result = await conn.execute(
        _WITH_ACCOUNT.where(and_(*conditions))
        .order_by(callback_deliveries.c.seq.desc())
        .limit(limit + 1)
    )
    rows = list(result.mappings())
    page = [delivery_view(r) for r in rows[:limit]]
    next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return page, next_cursor


async def waiting_in_lane(
    conn: AsyncConnection, *, account_id: str, delivery_ids: list[str]
) -> set[str]:
    """Which of these pending deliveries wait behind an older pending event of their lane (a
    message's earlier status, a customer's earlier message): they are not tried before it."""
    if not delivery_ids:
        return set()
    older = callback_deliveries.alias("older")
    result = await conn.execute(
        select(callback_deliveries.c.id).where(
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.id.in_(delivery_ids),
            callback_deliveries.c.status == PENDING,
            exists().where(
                older.c.lane == callback_deliveries.c.lane,
                older.c.seq < callback_deliveries.c.seq,
                older.c.status == PENDING,
            ),
        )
    )
    return set(result.scalars())


async def get_delivery(
    conn: AsyncConnection, *, account_id: str, delivery_id: str
) -> dict[str, Any] | None:
    result = await conn.execute(
        _WITH_ACCOUNT.where(
            callback_deliveries.c.id == delivery_id,
            callback_deliveries.c.account_id == account_id,
        )
    )
    row = result.mappings().first()
    return delivery_view(row) if row else None


class DeliveryPending(Exception):
    """The delivery is still pending (being retried, or waiting for its lane): there is nothing
    to replay yet."""

    def __init__(self, delivery: dict[str, Any]) -> None:
        self.delivery = delivery
        super().__init__(f"delivery {delivery['id']} is still pending")


async def replay(
    conn: AsyncConnection, *, account_id: str, delivery_id: str, now: datetime
) -> dict[str, Any] | None:
    """Put a failed (dead) or delivered event back in the queue, due now, and return it; None
    when the account has no such delivery. Raises `DeliveryPending` for one still pending.

    A replay is one more attempt plus retries within what is left of the give-up period (for a
    dead letter: none), so a replay that fails is a dead letter again, with the new error. It
    also ends the account's backoff: the receiver is tried now (the business has just fixed
    it, most likely)."""
    result = await conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.id == delivery_id,
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.status != PENDING,
        )
        .values(
            status=PENDING,
            available_at=now,
            delivered_at=None,
            lease_until=None,
            lease_owner=None,
        )
        .returning(callback_deliveries.c.seq, callback_deliveries.c.lane)
    )
    replayed = result.first()
    if replayed is not None:
        await callback_lanes.arrive(conn, [(replayed.seq, replayed.lane, account_id)])
        await callback_lanes.retry_now(conn, account_id, now=now)
    delivery = await get_delivery(conn, account_id=account_id, delivery_id=delivery_id)
    if delivery is not None and replayed is None:
        raise DeliveryPending(delivery)
    return delivery
