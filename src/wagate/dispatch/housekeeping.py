"""Background pruning of what nothing else deletes, in small batches so that no transaction
holds the database for long: for now, status reports parked for a wamid that no send of ours
recorded within a day (another business's, or a forgery), which would otherwise pile up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.store import statuses as status_store
from wagate.store.db import write_tx

log = logging.getLogger("wagate.housekeeping")

PARKED_RETENTION = timedelta(days=1)
"""A parked report whose wamid no send recorded in this time never will: Meta answers a send
with its wamid within seconds."""
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 500


async def prune_once(engine: AsyncEngine, clock: Clock, *, batch: int = PRUNE_BATCH) -> int:
    """Delete every parked report older than `PARKED_RETENTION`, `batch` rows per
    transaction; returns how many."""
    total = 0
    while True:
        async with write_tx(engine) as conn:
            deleted = await status_store.prune_parked(
                conn, older_than=clock.now() - PARKED_RETENTION, limit=batch
            )
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let the others in between batches


class Housekeeper:
    """Runs `prune_once` every `PRUNE_EVERY_SECONDS` while started."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wagate-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                pruned = await prune_once(self.engine, self.clock)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage down: try again next time
                log.warning("pruning parked status reports failed: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d parked status reports older than a day", pruned)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
