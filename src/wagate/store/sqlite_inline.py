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
  holds the lock it needs): it is run again in the thread until the lock is free, within the
  connection's patience. A call that had already changed a row before it was refused is not
  run again; its error stands. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms
  and more between tries, so a waiter woke long after the lock was free: a `wagate api` beside
  a `wagate worker` on one file waited 3 ms at the median, 25 ms at the 99th percentile and
  once 58 ms for a `BEGIN IMMEDIATE`, the worker up to 1.4 s. The thread tries again every
  `BUSY_POLL` (0.1 ms, growing to 1 ms) for the first `BUSY_POLL_SECONDS`, and leaves the
  rest of the patience to SQLite's handler.
- whatever runs inside `in_thread()`, for a statement that may read many rows (a count over
  the whole outbox for the metrics, say) and should not hold up the loop.

The hottest transaction (accepting messages) skips SQLAlchemy altogether: it takes the
connection's `sqlite3.Connection` (`driver`), runs its statements there directly, and uses `call`
for `BEGIN IMMEDIATE` (which may have to wait for another process) and `commit` for the fsync.

`COMMIT` (its fsync) runs on the event loop too while this disk's commits are quick
(`FileState`): handed to the thread, a transaction kept SQLite's write lock, and every writer of
the process waiting for it, until a busy event loop came round to it again (3 ms at the median
and 14 ms at the 99th percentile for a 0.4 ms fsync, on a 2-core machine under load). When
commits turn slow (a network volume), they go back to the thread, so the loop is never held for
a slow fsync; one in `PROBE_EVERY` is tried on the loop again to see whether the disk recovered.
Whatever runs inside `in_thread()` commits in the thread (the accept path's batches, so the loop
reads the next requests meanwhile).

At most once every `CHECKPOINT_INTERVAL` seconds after a commit, a PASSIVE checkpoint runs on
a connection of its own in a worker thread, which lets writers go on. The accept path's
connection never checkpoints inside its commits (store/db.py `DirectWriter`); the others keep
SQLite's automatic checkpoint, which runs inside a COMMIT once the log passes 1,000 pages: only a
checkpoint that no writer overtakes lets the log start over from its beginning (without it, the
log grew to 215 MB in a minute of accepting), and the commit it makes slow sends the next ones
to the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import aiosqlite

log = logging.getLogger("wagate.store")

# How long a SQLite statement may wait for another connection's lock (seconds).
BUSY_TIMEOUT = 30.0
# A COMMIT is run on the event loop while this disk's commits take less than this on average.
QUICK_COMMIT_SECONDS = 0.002
# While they do not, one commit in this many is run on the loop anyway, to measure again.
PROBE_EVERY = 64
# At most one checkpoint of a database's log this often (seconds).
CHECKPOINT_INTERVAL = 1.0
# A call refused for another connection's lock is tried again after BUSY_POLL seconds, the
# pause doubling up to BUSY_POLL_MAX, for BUSY_POLL_SECONDS; then SQLite's busy handler waits.
BUSY_POLL = 0.0001
BUSY_POLL_MAX = 0.001
BUSY_POLL_SECONDS = 1.0

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


def _may_run_again(error: BaseException, conn: sqlite3.Connection, changes: int) -> bool:
    """Whether a call that raised `error` may be run again: SQLite refused it for a lock
    (SQLITE_BUSY) before it changed any row (`changes`: the connection's count before it)."""
    return is_busy(error) and conn.total_changes == changes


def _waits_for_a_lock(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY itself: another connection holds a lock that it will release. Its extended
    codes (SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT) are left to SQLite's handler, as before:
    it knows which of them waiting can cure."""
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


class FileState:
    """What the connections of one database file share in this process: how long COMMIT takes
    on its disk (a moving average of the commits run on the event loop), and its checkpoints."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.commit_seconds = 0.0
        self._skipped = 0
        self.checkpoint: asyncio.Future[None] | None = None
        self._checkpointed_at = -math.inf

    def commit_here(self) -> bool:
        """Whether the next COMMIT runs on the event loop."""
        if self.commit_seconds < QUICK_COMMIT_SECONDS:
            return True
        self._skipped += 1
        if self._skipped >= PROBE_EVERY:
            self._skipped = 0
            return True
        return False

    def committed_here(self, seconds: float) -> None:
        # A tenth of each new commit: one slow fsync among quick ones does not send the next
        # commits to the thread; a disk that stays slow does within a few.
        self.commit_seconds = 0.9 * self.commit_seconds + 0.1 * seconds

    def after_commit(self) -> None:
        """Start a checkpoint in a worker thread unless one ran less than a second ago."""
        loop = asyncio.get_running_loop()
        if self.checkpoint is not None and not self.checkpoint.done():
            return
        if loop.time() - self._checkpointed_at < CHECKPOINT_INTERVAL:
            return
        self._checkpointed_at = loop.time()
        self.checkpoint = loop.run_in_executor(None, checkpoint, self.path)


_files: dict[str, FileState] = {}


def file_state(path: str) -> FileState:
    """The state this process keeps for the database file at `path`."""
    state = _files.get(path)
    if state is None:
        state = _files.setdefault(path, FileState(path))
    return state


def checkpoint(path: str) -> None:
    """A PASSIVE checkpoint (in a worker thread): copies what it can of the log into the
    database without waiting for, or holding up, readers and writers."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:  # the next one tries again
        log.warning("checkpoint of %s failed: %s", path, exc)


class InlineConnection(aiosqlite.Connection):
    """See the module's docstring. `patience` is the busy timeout (seconds) of the calls run
    in the thread."""

    def __init__(
        self, connector: Callable[[], sqlite3.Connection], *, patience: float, path: str
    ) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own thread
        self._patience_ms = max(0, int(patience * 1000))
        self.file = file_state(path)

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
        if own and fn.__name__ == "commit":
            await self._commit(conn)
            return None
        if not _THREADED.get():
            changes = conn.total_changes
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _may_run_again(exc, conn, changes):
                    raise
            # Refused for a lock before it changed anything: run it again where it may wait.
        return await super()._execute(  # type: ignore[no-untyped-call]
            self._patiently, conn, partial(fn, *args, **kwargs)
        )

    async def _commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT on the event loop while the disk is quick (and not `in_thread()`), else in the
        thread; a COMMIT refused for a lock another process holds is run again in the thread,
        where it may wait. Then perhaps a checkpoint (`FileState.after_commit`)."""
        file = self.file
        done = False
        if not _THREADED.get() and file.commit_here():
            started = time.perf_counter()
            try:
                conn.commit()
                done = True
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            else:
                file.committed_here(time.perf_counter() - started)
        if not done:
            await super()._execute(self._patiently, conn, conn.commit)  # type: ignore[no-untyped-call]
        file.after_commit()

    def _patiently(self, conn: sqlite3.Connection, call: Callable[[], Any]) -> Any:
        """In the thread: the call, allowed to wait for SQLite's locks (see the module's
        docstring: tried again every `BUSY_POLL` or so at first, then SQLite's busy handler)."""
        polling_until = time.monotonic() + min(BUSY_POLL_SECONDS, self._patience_ms / 1000)
        pause = BUSY_POLL
        while True:
            changes = conn.total_changes
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if not _may_run_again(exc, conn, changes):
                    raise
                if not _waits_for_a_lock(exc):
                    break  # another kind of busy (a log being recovered): SQLite's handler
            if time.monotonic() + pause >= polling_until:
                break
            time.sleep(pause)
            pause = min(2 * pause, BUSY_POLL_MAX)
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
        return InlineConnection(open_sqlite, patience=patience, path=database)

    return create


def is_inline(dbapi_connection: Any) -> bool:
    """Whether a connection SQLAlchemy hands to a `connect` event is an `InlineConnection`."""
    return isinstance(getattr(dbapi_connection, "_connection", None), InlineConnection)
