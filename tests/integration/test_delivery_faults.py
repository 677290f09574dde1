"""The gateway against a hostile upstream: the mounted sandbox injects Meta's throttling,
transient and permanent errors, bare 5xx answers, timeouts and dropped connections, and the
dispatcher retries, gives up or fails each message as it should. What a user sees is read
through `GET /v1/messages/{id}`; what Meta's side saw is read from the sandbox, so that no test
can pass without the faults having happened. Real storage (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.types import Message, Receive, Scope, Send

from tests.support.harness import Harness, running_gateway
from wagate.clock import ManualClock
from wagate.cloud.client import CloudClient
from wagate.dispatch.pacing import MemoryPacer
from wagate.domain.failures import error_slug
from wagate.sandbox.faults import KNOWN_ERRORS
from wagate.store import accounts as account_store
from wagate.store.tables import messages, outbox

# --------------------------------------------------------------------------- the network


@dataclass
class Exchange:
    """One `POST …/messages` the gateway made, and what came of it."""

    at: float
    to: str
    status: int | None = None  # None: no answer (timeout, dropped connection)
    body: bytes = b""
    failure: str | None = None  # the httpx exception, when there was no answer


class _Incomplete(Exception):
    pass


class NetworkTransport(httpx.AsyncBaseTransport):
    """`httpx.ASGITransport` as a client across a network would see it.

    ASGITransport enforces no timeout, and reports an app that closes the connection without a
    complete answer with an AssertionError. Over a real server (uvicorn: see
    `test_sandbox.test_network_faults_over_a_real_server`) the client gets `ReadTimeout` and
    `RemoteProtocolError`; so does this transport, which also logs every send it carries.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    def sends_to(self, phone: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.to.lstrip("+") == phone.lstrip("+")]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = None
        if request.url.path.endswith("/messages"):
            payload = json.loads(await request.aread())
            exchange = Exchange(time.monotonic(), str(payload.get("to", "")))
            self.exchanges.append(exchange)
        complete = False

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async def watch(message: Message) -> None:
                nonlocal complete
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    complete = True
                await send(message)

            await self.app(scope, receive, watch)
            if not complete:
                raise _Incomplete

        read_timeout = request.extensions.get("timeout", {}).get("read")
        failure: httpx.TransportError
        try:
            async with asyncio.timeout(read_timeout):
                response = await httpx.ASGITransport(app=app).handle_async_request(request)
                body = await response.aread()
        except _Incomplete:
            failure = httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            )
        except TimeoutError:
            failure = httpx.ReadTimeout("timed out", request=request)
        else:
            if exchange is not None:
                exchange.status, exchange.body = response.status_code, body
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, request=request
            )
        if exchange is not None:
            exchange.failure = type(failure).__name__
        raise failure


@dataclass
class Hostile:
    """The harness, with the gateway's Cloud API client going through `NetworkTransport`."""

    gateway: Harness
    network: NetworkTransport
    customers: list[str] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.gateway.client

    async def inject(self, **fault: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/sandbox/faults", json=fault, headers=self.gateway.sandbox_auth
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = (
            await self.client.get("/sandbox/stats", headers=self.gateway.sandbox_auth)
        ).json()
        return data

    async def send_text(self, phone: str, text: str = "Your order ships today") -> str:
        """The customer writes first (the window opens), then the business answers."""
        if phone not in self.customers:
            await self.gateway.reply(phone, text="hi")
            self.customers.append(phone)
        response = await self.gateway.send(phone=phone, message=text)
        assert response.status_code == 202, response.text
        message_id: str = response.json()["id"]
        return message_id

    async def row(self, message_id: str) -> dict[str, Any]:
        """The message's row: what it last failed with while being retried."""
        async with self.gateway.engine.connect() as conn:
            result = await conn.execute(select(messages).where(messages.c.id == message_id))
            return dict(result.mappings().one())

    async def available_at(self, message_id: str) -> datetime | None:
        async with self.gateway.engine.connect() as conn:
            result = await conn.execute(
                select(outbox.c.available_at).where(outbox.c.message_id == message_id)
            )
            value: datetime | None = result.scalar_one_or_none()
            return value


@asynccontextmanager
async def hostile_gateway(
    database_url: str, data_dir: Path, **options: Any
) -> AsyncIterator[Hostile]:
    options.setdefault("retry_base_seconds", 0.01)
    async with running_gateway(database_url, data_dir, **options) as gateway:
        network = NetworkTransport(gateway.app)
        timeout = httpx.Timeout(gateway.settings.send_timeout, connect=5.0)
        http = httpx.AsyncClient(transport=network, timeout=timeout)
        gateway.dispatcher.cloud = CloudClient(http)
        try:
            yield Hostile(gateway, network)
        finally:
            await gateway.dispatcher.stop()
            await http.aclose()


def meta_said(exchange: Exchange) -> tuple[int | None, str, str]:
    """(code, title, details) as the gateway should keep them from one answer."""
    if exchange.failure is not None:
        return None, "timeout" if exchange.failure == "ReadTimeout" else "connection error", ""
    assert exchange.status is not None
    try:
        error = json.loads(exchange.body)["error"]
    except ValueError:
        return None, f"HTTP {exchange.status}", ""
    title = re.sub(r"^\(#\d+\)\s*", "", error["message"])
    return error["code"], title, (error.get("error_data") or {}).get("details", "")


CUSTOMERS = [f"+1415555{2000 + i:04d}" for i in range(40)]


# --------------------------------------------------------------------------- retried


TRANSIENT: list[dict[str, Any]] = [
    {"code": 130429},
    {"code": 131056},
    {"code": 4},
    {"code": 80007},
    {"code": 1},
    {"code": 2},
    {"code": 131000},
    {"code": 131016},
    {"code": 131057},
    {"code": 133004},
    {"kind": "http_500"},
    {"kind": "http_503"},
    {"kind": "timeout"},
    {"kind": "drop"},
]


async def test_throttling_and_transient_faults_are_retried_until_read(
    database_url: str, tmp_path: Path
) -> None:
    # Each fault hits its own customer twice; one more customer gets no fault at all and one
    # a slow (but not too slow) answer. They all run at once.
    async with hostile_gateway(database_url, tmp_path / "data", send_timeout=0.3) as hostile:
        cases = list(zip(CUSTOMERS, TRANSIENT, strict=False))
        for phone, fault in cases:
            await hostile.inject(**fault, count=2, phone=phone)
        calm, slow = CUSTOMERS[len(cases)], CUSTOMERS[len(cases) + 1]
        await hostile.inject(kind="latency", seconds=0.1, phone=slow)
        ids = [await hostile.send_text(phone) for phone, _ in cases]
        calm_id, slow_id = await hostile.send_text(calm), await hostile.send_text(slow)

        for (phone, fault), message_id in zip(cases, ids, strict=True):
            label = fault.get("code", fault.get("kind"))
            message = await hostile.gateway.wait_status(message_id, "read")
            sends = hostile.network.sends_to(phone)
            assert len(sends) == 3, (label, sends)
            assert [e.status == 200 for e in sends] == [False, False, True], (label, sends)
            assert message["attempts"] == 3, (label, message)
            assert message["error"] is None
            assert [h["status"] for h in message["history"]] == [
                "queued", "accepted", "sent", "delivered", "read"
            ], label  # fmt: skip
            # While it was being retried, the message kept what Meta (or the network) last said.
            code, title, _ = meta_said(sends[1])
            row = await hostile.row(message_id)
            assert (row["meta_code"], row["error_title"]) == (code, title), label
            if "code" in fault:
                assert code == fault["code"], (label, sends[1])
        for message_id in (calm_id, slow_id):
            message = await hostile.gateway.wait_status(message_id, "read")
            assert message["attempts"] == 1
        stats = await hostile.stats()
        injected = {str(f.get("code", f.get("kind"))): 2 for _, f in cases}
        assert stats["faults_injected"] == {**injected, "latency": 1}
        assert stats["send_requests"] == 3 * len(cases) + 2 == len(hostile.network.exchanges)
        assert stats["sends"] == len(cases) + 2  # nothing was sent twice
        assert stats["requests_held"] == 0  # the timeouts left nothing behind


async def test_faults_at_a_rate_are_retried_through(database_url: str, tmp_path: Path) -> None:
    async with hostile_gateway(database_url, tmp_path / "data", send_timeout=0.3) as hostile:
        await hostile.inject(code=131000, rate=0.3, seed=11)
        await hostile.inject(kind="drop", rate=0.1, seed=12)
        ids = [await hostile.send_text(CUSTOMERS[i % 4], f"part {i}") for i in range(12)]
        found = [await hostile.gateway.wait_status(i, "read") for i in ids]
        stats = await hostile.stats()
        failed = sum(stats["faults_injected"].values())
        assert failed > 0 and stats["sends"] == 12
        assert sum(m["attempts"] for m in found) == stats["send_requests"] == 12 + failed
        assert any(m["attempts"] > 1 for m in found)


# --------------------------------------------------------------------------- failed at once


PERMANENT: list[tuple[int, str]] = [
    (131026, "status"),
    (131051, "response"),
    (132000, "response"),
    (132001, "response"),
    (100, "response"),
    (131008, "response"),
    (131009, "response"),
    (190, "response"),
    (368, "response"),
]


async def test_permanent_errors_fail_at_once_with_metas_code_title_and_details(
    database_url: str, tmp_path: Path
) -> None:
    async with hostile_gateway(database_url, tmp_path / "data") as hostile:
        cases = list(zip(CUSTOMERS, PERMANENT, strict=False))
        for phone, (code, mode) in cases:
            # count=2: a retry would be refused again, not slip through.
            await hostile.inject(code=code, mode=mode, count=2, phone=phone)
        ids = [await hostile.send_text(phone) for phone, _ in cases]

        for (phone, (code, mode)), message_id in zip(cases, ids, strict=True):
            message = await hostile.gateway.wait_status(message_id, "failed")
            sends = hostile.network.sends_to(phone)
            assert len(sends) == 1, (code, sends)
            assert message["attempts"] == 1, (code, message)
            error = message["error"]
            assert error["meta_code"] == code, (code, error)
            assert error["code"] == error_slug(code), (code, error)
            if mode == "status":
                # Accepted, then Meta's failed status: its error is kept.
                assert sends[0].status == 200 and message["wamid"]
                known = KNOWN_ERRORS[code]
                assert (error["title"], error["details"]) == (known.title, known.details)
            else:
                assert sends[0].status != 200 and message["wamid"] is None
                assert (code, error["title"], error["details"]) == meta_said(sends[0])
                assert error["title"] and (error["details"] or code == 190), error
        stats = await hostile.stats()
        assert stats["send_requests"] == len(cases)
        assert stats["faults_injected"] == {str(code): 1 for _, (code, _) in cases}


async def test_two_failed_statuses_in_one_webhook(database_url: str, tmp_path: Path) -> None:
    async with hostile_gateway(database_url, tmp_path / "data", run_dispatcher=False) as hostile:
        pairs = [(CUSTOMERS[0], 131026), (CUSTOMERS[1], 131047)]
        for phone, code in pairs:
            await hostile.inject(code=code, mode="status", phone=phone)
        ids = [await hostile.send_text(phone) for phone, _ in pairs]
        await hostile.gateway.dispatcher.drain(timeout=10)  # both at once: one webhook
        for message_id, (_, code) in zip(ids, pairs, strict=True):
            message = await hostile.gateway.wait_status(message_id, "failed", timeout=1.5)
            assert message["error"]["meta_code"] == code


# --------------------------------------------------------------------------- giving up


@pytest.mark.parametrize(
    ("fault", "meta_code", "title"),
    [
        ({"code": 131000}, 131000, "Something went wrong"),
        ({"code": 130429}, 130429, "Rate limit hit"),
        ({"kind": "drop"}, None, "connection error"),
    ],
)
async def test_a_fault_that_never_ends_fails_the_message_after_max_attempts(
    database_url: str, tmp_path: Path, fault: dict[str, Any], meta_code: int | None, title: str
) -> None:
    async with hostile_gateway(database_url, tmp_path / "data", max_attempts=3) as hostile:
        await hostile.inject(**fault, count=None)
        message_id = await hostile.send_text(CUSTOMERS[0])
        message = await hostile.gateway.wait_status(message_id, "failed")
        assert message["attempts"] == 3
        error = message["error"]
        assert (error["code"], error["meta_code"], error["title"]) == (
            "retries_exhausted", meta_code, title
        )  # fmt: skip
        assert error["details"].startswith("Gave up after 3 attempts; last error: ")
        assert len(error["details"]) > len("Gave up after 3 attempts; last error: ")
        assert len(hostile.network.sends_to(CUSTOMERS[0])) == 3
        assert (await hostile.stats())["sends"] == 0


async def test_giving_up_on_an_empty_5xx_still_says_why(database_url: str, tmp_path: Path) -> None:
    async with hostile_gateway(database_url, tmp_path / "data", max_attempts=2) as hostile:
        await hostile.inject(kind="http_503", count=None)
        message_id = await hostile.send_text(CUSTOMERS[0])
        message = await hostile.gateway.wait_status(message_id, "failed")
        assert len(hostile.network.sends_to(CUSTOMERS[0])) == 2
        assert message["error"]["code"] == "retries_exhausted"
        assert "503" in message["error"]["details"], message["error"]


async def test_retrying_stops_when_the_window_closes(database_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with hostile_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False
    ) as hostile:
        phone = CUSTOMERS[0]
        opened = int((clock.now() - timedelta(hours=23, minutes=58)).timestamp())
        await hostile.gateway.reply(phone, text="hello", timestamp=opened)
        response = await hostile.gateway.send(phone=phone, message="almost too late")
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        await hostile.inject(code=131000, count=None, phone=phone)

        await hostile.gateway.dispatcher.drain(timeout=10)
        assert (await hostile.gateway.message(message_id))["status"] == "queued"
        assert len(hostile.network.sends_to(phone)) == 1
        clock.advance(minutes=1)  # still open: retried, and refused again
        await hostile.gateway.dispatcher.drain(timeout=10)
        assert len(hostile.network.sends_to(phone)) == 2
        clock.advance(minutes=5)  # the window has closed
        await hostile.gateway.dispatcher.drain(timeout=10)

        message = await hostile.gateway.message(message_id)
        assert message["status"] == "failed"
        assert message["attempts"] == 2  # the last try was not an attempt: nothing was sent
        error = message["error"]
        assert error["code"] == "outside_service_window"
        assert "window closed" in error["details"] and "template" in error["details"]
        assert len(hostile.network.sends_to(phone)) == 2


# --------------------------------------------------------------------------- how long it waits


async def _drain_until(hostile: Hostile, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds=seconds)
    await hostile.gateway.dispatcher.drain(timeout=10)


@pytest.mark.parametrize(
    "fault", [{"code": 130429, "retry_after": 30}, {"kind": "http_503", "retry_after": 30}]
)
async def test_retry_after_is_honoured(
    database_url: str, tmp_path: Path, fault: dict[str, Any]
) -> None:
    clock = ManualClock()
    async with hostile_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False
    ) as hostile:
        phone = CUSTOMERS[0]
        await hostile.inject(**fault, phone=phone)
        message_id = await hostile.send_text(phone)
        await hostile.gateway.dispatcher.drain(timeout=10)
        assert len(hostile.network.sends_to(phone)) == 1
        # The backoff alone would be at most 0.01 s; Meta asked for 30.
        available_at = await hostile.available_at(message_id)
        assert available_at == clock.now() + timedelta(seconds=30)
        await _drain_until(hostile, clock, 29.9)
        assert len(hostile.network.sends_to(phone)) == 1
        assert (await hostile.gateway.message(message_id))["status"] == "queued"
        await _drain_until(hostile, clock, 0.2)
        assert [e.status for e in hostile.network.sends_to(phone)][-1] == 200
        message = await hostile.gateway.wait_status(message_id, "read")
        assert message["attempts"] == 2


async def test_pair_rate_errors_back_off_four_to_the_n_seconds(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with hostile_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False, retry_base_seconds=1
    ) as hostile:
        phone = CUSTOMERS[0]
        fault = await hostile.inject(code=131056, count=None, phone=phone)
        message_id = await hostile.send_text(phone)
        await hostile.gateway.dispatcher.drain(timeout=10)
        for attempt in (1, 2, 3):
            assert len(hostile.network.sends_to(phone)) == attempt
            wait = 4.0**attempt
            assert await hostile.available_at(message_id) == clock.now() + timedelta(seconds=wait)
            await _drain_until(hostile, clock, wait - 0.5)  # not yet
            assert len(hostile.network.sends_to(phone)) == attempt
            if attempt == 3:
                await hostile.client.delete(
                    f"/sandbox/faults/{fault['id']}", headers=hostile.gateway.sandbox_auth
                )
            await _drain_until(hostile, clock, 0.5)
        message = await hostile.gateway.wait_status(message_id, "read")
        assert message["attempts"] == 4
        assert len(hostile.network.sends_to(phone)) == 4


async def test_on_130429_the_channels_pace_backs_off_and_recovers(
    database_url: str, tmp_path: Path
) -> None:
    async with hostile_gateway(database_url, tmp_path / "data") as hostile:
        settings = hostile.gateway.settings
        offset = [0.0]
        pacer = MemoryPacer(
            pair_interval=settings.pair_interval,
            pair_burst=settings.pair_burst,
            clock=lambda: time.monotonic() + offset[0],
        )
        hostile.gateway.dispatcher.pacer = pacer
        phone = CUSTOMERS[0]
        await hostile.inject(code=130429, phone=phone)
        message_id = await hostile.send_text(phone)
        message = await hostile.gateway.wait_status(message_id, "accepted")
        assert message["attempts"] == 2
        assert [e.status for e in hostile.network.sends_to(phone)] == [400, 200]
        async with hostile.gateway.engine.connect() as conn:
            channel = await account_store.get_channel(conn, channel_id=message["channel_id"])
        assert channel is not None
        mps = channel.mps

        policy = pacer.throttle_policy
        cut = await pacer.effective_rate(channel.id, mps)
        assert mps * policy.cut <= cut < mps * (policy.cut + 0.1), cut
        offset[0] += 2.5
        partly = await pacer.effective_rate(channel.id, mps)
        expected = mps * (policy.cut + 2.5 * policy.recovery_per_second)
        assert expected - 1 <= partly < expected + mps * 0.1, partly
        offset[0] += (1 - policy.cut) / policy.recovery_per_second
        assert await pacer.effective_rate(channel.id, mps) == mps
        # And an untroubled channel is not slowed at all.
        assert await pacer.effective_rate("ch_other", mps) == mps
