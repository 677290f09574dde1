"""The server's log lines from one turn of the event loop are written together, in order;
warnings, lines from outside a loop and a flush (at exit) are written at once."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from wagate import logs


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[CountingStream]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = CountingStream()
    logs.configure("info", "text", stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _messages(out: CountingStream) -> list[str]:
    return [line.split(" ", 3)[3] for line in out.getvalue().splitlines()]


async def test_a_turns_lines_are_written_once_in_order(stream: CountingStream) -> None:
    log = logging.getLogger("wagate.http")
    for n in range(50):
        log.info("POST /v1/messages 202 %d", n)
    assert stream.getvalue() == ""  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert _messages(stream) == [f"POST /v1/messages 202 {n}" for n in range(50)]
    assert stream.writes == 1


async def test_a_warning_is_written_at_once_after_the_lines_before_it(
    stream: CountingStream,
) -> None:
    logging.getLogger("wagate.http").info("first")
    logging.getLogger("wagate.dispatch").warning("storage is away")
    assert _messages(stream) == ["first", "storage is away"]
    logging.getLogger("wagate.http").info("last")
    logging.getLogger().handlers[0].flush()  # as logging.shutdown does at exit
    assert _messages(stream) == ["first", "storage is away", "last"]


def test_lines_outside_an_event_loop_are_written_at_once(stream: CountingStream) -> None:
    logging.getLogger("wagate.store").info("migrated")
    assert _messages(stream) == ["migrated"]


def test_a_loop_stopped_before_its_write_does_not_hold_up_the_next(
    stream: CountingStream,
) -> None:
    async def log_and_stop() -> None:
        logging.getLogger("wagate.http").info("first loop")
        asyncio.get_running_loop().stop()  # ends before the turn's write runs

    first = asyncio.new_event_loop()
    task = first.create_task(log_and_stop())
    first.run_forever()
    first.close()
    assert task.done()
    assert stream.getvalue() == ""

    async def log() -> None:
        logging.getLogger("wagate.http").info("second loop")
        await asyncio.sleep(0)

    asyncio.run(log())
    assert _messages(stream) == ["first loop", "second loop"]
