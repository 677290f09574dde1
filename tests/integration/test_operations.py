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


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_metrics_count_what_happens(gateway: Harness) -> None:
    before = (await gateway.client.get("/metrics")).text
    await gateway.reply("+14155552671", text="hi")
    sent = await gateway.send(phone="+14155552671", message="counted")
    await gateway.wait_status(sent.json()["id"], "read")
    await gateway.send(phone="+14155552671", message="")  # a 422
    await gateway.client.post("/webhooks/whatsapp", content=b"{}")  # unsigned
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("wagate_messages_accepted_total") == 1
    assert grew("wagate_sends_total", outcome="accepted", meta_code="none") == 1
    assert grew("wagate_send_seconds_count") == 1
    assert grew("wagate_webhooks_total", result="invalid_signature") == 1
    assert grew("wagate_webhooks_total", result="accepted") >= 4  # reply + sent/delivered/read
    assert grew("wagate_webhook_lag_seconds_count") >= 4
    assert grew("wagate_api_requests_total", status="202") == 1
    assert grew("wagate_api_requests_total", status="422") == 1
    assert _sample(after, "wagate_queue_depth") == 0
