"""Group commit for `POST /v1/messages`: requests that arrive together are stored together.

Every request waits for the transaction that holds its message; the transaction is committed
(and, on SQLite, fsynced) once for the whole batch. A 202 is therefore only ever sent after the
message is durable, and under load many messages share one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import metrics
from wagate.clock import Clock
from wagate.domain.errors import ServiceUnavailable, WagateError
from wagate.store import idempotency
from wagate.store.accepts import AcceptRequest, Deferred, RateCheck, accept_batch
from wagate.store.db import write_tx
from wagate.store.idempotency import Replayed

log = logging.getLogger("wagate.api")

Outcome = dict[str, Any] | Replayed | WagateError

# Expired idempotency keys are deleted in passing, at most this often (seconds).
PURGE_INTERVAL = 600.0


class Acceptor:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        rate_check: RateCheck | None = None,
        max_batch: int = 500,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.rate_check = rate_check
        self.max_batch = max_batch
        self._pending: list[tuple[AcceptRequest, asyncio.Future[Outcome]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_purge = 0.0
        # On SQLite every writer of the process queues for one lock (store/db.py), first come
        # first served: with one batch at a time, a batch waits behind the dispatcher's and the
        # webhooks' transactions and the next cannot even queue. Two batches in line take turns
        # with them instead; they still commit one after the other, in order. (On PostgreSQL
        # batches would commit concurrently and a lane's later message could become visible
        # before an earlier one: one at a time there.)
        self._in_line = 2 if engine.dialect.name == "sqlite" else 1
        self._committing: dict[asyncio.Task[None], int] = {}  # batch → its size

    async def accept(self, item: AcceptRequest) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wagate-acceptor")
        return await future

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._committing:
            await asyncio.gather(*self._committing, return_exceptions=True)
        for _, future in self._pending:
            if not future.done():
                future.set_result(ServiceUnavailable("The server is shutting down."))
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                if not self._may_start():
                    # Until a batch is stored, or (with a place free in line) more arrive.
                    waiting: set[asyncio.Future[Any]] = set(self._committing)
                    if len(self._committing) < self._in_line:
                        waiting.add(asyncio.ensure_future(self._ready.wait()))
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for future in waiting - self._committing.keys():
                        future.cancel()
                    self._ready.clear()
                    continue  # more may have arrived meanwhile: take them all
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                task = asyncio.create_task(self._commit(batch), name="wagate-accept-batch")
                self._committing[task] = len(batch)
                task.add_done_callback(self._forget)
                await asyncio.sleep(0)  # let it queue for the write lock before the next one

    def _may_start(self) -> bool:
        """Whether to start a batch now. Behind one that is committing, only once at least half
        as many requests wait: the clients whose answers a batch brings all send their next
        request at about the same moment, and a batch started at the first of them would take
        one or two, leaving the rest to a third batch, after two commits. (Lopsided batches
        also leave the event loop idle: nothing to parse while the big one commits.)"""
        if not self._committing:
            return True
        if len(self._committing) >= self._in_line:
            return False
        return 2 * len(self._pending) >= sum(self._committing.values())

    def _forget(self, task: asyncio.Task[None]) -> None:
        # No wake-up needed: `_run` waits on the committing batches themselves.
        self._committing.pop(task, None)

    async def _commit(self, batch: list[tuple[AcceptRequest, asyncio.Future[Outcome]]]) -> None:
        loop_time = asyncio.get_running_loop().time()
        try:
            async with write_tx(self.engine) as conn:
                now = self.clock.now()
                outcomes = await accept_batch(
                    conn, [item for item, _ in batch], now=now, rate_check=self.rate_check
                )
                if loop_time >= self._next_purge:
                    await idempotency.purge_expired(conn, now=now)
                    self._next_purge = loop_time + PURGE_INTERVAL
        except Exception as exc:  # the whole batch was rolled back: nothing was accepted
            log.error("could not store %d messages: %s", len(batch), type(exc).__name__)
            for _, future in batch:
                if not future.done():
                    future.set_result(ServiceUnavailable())
            return
        metrics.record_accepted(sum(1 for o in outcomes if isinstance(o, dict)))
        for (item, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Deferred):
                # Its idempotency key was being stored by another request: the next batch
                # reads that request's answer.
                self._pending.append((item, future))
                self._ready.set()
            elif not future.done():
                future.set_result(outcome)
