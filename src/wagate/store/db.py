"""Engines and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from wagate.secret_box import SecretBox
from wagate.store.sqlite_inline import (
    BUSY_TIMEOUT,
    InlineConnection,
    file_state,
    in_thread,
    inline_connector,
    is_inline,
)

log = logging.getLogger("wagate.store")

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (for Alembic and the CLI)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def _sqlite_path(url: URL) -> Path | None:
    """The database file (without the URL's driver options), or None in memory."""
    return Path(url.database) if url.database and url.database != ":memory:" else None


def owner_only_sqlite(path: Path) -> None:
    """The database file and its -wal and -shm made readable by their owner only (SPEC §10):
    created 0600 before SQLite opens it (SQLite gives its -wal and -shm the database file's
    mode), and tightened when an older start left them wider; a folder made for it is 0700."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for item in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if item.stat().st_mode & 0o077:
                item.chmod(0o600)


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
            owner_only_sqlite(path)
        if path is None or parsed.query:
            # In memory, or with driver options in the URL: plain aiosqlite, which reads them.
            engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT})
        else:
            engine = create_async_engine(
                url, async_creator=inline_connector(str(path), patience=BUSY_TIMEOUT)
            )
            _inline_engines.add(engine)
        _configure_sqlite(engine.sync_engine, _check_synchronous(synchronous))
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def make_sync_engine(url: str, *, synchronous: str = "FULL") -> Engine:
    url = sync_url(url)
    if is_sqlite(url):
        path = _sqlite_path(make_url(url))
        if path is not None:
            owner_only_sqlite(path)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT})
        _configure_sqlite(engine, _check_synchronous(synchronous))
        return engine
    return create_engine(url, poolclass=NullPool)


def _alembic_config(engine: Engine, secret_box: SecretBox | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    cfg.attributes["secret_box"] = secret_box
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


def migrate(url: str, *, secret_box: SecretBox | None = None) -> Migrated:
    """Bring the database to the newest schema (safe to run at every start). `secret_box` seals
    secrets left in clear (default: the process's, see wagate.secret_box)."""
    engine = make_sync_engine(url)
    try:
        before, tables_before = _revision_and_tables(engine)
        command.upgrade(_alembic_config(engine, secret_box), "head")
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


class WriteLock:
    """One writer at a time per SQLite database in this process: SQLite allows one anyway, and
    queueing here is far cheaper than SQLite's busy handler, which sleeps up to 100 ms a try.

    First come, first served, with one exception: a transaction a client is waiting for (the
    accept path, `urgent()`) goes ahead of the background writers waiting (claims, outcomes,
    webhook receipts, callbacks), but never twice in a row past the same ones, so they still
    get every other turn however busy the API is. A lone request then waits for at most the
    transaction holding the lock, not for the queue behind it."""

    def __init__(self) -> None:
        self._locked = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()
        self._overtaken = False  # the last turn went to an urgent one past waiting others

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> None:
        await self._acquire(self._normal)

    def release(self) -> None:
        self._hand_on()

    async def __aenter__(self) -> None:
        await self._acquire(self._normal)

    async def __aexit__(self, *_: object) -> None:
        self._hand_on()

    @asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        await self._acquire(self._urgent)
        try:
            yield
        finally:
            self._hand_on()

    async def _acquire(self, queue: deque[asyncio.Future[None]]) -> None:
        if not self._locked and not self._urgent and not self._normal:
            self._locked = True
            return
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._hand_on()  # handed the lock as it was cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def _hand_on(self) -> None:
        """Release: the lock goes straight to the next waiter (it stays locked), or is free."""
        while True:
            if self._urgent and not (self._normal and self._overtaken):
                self._overtaken = bool(self._normal)
                waiter = self._urgent.popleft()
            elif self._normal:
                self._overtaken = False
                waiter = self._normal.popleft()
            else:
                self._locked = False
                return
            if not waiter.done():
                waiter.set_result(None)
                return


_write_locks: WeakKeyDictionary[AsyncEngine, WriteLock] = WeakKeyDictionary()
# Engines whose connections are `InlineConnection`s (a SQLite file): `direct_write_tx` works.
_inline_engines: WeakSet[AsyncEngine] = WeakSet()


def _write_lock(engine: AsyncEngine) -> WriteLock:
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks.setdefault(engine, WriteLock())
    return lock


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that writes: committed on success, rolled back on error."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _write_lock(engine)
    await lock.acquire()
    held = True
    try:
        async with engine.connect() as conn:
            await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn
            # Committed: the next writer may go. Giving the connection back to the pool takes
            # turns of the event loop (SQLAlchemy closes it in a task of its own), 2 ms at the
            # median on a busy 2-core machine, which the lock no longer waits for.
            held = False
            lock.release()
    finally:
        if held:
            lock.release()


def runs_inline(engine: AsyncEngine) -> bool:
    """Whether a `DirectWriter` can be used on this engine (a SQLite file)."""
    return engine in _inline_engines


class DirectWriter:
    """`write_tx` for the accept path on a SQLite file: the same lock and `BEGIN IMMEDIATE`, but
    the statements go straight to the sqlite3 connection that `transaction()` yields, on the
    event loop, and the connection is kept from one transaction to the next.

    Through SQLAlchemy and aiosqlite a statement costs 50-90 µs of CPU, checking a connection
    out of the pool and back ~60 µs; straight on the driver a statement costs 2-5 µs. For a
    request that commits alone that was most of its time. A batch's COMMIT (the fsync) runs in
    the connection's thread, so the loop reads the next requests meanwhile; a lone request's as
    every inline connection's (store/sqlite_inline.py: on the loop while the disk is quick).
    BEGIN runs in the thread when another process holds the lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        if not runs_inline(engine):
            raise TypeError("DirectWriter needs an engine from make_async_engine on a file")
        self.engine = engine
        self._path = str(engine.url.database)
        self._conn: AsyncConnection | None = None
        self._inline: InlineConnection | None = None

    async def aclose(self) -> None:
        async with _write_lock(self.engine):
            if self._conn is not None:
                # Not back to the pool: it does not checkpoint, as other connections must.
                await self._drop(self._conn)
        checkpoint = file_state(self._path).checkpoint
        if checkpoint is not None:
            with contextlib.suppress(Exception):
                await checkpoint

    async def _connection(self) -> tuple[AsyncConnection, InlineConnection]:
        if self._conn is None or self._inline is None:
            conn = await self.engine.connect()
            inline = (await conn.get_raw_connection()).driver_connection
            assert isinstance(inline, InlineConnection)
            # Its commits leave checkpoints to a thread (store/sqlite_inline.py).
            inline.driver.execute("PRAGMA wal_autocheckpoint=0").close()
            self._conn, self._inline = conn, inline
        return self._conn, self._inline

    @asynccontextmanager
    async def transaction(self, *, alone: bool = False) -> AsyncIterator[sqlite3.Connection]:
        """`alone`: nothing else waits to be stored, so the COMMIT (its fsync, ~0.2 ms on a
        local disk) may run right here on the event loop: handing it to the connection's thread
        and being woken again costs a lone request more than the fsync itself. Batches gathered
        under load commit in the thread, so the loop reads the next requests meanwhile."""
        async with _write_lock(self.engine).urgent():
            conn, inline = await self._connection()
            driver = inline.driver
            try:
                await inline.call(driver.execute, "BEGIN IMMEDIATE")
            except BaseException:
                await self._drop(conn)
                raise
            try:
                yield driver
            except BaseException:
                try:
                    driver.rollback()
                except sqlite3.Error:
                    await self._drop(conn)
                raise
            try:
                if alone:
                    await inline.commit()
                else:
                    with in_thread():
                        await inline.commit()
            except BaseException:
                # Whatever happened (a failed fsync, or this task cancelled while the thread
                # still commits), the connection is not used again: it is closed, by its own
                # thread once the commit is done, and the next transaction opens another.
                await self._drop(conn)
                raise

    async def _drop(self, conn: AsyncConnection) -> None:
        self._conn = self._inline = None
        with contextlib.suppress(Exception):
            await conn.invalidate()
