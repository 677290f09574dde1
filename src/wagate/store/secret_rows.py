"""The stored secrets as rows (channels' access tokens and app secrets, accounts' callback
secrets) and the key check: sealing what is left in clear, resealing everything with a new key,
and telling at start whether this process holds the key the database was sealed with.

Synchronous on purpose: migration 0007 and `wagate secrets rotate-key` run it on a plain
connection, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, column, select, table, update
from sqlalchemy.exc import IntegrityError

from wagate.secret_box import PREFIX, SecretBox, SecretKeyError, is_sealed

# (table, key column, secret columns): every column wagate seals.
SECRET_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("channels", "id", ("access_token", "app_secret")),
    ("accounts", "id", ("callback_secret",)),
)
CHECK_PLAINTEXT = "wagate secret key check"


@dataclass
class SecretCounts:
    sealed: int = 0
    plaintext: int = 0
    unreadable: int = 0
    by_column: dict[str, int] = field(default_factory=dict)


def _rows(conn: Connection, name: str, key: str, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    t = table(name, column(key), *(column(c) for c in columns))
    return [tuple(r) for r in conn.execute(select(t.c[key], *(t.c[c] for c in columns)))]


def reseal_all(conn: Connection, box: SecretBox, *, plaintext_only: bool = False) -> int:
    """Seal every stored secret with the box's first key (with `plaintext_only`, only those still
    in clear); returns how many values were written. Raises SecretKeyError, changing nothing
    the caller's transaction does not roll back, when a value opens with none of the keys."""
    written = 0
    for name, key, columns in SECRET_COLUMNS:
        t = table(name, column(key), *(column(c) for c in columns))
        for row in _rows(conn, name, key, columns):
            values: dict[str, str] = {}
            for col, value in zip(columns, row[1:], strict=True):
                if value is None or (plaintext_only and is_sealed(value)):
                    continue
                values[col] = box.reseal(value)
            if values:
                conn.execute(update(t).where(t.c[key] == row[0]).values(**values))
                written += len(values)
    write_check(conn, box)
    return written


def open_all(conn: Connection, box: SecretBox) -> int:
    """Put every sealed secret back in clear (migration 0007's downgrade)."""
    written = 0
    for name, key, columns in SECRET_COLUMNS:
        t = table(name, column(key), *(column(c) for c in columns))
        for row in _rows(conn, name, key, columns):
            values = {
                col: box.open(value)
                for col, value in zip(columns, row[1:], strict=True)
                if is_sealed(value)
            }
            if values:
                conn.execute(update(t).where(t.c[key] == row[0]).values(**values))
                written += len(values)
    return written


def has_plaintext(conn: Connection) -> bool:
    for name, key, columns in SECRET_COLUMNS:
        for row in _rows(conn, name, key, columns):
            if any(v is not None and not is_sealed(v) for v in row[1:]):
                return True
    return False


def count(conn: Connection, box: SecretBox | None) -> SecretCounts:
    """How many stored secrets are sealed, in clear, and (with a box) not openable with it."""
    counts = SecretCounts()
    for name, key, columns in SECRET_COLUMNS:
        for row in _rows(conn, name, key, columns):
            for col, value in zip(columns, row[1:], strict=True):
                if value is None:
                    continue
                counts.by_column[f"{name}.{col}"] = counts.by_column.get(f"{name}.{col}", 0) + 1
                if not is_sealed(value):
                    counts.plaintext += 1
                    continue
                counts.sealed += 1
                if box is not None:
                    try:
                        box.open(value)
                    except SecretKeyError:
                        counts.unreadable += 1
    return counts


_check = table("secret_key_check", column("id"), column("sealed"))


def write_check(conn: Connection, box: SecretBox) -> None:
    sealed = box.seal(CHECK_PLAINTEXT)
    if conn.execute(select(_check.c.id).where(_check.c.id == 1)).first() is None:
        conn.execute(_check.insert().values(id=1, sealed=sealed))
    else:
        conn.execute(update(_check).where(_check.c.id == 1).values(sealed=sealed))


def _first_check(engine: Engine, box: SecretBox) -> Any:
    """The stored check, or None after writing the first one (with this box's key). Of two
    processes starting at once on a new database, one writes it and the other reads it."""
    for _ in range(2):
        try:
            with engine.begin() as conn:
                row = conn.execute(select(_check.c.sealed).where(_check.c.id == 1)).first()
                if row is not None:
                    return row
                write_check(conn, box)
                if has_plaintext(conn):
                    reseal_all(conn, box, plaintext_only=True)
                return None
        except IntegrityError:
            continue
    raise SecretKeyError("could not record the secret key check; try again")


def check_key(engine: Engine, box: SecretBox) -> None:
    """Raise SecretKeyError, with what to do, unless `box` opens what this database was sealed
    with; a database without a check yet gets one (sealed with the box's first key)."""
    row = _first_check(engine, box)
    if row is None:
        return
    stored = str(row.sealed)
    try:
        opened = box.open(stored) if stored.startswith(PREFIX) else None
    except SecretKeyError:
        opened = None
    if opened != CHECK_PLAINTEXT:
        raise SecretKeyError(
            f"this database's secrets were sealed with another key than {box.source} holds "
            f"(key id {box.primary_fingerprint}); start with the key they were sealed with: "
            "restore the data folder's secret.key, or set WAGATE_SECRET_KEY to it (every "
            "process sharing a database needs the same key; see SECURITY.md)"
        )
