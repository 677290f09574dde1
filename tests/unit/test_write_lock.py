"""The SQLite write lock's order: a request a client waits for goes ahead of the background
writers queued before it, but never twice in a row past the same ones; cancelled waiters never
keep the lock."""

from __future__ import annotations

import asyncio

from wagate.store.db import WriteLock


async def _take(lock: WriteLock, name: str, order: list[str], *, urgent: bool) -> None:
    if urgent:
        async with lock.urgent():
            order.append(name)
            await asyncio.sleep(0)
    else:
        async with lock:
            order.append(name)
            await asyncio.sleep(0)


async def test_an_accept_goes_ahead_of_the_queued_background_writers() -> None:
    lock = WriteLock()
    order: list[str] = []
    await lock.acquire()  # a claim commits
    tasks = [asyncio.create_task(_take(lock, n, order, urgent=False)) for n in ("outcome", "hook")]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(_take(lock, "accept", order, urgent=True)))
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["accept", "outcome", "hook"]
    assert not lock.locked()


async def test_accepts_never_shut_the_background_writers_out() -> None:
    lock = WriteLock()
    order: list[str] = []
    await lock.acquire()
    tasks = [asyncio.create_task(_take(lock, f"bg{i}", order, urgent=False)) for i in range(2)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(_take(lock, f"api{i}", order, urgent=True)) for i in range(4)]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    # Every other turn goes to a background writer while any waits; then the rest in order.
    assert order == ["api0", "bg0", "api1", "bg1", "api2", "api3"]


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = WriteLock()
    order: list[str] = []
    await lock.acquire()
    gone = asyncio.create_task(_take(lock, "gone", order, urgent=True))
    after = asyncio.create_task(_take(lock, "after", order, urgent=False))
    await asyncio.sleep(0)
    lock.release()  # handed to "gone", which is cancelled before it runs
    gone.cancel()
    await asyncio.gather(gone, after, return_exceptions=True)
    assert order == ["after"]
    assert not lock.locked()
    async with lock.urgent():
        assert lock.locked()
    assert not lock.locked()
