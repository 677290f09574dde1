"""An aiosqlite connection that runs SQLite on the event loop and waits in its thread.

aiosqlite runs every call (open a cursor, execute, fetch, close the cursor) in the
connection's own thread: four thread hand-offs for each statement SQLAlchemy executes, each a
queue wake-up, a wake-up of the event loop and two passes of the GIL. Those hand-offs cost far
more CPU than the statements (a few microseconds each on an indexed table), and a busy event
loop answers each one only when it gets round to it, so a transaction of ten statements took
ten turns of the loop.

`InlineConnection` keeps aiosqlite's interface (SQLAlchemy's `sqlite+aiosqlite` dialect drives
it unchanged) and runs each call at once on the event loop, with SQLite's busy timeout at zero
so a call never waits there. The thread is kept for what may wait:

- `COMMIT` (it fsyncs the write-ahead log: `synchronous=FULL`) and closing the connection;
- any call SQLite answers with SQLITE_BUSY (another connection, perhaps in another process,
  holds the lock it needs): it is run again in the thread with the connection's patience as
  its busy timeout, as plain aiosqlite would have run it. A call that had already changed a
  row before it was refused is not run again; its error stands.
- whatever runs inside `in_thread()`, for a statement that may read many rows (a count over
  the whole outbox for the metrics, say) and should not hold up the loop.

The hottest transaction (accepting messages) skips SQLAlchemy altogether: it takes the
connection's `sqlite3.Connection` (`driver`), runs its statements there directly, and uses `call`
for `BEGIN IMMEDIATE` (which may have to wait for another process) and `commit` for the fsync.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import aiosqlite

_THREADED: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_threaded", default=False)


@contextlib.contextmanager
def in_thread() -> Iterator[None]:
    """Run the SQLite calls made inside the block in the connection's thread (for a statement
    that may take a while: the event loop goes on serving others meanwhile)."""
    token = _THREADED.set(True)
    try:
        yield
    finally:
        _THREADED.reset(token)


def is_busy(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and (
        code is not None and code & 0xFF == sqlite3.SQLITE_BUSY
    )


class InlineConnection(aiosqlite.Connection):
    """See the module's docstring. `patience` is the busy timeout (seconds) of the calls run
    in the thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], *, patience: float) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own thread
        self._patience_ms = max(0, int(patience * 1000))

    @property
    def driver(self) -> sqlite3.Connection:
        """The sqlite3 connection, for statements run straight on it (on the event loop)."""
        conn = self._connection
        if not self._running or conn is None:
            raise ValueError("Connection closed")
        return conn

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the sqlite3 connection, run as every call here is: at once, or in the
        thread when SQLite refuses it for a lock (e.g. `BEGIN IMMEDIATE` while another process
        writes)."""
        return await self._execute(fn, *args)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        if not self._running or conn is None:
            raise ValueError("Connection closed")
        own = getattr(fn, "__self__", None) is conn
        if own and fn.__name__ == "close":
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not _THREADED.get() and not (own and fn.__name__ == "commit"):
            changes = conn.total_changes
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or conn.total_changes != changes:
                    raise
            # Refused for a lock before it changed anything: run it again where it may wait.
        return await super()._execute(  # type: ignore[no-untyped-call]
            self._patiently, conn, partial(fn, *args, **kwargs)
        )

    def _patiently(self, conn: sqlite3.Connection, call: Callable[[], Any]) -> Any:
        """In the thread: the call, allowed to wait for SQLite's locks."""
        conn.execute(f"PRAGMA busy_timeout={self._patience_ms}").close()
        try:
            return call()
        finally:
            conn.execute("PRAGMA busy_timeout=0").close()


def inline_connector(database: str, *, patience: float) -> Callable[[], InlineConnection]:
    """An `async_creator` for `create_async_engine` (a file database)."""

    def open_sqlite() -> sqlite3.Connection:
        # Used from the event loop's thread and from the connection's own, one at a time.
        return sqlite3.connect(database, timeout=0, check_same_thread=False)

    def create() -> InlineConnection:
        return InlineConnection(open_sqlite, patience=patience)

    return create


def is_inline(dbapi_connection: Any) -> bool:
    """Whether a connection SQLAlchemy hands to a `connect` event is an `InlineConnection`."""
    return isinstance(getattr(dbapi_connection, "_connection", None), InlineConnection)
