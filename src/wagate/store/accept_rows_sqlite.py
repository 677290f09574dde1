"""`AcceptRows` for a SQLite file: the accept transaction's statements written out for SQLite and
run straight on the sqlite3 connection (`db.direct_write_tx`), on the event loop.

Through SQLAlchemy and aiosqlite each statement cost 50-90 µs of CPU and a request that commits
alone runs seven, most of its time; here each costs a few. Values are converted both ways by the
same functions SQLAlchemy applies for these columns (taken from the column types), so the rows
stored and read are exactly those of `CoreRows`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import sqlite

from wagate.store.accept_rows import (
    INSERT_MESSAGES,
    INSERT_OUTBOX,
    ChannelChoice,
    Pair,
    TokenRow,
    outbox_rows,
    queued_steps,
)
from wagate.store.idempotency import KEY_LIFETIME, Replayed
from wagate.store.outbox import INSERT_STEPS
from wagate.store.outbox_lanes import INSERT_LANES, heads_of
from wagate.store.sql import from_driver, to_driver
from wagate.store.tables import api_tokens, channels, conversations, idempotency_keys

_DIALECT = sqlite.dialect()

_TOKENS = """
SELECT t.id, t.token_hash, t.account_id, t.last_used_at, a.api_rate
FROM api_tokens t JOIN accounts a ON a.id = t.account_id
WHERE t.token_hash IN ({hashes}) AND t.revoked_at IS NULL
"""
_CHANNELS = """
SELECT id, account_id, phone_number_id, display_phone_number, is_default
FROM channels WHERE account_id IN ({accounts}) ORDER BY created_at, id
"""
_WINDOWS = """
SELECT channel_id, phone, last_inbound_at FROM conversations
WHERE channel_id IN ({channel_ids}) AND phone IN ({phones})
"""
_KEYS = """
SELECT account_id, key, request_hash, status_code, response, message_id FROM idempotency_keys
WHERE (account_id, key) IN (VALUES {pairs}) AND created_at > ?
"""
_EXPIRED_KEYS = """
DELETE FROM idempotency_keys WHERE (account_id, key) IN (VALUES {pairs}) AND created_at <= ?
"""
_CLAIM_KEYS = """
INSERT INTO idempotency_keys
    (account_id, key, request_hash, message_id, status_code, response, created_at)
VALUES {rows}
ON CONFLICT (account_id, key) DO NOTHING
RETURNING account_id, key
"""
_TOUCH = "UPDATE api_tokens SET last_used_at = ? WHERE id IN ({ids})"


def _marks(count: int, width: int = 1) -> str:
    one = "?" if width == 1 else "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * count)


_time_to_db = to_driver(_DIALECT, api_tokens.c.last_used_at)
_time_from_db = from_driver(_DIALECT, api_tokens.c.last_used_at)
_is_default = from_driver(_DIALECT, channels.c.is_default)
_inbound_at = from_driver(_DIALECT, conversations.c.last_inbound_at)
_response_to_db = to_driver(_DIALECT, idempotency_keys.c.response)
_response_from_db = from_driver(_DIALECT, idempotency_keys.c.response)


class DirectRows:
    """`AcceptRows` on a sqlite3 connection inside `direct_write_tx`'s transaction."""

    def __init__(self, driver: sqlite3.Connection) -> None:
        self.driver = driver

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self.driver.execute(sql, params).fetchall()

    async def tokens(self, hashes: Sequence[str]) -> list[TokenRow]:
        rows = self._rows(_TOKENS.format(hashes=_marks(len(hashes))), hashes)
        return [TokenRow(r[0], r[1], r[2], _time_from_db(r[3]), r[4]) for r in rows]

    async def channels(self, account_ids: Sequence[str]) -> list[ChannelChoice]:
        rows = self._rows(_CHANNELS.format(accounts=_marks(len(account_ids))), account_ids)
        return [ChannelChoice(r[0], r[1], r[2], r[3], bool(_is_default(r[4]))) for r in rows]

    async def idempotency(
        self, pairs: Sequence[Pair], *, now: datetime
    ) -> dict[Pair, tuple[str, Replayed]]:
        unique = list(set(pairs))
        if not unique:
            return {}
        flat = [value for pair in unique for value in pair]
        sql = _KEYS.format(pairs=_marks(len(unique), 2))
        rows = self._rows(sql, [*flat, _time_to_db(now - KEY_LIFETIME)])
        return {(r[0], r[1]): (r[2], Replayed(r[3], _response_from_db(r[4]), r[5])) for r in rows}

    async def windows(
        self, channel_ids: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], datetime]:
        sql = _WINDOWS.format(channel_ids=_marks(len(channel_ids)), phones=_marks(len(phones)))
        rows = self._rows(sql, [*channel_ids, *phones])
        return {(r[0], r[1]): _inbound_at(r[2]) for r in rows}

    async def claim_keys(self, entries: Sequence[dict[str, Any]], *, now: datetime) -> set[Pair]:
        if not entries:
            return set()
        pairs = [value for e in entries for value in (e["account_id"], e["key"])]
        at = _time_to_db(now)
        expired = _EXPIRED_KEYS.format(pairs=_marks(len(entries), 2))
        self.driver.execute(expired, [*pairs, _time_to_db(now - KEY_LIFETIME)])
        values = [
            value
            for e in entries
            for value in (
                e["account_id"],
                e["key"],
                e["request_hash"],
                e["message_id"],
                e["status_code"],
                _response_to_db(e["response"]),
                at,
            )
        ]
        rows = self._rows(_CLAIM_KEYS.format(rows=_marks(len(entries), 7)), values)
        return {(r[0], r[1]) for r in rows}

    async def store(self, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
        queued = outbox_rows(rows, now)
        for insert, values in (
            (INSERT_MESSAGES, rows),
            (INSERT_STEPS, queued_steps(rows, now)),
            (INSERT_OUTBOX, queued),
            (INSERT_LANES, heads_of(queued)),
        ):
            sql, params = insert.statement(_DIALECT, values)
            self.driver.executemany(sql, params)

    async def touch_tokens(self, token_ids: Sequence[str], *, now: datetime) -> None:
        self.driver.execute(
            _TOUCH.format(ids=_marks(len(token_ids))), [_time_to_db(now), *token_ids]
        )
