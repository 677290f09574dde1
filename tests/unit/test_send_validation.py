"""Send Message validation (SPEC §1): every field rule, its error code, path and message."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wagate.domain.errors import ValidationFailed
from wagate.domain.messages import parse_send_request
from wagate.domain.models import Button, MessageType

PHONE = "+14155552671"
OMIT = object()  # marks a base field to leave out
YES = {"id": "yes", "title": "Yes"}
NO = {"id": "no", "title": "No"}
MAYBE = {"id": "maybe", "title": "Maybe"}


def body(**fields: Any) -> dict[str, Any]:
    """A valid text request with `fields` changed (OMIT removes one)."""
    out: dict[str, Any] = {"phone": PHONE, "message": "Hello"}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not OMIT}


def problems(fields: dict[str, Any], *, form: bool = False) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_send_request(fields, form=form)
    return [(e.field, e.code) for e in caught.value.errors]


def only_error(fields: dict[str, Any], *, form: bool = False) -> tuple[str, str, str]:
    with pytest.raises(ValidationFailed) as caught:
        parse_send_request(fields, form=form)
    errors = caught.value.errors
    assert len(errors) == 1, errors
    return errors[0].field, errors[0].code, errors[0].message


# --- accepted requests ---------------------------------------------------------------------


def test_minimal_text_message() -> None:
    request = parse_send_request(body())
    assert request.phone == PHONE
    assert request.content.type is MessageType.TEXT
    assert request.content.body == "Hello"
    assert request.content.preview_url is False
    assert (request.reply_to, request.channel, request.idempotency_key) == (None, None, None)
    assert request.metadata == {}


def test_interactive_message_keeps_every_part() -> None:
    request = parse_send_request(
        body(header="Order #4521", footer="Reply to choose", buttons=[YES, NO])
    )
    content = request.content
    assert content.type is MessageType.INTERACTIVE
    assert (content.header, content.footer) == ("Order #4521", "Reply to choose")
    assert content.buttons == (Button("yes", "Yes"), Button("no", "No"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, MessageType.TEXT, id="plain"),
        pytest.param({"preview_url": True}, MessageType.TEXT, id="preview-url"),
        pytest.param({"buttons": [YES]}, MessageType.INTERACTIVE, id="buttons-only"),
        pytest.param({"header": "H", "buttons": [YES]}, MessageType.INTERACTIVE, id="header"),
        pytest.param({"footer": "F", "buttons": [YES]}, MessageType.INTERACTIVE, id="footer"),
        pytest.param({"header": "", "footer": None}, MessageType.TEXT, id="empty-header-absent"),
        pytest.param({"header": "  ", "footer": "\n"}, MessageType.TEXT, id="blank-absent"),
    ],
)
def test_type_is_derived_from_the_fields(fields: dict[str, Any], expected: MessageType) -> None:
    assert parse_send_request(body(**fields)).content.type is expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("*bold* _italic_ ~strike~ ```mono```", id="whatsapp-formatting"),
        pytest.param("  leading and trailing spaces  ", id="spaces-kept"),
        pytest.param("line one\nline two\r\n\ttabbed", id="newlines-and-tabs"),
        pytest.param("<b>not html</b> &amp; {{1}} %s \\n", id="markup-and-escapes"),
        pytest.param("नमस्ते 👋🏽 مرحبا", id="unicode"),
    ],
)
def test_message_text_passes_through_untouched(text: str) -> None:
    assert parse_send_request(body(message=text)).content.body == text


def test_preview_url_is_passed_for_text_and_dropped_for_interactive() -> None:
    assert parse_send_request(body(preview_url=True)).content.preview_url is True
    interactive = parse_send_request(body(preview_url=True, buttons=[YES]))
    assert interactive.content.preview_url is False


def test_extras_are_kept() -> None:
    request = parse_send_request(
        body(
            reply_to="msg_123",
            metadata={"order": 4521, "tags": ["a"]},
            channel="main",
            idempotency_key="key-1",
            token="ignored-here",
            unknown_field="ignored",
        )
    )
    assert request.reply_to == "msg_123"
    assert request.metadata == {"order": 4521, "tags": ["a"]}
    assert request.channel == "main"
    assert request.idempotency_key == "key-1"


@pytest.mark.parametrize("name", ["reply_to", "channel", "idempotency_key"])
def test_empty_optional_identifiers_are_absent(name: str) -> None:
    request = parse_send_request(body(**{name: ""}))
    assert getattr(request, name) is None


# --- one broken rule at a time: (fields, field path, code) ----------------------------------

SINGLE_ERRORS = [
    # phone (details in test_phone.py)
    pytest.param(body(phone=OMIT), "phone", "missing_field", id="phone-missing"),
    pytest.param(body(phone=None), "phone", "missing_field", id="phone-null"),
    pytest.param(body(phone="+1 415 555 2671"), "phone", "invalid_phone_format", id="phone-fmt"),
    pytest.param(body(phone="+1415555267"), "phone", "invalid_phone_number", id="phone-invalid"),
    # message
    pytest.param(body(message=OMIT), "message", "missing_field", id="message-missing"),
    pytest.param(body(message=None), "message", "missing_field", id="message-null"),
    pytest.param(body(message=""), "message", "empty_message", id="message-empty"),
    pytest.param(body(message=" \n\t "), "message", "empty_message", id="message-blank"),
    pytest.param(body(message=42), "message", "invalid_field", id="message-number"),
    pytest.param(body(message=["hi"]), "message", "invalid_field", id="message-array"),
    pytest.param(body(message="a\x00b"), "message", "invalid_field", id="message-nul"),
    pytest.param(body(message="a\ud83d"), "message", "invalid_field", id="message-surrogate"),
    pytest.param(body(message="x" * 4097), "message", "message_too_long", id="text-4097"),
    pytest.param(
        body(message="x" * 1025, buttons=[YES]),
        "message",
        "message_too_long",
        id="interactive-1025",
    ),
    # header / footer
    pytest.param(body(header="h" * 61, buttons=[YES]), "header", "header_too_long", id="h-61"),
    pytest.param(body(footer="f" * 61, buttons=[YES]), "footer", "footer_too_long", id="f-61"),
    pytest.param(body(header=5, buttons=[YES]), "header", "invalid_field", id="header-number"),
    pytest.param(body(footer={}, buttons=[YES]), "footer", "invalid_field", id="footer-object"),
    pytest.param(body(header="a\x00", buttons=[YES]), "header", "invalid_field", id="header-nul"),
    pytest.param(body(header="Hi"), "buttons", "buttons_required", id="header-no-buttons"),
    pytest.param(body(footer="Bye"), "buttons", "buttons_required", id="footer-no-buttons"),
    # buttons: shape
    pytest.param(body(buttons=[]), "buttons", "invalid_button", id="buttons-empty"),
    pytest.param(body(buttons="yes"), "buttons", "invalid_button", id="buttons-string-in-json"),
    pytest.param(body(buttons={"id": "a"}), "buttons", "invalid_button", id="buttons-object"),
    pytest.param(body(buttons=["yes"]), "buttons[0]", "invalid_button", id="button-string"),
    pytest.param(body(buttons=[YES, None]), "buttons[1]", "invalid_button", id="button-null"),
    pytest.param(
        body(buttons=[{"type": "reply", "reply": YES}]),
        "buttons[0]",
        "invalid_button",
        id="button-meta-shape",
    ),
    pytest.param(
        body(buttons=[{"id": "a", "title": "A", "color": "red"}]),
        "buttons[0]",
        "invalid_button",
        id="button-extra-key",
    ),
    pytest.param(
        body(buttons=[YES, NO, MAYBE, {"id": "x", "title": "X"}]),
        "buttons",
        "too_many_buttons",
        id="four-buttons",
    ),
    # buttons: id
    pytest.param(body(buttons=[{"title": "A"}]), "buttons[0].id", "invalid_button", id="no-id"),
    pytest.param(
        body(buttons=[{"id": 1, "title": "A"}]), "buttons[0].id", "invalid_button", id="id-number"
    ),
    pytest.param(
        body(buttons=[{"id": "", "title": "A"}]), "buttons[0].id", "invalid_button", id="id-empty"
    ),
    pytest.param(
        body(buttons=[{"id": " a", "title": "A"}]),
        "buttons[0].id",
        "invalid_button",
        id="id-leading-space",
    ),
    pytest.param(
        body(buttons=[{"id": "a ", "title": "A"}]),
        "buttons[0].id",
        "invalid_button",
        id="id-trailing-space",
    ),
    pytest.param(
        body(buttons=[{"id": "   ", "title": "A"}]),
        "buttons[0].id",
        "invalid_button",
        id="id-only-spaces",
    ),
    pytest.param(
        body(buttons=[{"id": "a\x00", "title": "A"}]),
        "buttons[0].id",
        "invalid_button",
        id="id-nul",
    ),
    pytest.param(
        body(buttons=[{"id": "i" * 257, "title": "A"}]),
        "buttons[0].id",
        "button_id_too_long",
        id="id-257",
    ),
    # buttons: title
    pytest.param(body(buttons=[{"id": "a"}]), "buttons[0].title", "invalid_button", id="no-title"),
    pytest.param(
        body(buttons=[{"id": "a", "title": None}]),
        "buttons[0].title",
        "invalid_button",
        id="title-null",
    ),
    pytest.param(
        body(buttons=[{"id": "a", "title": ""}]),
        "buttons[0].title",
        "invalid_button",
        id="title-empty",
    ),
    pytest.param(
        body(buttons=[{"id": "a", "title": "  "}]),
        "buttons[0].title",
        "invalid_button",
        id="title-blank",
    ),
    pytest.param(
        body(buttons=[{"id": "a", "title": 7}]),
        "buttons[0].title",
        "invalid_button",
        id="title-number",
    ),
    pytest.param(
        body(buttons=[YES, {"id": "b", "title": "t" * 21}]),
        "buttons[1].title",
        "button_title_too_long",
        id="title-21",
    ),
    # buttons: uniqueness (the later one is reported)
    pytest.param(
        body(buttons=[YES, {"id": "yes", "title": "Sure"}]),
        "buttons[1].id",
        "duplicate_button_id",
        id="duplicate-id",
    ),
    pytest.param(
        body(buttons=[YES, NO, {"id": "y2", "title": "Yes"}]),
        "buttons[2].title",
        "duplicate_button_title",
        id="duplicate-title",
    ),
    pytest.param(
        body(buttons=[YES, {"id": "y2", "title": " Yes "}]),
        "buttons[1].title",
        "duplicate_button_title",
        id="duplicate-title-after-trim",
    ),
    # preview_url
    pytest.param(body(preview_url="true"), "preview_url", "invalid_field", id="preview-str-json"),
    pytest.param(body(preview_url=1), "preview_url", "invalid_field", id="preview-number"),
    # reply_to / channel / idempotency_key
    pytest.param(body(reply_to=12), "reply_to", "invalid_field", id="reply-to-number"),
    pytest.param(body(reply_to=" m"), "reply_to", "invalid_field", id="reply-to-padded"),
    pytest.param(body(reply_to="r" * 129), "reply_to", "field_too_long", id="reply-to-129"),
    pytest.param(body(channel=["a"]), "channel", "invalid_field", id="channel-array"),
    pytest.param(body(channel="c" * 129), "channel", "field_too_long", id="channel-129"),
    pytest.param(body(idempotency_key=5), "idempotency_key", "invalid_field", id="idem-number"),
    pytest.param(
        body(idempotency_key="k" * 256), "idempotency_key", "field_too_long", id="idem-256"
    ),
    pytest.param(body(idempotency_key="k\x00"), "idempotency_key", "invalid_field", id="idem-nul"),
    # metadata
    pytest.param(body(metadata=[1]), "metadata", "invalid_metadata", id="metadata-array"),
    pytest.param(body(metadata="{}"), "metadata", "invalid_metadata", id="metadata-str-json"),
    pytest.param(
        body(metadata={"n": float("nan")}), "metadata", "invalid_metadata", id="metadata-nan"
    ),
    pytest.param(
        body(metadata={"s": "\ud800"}), "metadata", "invalid_metadata", id="metadata-surrogate"
    ),
    pytest.param(body(metadata={"s": "a\x00"}), "metadata", "invalid_metadata", id="metadata-nul"),
    pytest.param(
        body(metadata={"k": "v" * 4089}), "metadata", "metadata_too_large", id="metadata-4097-bytes"
    ),
]


@pytest.mark.parametrize(("fields", "path", "code"), SINGLE_ERRORS)
def test_each_rule_has_its_code_and_path(fields: dict[str, Any], path: str, code: str) -> None:
    field, got_code, message = only_error(fields)
    assert (field, got_code) == (path, code)
    assert message.endswith(".")


# --- boundaries: the last accepted value and the first refused one --------------------------

BOUNDARIES = [
    pytest.param(lambda n: body(message="x" * n), 4096, "message_too_long", id="text-body"),
    pytest.param(
        lambda n: body(message="x" * n, buttons=[YES]),
        1024,
        "message_too_long",
        id="interactive-body",
    ),
    pytest.param(lambda n: body(header="h" * n, buttons=[YES]), 60, "header_too_long", id="header"),
    pytest.param(lambda n: body(footer="f" * n, buttons=[YES]), 60, "footer_too_long", id="footer"),
    pytest.param(
        lambda n: body(buttons=[{"id": "a", "title": "t" * n}]),
        20,
        "button_title_too_long",
        id="button-title",
    ),
    pytest.param(
        lambda n: body(buttons=[{"id": "i" * n, "title": "A"}]),
        256,
        "button_id_too_long",
        id="button-id",
    ),
    pytest.param(
        lambda n: body(buttons=[{"id": f"b{i}", "title": f"B{i}"} for i in range(n)]),
        3,
        "too_many_buttons",
        id="button-count",
    ),
    pytest.param(lambda n: body(reply_to="r" * n), 128, "field_too_long", id="reply-to"),
    pytest.param(lambda n: body(channel="c" * n), 128, "field_too_long", id="channel"),
    pytest.param(
        lambda n: body(idempotency_key="k" * n), 255, "field_too_long", id="idempotency-key"
    ),
    # {"k":"…"} is 8 bytes of JSON around the value.
    pytest.param(
        lambda n: body(metadata={"k": "v" * (n - 8)}),
        4096,
        "metadata_too_large",
        id="metadata-bytes",
    ),
]


@pytest.mark.parametrize(("make", "limit", "code"), BOUNDARIES)
def test_limits_are_inclusive(make: Any, limit: int, code: str) -> None:
    parse_send_request(make(limit))
    assert only_error(make(limit + 1))[1] == code


@pytest.mark.parametrize(
    ("make", "limit", "code"),
    [
        pytest.param(lambda s: body(message=s), 4096, "message_too_long", id="text-body"),
        pytest.param(
            lambda s: body(message=s, buttons=[YES]),
            1024,
            "message_too_long",
            id="interactive-body",
        ),
        pytest.param(lambda s: body(header=s, buttons=[YES]), 60, "header_too_long", id="header"),
        pytest.param(
            lambda s: body(buttons=[{"id": "a", "title": s}]),
            20,
            "button_title_too_long",
            id="button-title",
        ),
    ],
)
@pytest.mark.parametrize("char", ["😀", "é", "中", "𝄞"], ids=["emoji", "latin", "cjk", "astral"])
def test_lengths_count_code_points(make: Any, limit: int, code: str, char: str) -> None:
    parse_send_request(make(char * limit))
    assert only_error(make(char * (limit + 1)))[1] == code


def test_metadata_size_counts_utf8_bytes() -> None:
    # 1363 three-byte characters + 8 bytes of JSON = 4097 bytes, though only 1371 characters.
    assert only_error(body(metadata={"k": "中" * 1363}))[1] == "metadata_too_large"
    parse_send_request(body(metadata={"k": "中" * 1362}))


# --- messages say how to fix -----------------------------------------------------------------

MESSAGES = [
    pytest.param(
        body(buttons=[YES, {"id": "b", "title": "t" * 23}]),
        "buttons[1].title is 23 characters; WhatsApp allows at most 20.",
        id="title-too-long-as-in-spec",
    ),
    pytest.param(
        body(message="x" * 4097),
        "message is 4097 characters; a text message can have at most 4096. Shorten it or split "
        "it into several messages.",
        id="text-too-long",
    ),
    pytest.param(
        body(message="x" * 1025, buttons=[YES]),
        "message is 1025 characters; an interactive message (one with a header, footer or "
        "buttons) can have at most 1024, Meta's limit for an interactive body. Shorten it, or "
        "leave out header, footer and buttons to send it as text (up to 4096).",
        id="interactive-too-long",
    ),
    pytest.param(
        body(header="Hi"),
        "A header or footer makes this an interactive message, and Meta requires at least one "
        'button on an interactive message. Add 1 to 3 buttons, e.g. [{"id": "yes", "title": '
        '"Yes"}, {"id": "no", "title": "No"}], or leave out the header and footer to send '
        "plain text.",
        id="buttons-required-says-why",
    ),
    pytest.param(
        body(buttons=[{"id": " yes ", "title": "Yes"}]),
        'buttons[0].id " yes " has leading or trailing spaces; write it as "yes".',
        id="padded-id-shows-fix",
    ),
    pytest.param(
        body(buttons=[YES, {"id": "yes", "title": "Sure"}]),
        'buttons[1].id "yes" is the same as buttons[0].id; each button needs its own id.',
        id="duplicate-id-names-both",
    ),
    pytest.param(
        body(buttons=[YES, NO, MAYBE, YES]),
        "buttons has 4 buttons; WhatsApp allows at most 3 quick-reply buttons on a message.",
        id="too-many",
    ),
    pytest.param(
        body(message="   "),
        "message is only whitespace; write the text to send.",
        id="blank-message",
    ),
    pytest.param(
        body(message=42),
        "message must be a string; got a number.",
        id="wrong-type",
    ),
    pytest.param(
        body(buttons=[{"id": "a", "title": "A", "url": "x", "color": "red"}]),
        'buttons[0] has unknown field(s) "color", "url"; a button has only "id" and "title".',
        id="extra-keys-named",
    ),
]


@pytest.mark.parametrize(("fields", "message"), MESSAGES)
def test_first_message_explains_the_fix(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_send_request(fields)
    assert caught.value.message == message


# --- several problems at once ----------------------------------------------------------------


def test_all_problems_are_listed_in_field_order_first_is_the_code() -> None:
    fields = {
        "phone": "415-555-2671",
        "message": "x" * 1025,
        "header": "h" * 61,
        "footer": "f" * 61,
        "buttons": [
            {"id": "a", "title": "t" * 21},
            {"id": "a", "title": "B"},
            {"id": " c", "title": "B"},
            {"id": "d", "title": "D"},
        ],
        "preview_url": "yes",
        "reply_to": 1,
        "metadata": [],
        "channel": False,
        "idempotency_key": "k" * 256,
    }
    with pytest.raises(ValidationFailed) as caught:
        parse_send_request(fields)
    error = caught.value
    assert [(e.field, e.code) for e in error.errors] == [
        ("phone", "invalid_phone_format"),
        ("message", "message_too_long"),
        ("header", "header_too_long"),
        ("footer", "footer_too_long"),
        ("buttons", "too_many_buttons"),
        ("buttons[0].title", "button_title_too_long"),
        ("buttons[1].id", "duplicate_button_id"),
        ("buttons[2].id", "invalid_button"),
        ("buttons[2].title", "duplicate_button_title"),
        ("preview_url", "invalid_field"),
        ("reply_to", "invalid_field"),
        ("metadata", "invalid_metadata"),
        ("channel", "invalid_field"),
        ("idempotency_key", "field_too_long"),
    ]
    assert error.code == "invalid_phone_format"
    assert error.field == "phone"
    assert error.http_status == 422
    shape = error.body()["error"]
    assert shape["code"] == "invalid_phone_format"
    assert len(shape["errors"]) == 14


def test_each_part_of_a_button_is_checked_on_its_own() -> None:
    buttons = [{"id": "a", "title": "t" * 21}, {"id": "a", "title": 5}, {"id": "c", "title": "t"}]
    assert problems(body(buttons=buttons)) == [
        ("buttons[0].title", "button_title_too_long"),
        ("buttons[1].id", "duplicate_button_id"),
        ("buttons[1].title", "invalid_button"),
    ]


def test_missing_everything() -> None:
    assert problems({}) == [("phone", "missing_field"), ("message", "missing_field")]


def test_header_and_footer_without_buttons_is_one_error() -> None:
    assert problems(body(header="H", footer="F")) == [("buttons", "buttons_required")]


def test_huge_button_array_reports_a_bounded_number_of_errors() -> None:
    errors = problems(body(buttons=[0] * 5000))
    assert errors[0] == ("buttons", "too_many_buttons")
    assert len(errors) == 11


def test_unknown_fields_are_ignored_even_when_odd() -> None:
    parse_send_request(body(type="image", to=123, token=None, **{"": []}))


# --- form bodies: every value is a string -----------------------------------------------------


def form(**fields: str) -> dict[str, str]:
    return {"phone": PHONE, "message": "Hello", **fields}


def test_form_buttons_are_a_json_string() -> None:
    request = parse_send_request(form(buttons=json.dumps([YES, NO]), header="Pick one"), form=True)
    assert request.content.type is MessageType.INTERACTIVE
    assert request.content.buttons == (Button("yes", "Yes"), Button("no", "No"))


def test_form_metadata_is_a_json_string() -> None:
    request = parse_send_request(form(metadata='{"order": 7}'), form=True)
    assert request.metadata == {"order": 7}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("on", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("off", False),
        ("no", False),
        ("", False),
    ],
)
def test_form_preview_url_words(value: str, expected: bool) -> None:
    assert parse_send_request(form(preview_url=value), form=True).content.preview_url is expected


def test_form_empty_inputs_mean_absent() -> None:
    request = parse_send_request(
        form(
            header="",
            footer="",
            buttons="",
            metadata="",
            reply_to="",
            channel="",
            idempotency_key="",
            preview_url="",
        ),
        form=True,
    )
    assert request.content.type is MessageType.TEXT
    assert request.metadata == {}


FORM_ERRORS = [
    pytest.param(form(buttons="[{"), "buttons", "invalid_button", id="buttons-bad-json"),
    pytest.param(form(buttons='{"id": "a"}'), "buttons", "invalid_button", id="buttons-object"),
    pytest.param(form(buttons="[]"), "buttons", "invalid_button", id="buttons-empty-array"),
    pytest.param(form(buttons="[" * 100_000), "buttons", "invalid_button", id="buttons-deep"),
    pytest.param(
        form(buttons=json.dumps([{"id": "a", "title": "t" * 21}])),
        "buttons[0].title",
        "button_title_too_long",
        id="buttons-title-long",
    ),
    pytest.param(form(metadata="{oops"), "metadata", "invalid_metadata", id="metadata-bad-json"),
    pytest.param(form(metadata="[1]"), "metadata", "invalid_metadata", id="metadata-array"),
    pytest.param(form(metadata="{" * 100_000), "metadata", "invalid_metadata", id="meta-deep"),
    pytest.param(form(preview_url="maybe"), "preview_url", "invalid_field", id="preview-word"),
    pytest.param(form(header="Hi"), "buttons", "buttons_required", id="header-no-buttons"),
    pytest.param(form(message=""), "message", "empty_message", id="message-empty"),
    pytest.param(form(phone="0091 98765 43210"), "phone", "invalid_phone_format", id="phone"),
]


@pytest.mark.parametrize(("fields", "path", "code"), FORM_ERRORS)
def test_form_rules(fields: dict[str, str], path: str, code: str) -> None:
    assert only_error(fields, form=True)[:2] == (path, code)


def test_form_bad_json_message_shows_an_example() -> None:
    message = only_error(form(buttons="yes,no"), form=True)[2]
    assert message.startswith("buttons is not valid JSON; in a form body send it as a JSON array")


# --- robustness --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "phone",
        "message",
        "header",
        "footer",
        "buttons",
        "preview_url",
        "reply_to",
        "metadata",
        "channel",
        "idempotency_key",
        "token",
        "other",
    ]
)
button_like = st.lists(
    st.dictionaries(st.sampled_from(["id", "title", "x"]), json_values, max_size=3), max_size=5
)


@settings(max_examples=300)
@given(
    fields=st.dictionaries(field_names, json_values | button_like, max_size=10),
    form=st.booleans(),
)
def test_only_validation_failed_escapes(fields: dict[str, Any], form: bool) -> None:
    try:
        request = parse_send_request(fields, form=form)
    except ValidationFailed as error:
        assert error.errors
        assert error.code == error.errors[0].code
        json.dumps(error.body(), ensure_ascii=False).encode("utf-8")
    else:
        assert request.phone == fields["phone"]
        assert request.content.body == fields["message"]


@settings(max_examples=200)
@given(
    fields=st.dictionaries(field_names, st.text(max_size=40) | st.just(""), max_size=10),
)
def test_form_strings_never_crash(fields: dict[str, str]) -> None:
    with contextlib.suppress(ValidationFailed):
        parse_send_request(fields, form=True)
