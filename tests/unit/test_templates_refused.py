"""Send Template refusals (SPEC §1, §2): every mismatch and every value over Meta's limits,
listed with its path and code, as tables of cases; and the request's other fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_templates import (
    HELLO,
    ORDER,
    REMINDER,
    REMINDER_PARAMS,
    SALE,
    SALE_PARAMS,
    SPEC_PARAMS,
    SYNCED,
    meta,
    problems,
)
from wagate.domain.errors import FieldError, InvalidBody, ValidationFailed
from wagate.domain.templates import (
    Template,
    build_template_send,
    check_request,
    example_params,
    fill_template,
)
from wagate.sandbox.templates import TEMPLATES

MISMATCH = "template_params_mismatch"
BAD = "invalid_template_param"
LONG = "template_param_too_long"
SHAPE = "invalid_field"
B = SPEC_PARAMS["body"]

REFUSED: list[tuple[str, Template, dict[str, Any], list[tuple[str, str]]]] = [
    # (case, template, params, every problem as (field, code))
    ("nothing for a named template", ORDER, {}, [
        ("params.header.order_id", MISMATCH), ("params.body.first_name", MISMATCH),
        ("params.body.order_number", MISMATCH), ("params.buttons", MISMATCH)]),
    ("nothing for a numbered one", REMINDER, {}, [
        ("params.header[0]", MISMATCH), ("params.body[0]", MISMATCH),
        ("params.body[1]", MISMATCH), ("params.body[2]", MISMATCH)]),
    ("a list for a named body", ORDER, {**SPEC_PARAMS, "body": ["Asha", "4521"]},
     [("params.body", MISMATCH)]),
    ("an object for a numbered body", REMINDER, {**REMINDER_PARAMS, "body": {"1": "Asha"}},
     [("params.body", MISMATCH)]),
    ("an object for a numbered header", REMINDER, {**REMINDER_PARAMS, "header": {"1": "x"}},
     [("params.header", MISMATCH)]),
    ("a body that is a string", ORDER, {**SPEC_PARAMS, "body": "Asha"}, [("params.body", SHAPE)]),
    ("one value too many", REMINDER, {**REMINDER_PARAMS, "body": ["a", "b", "c", "d"]},
     [("params.body[3]", MISMATCH)]),
    ("extra and missing names", ORDER, {**SPEC_PARAMS, "body": {"name": "A", "order_number": "1"}},
     [("params.body.first_name", MISMATCH), ("params.body.name", MISMATCH)]),
    ("a header the template has not", HELLO, {"header": ["x"]}, [("params.header", MISMATCH)]),
    ("a body the template has not", HELLO, {"body": ["x"]}, [("params.body[0]", MISMATCH)]),
    ("a text for an image header", SALE, {**SALE_PARAMS, "header": ["x"]},
     [("params.header", MISMATCH)]),
    ("a video for an image header", SALE, {**SALE_PARAMS, "header": {"video": {"link": "https://x"}}},
     [("params.header", MISMATCH)]),
    ("an image without link or id", SALE, {**SALE_PARAMS, "header": {"image": {}}},
     [("params.header.image", BAD)]),
    ("an image with link and id", SALE,
     {**SALE_PARAMS, "header": {"image": {"link": "https://x/y", "id": "1"}}},
     [("params.header.image", BAD)]),
    ("an image link that is not http", SALE,
     {**SALE_PARAMS, "header": {"image": {"link": "ftp://x/y.jpg"}}},
     [("params.header.image.link", BAD)]),
    ("an image that is a string", SALE, {**SALE_PARAMS, "header": {"image": "https://x"}},
     [("params.header.image", SHAPE)]),
    ("a number as a value", ORDER, {**SPEC_PARAMS, "body": {**B, "order_number": 4521}},
     [("params.body.order_number", BAD)]),
    ("an empty value", ORDER, {**SPEC_PARAMS, "body": {**B, "first_name": "  "}},
     [("params.body.first_name", BAD)]),
    ("a newline", ORDER, {**SPEC_PARAMS, "body": {**B, "first_name": "A\nB"}},
     [("params.body.first_name", BAD)]),
    ("a tab", REMINDER, {**REMINDER_PARAMS, "header": ["26\tNov"]}, [("params.header[0]", BAD)]),
    ("five spaces", ORDER, {**SPEC_PARAMS, "body": {**B, "first_name": "A     B"}},
     [("params.body.first_name", BAD)]),
    ("a NUL", ORDER, {**SPEC_PARAMS, "body": {**B, "first_name": "A\x00"}},
     [("params.body.first_name", BAD)]),
    ("a header over 60", ORDER, {**SPEC_PARAMS, "header": ["#" * 55]},
     [("params.header[0]", LONG)]),
    ("a named header over 60", ORDER, {**SPEC_PARAMS, "header": {"order_id": "#" * 55}},
     [("params.header.order_id", LONG)]),
    ("a body over 1024", REMINDER, {**REMINDER_PARAMS, "body": ["a", "b" * 930, "c"]},
     [("params.body", LONG)]),
    ("a payload over 256", ORDER,
     {**SPEC_PARAMS, "buttons": [{"index": 0, "payload": "p" * 257}, {"index": 1, "text": "1"}]},
     [("params.buttons[0].payload", LONG)]),
    ("a URL over 2000", ORDER, {**SPEC_PARAMS, "buttons": [{"index": 1, "text": "x" * 1990}]},
     [("params.buttons[0].text", LONG)]),
    ("spaces in a URL", ORDER, {**SPEC_PARAMS, "buttons": [{"index": 1, "text": "45 21"}]},
     [("params.buttons[0].text", BAD)]),
    ("a payload for a URL button", ORDER,
     {**SPEC_PARAMS, "buttons": [{"index": 1, "payload": "1"}]},
     [("params.buttons[0].payload", MISMATCH)]),
    ("a text for a quick reply", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": 0, "text": "y"}]},
     [("params.buttons[0].text", MISMATCH)]),
    ("a button the template has not", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": 2, "payload": "p"}]},
     [("params.buttons[0]", MISMATCH)]),
    ("a parameter for a fixed URL", meta(components=[
        {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Go", "url": "https://x.example"}]}]),
     {"buttons": [{"index": 0, "text": "y"}]}, [("params.buttons[0]", MISMATCH)]),
    ("a button given twice", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": 0, "payload": "a"}, {"index": 0, "payload": "b"}]},
     [("params.buttons[1].index", SHAPE)]),
    ("a button without index", REMINDER, {**REMINDER_PARAMS, "buttons": [{"payload": "a"}]},
     [("params.buttons[0].index", SHAPE)]),
    ("a button index that is not a number", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": True, "payload": "a"}]},
     [("params.buttons[0].index", SHAPE)]),
    ("a button with payload and text", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": 0, "payload": "a", "text": "b"}]},
     [("params.buttons[0]", SHAPE)]),
    ("a button with an unknown key", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": 0, "url": "a"}]}, [("params.buttons[0]", SHAPE)]),
    ("buttons that are an object", REMINDER, {**REMINDER_PARAMS, "buttons": {"0": "a"}},
     [("params.buttons", SHAPE)]),
    ("eleven buttons", REMINDER,
     {**REMINDER_PARAMS, "buttons": [{"index": i, "payload": "a"} for i in range(11)]},
     [("params.buttons", SHAPE)]),
    ("a location header", meta(components=[{"type": "HEADER", "format": "LOCATION"},
                                           {"type": "BODY", "text": "Hi"}]),
     {}, [("template", "template_not_supported")]),
    ("a copy-code button", meta(components=[
        {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": ["SAVE"]}]}]),
     {}, [("template", "template_not_supported")]),
    ("a carousel", meta(components=[{"type": "BODY", "text": "Hi"}, {"type": "CAROUSEL"}]),
     {}, [("template", "template_not_supported")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "template", "params", "expected"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_mismatches_and_limits_are_refused(
    case: str, template: Template, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems(template, params) == expected


def test_messages_say_what_is_missing_or_extra_and_how_to_fix_it() -> None:
    with pytest.raises(ValidationFailed) as caught:
        fill_template(ORDER, {"header": ["#1"], "body": ["Asha", "1"]})
    messages = {e.field: e.message for e in caught.value.errors}
    assert messages["params.body"] == (
        'params.body must be an object: template "order_confirmation" uses named parameters, '
        'e.g. {"first_name": "…", "order_number": "…"}.'
    )
    assert messages["params.buttons"].endswith('add {"index": 1, "text": "…"}.')
    with pytest.raises(ValidationFailed) as caught:
        fill_template(REMINDER, {**REMINDER_PARAMS, "body": ["a"]})
    assert caught.value.errors[0].message == (
        'params.body[1] is missing: template "appointment_reminder" has 3 body parameter(s), '
        "{{1}}, {{2}}, {{3}}; {{2}} has no value."
    )


@pytest.mark.parametrize("template", SYNCED, ids=[f"{t.name}-{t.language}" for t in SYNCED])
def test_the_example_for_each_template_fills_it(template: Template) -> None:
    example = example_params(template)
    assert example is not None
    assert fill_template(template, example).template is not None
    json.dumps(example)  # shown as JSON by GET /v1/templates


def test_there_is_no_example_for_a_template_wagate_cannot_fill() -> None:
    assert example_params(meta(components=[{"type": "HEADER", "format": "LOCATION"}])) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)


button_params = st.lists(
    st.fixed_dictionaries(
        {"index": json_values}, optional={"payload": json_values, "text": json_values}
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(SYNCED),
    params=st.fixed_dictionaries(
        {},
        optional={
            "header": json_values,
            "body": json_values,
            "buttons": json_values | button_params,
        },
    ),
)
def test_any_params_give_content_or_listed_problems(
    template: Template, params: dict[str, Any]
) -> None:
    try:
        content = fill_template(template, params)
    except ValidationFailed as failed:
        assert failed.errors and len(failed.errors) <= 40
        assert all(e.field == "template" or e.field.startswith("params") for e in failed.errors)
    else:
        assert content.template is not None and content.body


# --------------------------------------------------------------------------- the request

PHONE = "+919876543210"
ORDERS = [ORDER]


def request(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"phone": PHONE, "template": "order_confirmation",
                           "params": SPEC_PARAMS}  # fmt: skip
    return {k: v for k, v in (out | fields).items() if v is not None}


def test_a_request_becomes_a_send_request() -> None:
    send = build_template_send(
        request(reply_to="msg_1", metadata={"order": 4521}, channel="ch_1", idempotency_key="k"),
        ORDERS,
    )
    assert send.phone == PHONE
    assert send.content.type.value == "template" and send.content.header == "Order #4521"
    assert (send.reply_to, send.metadata, send.channel, send.idempotency_key) == (
        "msg_1", {"order": 4521}, "ch_1", "k")  # fmt: skip


FIELD_ERRORS: list[tuple[str, dict[str, Any], bool, list[tuple[str, str]]]] = [
    ("no phone", request(phone=None), False, [("phone", "missing_field")]),
    ("no template", request(template=None), False, [("template", "missing_field")]),
    ("template is a number", request(template=7), False, [("template", "invalid_field")]),
    ("template with spaces", request(template=" order_confirmation"), False,
     [("template", "invalid_field")]),
    ("template too long", request(template="t" * 513), False, [("template", "field_too_long")]),
    ("language is a number", request(language=1), False, [("language", "invalid_field")]),
    ("language too long", request(language="e" * 17), False, [("language", "field_too_long")]),
    ("params is a list", request(params=[1]), False, [("params", "invalid_field")]),
    ("params has a footer", request(params={**SPEC_PARAMS, "footer": ["x"]}), False,
     [("params", "invalid_field")]),
    ("params in a form is not JSON", request(params="{", phone=PHONE), True,
     [("params", "invalid_field")]),
    ("params in JSON is a string", request(params=json.dumps(SPEC_PARAMS)), False,
     [("params", "invalid_field")]),
    ("bad extras", request(reply_to=" x", metadata=[], channel=5, idempotency_key="k" * 256),
     False, [("reply_to", "invalid_field"), ("metadata", "invalid_metadata"),
             ("channel", "invalid_field"), ("idempotency_key", "field_too_long")]),
    ("everything at once", {"phone": "0091", "template": "order_confirmation",
                            "params": {"body": {}}}, False,
     [("phone", "invalid_phone_format"), ("params.header.order_id", MISMATCH),
      ("params.body.first_name", MISMATCH), ("params.body.order_number", MISMATCH),
      ("params.buttons", MISMATCH)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fields", "form", "expected"), FIELD_ERRORS, ids=[c[0] for c in FIELD_ERRORS]
)
def test_the_other_fields_are_checked_like_send_message(
    case: str, fields: dict[str, Any], form: bool, expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        build_template_send(fields, ORDERS, form=form)
    assert [(e.field, e.code) for e in caught.value.errors] == expected


def test_a_form_carries_params_and_metadata_as_json() -> None:
    form = {"phone": PHONE, "template": "order_confirmation", "params": json.dumps(SPEC_PARAMS),
            "metadata": '{"a": 1}', "language": "", "reply_to": ""}  # fmt: skip
    send = build_template_send(form, ORDERS, form=True)
    assert send.metadata == {"a": 1} and send.reply_to is None
    assert send.content.body.startswith("Hi Asha")


def test_an_unknown_channel_is_reported_in_place_of_the_template_check() -> None:
    gone = FieldError("channel", "unknown_channel", "This account has no channel 'x'.")
    with pytest.raises(ValidationFailed) as caught:
        build_template_send(request(channel="x", phone="1"), [], channel_error=gone)
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("phone", "invalid_phone_format"),
        ("channel", "unknown_channel"),
    ]
    with pytest.raises(InvalidBody):
        build_template_send(["not a mapping"], ORDERS)  # type: ignore[arg-type]


def test_a_bulk_send_can_be_checked_against_the_listed_templates() -> None:
    views = [  # as GET /v1/templates lists them
        {**t, "channel_id": "ch_1", "phone_number_id": "100", "meta_id": t["id"], "id": f"tpl_{i}"}
        for i, t in enumerate(TEMPLATES)
    ]
    assert check_request(views, request()) == []
    assert check_request(views, request(channel="100")) == []
    [problem] = check_request(views, request(channel="ch_2"))
    assert problem.code == "template_not_found"
    codes = [e.code for e in check_request(views, request(params={"body": ["x"]}))]
    assert codes == [MISMATCH] * 3
