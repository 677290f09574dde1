"""Group commit for every send (`POST /v1/messages`, templates, the batch endpoint, the
dashboard): a request that finds nothing else storing commits at once, on its own; requests that
arrive while a commit is in progress are stored together in the next one.

Every request waits for the transaction that holds its message; the transaction is committed
(and, on SQLite, fsynced) once for the whole batch. A 202 is therefore only ever sent after the
message is durable, and under load many messages share one commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import metrics
from wagate.clock import Clock
from wagate.domain.errors import ServiceUnavailable, WagateError
from wagate.store.accept_rows_sqlite import DirectRows
from wagate.store.accepts import AcceptRequest, Deferred, RateCheck, accept_batch, accept_rows
from wagate.store.accepts import Outcome as StoreOutcome
from wagate.store.db import DirectWriter, runs_inline, write_tx
from wagate.store.idempotency import Replayed

log = logging.getLogger("wagate.api")

# How many requests the HTTP server may hold, the one storing included, before a send that
# finds nothing else storing stops committing on the event loop (`Acceptor._store`): with a
# few, committing at once is quickest; with more, one fsync per request on a stopped loop is
# what limits them, and committing in the thread lets them gather into batches.
CROWD = 4

Outcome = dict[str, Any] | Replayed | WagateError
Waiting = tuple[AcceptRequest, asyncio.Future[Outcome]]


class Acceptor:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        rate_check: RateCheck | None = None,
        max_batch: int = 1000,
        in_flight: Callable[[], int] = lambda: 0,
    ) -> None:
        """`in_flight`: how many requests the HTTP server has read and not yet answered
        (`wagate.http_server.requests_in_flight`), so that a lone-looking send does not hold
        the loop for its fsync while others wait to be read (see `_store`)."""
        self.engine = engine
        self.clock = clock
        self.rate_check = rate_check
        self.max_batch = max_batch
        self.in_flight = in_flight
        self.unavailable_channels: frozenset[str] = frozenset()
        """Channels that cannot be sent through (their sandbox is gone): refused at once."""
        self._direct = DirectWriter(engine) if runs_inline(engine) else None
        self._pending: list[Waiting] = []
        # On SQLite every writer of the process queues for one lock (store/db.py), first come
        # first served: with one batch at a time, a batch waits behind the dispatcher's and the
        # webhooks' transactions and the next cannot even queue. Two batches in line take turns
        # with them instead; they still commit one after the other, in order. (On PostgreSQL
        # batches would commit concurrently and a lane's later message could become visible
        # before an earlier one: one at a time there.)
        self._in_line = 2 if engine.dialect.name == "sqlite" else 1
        self._committing: dict[object, int] = {}  # batch → its size
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def accept(self, item: AcceptRequest) -> Outcome:
        """Store one send; its message row, the first answer to its idempotency key, or the
        error that refused it."""
        [outcome] = await self.accept_many([item])
        return outcome

    async def accept_many(self, items: Sequence[AcceptRequest]) -> list[Outcome]:
        """Store several sends, in one commit when they fit in one batch (each is judged on its
        own, as if it had come alone); an outcome for each, in order."""
        if self._closed:
            return [ServiceUnavailable("The server is shutting down.") for _ in items]
        loop = asyncio.get_running_loop()
        waiting: list[Waiting] = [(item, loop.create_future()) for item in items]
        if not self._pending and not self._committing and len(waiting) <= self.max_batch:
            # Nothing else is storing: commit at once, in this task (no hand-off to another
            # task, each of which would wait its turn on a busy event loop).
            await self._commit(waiting, self._register(waiting))
        else:
            self._pending.extend(waiting)
            self._start_batches()
        return [await future for _, future in waiting]

    async def aclose(self) -> None:
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_pending()
        if self._direct is not None:
            await self._direct.aclose()

    def _fail_pending(self) -> None:
        for _, future in self._pending:
            if not future.done():
                future.set_result(ServiceUnavailable("The server is shutting down."))
        self._pending.clear()

    def _register(self, batch: list[Waiting]) -> object:
        key = object()
        self._committing[key] = len(batch)
        return key

    def _start_batches(self) -> None:
        """Start what may start now (called whenever requests arrive or a batch is stored)."""
        if self._closed:
            self._fail_pending()
            return
        while self._pending and self._may_start():
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            task = asyncio.create_task(
                self._commit(batch, self._register(batch)), name="wagate-accept-batch"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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

    async def _commit(self, batch: list[Waiting], key: object) -> None:
        try:
            outcomes = await self._store([item for item, _ in batch])
        except Exception as exc:  # the whole batch was rolled back: nothing was accepted
            log.error("could not store %d messages: %s", len(batch), type(exc).__name__)
            outcomes = [ServiceUnavailable() for _ in batch]
        except BaseException:  # cancelled: whatever waits behind it goes on without it
            del self._committing[key]
            self._start_batches()
            raise
        del self._committing[key]
        metrics.record_accepted(sum(1 for o in outcomes if isinstance(o, dict)))
        for (item, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Deferred):
                # Its idempotency key was being stored by another request: the next batch
                # reads that request's answer.
                self._pending.append((item, future))
            elif not future.done():
                future.set_result(outcome)
        self._start_batches()

    async def _store(self, items: list[AcceptRequest]) -> list[StoreOutcome]:
        if self._direct is not None:
            # Alone, the COMMIT runs on the event loop (no hand-off to the connection's
            # thread, which costs a lone request more than the fsync). Not when more than
            # `CROWD` requests have been read and wait for the loop: each would then commit
            # alone in turn, one fsync per request with the loop stopped for each, and none
            # would ever be batched.
            alone = len(items) == 1 and not self._pending and self.in_flight() <= CROWD
            async with self._direct.transaction(alone=alone) as driver:
                now = self.clock.now()
                return await accept_rows(
                    DirectRows(driver),
                    items,
                    now=now,
                    rate_check=self.rate_check,
                    unavailable=self.unavailable_channels,
                )
        async with write_tx(self.engine) as conn:
            now = self.clock.now()
            return await accept_batch(
                conn,
                items,
                now=now,
                rate_check=self.rate_check,
                unavailable=self.unavailable_channels,
            )
