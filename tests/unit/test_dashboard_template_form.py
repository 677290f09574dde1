"""A synced template as a form and back: the inputs it asks for, and the `params` they make,
which the Send Template check accepts."""

from __future__ import annotations

from typing import Any

import pytest

from wagate.dashboard.template_form import param_inputs, params_from_form, preview, template_key
from wagate.domain.templates import Template, fill_template, template_from_meta
from wagate.sandbox.templates import TEMPLATES


def sandbox_template(name: str, language: str = "en_US") -> Template:
    for item in TEMPLATES:
        if item["name"] == name and item["language"] == language:
            return template_from_meta(item)
    raise LookupError(name)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("hello_world", []),
        ("order_confirmation", ["header_0", "body_first_name", "body_order_number", "button_0",
                                "button_1"]),
        ("appointment_reminder", ["header_0", "body_1", "body_2", "body_3", "button_0",
                                  "button_1"]),
        ("summer_sale", ["header_link", "body_1", "body_2", "button_0"]),
    ],
)  # fmt: skip
def test_inputs_follow_the_template(name: str, fields: list[str]) -> None:
    template = sandbox_template(name)
    inputs = param_inputs(template)
    assert [i.name for i in inputs] == fields
    # Filled with Meta's examples, the form's params pass the same check as the API's.
    form = {i.name: i.value for i in inputs}
    content = fill_template(template, params_from_form(template, form))
    assert content.template is not None and content.template.name == name


def test_typed_values_win_and_quick_reply_payloads_are_optional() -> None:
    template = sandbox_template("order_confirmation")
    typed = {"header_0": "#77", "body_first_name": "Ravi", "body_order_number": "77",
             "button_0": "", "button_1": "77"}  # fmt: skip
    assert {i.name: i.value for i in param_inputs(template, typed)} == typed
    params: dict[str, Any] = params_from_form(template, typed)
    assert params == {
        "header": ["#77"],
        "body": {"first_name": "Ravi", "order_number": "77"},
        "buttons": [{"index": 1, "text": "77"}],
    }
    content = fill_template(template, params)
    assert content.body.startswith("Hi Ravi, your order 77")


def test_preview_and_key() -> None:
    template = sandbox_template("order_confirmation")
    shown = preview(template)
    assert shown is not None and "{{" not in shown.body
    assert template_key(template) == "order_confirmation|en_US"
    assert template_key({"name": "a", "language": "b"}) == "a|b"
