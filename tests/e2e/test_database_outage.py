"""PostgreSQL goes away mid-run and comes back (a cluster of the test's own, stopped and started
with pg_ctlcluster): meanwhile the API answers 503 `service_unavailable` and `/readyz` 503, and
takes messages again once it is back; the worker picks up where it was; every message answered
202 is delivered, once (the outage is shorter than the lease, so what was in flight is recorded
when the database returns, not sent again when the lease ends), and none answered 503 is sent."""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, cli_json, free_port, wagate_env
from tests.support.services import postgres_cluster

pytestmark = pytest.mark.slow

CUSTOMERS = [f"+1415555{6000 + i:04d}" for i in range(50)]


@dataclass
class Traffic:
    """A client sending a message every few milliseconds, and what it was answered."""

    url: str
    token: str
    answers: list[tuple[float, str, int, dict[str, object]]] = field(default_factory=list)
    readiness: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        # A fresh connection per request: a 503 must be the server's answer, not a connection
        # reused while the server closes it.
        with httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while not self.stop.is_set():
                text = f"outage {n}"
                answer = client.post(
                    "/v1/messages", json={"phone": CUSTOMERS[n % len(CUSTOMERS)], "message": text}
                )
                self.answers.append((time.time(), text, answer.status_code, answer.json()))
                if n % 5 == 0:
                    self.readiness.append((time.time(), client.get("/readyz").status_code))
                n += 1
                time.sleep(0.02)


def _sent(state: Path) -> list[str]:
    """The texts the sandbox was sent, repeats included."""
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT content FROM messages WHERE direction = 'outbound'").fetchall()
    return [m.group(0) for (content,) in rows if (m := re.search(r"outage \d+", content))]


def test_the_database_restarting_mid_run_loses_nothing(tmp_path: Path) -> None:
    with postgres_cluster() as cluster:
        url = cluster.database()
        api_port, sandbox_port = free_port(), free_port()
        app_secret, access_token = secrets.token_hex(16), "sandbox-" + secrets.token_hex(8)
        state = tmp_path / "sandbox.sqlite3"
        env = wagate_env(
            tmp_path / "data",
            url,
            WAGATE_SANDBOX="off",
            WAGATE_LEASE_SECONDS="15",
            WAGATE_SEND_TIMEOUT="5",
        )
        sandbox = ServerProcess(
            env, sandbox_port, "sandbox run",
            extra_args=(
                "--phone-number-id", "100000000000066", "--waba-id", "200000000000066",
                "--access-token", access_token, "--app-secret", app_secret,
                "--webhook-url", f"http://127.0.0.1:{api_port}/webhooks/whatsapp",
                "--state", str(state), "--status-delay", "0.1",
            ),
            health_path="/",
        )  # fmt: skip
        api = ServerProcess(env, api_port, "api")
        worker = ServerProcess(env, free_port(), "worker")
        sandbox.start()
        try:
            # Each send held half a second before Meta's answer: sends are in flight when the
            # database goes, and their answers come while it is away.
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
                "--phone-number-id", "100000000000066", "--waba-id", "200000000000066",
                "--access-token", access_token, "--app-secret", app_secret,
                "--verify-token", "v", "--graph-url", f"{sandbox.url}/graph", "--mps", "200",
            )  # fmt: skip
            token = cli_json(env, "tokens", "create", "--account", "acme")["token"]
            api.start()
            worker.start()
            for customer in CUSTOMERS:
                reply = httpx.post(
                    f"{sandbox.url}/customer/reply",
                    json={"phone": customer, "text": "hi"},
                    headers={"Authorization": f"Bearer {access_token}"},
                    timeout=10,
                )
                assert reply.json()["delivered"], reply.text
            traffic = Traffic(api.url, token)
            sender = threading.Thread(target=traffic.run, daemon=True)
            sender.start()
            time.sleep(4)
            cluster.stop()
            down = time.time()
            time.sleep(6)
            restarting = time.time()
            cluster.start()
            up = time.time()
            time.sleep(6)
            traffic.stop.set()
            sender.join(timeout=30)
            accepted = {text for _, text, status, _ in traffic.answers if status == 202}
            deadline = time.monotonic() + 60
            while not set(_sent(state)) >= accepted and time.monotonic() < deadline:
                time.sleep(0.5)
            # Anything sent twice would show by now: the leases of what was in flight when the
            # database went have ended (and such messages been claimed again) by then.
            time.sleep(max(1.0, up + 12 - time.time()))
            texts = _sent(state)
            worker_log = worker.output()
        finally:
            for process in (worker, api, sandbox):
                process.stop()

    statuses = [status for _, _, status, _ in traffic.answers]
    refused = [(text, body) for _, text, status, body in traffic.answers if status == 503]
    during = [status for at, _, status, _ in traffic.answers if down + 0.5 < at < restarting]
    after = [status for at, _, status, _ in traffic.answers if at > up + 3]
    print(
        f"\n{len(statuses)} requests: {statuses.count(202)} accepted, {len(refused)} refused"
        f" while the database was down; {len(texts)} sends for {len(accepted)} accepted"
    )
    assert set(statuses) == {202, 503}
    assert during and set(during) == {503}
    for _, body in refused:
        assert body["success"] is False
        assert body["error"]["code"] == "service_unavailable"  # type: ignore[index]
    assert after and set(after) == {202}  # taking messages again
    assert {s for at, s in traffic.readiness if down + 0.5 < at < restarting} == {503}
    assert traffic.readiness[-1][1] == 200
    # Every 202 delivered, exactly once; nothing that was refused went out.
    outbound = [t for t in texts if t.startswith("outage ")]
    assert set(outbound) == accepted
    assert len(outbound) == len(set(outbound)), "a message was sent twice"
    assert "cannot claim" in worker_log and "claiming again" in worker_log
