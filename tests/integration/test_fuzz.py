"""No input, however malformed, gets a 500 or changes anything it should not: random JSON
objects, forms and raw bytes against a live gateway (SQLite, sandbox)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import Harness, running_gateway

T = TypeVar("T")
CUSTOMER = "+14155552671"
DOCUMENTED = {202, 400, 401, 409, 413, 415, 422, 429}

Runner = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Runner[Any]]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    tmp: Path = tmp_path_factory.mktemp("fuzz")
    context = running_gateway(f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}", tmp / "data")
    gateway = run(context.__aenter__())
    run(gateway.reply(CUSTOMER, text="hello"))
    try:
        yield gateway, run
    finally:
        run(context.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def text(max_size: int) -> st.SearchStrategy[str]:
    # Any character a UTF-8 JSON body can carry (lone surrogates cannot be sent at all).
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text(50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(text(10), children, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(
    ["phone", "message", "header", "footer", "buttons", "preview_url", "reply_to", "metadata",
     "channel", "token", "idempotency_key"]
)  # fmt: skip
bodies = st.dictionaries(fields | text(8), json_values, max_size=8)
button = st.fixed_dictionaries(
    {"id": text(30), "title": text(25)},
    optional={"extra": json_values},
)
plausible = st.fixed_dictionaries(
    {"phone": st.sampled_from([CUSTOMER, "+1 415 555 2671", "14155552671", "+1", "", "+999999"])},
    optional={
        "message": text(30) | st.integers(),
        "header": text(70),
        "footer": text(70),
        "buttons": st.lists(button, max_size=5) | json_values,
        "preview_url": json_values,
        "metadata": json_values,
    },
)


def check(response: Any) -> None:
    assert response.status_code in DOCUMENTED, (response.status_code, response.text)
    body = response.json()
    if response.status_code == 202:
        assert body["success"] is True and body["id"].startswith("msg_")
    else:
        assert body["success"] is False
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["errors"], list)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=bodies | plausible)
def test_random_json_objects(live: tuple[Harness, Runner[Any]], body: dict[str, Any]) -> None:
    gateway, run = live
    check(run(gateway.client.post("/v1/messages", json=body, headers=gateway.auth)))


@FUZZ
@given(body=st.dictionaries(fields, text(40), max_size=8))
def test_random_forms(live: tuple[Harness, Runner[Any]], body: dict[str, str]) -> None:
    gateway, run = live
    check(run(gateway.client.post("/v1/messages", data=body, headers=gateway.auth)))


@FUZZ
@given(
    raw=st.binary(max_size=200) | text(200).map(str.encode),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
            "application/json; charset=latin-1",
        ]
    ),
)
def test_random_bytes(live: tuple[Harness, Runner[Any]], raw: bytes, content_type: str) -> None:
    gateway, run = live
    headers = dict(gateway.auth)
    if content_type:
        headers["Content-Type"] = content_type
    check(run(gateway.client.post("/v1/messages", content=raw, headers=headers)))


@FUZZ
@given(
    raw=st.binary(max_size=300) | bodies.map(lambda b: json.dumps(b).encode()),
    signed=st.booleans(),
)
def test_random_webhooks(live: tuple[Harness, Runner[Any]], raw: bytes, signed: bool) -> None:
    from wagate.cloud.webhooks import sign

    gateway, run = live
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign(gateway.identity.app_secret, raw)
    response = run(gateway.client.post("/webhooks/whatsapp", content=raw, headers=headers))
    assert response.status_code in ({200, 400} if signed else {401}), response.text
