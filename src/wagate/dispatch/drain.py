"""Running a claiming loop until nothing is due: shared by the message dispatcher and the
callback sender (for tests and the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def drain(
    run_once: Callable[[], Awaitable[int]],
    inflight: set[asyncio.Task[Any]],
    timeout: float,
    *,
    still_due: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Claim and wait for what was claimed, until a claim takes nothing and nothing is in
    flight, or `timeout` seconds have passed. With `still_due`, an empty claim ends it only
    when that says nothing is due any more (another claimer may have held what was)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        claimed = await run_once()
        if inflight:
            await asyncio.wait(inflight, timeout=max(0.0, deadline - loop.time()))
        elif claimed == 0:
            if still_due is None or not await still_due():
                return
            await asyncio.sleep(0.01)
