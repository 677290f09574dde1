"""A started server keeps its start-up objects out of the garbage collector's full passes.

Every full collection walks every object the collector tracks. A server's start-up leaves well
over a hundred thousand that live as long as the process; walked about once a second under
load, they stopped the event loop for 30-40 ms each time, and paced sends due meanwhile lost
their slots (benchmarks/README.md). The servers' start-up hook freezes them.

Run in a child interpreter: freezing is for the whole process, and the test runner's own
objects are not a server's.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, gc
import wagate.api.app, wagate.cli  # what a server has loaded before it serves

async def startup():
    pass

tracked = len(gc.get_objects())
asyncio.run(wagate.cli._then_settle_heap(startup)())
print(tracked, len(gc.get_objects()))
"""


def test_start_up_objects_are_left_out_of_full_collections() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    before, after = (int(n) for n in out.split())
    assert before > 50_000  # a server's modules, routes, schemas and tables
    # Left to walk: what asyncio.run made, a few hundred objects, not start-up's.
    assert after < before / 20, (before, after)
