"""Prometheus metrics: the helpers record the right series, and `GET /metrics` serves them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client.parser import text_string_to_metric_families

from wagate import metrics as metrics_module
from wagate.api.metrics import ApiRequestMetrics, create_router
from wagate.metrics import Metrics, lags_since, meta_code_label, retry_reason, status_label


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def exposition(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    return samples(generate_latest(m.registry).decode())


def test_every_series_is_exposed_with_its_type() -> None:
    from prometheus_client import generate_latest

    m = Metrics()
    families = {
        f.name: f.type for f in text_string_to_metric_families(generate_latest(m.registry).decode())
    }
    assert families == {
        "wagate_queue_depth": "gauge",
        "wagate_sends": "counter",
        "wagate_send_seconds": "histogram",
        "wagate_webhook_lag_seconds": "histogram",
        "wagate_retries": "counter",
        "wagate_webhooks": "counter",
        "wagate_messages_accepted": "counter",
        "wagate_api_requests": "counter",
        "wagate_callbacks": "counter",
        "wagate_callback_queue_depth": "gauge",
        "wagate_claim_seconds": "histogram",
    }


def test_record_send_counts_by_outcome_and_meta_code_and_times_the_call() -> None:
    m = Metrics()
    m.record_send("accepted", None, 0.02)
    m.record_send("accepted", None, 0.03)
    m.record_send("retried", 130429, 0.2)
    m.record_send("failed", 131026, 1.5)
    s = exposition(m)
    assert s[("wagate_sends_total", (("meta_code", "none"), ("outcome", "accepted")))] == 2
    assert s[("wagate_sends_total", (("meta_code", "130429"), ("outcome", "retried")))] == 1
    assert s[("wagate_sends_total", (("meta_code", "131026"), ("outcome", "failed")))] == 1
    assert s[("wagate_send_seconds_count", ())] == 4
    assert s[("wagate_send_seconds_sum", ())] == pytest.approx(1.75)
    assert s[("wagate_send_seconds_bucket", (("le", "0.025"),))] == 1
    assert s[("wagate_send_seconds_bucket", (("le", "0.25"),))] == 3
    assert s[("wagate_send_seconds_bucket", (("le", "+Inf"),))] == 4


def test_record_webhook_counts_results_and_observes_each_lag() -> None:
    m = Metrics()
    m.record_webhook("accepted", [0.4, 3.0, -2.0])  # skew: a negative lag counts as 0
    m.record_webhook("invalid_signature")
    m.record_webhook("invalid_body", [])
    s = exposition(m)
    assert s[("wagate_webhooks_total", (("result", "accepted"),))] == 1
    assert s[("wagate_webhooks_total", (("result", "invalid_signature"),))] == 1
    assert s[("wagate_webhooks_total", (("result", "invalid_body"),))] == 1
    assert s[("wagate_webhook_lag_seconds_count", ())] == 3
    assert s[("wagate_webhook_lag_seconds_sum", ())] == pytest.approx(3.4)
    assert s[("wagate_webhook_lag_seconds_bucket", (("le", "0.5"),))] == 2
    assert s[("wagate_webhook_lag_seconds_bucket", (("le", "5.0"),))] == 3


def test_accepted_retries_api_requests_and_queue_depth() -> None:
    m = Metrics()
    m.record_accepted()
    m.record_accepted(4)
    m.record_accepted(0)
    m.record_retry("throttled")
    m.record_retry("throttled")
    m.record_retry("timeout")
    m.record_api_request(202)
    m.record_api_request(202)
    m.record_api_request(422)
    m.set_queue_depth(17)
    s = exposition(m)
    assert s[("wagate_messages_accepted_total", ())] == 5
    assert s[("wagate_retries_total", (("reason", "throttled"),))] == 2
    assert s[("wagate_retries_total", (("reason", "timeout"),))] == 1
    assert s[("wagate_api_requests_total", (("status", "202"),))] == 2
    assert s[("wagate_api_requests_total", (("status", "422"),))] == 1
    assert s[("wagate_queue_depth", ())] == 17
    m.set_queue_depth(-3)
    assert exposition(m)[("wagate_queue_depth", ())] == 0


def test_label_values_stay_in_a_bounded_set() -> None:
    m = Metrics()
    bad: Any = "made up: anything a caller passes"
    m.record_send(bad, 131026, 0.1)
    m.record_retry(bad)
    m.record_webhook(bad)
    m.record_api_request(1234)
    s = exposition(m)
    assert s[("wagate_sends_total", (("meta_code", "131026"), ("outcome", "other")))] == 1
    assert s[("wagate_retries_total", (("reason", "other"),))] == 1
    assert s[("wagate_webhooks_total", (("result", "other"),))] == 1
    assert s[("wagate_api_requests_total", (("status", "other"),))] == 1


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (None, "none"),
        (0, "0"),
        (4, "4"),
        (131026, "131026"),
        (2494055, "2494055"),
        (-1, "other"),
        (10**12, "other"),
        (True, "other"),
        ("131026", "other"),  # text never becomes a label, even when it looks like a code
    ],
)
def test_meta_code_label(code: Any, label: str) -> None:
    assert meta_code_label(code) == label


@pytest.mark.parametrize(("status", "label"), [(200, "200"), (599, "599"), (99, "other")])
def test_status_label(status: int, label: str) -> None:
    assert status_label(status) == label


@pytest.mark.parametrize(
    ("retry_class", "meta_code", "title", "reason"),
    [
        ("throttled", 130429, "Rate limit hit", "throttled"),
        ("transient", 131000, "Something went wrong", "transient"),
        ("transient", None, "timeout", "timeout"),
        ("transient", None, "connection error", "connection_error"),
        ("transient", None, "HTTP 502", "transient"),
    ],
)
def test_retry_reason(retry_class: str, meta_code: int | None, title: str, reason: str) -> None:
    assert retry_reason(retry_class, meta_code, title) == reason


def test_lags_since_takes_datetimes_and_epoch_seconds() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    sent = now - timedelta(seconds=2.5)
    assert lags_since([sent, int(now.timestamp()) - 10], now) == pytest.approx([2.5, 10.0])


def test_module_helpers_record_on_the_process_registry() -> None:
    before = exposition(metrics_module.METRICS)
    key = ("wagate_sends_total", (("meta_code", "131056"), ("outcome", "retried")))
    metrics_module.record_send("retried", 131056, 0.01)
    metrics_module.record_accepted(2)
    after = exposition(metrics_module.METRICS)
    assert after[key] == before.get(key, 0) + 1
    accepted = ("wagate_messages_accepted_total", ())
    assert after[accepted] == before[accepted] + 2
    assert metrics_module.REGISTRY is metrics_module.METRICS.registry


def _app(m: Metrics, **router_args: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(ApiRequestMetrics, metrics=m)
    app.include_router(create_router(m, **router_args))

    @app.post("/v1/messages")
    async def send() -> JSONResponse:
        return JSONResponse({"success": True}, status_code=202)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _get(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, **kwargs)


async def test_metrics_endpoint_serves_prometheus_text() -> None:
    m = Metrics()
    m.record_send("accepted", None, 0.05)
    response = await _get(_app(m), "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    s = samples(response.text)
    assert s[("wagate_sends_total", (("meta_code", "none"), ("outcome", "accepted")))] == 1


async def test_metrics_endpoint_speaks_openmetrics_when_asked() -> None:
    response = await _get(
        _app(Metrics()), "/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_queue_depth_is_counted_at_each_scrape() -> None:
    depth = iter([120, 7])

    async def probe() -> int:
        return next(depth)

    app = _app(Metrics(), queue_depth=probe)
    assert samples((await _get(app, "/metrics")).text)[("wagate_queue_depth", ())] == 120
    assert samples((await _get(app, "/metrics")).text)[("wagate_queue_depth", ())] == 7


async def test_a_failing_queue_probe_does_not_fail_the_scrape() -> None:
    m = Metrics()
    m.set_queue_depth(5)

    async def probe() -> int:
        raise OSError("database is locked")

    response = await _get(_app(m, queue_depth=probe), "/metrics")
    assert response.status_code == 200
    assert samples(response.text)[("wagate_queue_depth", ())] == 5


async def test_middleware_counts_api_answers_by_status() -> None:
    m = Metrics()
    app = _app(m)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(3):
            assert (await client.post("/v1/messages")).status_code == 202
        assert (await client.get("/v1/nowhere")).status_code == 404
        assert (await client.get("/v1/boom")).status_code == 500
        await client.get("/healthz")  # not an API path: not counted
        await client.get("/metrics")
    s = exposition(m)
    assert s[("wagate_api_requests_total", (("status", "202"),))] == 3
    assert s[("wagate_api_requests_total", (("status", "404"),))] == 1
    assert s[("wagate_api_requests_total", (("status", "500"),))] == 1
    assert sum(v for (name, _), v in s.items() if name == "wagate_api_requests_total") == 5


async def test_outbox_depth_counts_rows() -> None:
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    from wagate.api.metrics import outbox_depth
    from wagate.store.tables import outbox

    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)  # in memory
    try:
        async with engine.begin() as conn:
            await conn.run_sync(outbox.create, checkfirst=True)
            now = datetime.now(UTC)
            await conn.execute(
                insert(outbox),
                [
                    {
                        "message_id": f"msg_{i}",
                        "channel_id": "ch",
                        "phone": "+1",
                        "available_at": now,
                    }
                    for i in range(3)
                ],
            )
        assert await outbox_depth(engine)() == 3
    finally:
        await engine.dispose()
