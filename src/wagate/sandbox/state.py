"""The sandbox's memory: customer windows, messages both ways, statuses due, webhooks pending.

One SQLite database (stdlib `sqlite3`, in memory or in a file in WAL mode with
`synchronous=NORMAL`: durable across a restart of the process, no fsync per message). Every call
is small and synchronous; the sandbox calls it from its event loop only.

Statuses go out as a chain: a message has at most one status waiting (`next_status`, due at
`next_due`); the next one is scheduled only once the webhook carrying the previous one has been
acknowledged, so the statuses of one message always arrive in order, however many webhook POSTs
are in flight or being retried.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    last_inbound_at REAL NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wamid TEXT NOT NULL UNIQUE,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT,
    error TEXT,
    billing TEXT,
    payload_key TEXT,
    created_at REAL NOT NULL,
    next_status TEXT,
    next_due REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_customer ON messages (phone_number_id, wa_id, seq);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    statuses TEXT,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_result TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (next_attempt);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class DueStatus:
    """A status whose time has come, with what its webhook object needs."""

    wamid: str
    phone_number_id: str
    wa_id: str
    status: str
    error: dict[str, Any] | None
    billing: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PendingWebhook:
    id: int
    kind: str
    body: str
    statuses: list[tuple[str, str]]
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message the business sent, as accepted by the Graph API."""

    wamid: str
    phone_number_id: str
    wa_id: str
    type: str
    content: dict[str, Any]
    payload_key: str
    created_at: float
    first_status: str
    first_due: float
    error: dict[str, Any] | None = None
    billing: dict[str, Any] | None = None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SandboxState:
    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path),
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.row_factory = sqlite3.Row
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._tx():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _bump(self, name: str, by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def bump(self, name: str, by: int = 1) -> None:
        self._bump(name, by)

    # --- windows and messages ---------------------------------------------------------------

    def last_inbound_at(self, phone_number_id: str, wa_id: str) -> float | None:
        row = self._db.execute(
            "SELECT last_inbound_at FROM windows WHERE phone_number_id = ? AND wa_id = ?",
            (phone_number_id, wa_id),
        ).fetchone()
        return None if row is None else float(row[0])

    def record_inbound(
        self,
        *,
        wamid: str,
        phone_number_id: str,
        wa_id: str,
        type: str,
        content: dict[str, Any],
        sent_at: float,
        received_at: float,
    ) -> None:
        """A customer's message: logged, and the window runs 24 h from when they sent it."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO messages (wamid, phone_number_id, wa_id, direction, type, content,"
                " created_at) VALUES (?, ?, ?, 'inbound', ?, ?, ?)",
                (wamid, phone_number_id, wa_id, type, json.dumps(content), received_at),
            )
            db.execute(
                "INSERT INTO windows (phone_number_id, wa_id, last_inbound_at) VALUES (?, ?, ?) "
                "ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET "
                "last_inbound_at = max(last_inbound_at, excluded.last_inbound_at)",
                (phone_number_id, wa_id, sent_at),
            )

    def record_outbound(self, msg: Outbound) -> None:
        self._db.execute(
            "INSERT INTO messages (wamid, phone_number_id, wa_id, direction, type, content,"
            " status, error, billing, payload_key, created_at, next_status, next_due)"
            " VALUES (?, ?, ?, 'outbound', ?, ?, 'accepted', ?, ?, ?, ?, ?, ?)",
            (
                msg.wamid,
                msg.phone_number_id,
                msg.wa_id,
                msg.type,
                json.dumps(msg.content),
                None if msg.error is None else json.dumps(msg.error),
                None if msg.billing is None else json.dumps(msg.billing),
                msg.payload_key,
                msg.created_at,
                msg.first_status,
                msg.first_due,
            ),
        )

    def last_outbound(
        self, phone_number_id: str, wa_id: str, type: str | None, wamid: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """The newest message of `type` (None: any) the business sent this customer (or the
        one `wamid`)."""
        sql = (
            "SELECT wamid, content FROM messages WHERE phone_number_id = ? AND wa_id = ?"
            " AND direction = 'outbound' AND type = coalesce(?, type)"
        )
        args: list[Any] = [phone_number_id, wa_id, type]
        if wamid is not None:
            sql += " AND wamid = ?"
            args.append(wamid)
        row = self._db.execute(sql + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        return None if row is None else (str(row[0]), json.loads(row[1]))

    def mark_read(self, phone_number_id: str, wamid: str) -> bool:
        """The business marked a customer's message read; False if there is no such message."""
        row = self._db.execute(
            "SELECT 1 FROM messages WHERE phone_number_id = ? AND wamid = ?"
            " AND direction = 'inbound'",
            (phone_number_id, wamid),
        ).fetchone()
        if row is not None:
            self._db.execute("UPDATE messages SET status = 'read' WHERE wamid = ?", (wamid,))
        return row is not None

    def conversation(
        self, phone_number_id: str, wa_id: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """One customer's messages both ways, oldest first (the newest `limit` if given)."""
        rows = self._db.execute(
            "SELECT wamid, direction, type, content, status, error, created_at FROM messages"
            " WHERE phone_number_id = ? AND wa_id = ? ORDER BY seq DESC LIMIT ?",
            (phone_number_id, wa_id, -1 if limit is None else limit),
        ).fetchall()[::-1]
        return [
            {
                "wamid": r["wamid"],
                "direction": r["direction"],
                "type": r["type"],
                "content": json.loads(r["content"]),
                "status": r["status"],
                "error": _loads(r["error"]),
                "created_at": r["created_at"],
            }
            for r in rows
        ]

    # --- statuses ---------------------------------------------------------------------------

    def next_status_due(self) -> float | None:
        row = self._db.execute(
            "SELECT min(next_due) FROM messages WHERE next_due IS NOT NULL"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def due_statuses(self, now: float, limit: int) -> list[DueStatus]:
        rows = self._db.execute(
            "SELECT wamid, phone_number_id, wa_id, next_status, error, billing FROM messages"
            " WHERE next_due IS NOT NULL AND next_due <= ? ORDER BY next_due, seq LIMIT ?",
            (now, limit),
        ).fetchall()
        return [DueStatus(r[0], r[1], r[2], r[3], _loads(r[4]), _loads(r[5])) for r in rows]

    def add_status_webhook(self, body: str, statuses: Sequence[tuple[str, str]], now: float) -> int:
        """Store a webhook carrying `statuses` and take them off the schedule, atomically."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO webhooks (kind, body, statuses, created_at, next_attempt)"
                " VALUES ('status', ?, ?, ?, ?)",
                (body, json.dumps(statuses), now, now),
            )
            db.executemany(
                "UPDATE messages SET next_due = NULL WHERE wamid = ?",
                [(wamid,) for wamid, _ in statuses],
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def add_webhook(
        self, kind: str, body: str, now: float, attempts: int, next_attempt: float
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO webhooks (kind, body, created_at, attempts, next_attempt)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, body, now, attempts, next_attempt),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    # --- webhook outbox ---------------------------------------------------------------------

    def due_webhooks(self, now: float, exclude: Sequence[int], limit: int) -> list[PendingWebhook]:
        marks = ",".join("?" * len(exclude))
        rows = self._db.execute(
            "SELECT id, kind, body, statuses, created_at, attempts FROM webhooks"
            f" WHERE next_attempt <= ? AND id NOT IN ({marks}) ORDER BY next_attempt, id LIMIT ?",
            (now, *exclude, limit),
        ).fetchall()
        return [
            PendingWebhook(r[0], r[1], r[2], [tuple(s) for s in _loads(r[3]) or ()], r[4], r[5])
            for r in rows
        ]

    def next_webhook_attempt(self, exclude: Sequence[int]) -> float | None:
        marks = ",".join("?" * len(exclude))
        row = self._db.execute(
            f"SELECT min(next_attempt) FROM webhooks WHERE id NOT IN ({marks})", tuple(exclude)
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def webhook_delivered(
        self,
        hook: PendingWebhook,
        now: float,
        successor: Callable[[str], str | None],
        delay: float,
    ) -> None:
        """The receiver took it: record the statuses it carried and schedule what follows."""
        with self._tx() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (hook.id,))
            updates = []
            for wamid, status in hook.statuses:
                after = successor(status)
                updates.append((status, after, None if after is None else now + delay, wamid))
            db.executemany(
                "UPDATE messages SET status = ?, next_status = ?, next_due = ? WHERE wamid = ?",
                updates,
            )
            self._bump("webhooks_delivered")
            if hook.statuses:
                self._bump("statuses_delivered", len(hook.statuses))

    def webhook_retry(self, hook_id: int, attempts: int, next_attempt: float, result: str) -> None:
        self._db.execute(
            "UPDATE webhooks SET attempts = ?, next_attempt = ?, last_result = ? WHERE id = ?",
            (attempts, next_attempt, result, hook_id),
        )
        self._bump("webhook_failed_attempts")

    def webhook_dropped(self, hook: PendingWebhook) -> None:
        """Retries given up: the statuses it carried end their messages' chains."""
        with self._tx() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (hook.id,))
            db.executemany(
                "UPDATE messages SET next_status = NULL, next_due = NULL WHERE wamid = ?",
                [(wamid,) for wamid, _ in hook.statuses],
            )
            self._bump("webhook_failed_attempts")
            self._bump("webhooks_dropped")

    # --- numbers ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        db = self._db
        counters = {str(r[0]): int(r[1]) for r in db.execute("SELECT name, value FROM counters")}
        by_recipient = {
            str(r[0]): int(r[1])
            for r in db.execute(
                "SELECT wa_id, count(*) FROM messages WHERE direction = 'outbound'"
                " GROUP BY wa_id ORDER BY wa_id"
            )
        }
        sends = sum(by_recipient.values())
        unique = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT wa_id, payload_key FROM messages"
            " WHERE direction = 'outbound')"
        ).fetchone()[0]
        by_status = {
            str(r[0]): int(r[1])
            for r in db.execute(
                "SELECT status, count(*) FROM messages WHERE direction = 'outbound' GROUP BY status"
            )
        }
        return {
            "sends": sends,
            "by_recipient": by_recipient,
            "unique_client_payloads": int(unique),
            "duplicates": sends - int(unique),
            "rejected": counters.get("rejected", 0),
            "inbound": db.execute(
                "SELECT count(*) FROM messages WHERE direction = 'inbound'"
            ).fetchone()[0],
            "by_status": by_status,
            "statuses_scheduled": db.execute(
                "SELECT count(*) FROM messages WHERE next_status IS NOT NULL"
            ).fetchone()[0],
            "statuses_delivered": counters.get("statuses_delivered", 0),
            "webhooks_pending": db.execute("SELECT count(*) FROM webhooks").fetchone()[0],
            "webhooks_delivered": counters.get("webhooks_delivered", 0),
            "webhooks_dropped": counters.get("webhooks_dropped", 0),
            "webhook_failed_attempts": counters.get("webhook_failed_attempts", 0),
        }
