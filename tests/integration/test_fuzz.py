"""No input, however malformed, gets a 500 or changes anything it should not: random JSON
objects, forms and raw bytes against a live gateway (SQLite, sandbox)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzzing import DOCUMENTED, FUZZ, Runner, check_answer, live_gateway, text
from tests.support.fuzzing import json_values as fuzz_json
from tests.support.harness import Harness

CUSTOMER = "+14155552671"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Runner[Any]]]:
    async def prepare(gateway: Harness) -> None:
        await gateway.reply(CUSTOMER, text="hello")

    with live_gateway(tmp_path_factory.mktemp("fuzz"), prepare) as running:
        yield running


json_values = fuzz_json(50)
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


check = check_answer


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
    # The channel's own path: the signature is checked whatever the body says (the shared
    # path only tries the channels a body names).
    path = run(gateway.webhook_path())
    response = run(gateway.client.post(path, content=raw, headers=headers))
    assert response.status_code in ({200, 400} if signed else {401}), response.text


item_kinds = st.sampled_from(["text", "template", "media", "list", None, 3, ""])
batch_items = st.fixed_dictionaries(
    {},
    optional={"kind": item_kinds, "template": text(20), "language": json_values},
).flatmap(lambda extra: (bodies | plausible).map(lambda body: body | extra))


@FUZZ
@given(
    items=st.lists(batch_items | json_values, min_size=0, max_size=6) | json_values,
    token_in_body=st.booleans(),
)
def test_random_batches(live: tuple[Harness, Runner[Any]], items: Any, token_in_body: bool) -> None:
    """Every batch gets the documented whole-request error or a 207 whose results are each an
    accepted message or an error in the documented shape, one per item, in order."""
    gateway, run = live
    body = {"messages": items} | ({"token": gateway.token} if token_in_body else {})
    headers = {} if token_in_body else gateway.auth
    response = run(gateway.client.post("/v1/messages/batch", json=body, headers=headers))
    if response.status_code != 207:
        check(response)
        return
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    for result in results:
        if result["success"]:
            assert result["id"].startswith("msg_")
        else:
            assert result["status_code"] in DOCUMENTED and result["status_code"] < 500
            assert isinstance(result["error"]["code"], str)
            assert isinstance(result["error"]["errors"], list)
