"""Engines and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from wagate.store.sqlite_inline import inline_connector, is_inline

MIGRATIONS = Path(__file__).parent / "migrations"

# How long a SQLite statement may wait for another connection's lock (seconds).
BUSY_TIMEOUT = 30.0


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (for Alembic and the CLI)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def _sqlite_path(url: URL) -> Path | None:
    """The database file (without the URL's driver options), or None in memory."""
    return Path(url.database) if url.database and url.database != ":memory:" else None


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    """WAL for concurrent readers; `synchronous=FULL` so a 202 survives power loss;
    `BEGIN IMMEDIATE` for transactions opened by `write_tx`, so a transaction that will write
    takes the lock up front instead of failing half way with SQLITE_BUSY; reads stay deferred
    and never wait for writers."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # An inline connection must never wait on the event loop; it waits in its thread.
        busy_ms = 0 if is_inline(dbapi_connection) else int(BUSY_TIMEOUT * 1000)
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _check_synchronous(value: str) -> str:
    value = value.upper()
    if value not in {"FULL", "EXTRA", "NORMAL", "OFF"}:
        raise ValueError(f"WAGATE_SQLITE_SYNCHRONOUS must be FULL, EXTRA, NORMAL or OFF: {value}")
    return value


def make_async_engine(url: str, *, synchronous: str = "FULL") -> AsyncEngine:
    if is_sqlite(url):
        parsed = make_url(url)
        path = _sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        if path is None or parsed.query:
            # In memory, or with driver options in the URL: plain aiosqlite, which reads them.
            engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT})
        else:
            engine = create_async_engine(
                url, async_creator=inline_connector(str(path), patience=BUSY_TIMEOUT)
            )
        _configure_sqlite(engine.sync_engine, _check_synchronous(synchronous))
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def make_sync_engine(url: str, *, synchronous: str = "FULL") -> Engine:
    url = sync_url(url)
    if is_sqlite(url):
        path = _sqlite_path(make_url(url))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT})
        _configure_sqlite(engine, _check_synchronous(synchronous))
        return engine
    return create_engine(url, poolclass=NullPool)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@dataclass(frozen=True, slots=True)
class Migrated:
    """What `migrate` did: the revision before (None for an empty database) and after, and how
    many tables it created."""

    before: str | None
    after: str | None
    tables_created: int

    def describe(self) -> str:
        if self.before == self.after:
            return f"the database is up to date at revision {self.after}"
        made = f"created {self.tables_created} tables" if self.tables_created else ""
        if self.before is None:
            return f"{made or 'migrated'} (the database is now at revision {self.after})"
        moved = f"migrated from revision {self.before} to {self.after}"
        return f"{moved}; {made}" if made else moved


def _revision_and_tables(engine: Engine) -> tuple[str | None, set[str]]:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), set(
            inspect(conn).get_table_names()
        )


def migrate(url: str) -> Migrated:
    """Bring the database to the newest schema (safe to run at every start)."""
    engine = make_sync_engine(url)
    try:
        before, tables_before = _revision_and_tables(engine)
        command.upgrade(_alembic_config(engine), "head")
        after, tables_after = _revision_and_tables(engine)
    finally:
        engine.dispose()
    return Migrated(before, after, len(tables_after - tables_before - {"alembic_version"}))


def migrations_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return set(current) == set(script.get_heads())


# One writer at a time per SQLite database in this process: SQLite allows one anyway, and
# queueing here is far cheaper than SQLite's busy handler, which sleeps up to 100 ms a try.
_write_locks: WeakKeyDictionary[AsyncEngine, asyncio.Lock] = WeakKeyDictionary()


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that writes: committed on success, rolled back on error."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks.setdefault(engine, asyncio.Lock())
    async with lock, engine.connect() as conn:
        await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            yield conn
