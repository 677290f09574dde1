"""No Send Template body, however malformed, gets a 500: random JSON objects and forms, and
plausible requests with random parameters, against a live gateway with synced templates."""

from __future__ import annotations

import asyncio
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
PATH = "/v1/messages/template"

Runner = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Runner[Any]]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    tmp: Path = tmp_path_factory.mktemp("template-fuzz")
    context = running_gateway(f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}", tmp / "data")
    gateway = run(context.__aenter__())
    synced = run(gateway.client.post("/v1/templates/sync", headers=gateway.auth))
    assert synced.status_code == 200, synced.text
    try:
        yield gateway, run
    finally:
        run(context.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text(40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(text(10), children, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(
    ["phone", "template", "language", "params", "reply_to", "metadata", "channel", "token",
     "idempotency_key"]
)  # fmt: skip
names = st.sampled_from(
    ["order_confirmation", "appointment_reminder", "summer_sale", "hello_world", "winter_promo",
     "nope", ""]
)  # fmt: skip
buttons = st.lists(
    st.fixed_dictionaries(
        {"index": st.integers(-1, 12) | json_values},
        optional={"payload": text(300) | json_values, "text": text(30) | json_values},
    ),
    max_size=4,
)
params = st.fixed_dictionaries(
    {},
    optional={
        "header": st.lists(text(70), max_size=3) | json_values,
        "body": st.lists(text(40), max_size=4)
        | st.dictionaries(st.sampled_from(["first_name", "order_number", "x"]), text(40))
        | json_values,
        "buttons": buttons | json_values,
    },
)
plausible = st.fixed_dictionaries(
    {"phone": st.sampled_from([CUSTOMER, "+1 415 555 2671", "", "+1"]), "template": names},
    optional={"language": st.sampled_from(["en_US", "pt_BR", "de", "", " en"]), "params": params},
)


def check(response: Any) -> None:
    assert response.status_code in DOCUMENTED, (response.status_code, response.text)
    body = response.json()
    if response.status_code == 202:
        assert body["success"] is True and body["id"].startswith("msg_")
        assert body["type"] == "template"
    else:
        assert body["success"] is False
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["errors"], list)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=st.dictionaries(fields | text(8), json_values, max_size=8) | plausible)
def test_random_json_bodies(live: tuple[Harness, Runner[Any]], body: dict[str, Any]) -> None:
    gateway, run = live
    check(run(gateway.client.post(PATH, json=body, headers=gateway.auth)))


@FUZZ
@given(body=st.dictionaries(fields, text(60), max_size=8))
def test_random_forms(live: tuple[Harness, Runner[Any]], body: dict[str, str]) -> None:
    gateway, run = live
    check(run(gateway.client.post(PATH, data=body, headers=gateway.auth)))
