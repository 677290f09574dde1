"""The retention pruner: every `retention_interval` seconds, each rule of `store/retention.py`
deletes what is older than its setting, `retention_batch` rows per transaction with a pause
between transactions, so that no transaction holds the write lock for long.

It runs wherever the dispatcher runs (`wagate serve`, `wagate worker`). With several workers
each has one: on PostgreSQL a rule's batch is done by one worker at a time (a transaction-scoped
advisory lock; the others skip it that round), on SQLite the database's write lock already
serialises them, and a batch that finds nothing left costs one short read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.config import Settings
from wagate.store.db import write_tx
from wagate.store.retention import RULES, Rule
from wagate.store.sqlite_inline import in_thread

log = logging.getLogger("wagate.retention")

# Between two transactions of one round: room for the accepts and sends queued behind it.
PAUSE = 0.05
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


class Pruner:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        rules: tuple[Rule, ...] = tuple(RULES),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.rules = tuple(rule.bound(settings, engine) for rule in rules)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wagate-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            # A round after each interval, the first one too: not in the rush of a start.
            await asyncio.sleep(self.settings.retention_interval)
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pruning failed; trying again next round")

    def age(self, rule: Rule) -> timedelta | None:
        """How old a row of this kind may get; None to keep it for ever."""
        if rule.fixed_age is not None:
            return rule.fixed_age
        assert rule.days_setting is not None
        days = self.settings.retention(rule.days_setting)
        return timedelta(days=days) if days > 0 else None

    async def prune(self, *, pause: float = PAUSE) -> dict[str, int]:
        """One round: every rule until it has nothing old left; rows deleted per rule."""
        deleted: dict[str, int] = {}
        for rule in self.rules:
            age = self.age(rule)
            if age is None:
                continue
            deleted[rule.name] = 0
            while True:
                count = await self._batch(rule, age)
                deleted[rule.name] += max(count, 0)
                if count < self.settings.retention_batch:
                    break
                await asyncio.sleep(pause)
        pruned = {name: n for name, n in deleted.items() if n}
        if pruned:
            log.info("retention: deleted %s", ", ".join(f"{n} {k}" for k, n in pruned.items()))
        return deleted

    async def _batch(self, rule: Rule, age: timedelta) -> int:
        """One transaction of one rule: rows deleted, or -1 when another worker has it."""
        # On SQLite in the connection's thread: the event loop goes on serving meanwhile.
        with in_thread():
            async with write_tx(self.engine) as conn:
                if conn.dialect.name == "postgresql":
                    mine = await conn.scalar(_TRY_LOCK, {"key": _lock_key(rule.name)})
                    if not mine:
                        return -1
                cutoff = self.clock.now() - age
                return await rule.prune(conn, cutoff, self.settings.retention_batch)


def _lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key per rule."""
    return int.from_bytes(hashlib.sha256(b"wagate retention " + name.encode()).digest()[:8]) >> 1
