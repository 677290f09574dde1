"""The byte ranges `/media/{id}` answers (players seek with them), over files read in chunks of
any size."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from wagate.dashboard.pages.media import _byte_range, _slice

DATA = random.Random(4521).randbytes(10_000)


async def chunks(size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(DATA), size):
        yield DATA[at : at + size]


@pytest.mark.parametrize("chunk", [1, 7, 999, 1 << 20])
@pytest.mark.parametrize(
    ("first", "last"), [(0, 0), (0, 9999), (5, 5), (998, 1001), (9990, 9999), (3000, 7000)]
)
def test_a_slice_is_exactly_those_bytes(chunk: int, first: int, last: int) -> None:
    async def read() -> bytes:
        return b"".join([part async for part in _slice(chunks(chunk), first, last)])

    assert asyncio.run(read()) == DATA[first : last + 1]


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=9000-", (9000, 9999)),
        ("bytes=-10", (9990, 9999)),
        ("bytes=-20000", (0, 9999)),
        ("bytes=9990-50000", (9990, 9999)),
        ("bytes=10000-", False),
        ("bytes=50-10", False),
        ("bytes=-0", False),
        ("bytes=-", None),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
    ],
)
def test_the_range_a_player_asks_for(header: str | None, answer: object) -> None:
    assert _byte_range(header, len(DATA)) == answer
