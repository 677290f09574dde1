"""Scale-out on PostgreSQL and Redis: two `wagate api` and two `wagate worker` processes share
one database and one Redis. Every message is delivered exactly once, in order per customer, and
the number's rate is never exceeded, as the sandbox (an upstream in this test process that
refuses sends over the limit with 130429) records it."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.support.databases import fresh_database
from tests.support.processes import ServerProcess, cli_json, free_port, wagate_env
from tests.support.redis import redis_url_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.paced]

TOTAL = 2000
MPS = 100
CUSTOMERS = [f"+1415555{3000 + i:04d}" for i in range(100)]


async def _send_all(urls: list[str], token: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    # Fresh connections: a POST cannot be retried safely here (no idempotency key), so no
    # request may meet a keep-alive connection the server is closing.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        semaphore = asyncio.Semaphore(64)

        async def one(i: int) -> str:
            async with semaphore:
                response = await client.post(
                    f"{urls[i % len(urls)]}/v1/messages",
                    json={"phone": CUSTOMERS[i % len(CUSTOMERS)], "message": f"scale {i}"},
                    headers=headers,
                )
            assert response.status_code == 202, response.text
            message_id: str = response.json()["id"]
            return message_id

        return await asyncio.gather(*(one(i) for i in range(TOTAL)))


def test_two_apis_and_two_workers_deliver_everything_once_within_the_rate(
    tmp_path: Path,
) -> None:
    redis_url = redis_url_or_skip()
    with fresh_database("postgresql", tmp_path) as database_url:
        api_ports = [free_port(), free_port()]
        sandbox_port = free_port()
        app_secret = secrets.token_hex(16)
        access_token = "sandbox-" + secrets.token_hex(8)
        state = tmp_path / "sandbox.sqlite3"
        env = wagate_env(
            tmp_path / "data",
            database_url,
            WAGATE_SANDBOX="off",
            WAGATE_REDIS_URL=redis_url,
            WAGATE_LEASE_SECONDS="30",
            # Five processes share two cores here (more with the suite in two processes): their
            # event loops stall far more than a server's would, and the sandbox's stalls bunch
            # its stamps, so the workers keep more room under the limit than the default.
            WAGATE_PACE_HEADROOM="0.75",
        )
        # The sandbox runs in its own process, so that what it measures is what arrives, not
        # what this busy test process got round to reading.
        sandbox = ServerProcess(
            env,
            sandbox_port,
            "sandbox run",
            extra_args=(
                "--phone-number-id",
                "100000000000088",
                "--waba-id",
                "200000000000088",
                "--access-token",
                access_token,
                "--app-secret",
                app_secret,
                # Webhooks go to the first API process; any one of them applies them for all.
                "--webhook-url",
                f"http://127.0.0.1:{api_ports[0]}/webhooks/whatsapp",
                "--state",
                str(state),
                "--status-delay",
                "0.05",
                "--throughput",
                str(MPS),
            ),
            health_path="/",
        )
        sandbox.start()
        sandbox_url = sandbox.url
        try:
            cli_json(env, "accounts", "create", "--name", "acme", "--api-rate", "0")
            cli_json(
                env, "channels", "add", "--account", "acme",
                "--phone-number-id", "100000000000088", "--waba-id", "200000000000088",
                "--access-token", access_token, "--app-secret", app_secret,
                "--verify-token", "v", "--graph-url", f"{sandbox_url}/graph", "--mps", str(MPS),
            )  # fmt: skip
            token = cli_json(env, "tokens", "create", "--account", "acme")["token"]
            processes = [ServerProcess(env, port, "api") for port in api_ports]
            processes += [ServerProcess(env, free_port(), "worker") for _ in range(2)]
            for process in processes:
                process.start()
            try:
                for customer in CUSTOMERS:
                    reply = httpx.post(
                        f"{sandbox_url}/customer/reply",
                        json={"phone": customer, "text": "hi"},
                        headers={"Authorization": f"Bearer {access_token}"},
                        timeout=10,
                    )
                    assert reply.json()["delivered"], reply.text
                ids = asyncio.run(_send_all([p.url for p in processes[:2]], token))
                assert len(set(ids)) == TOTAL
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    with sqlite3.connect(state) as db:
                        sent = db.execute(
                            "SELECT count(*) FROM messages WHERE direction = 'outbound'"
                        ).fetchone()[0]
                    if sent >= TOTAL:
                        break
                    time.sleep(0.5)
                time.sleep(1.0)  # anything sent twice would show up by now
            finally:
                for process in processes:
                    process.stop()
            with sqlite3.connect(state) as db:
                rows = db.execute(
                    "SELECT wa_id, content, created_at FROM messages"
                    " WHERE direction = 'outbound' ORDER BY seq"
                ).fetchall()
            rejected = httpx.get(
                f"{sandbox_url}/stats",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10,
            ).json()["rejected"]
        finally:
            sandbox.stop()
        texts = [r[1] for r in rows]
        bodies = [t for t in texts if "scale " in t]
        assert len(bodies) == TOTAL, f"{len(bodies)} of {TOTAL} delivered"
        assert len(set(bodies)) == TOTAL, "a message was sent twice"
        # In the order they were accepted, per customer: message ids sort in accept order.
        per_customer: dict[str, list[str]] = defaultdict(list)
        for wa_id, content, _ in rows:
            number = int(content.split("scale ")[1].split('"')[0])
            per_customer[wa_id].append(ids[number])
        for accepted in per_customer.values():
            assert accepted == sorted(accepted)
        # Never more than MPS starts in any one-second window. The sandbox timestamps a send
        # when its own event loop reads it, and its stalls bunch those stamps a little; it
        # allows 8 % for that (faults.py), and refused nothing.
        times = sorted(r[2] for r in rows)
        busiest = 0
        start = 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            busiest = max(busiest, end - start + 1)
        print(f"\n{TOTAL} delivered once each by 2 APIs + 2 workers; busiest second {busiest}")
        assert busiest <= MPS * 1.08
        assert rejected == 0
