"""Kill a `wagate worker` (SIGKILL) while its sends are in flight: another worker takes its
leased messages when the leases end, every accepted message is delivered, and the duplicate
sends that at-least-once delivery allows are counted (only the sends that were in flight)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, cli_json, free_port, wagate_env

pytestmark = pytest.mark.slow

CUSTOMERS = [f"+1415555{4000 + i:04d}" for i in range(10)]
TOTAL = 100


def _outbound_texts(sandbox_url: str, access_token: str) -> list[str]:
    texts: list[str] = []
    for customer in CUSTOMERS:
        thread = httpx.get(
            f"{sandbox_url}/customer/{customer}/messages",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=10,
        ).json()
        texts += [m["text"] for m in thread if m["direction"] == "outbound"]
    return texts


def test_a_worker_killed_mid_send_loses_nothing(database_url: str, tmp_path: Path) -> None:
    api_port, sandbox_port = free_port(), free_port()
    app_secret, access_token = secrets.token_hex(16), "sandbox-" + secrets.token_hex(8)
    env = wagate_env(
        tmp_path / "data",
        database_url,
        WAGATE_SANDBOX="off",
        WAGATE_LEASE_SECONDS="4",
        WAGATE_SEND_TIMEOUT="2",
    )
    sandbox = ServerProcess(
        env,
        sandbox_port,
        "sandbox run",
        extra_args=(
            "--phone-number-id",
            "100000000000099",
            "--waba-id",
            "200000000000099",
            "--access-token",
            access_token,
            "--app-secret",
            app_secret,
            "--webhook-url",
            f"http://127.0.0.1:{api_port}/webhooks/whatsapp",
            "--status-delay",
            "0.05",
        ),
        health_path="/",
    )
    api = ServerProcess(env, api_port, "api")
    workers = [ServerProcess(env, free_port(), "worker") for _ in range(2)]
    sandbox.start()
    try:
        # Every send is held half a second before Meta's answer: a kill catches some in flight.
        fault = httpx.post(
            f"{sandbox.url}/faults",
            json={"kind": "latency", "seconds": 0.5, "count": None},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=10,
        )
        assert fault.status_code == 201, fault.text
        cli_json(env, "accounts", "create", "--name", "acme", "--api-rate", "0")
        cli_json(
            env, "channels", "add", "--account", "acme",
            "--phone-number-id", "100000000000099", "--waba-id", "200000000000099",
            "--access-token", access_token, "--app-secret", app_secret,
            "--verify-token", "v", "--graph-url", f"{sandbox.url}/graph", "--mps", "40",
        )  # fmt: skip
        token = cli_json(env, "tokens", "create", "--account", "acme")["token"]
        api.start()
        workers[0].start()
        for customer in CUSTOMERS:
            reply = httpx.post(
                f"{sandbox.url}/customer/reply",
                json={"phone": customer, "text": "hi"},
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10,
            )
            assert reply.json()["delivered"], reply.text
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        with httpx.Client(base_url=api.url, headers=headers, timeout=10) as client:
            for i in range(TOTAL):
                response = client.post(
                    "/v1/messages",
                    json={"phone": CUSTOMERS[i % len(CUSTOMERS)], "message": f"worker crash {i}"},
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        deadline = time.monotonic() + 30
        while len(_outbound_texts(sandbox.url, access_token)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers[0].kill()
        at_kill = len(_outbound_texts(sandbox.url, access_token))
        assert at_kill < TOTAL, "the worker finished before it could be killed"
        workers[1].start()
        pending = set(ids)
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=api.url, headers=headers, timeout=10) as client:
            while pending and time.monotonic() < deadline:
                for message_id in list(pending):
                    status = client.get(f"/v1/messages/{message_id}").json()["status"]
                    assert status != "failed"
                    if status in ("delivered", "read"):
                        pending.discard(message_id)
                time.sleep(0.2)
        assert not pending, f"{len(pending)} accepted messages were never delivered"
        texts = _outbound_texts(sandbox.url, access_token)
        assert {f"worker crash {i}" for i in range(TOTAL)} <= set(texts)
        duplicates = len(texts) - len(set(texts))
        print(
            f"\nworker SIGKILLed after {at_kill} of {TOTAL} sends; all delivered by the next "
            f"worker; duplicate sends: {duplicates}"
        )
        # Only sends in flight at the kill (at most one per customer lane) can be repeated.
        assert duplicates <= len(CUSTOMERS)
    finally:
        for process in [*workers, api, sandbox]:
            process.stop()
