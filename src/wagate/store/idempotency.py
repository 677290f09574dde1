"""Idempotency keys: the first answer to each key, per account, replayed for 24 hours.

A key is claimed in the same transaction that stores its message, with an insert that ignores
conflicts: on PostgreSQL a second transaction claiming the same key waits on the unique index
until the first commits, then sees the key taken and replays the first answer, so concurrent
repeats create exactly one message. On SQLite the writes are serialised anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.errors import IdempotencyConflict
from wagate.domain.models import MessageType, SendRequest
from wagate.store.tables import idempotency_keys

KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Replayed:
    """The stored first answer to a repeated request."""

    status_code: int
    body: dict[str, Any]
    message_id: str


def request_fingerprint(request: SendRequest) -> str:
    """What makes two requests "the same body": every field that defines the message, however
    it was encoded (JSON, form or multipart, token in the body or the header)."""
    content = request.content.as_dict()
    if request.content.type is MessageType.READ and "data" in content:
        # Which message a read receipt marks is looked up when it is accepted (the customer's
        # latest); a retry after the customer wrote again is still the same request.
        content["data"] = {k: v for k, v in content["data"].items() if k != "message_id"}
    canonical = {
        "phone": request.phone,
        "content": content,
        "reply_to": request.reply_to,
        "metadata": request.metadata,
        "channel": request.channel,
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def conflict_error(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"Idempotency-Key {key!r} was already used with a different request in the last 24 "
        "hours. Send the same body to get the first answer again, or use a new key for a new "
        "message.",
        field="idempotency_key",
    )


async def find(
    conn: AsyncConnection, wanted: Sequence[tuple[str, str]], *, now: datetime
) -> dict[tuple[str, str], tuple[str, Replayed]]:
    """The live (account_id, key) entries among `wanted`: their request hash and first answer."""
    if not wanted:
        return {}
    rows = await conn.execute(
        select(idempotency_keys).where(
            tuple_(idempotency_keys.c.account_id, idempotency_keys.c.key).in_(list(set(wanted))),
            idempotency_keys.c.created_at > now - KEY_LIFETIME,
        )
    )
    return {
        (r.account_id, r.key): (
            r.request_hash,
            Replayed(r.status_code, _as_dict(r.response), r.message_id),
        )
        for r in rows
    }


async def claim(
    conn: AsyncConnection, entries: Sequence[dict[str, Any]], *, now: datetime
) -> set[tuple[str, str]]:
    """Insert entries (account_id, key, request_hash, message_id, status_code, response); the
    (account_id, key) pairs that were free and are now ours. Expired entries are replaced."""
    if not entries:
        return set()
    pairs = [(e["account_id"], e["key"]) for e in entries]
    await conn.execute(
        delete(idempotency_keys).where(
            or_(
                *(
                    and_(idempotency_keys.c.account_id == a, idempotency_keys.c.key == k)
                    for a, k in pairs
                )
            ),
            idempotency_keys.c.created_at <= now - KEY_LIFETIME,
        )
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(idempotency_keys)
        .on_conflict_do_nothing(index_elements=["account_id", "key"])
        .returning(idempotency_keys.c.account_id, idempotency_keys.c.key)
    )
    rows = await conn.execute(statement, [e | {"created_at": now} for e in entries])
    return {(r.account_id, r.key) for r in rows}


# Expired keys are deleted by retention (store/retention.py), a few hundred at a time.


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # raw JSON on some drivers
        value = json.loads(value)
    assert isinstance(value, dict)
    return value
