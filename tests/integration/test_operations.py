"""Probes an operator points a load balancer or Kubernetes at."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.harness import Harness
from wagate.store.db import write_tx


async def test_health_and_readiness(gateway: Harness) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok"}
    # A database behind the code's migrations is not ready.
    async with write_tx(gateway.engine) as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    stale = await gateway.client.get("/readyz")
    assert stale.status_code == 503
    assert stale.json()["reason"] == "migrations pending"
