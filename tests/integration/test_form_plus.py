"""A form body whose `+` was not encoded arrives with a space for it; the error says why."""

from __future__ import annotations

import pytest

from tests.support.harness import Harness

CUSTOMER = "+14155552671"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/template"])
async def test_an_unencoded_plus_in_a_form_is_explained(gateway: Harness, path: str) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    body = f"phone={CUSTOMER}&message=Hi&template=hello_world&language=en_US"
    answer = await gateway.client.post(
        path,
        content=body,
        headers=gateway.auth | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_phone_format", "phone")
    assert "encode + as %2B" in error["message"]
    assert "write it as +14155552671" in error["message"]


async def test_the_same_space_in_json_is_not_blamed_on_a_form(gateway: Harness) -> None:
    answer = await gateway.send(phone=" 14155552671", message="Hi")
    assert answer.status_code == 422
    assert "%2B" not in answer.json()["error"]["message"]
