"""A business's callback receiver for tests: a real HTTP server on 127.0.0.1 that checks every
request's signature with the README's own verifier, can be told to fail, and records what it got."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.processes import serve_in_thread

README = Path(__file__).resolve().parents[2] / "README.md"
Verifier = Callable[..., bool]


def readme_verifier() -> Verifier:
    """The standalone `verify` function shown in the README, as a receiver would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    code = next(b for b in blocks if "def verify(" in b)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    verify: Verifier = namespace["verify"]
    return verify


@dataclass
class Received:
    raw: bytes
    headers: dict[str, str]
    event: dict[str, Any]


@dataclass
class Receiver:
    """Answers 204 to a correctly signed event; 400 to a bad or stale signature; `fail_with`
    (e.g. 500) while it is set. `skew` moves its clock (seconds), `clock` replaces it;
    `answer_after` makes every answer take that long (seconds), as a busy receiver would;
    while `hang` is set it answers nothing at all (each request waits until it is cleared);
    an event whose text is `refuse_text` gets 422.
    `most_in_flight` is the most requests it held at once."""

    secret: str = ""
    fail_with: int | None = None
    skew: float = 0.0
    clock: Callable[[], float] = time.time
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    attempts: int = 0
    answer_after: float = 0.0
    hang: bool = False
    refuse_text: str | None = None  # an inbound event with this text is answered 422
    in_flight: int = 0
    most_in_flight: int = 0
    verify: Verifier = field(default_factory=readme_verifier)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def events(request: Request) -> Response:
            with self.lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await answer(request)
            finally:
                with self.lock:
                    self.in_flight -= 1

        async def answer(request: Request) -> Response:
            raw = await request.body()
            if self.answer_after:
                await asyncio.sleep(self.answer_after)
            # Set and cleared from the test's thread: polled (an asyncio.Event is per loop).
            while self.hang:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            with self.lock:
                self.attempts += 1
                if self.fail_with is not None:
                    return Response(b"receiver is having a bad day", status_code=self.fail_with)
                event = json.loads(raw)
                if self.refuse_text is not None and event["data"].get("text") == self.refuse_text:
                    return Response(b"cannot take this one", status_code=422)
                header = request.headers.get("x-wagate-signature")
                if not self.verify(self.secret, raw, header, now=self.clock() + self.skew):
                    self.rejected.append(header or "")
                    return Response(b"bad signature", status_code=400)
                self.received.append(Received(raw, dict(request.headers), json.loads(raw)))
            return Response(status_code=204)

        return Starlette(routes=[Route("/events", events, methods=["POST"])])

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received if type is None or r.event["type"] == type]

    def statuses(self, message_id: str) -> list[str]:
        return [
            e["data"]["status"]
            for e in self.events("message.status")
            if e["data"]["message_id"] == message_id
        ]


@contextmanager
def receiving(receiver: Receiver, port: int) -> Iterator[str]:
    """Run the receiver on 127.0.0.1:port; yields its callback URL."""
    with serve_in_thread(receiver.app(), port) as base:
        yield base + "/events"
