"""A dispatcher's heartbeat: it says it is alive every second and learns how many dispatchers
share the business numbers' rates (what `SplitPacer` divides them by)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.store import workers as worker_store
from wagate.store.db import write_tx

log = logging.getLogger("wagate.dispatch")


class Heartbeat:
    def __init__(self, engine: AsyncEngine, worker_id: str) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.live = 1  # dispatchers alive as of the last beat, this one included
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Say we are alive, and count who else is."""
        now = _wall_clock()
        async with write_tx(self.engine) as conn:
            await worker_store.beat(
                conn, worker_id=self.worker_id, host=socket.gethostname(), pid=os.getpid(),
                now=now,
            )  # fmt: skip
            self.live = max(1, await worker_store.live(conn, now=now))

    async def start(self) -> None:
        """The first beat at once (before the first claim, so the pacer knows who else sends),
        then one every HEARTBEAT_SECONDS."""
        try:
            await self.beat()
        except Exception as exc:
            log.warning("could not record this dispatcher's heartbeat: %s", type(exc).__name__)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wagate-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(worker_store.HEARTBEAT_SECONDS)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage away: the last count stands meanwhile
                log.debug("heartbeat failed: %s", type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # others see us gone at once, not when we go stale
            async with write_tx(self.engine) as conn:
                await worker_store.leave(conn, worker_id=self.worker_id, now=_wall_clock())


def _wall_clock() -> datetime:
    """Heartbeats are about real processes: the wall clock, whatever clock the dispatcher was
    given (tests move theirs by days)."""
    return datetime.now(UTC)
