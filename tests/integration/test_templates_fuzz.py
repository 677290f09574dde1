"""No Send Template body, however malformed, gets a 500: random JSON objects and forms, and
plausible requests with random parameters, against a live gateway with synced templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzzing import FUZZ, Runner, check_answer, live_gateway, text
from tests.support.fuzzing import json_values as fuzz_json
from tests.support.harness import Harness

CUSTOMER = "+14155552671"
PATH = "/v1/messages/template"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Runner[Any]]]:
    async def prepare(gateway: Harness) -> None:
        synced = await gateway.client.post("/v1/templates/sync", headers=gateway.auth)
        assert synced.status_code == 200, synced.text

    with live_gateway(tmp_path_factory.mktemp("template-fuzz"), prepare) as running:
        yield running


json_values = fuzz_json(40)
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
    check_answer(response, accepted_type="template")


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
