"""A synced template as a form and back: the inputs it asks for, and the `params` they make,
which the Send Template check accepts."""

from __future__ import annotations

from typing import Any

import pytest

from wagate.dashboard.template_form import (
    draft,
    field_for_error,
    param_inputs,
    params_from_form,
    preview,
    template_key,
)
from wagate.domain.errors import ValidationFailed
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
    # Nothing is filled in: Meta's sample values are only placeholders, so that a sample value
    # ("Asha") cannot reach a real customer by accident.
    assert all(i.value == "" for i in inputs)
    # Typed as the placeholders suggest, the form's params pass the same check as the API's.
    form = {i.name: (i.placeholder or "e.g. x").removeprefix("e.g. ") for i in inputs}
    if "header_link" in form:
        form["header_link"] = "https://example.com/sale.png"
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


def test_positional_fields_say_where_they_stand_in_the_text() -> None:
    inputs = {i.name: i for i in param_inputs(sandbox_template("appointment_reminder"))}
    third = inputs["body_3"]
    assert third.label == "Body {{3}}"
    assert third.hint is not None and "with {{2}} at {{3}}. Tap a button" in third.hint
    assert inputs["header_0"].label == "Header {{1}}"
    assert inputs["body_1"].placeholder and inputs["body_1"].placeholder.startswith("e.g. ")


@pytest.mark.parametrize(
    ("name", "typed", "path", "field"),
    [
        ("appointment_reminder", {}, "params.body[2]", "body_3"),
        ("appointment_reminder", {}, "params.body[0]", "body_1"),
        ("appointment_reminder", {}, "params.header[0]", "header_0"),
        ("order_confirmation", {}, "params.body.first_name", "body_first_name"),
        ("order_confirmation", {}, "params.buttons[0].text", "button_1"),
        ("order_confirmation", {"button_0": "track"}, "params.buttons[1].text", "button_1"),
        ("order_confirmation", {"button_0": "track"}, "params.buttons[0].payload", "button_0"),
        ("summer_sale", {}, "params.header.image.link", "header_link"),
        ("order_confirmation", {}, "template", None),
    ],
)
def test_an_error_points_at_its_input(
    name: str, typed: dict[str, str], path: str, field: str | None
) -> None:
    assert field_for_error(sandbox_template(name), typed, path) == field


def test_every_error_of_an_empty_form_is_on_one_of_its_inputs() -> None:
    template = sandbox_template("appointment_reminder")
    form = {"body_1": "Ana", "body_2": "", "body_3": "", "header_0": "26 Nov", "button_0": ""}
    try:
        fill_template(template, params_from_form(template, form))
    except ValidationFailed as failed:
        where = {field_for_error(template, form, e.field) for e in failed.errors}
    assert where == {"body_2", "body_3"}


def test_the_draft_shows_what_was_typed_and_the_placeholders_left() -> None:
    template = sandbox_template("appointment_reminder")
    drafted = draft(template, {"body_1": "Ana", "header_0": ""})
    assert drafted["body"].startswith(
        "Hello Ana, this is a reminder of your appointment with {{2}}"
    )
    assert drafted["header"] == "Appointment on {{1}}"
    sale = draft(sandbox_template("summer_sale"), {"header_link": "https://x.test/a.png"})
    assert sale["media"] == {"kind": "image", "link": "https://x.test/a.png"}
