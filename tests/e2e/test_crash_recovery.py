"""Kill the server (SIGKILL) right after a batch of 202s: after a restart every accepted message
is delivered. The sandbox runs in this test process, so it outlives the gateway and counts what
it was sent."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    ServerProcess,
    cli_json,
    free_port,
    serve_in_thread,
    wagate_env,
)
from wagate.sandbox import SandboxConfig, create_sandbox_app

pytestmark = pytest.mark.slow

# Ten customers, so that several lanes are in flight when the server dies.
CUSTOMERS = [f"+1415555{2600 + i:04d}" for i in range(10)]
BATCH = 150
BATCHED = 50  # of them sent in one POST /v1/messages/batch


async def _fire(url: str, token: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int) -> str:
            response = await client.post(
                "/v1/messages",
                json={"phone": CUSTOMERS[i % len(CUSTOMERS)], "message": f"crash test {i}"},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            message_id: str = response.json()["id"]
            return message_id

        async def batch(start: int, size: int) -> list[str]:
            # The batch endpoint's items are as durable as single sends when it answers.
            items = [
                {"phone": CUSTOMERS[i % len(CUSTOMERS)], "message": f"crash test {i}"}
                for i in range(start, start + size)
            ]
            response = await client.post(
                "/v1/messages/batch", json={"messages": items}, headers=headers
            )
            assert response.status_code == 207, response.text
            assert response.json()["accepted"] == size, response.text
            return [r["id"] for r in response.json()["results"]]

        singles = count - BATCHED
        alone, together = await asyncio.gather(
            asyncio.gather(*(one(i) for i in range(singles))), batch(singles, BATCHED)
        )
        return [*alone, *together]


def _received(sandbox_url: str, access_token: str) -> list[str]:
    """The texts the sandbox was sent, repeats included."""
    texts = []
    for customer in CUSTOMERS:
        thread = httpx.get(
            f"{sandbox_url}/customer/{customer}/messages",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=10,
        ).json()
        texts += [m.get("text") for m in thread if m.get("direction") == "outbound"]
    return texts


def test_sigkill_after_202s_loses_nothing(database_url: str, tmp_path: Path) -> None:
    if "aiosqlite" not in database_url and "psycopg" not in database_url:
        pytest.skip("unknown database")
    url_for_cli = database_url
    gateway_port, sandbox_port = free_port(), free_port()
    app_secret = secrets.token_hex(16)
    access_token = "sandbox-" + secrets.token_hex(8)
    sandbox = create_sandbox_app(
        SandboxConfig(
            phone_number_id="100000000000077",
            waba_id="200000000000077",
            display_phone_number="15550000077",
            access_token=access_token,
            app_secret=app_secret,
            webhook_url=f"http://127.0.0.1:{gateway_port}/webhooks/whatsapp",
            status_delay=0.05,
            webhook_retry_initial=0.2,
            webhook_retry_max=1.0,
        )
    )
    # A short lease, so the killed server's claims come back quickly.
    env = wagate_env(
        tmp_path / "data", url_for_cli, WAGATE_SANDBOX="off", WAGATE_LEASE_SECONDS="20"
    )
    with serve_in_thread(sandbox, sandbox_port) as sandbox_url:
        cli_json(env, "accounts", "create", "--name", "acme")
        cli_json(
            env, "channels", "add", "--account", "acme",
            "--phone-number-id", "100000000000077", "--waba-id", "200000000000077",
            "--access-token", access_token, "--app-secret", app_secret,
            "--verify-token", "verify-me", "--graph-url", f"{sandbox_url}/graph",
            "--mps", "40",
        )  # fmt: skip
        token = cli_json(env, "tokens", "create", "--account", "acme")["token"]
        server = ServerProcess(env, gateway_port)
        server.start()
        try:
            for customer in CUSTOMERS:
                reply = httpx.post(
                    f"{sandbox_url}/customer/reply",
                    json={"phone": customer, "text": "hi"},
                    headers={"Authorization": f"Bearer {access_token}"},
                    timeout=10,
                )
                assert reply.json()["delivered"], reply.text
            ids = asyncio.run(_fire(server.url, token, BATCH))
            server.kill()
            assert len(set(ids)) == BATCH
            sent_before_kill = len(_received(sandbox_url, access_token))
            # The kill must catch messages still queued, or this test would prove nothing.
            assert sent_before_kill < BATCH

            server.start()
            deadline = time.monotonic() + 90
            pending = set(ids)
            headers = {"Authorization": f"Bearer {token}"}
            while pending and time.monotonic() < deadline:
                for message_id in list(pending):
                    data = httpx.get(
                        f"{server.url}/v1/messages/{message_id}", headers=headers, timeout=10
                    ).json()
                    assert data["status"] != "failed", data
                    if data["status"] in ("delivered", "read"):
                        pending.discard(message_id)
                time.sleep(0.2)
            assert not pending, f"{len(pending)} accepted messages were never delivered"
        finally:
            server.stop()
        texts = _received(sandbox_url, access_token)
        expected = {f"crash test {i}" for i in range(BATCH)}
        assert expected <= set(texts)
        duplicates = len(texts) - len(set(texts))
        print(
            f"\n{BATCH} accepted, {sent_before_kill} sent before the SIGKILL, all delivered "
            f"after the restart; duplicate sends: {duplicates}"
        )
        # At most the messages in flight at the moment of the kill can be sent twice.
        assert duplicates <= 64
