"""Send Template checks (SPEC §1): a request's params against a synced template, as tables of
cases (template, params → Meta's components and what the customer sees, or every problem)."""

from __future__ import annotations

from typing import Any

import pytest

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.models import Button, MessageType
from wagate.domain.templates import (
    Template,
    choose_template,
    fill_template,
    template_from_meta,
)
from wagate.sandbox.templates import TEMPLATES

SYNCED = [template_from_meta(t) for t in TEMPLATES]


def synced(name: str, language: str = "en_US") -> Template:
    return next(t for t in SYNCED if t.name == name and t.language == language)


ORDER = synced("order_confirmation")  # named: header {{order_id}}, body, quick reply, URL
REMINDER = synced("appointment_reminder")  # numbered: header {{1}}, body {{1}}-{{3}}, 2 replies
SALE = synced("summer_sale")  # numbered: image header, body {{1}} {{2}}, URL button
HELLO = synced("hello_world")  # no parameters at all
SPEC_PARAMS = {
    "header": ["#4521"],
    "body": {"first_name": "Asha", "order_number": "4521"},
    "buttons": [{"index": 0, "payload": "track-4521"}, {"index": 1, "text": "4521"}],
}
REMINDER_PARAMS = {"header": ["26 November"], "body": ["Asha", "Dr. Rao", "10:00"]}
SALE_PARAMS = {
    "header": {"image": {"link": "https://cdn.example.com/sale.jpg"}},
    "body": ["Asha", "SUN20"],
    "buttons": [{"index": 0, "text": "SUN20"}],
}


def meta(**fields: Any) -> Template:
    """A template as Meta would list it, with `fields` changed."""
    item: dict[str, Any] = {"name": "t", "language": "en_US", "status": "APPROVED",
                            "category": "UTILITY", "id": "1", "components": []}  # fmt: skip
    return template_from_meta(item | fields)


def problems(template: Template, params: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        fill_template(template, params)
    return [(e.field, e.code) for e in caught.value.errors]


# --------------------------------------------------------------------------- reading Meta's list


def test_a_listed_template_is_read_as_meta_gives_it() -> None:
    assert (ORDER.name, ORDER.language, ORDER.status, ORDER.category) == (
        "order_confirmation", "en_US", "APPROVED", "UTILITY")  # fmt: skip
    assert ORDER.named and not REMINDER.named
    assert ORDER.meta_id == "900000000000002"
    assert [c["type"] for c in ORDER.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ([{"type": "BODY", "text": "Hi {{first_name}}"}], "NAMED"),
        ([{"type": "BODY", "text": "Hi {{1}}, {{2}}"}], "POSITIONAL"),
        ([{"type": "BODY", "text": "Hi"}], "POSITIONAL"),
    ],
)
def test_the_parameter_format_is_inferred_when_meta_leaves_it_out(
    components: list[dict[str, Any]], expected: str
) -> None:
    assert meta(components=components).parameter_format == expected


@pytest.mark.parametrize(
    "broken",
    [
        {"name": None},
        {"language": ""},
        {"status": 3},
        {"components": "BODY"},
        {"components": ["BODY"]},
    ],
)
def test_a_malformed_entry_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        meta(**broken)
    with pytest.raises(ValueError):
        template_from_meta(["not", "an", "object"])


# --------------------------------------------------------------------------- choosing


CHOICES: list[tuple[str, str, str | None, str | None, tuple[str, str, str] | None]] = [
    # (case, name, language, chosen language, or the error: field, code, words in its message)
    ("exact", "order_confirmation", "en_US", "en_US", None),
    ("case does not matter", "order_confirmation", "EN_us", "en_US", None),
    ("one language, none given", "order_confirmation", None, "en_US", None),
    ("pick among two", "appointment_reminder", "pt_BR", "pt_BR", None),
    ("two languages, none given", "appointment_reminder", None, None,
     ("language", "missing_field", "exists in en_US, pt_BR")),
    ("unknown", "order_confirmaton", None, None,
     ("template", "template_not_found", 'no template named "order_confirmaton"')),
    ("not in that language", "order_confirmation", "de_DE", None,
     ("template", "template_not_found", 'exists in en_US but not in "de_DE"')),
    ("rejected", "winter_promo", "en_US", None,
     ("template", "template_not_found", "is rejected, not approved: Meta rejected it")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "name", "language", "chosen", "error"), CHOICES, ids=[c[0] for c in CHOICES]
)
def test_choosing_the_template(
    case: str,
    name: str,
    language: str | None,
    chosen: str | None,
    error: tuple[str, str, str] | None,
) -> None:
    errors: list[FieldError] = []
    candidates = [t for t in SYNCED if t.name == name]
    template = choose_template(candidates, name, language, errors)
    if error is None:
        assert template is not None and template.language == chosen and errors == []
    else:
        assert template is None
        [found] = errors
        assert (found.field, found.code) == error[:2]
        assert error[2] in found.message


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("PAUSED", "paused, not approved: Meta paused it"),
        ("PENDING", "pending, not approved: it is still waiting for Meta's review"),
        ("DISABLED", "disabled, not approved: Meta disabled it"),
        ("IN_APPEAL", "in_appeal, not approved"),
        ("ARCHIVED", "its status is ARCHIVED"),
    ],
)
def test_why_a_template_cannot_be_sent(status: str, words: str) -> None:
    errors: list[FieldError] = []
    assert choose_template([meta(status=status)], "t", None, errors) is None
    assert [e.code for e in errors] == ["template_not_found"]
    assert words in errors[0].message


# --------------------------------------------------------------------------- filling in

FILLED: list[tuple[str, Template, dict[str, Any], list[dict[str, Any]], str | None, str]] = [
    # (case, template, params, Meta's components, header and body as the customer sees them)
    ("the SPEC's example", ORDER, SPEC_PARAMS, [
        {"type": "header", "parameters": [
            {"type": "text", "parameter_name": "order_id", "text": "#4521"}]},
        {"type": "body", "parameters": [
            {"type": "text", "parameter_name": "first_name", "text": "Asha"},
            {"type": "text", "parameter_name": "order_number", "text": "4521"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "track-4521"}]},
        {"type": "button", "sub_type": "url", "index": "1",
         "parameters": [{"type": "text", "text": "4521"}]},
     ], "Order #4521", "Hi Asha, your order 4521 is confirmed. We will let you know when it "
     "ships."),
    ("a named header by name, no payload", ORDER,
     {**SPEC_PARAMS, "header": {"order_id": "#7"}, "buttons": [{"index": "1", "text": "7"}]}, [
        {"type": "header", "parameters": [
            {"type": "text", "parameter_name": "order_id", "text": "#7"}]},
        {"type": "body", "parameters": [
            {"type": "text", "parameter_name": "first_name", "text": "Asha"},
            {"type": "text", "parameter_name": "order_number", "text": "4521"}]},
        {"type": "button", "sub_type": "url", "index": "1",
         "parameters": [{"type": "text", "text": "7"}]},
     ], "Order #7", "Hi Asha, your order 4521 is confirmed. We will let you know when it ships."),
    ("numbered", REMINDER, REMINDER_PARAMS, [
        {"type": "header", "parameters": [{"type": "text", "text": "26 November"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Asha"},
                                        {"type": "text", "text": "Dr. Rao"},
                                        {"type": "text", "text": "10:00"}]},
     ], "Appointment on 26 November", "Hello Asha, this is a reminder of your appointment with "
     "Dr. Rao at 10:00. Tap a button to confirm or reschedule."),
    ("an image header", SALE, SALE_PARAMS, [
        {"type": "header", "parameters": [
            {"type": "image", "image": {"link": "https://cdn.example.com/sale.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Asha"},
                                        {"type": "text", "text": "SUN20"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "SUN20"}]},
     ], None, "Hi Asha, our summer sale is on! Use code SUN20 for 20% off everything until "
     "Sunday."),
    ("no parameters", HELLO, {}, [], "Hello World", HELLO.components[1]["text"]),
    ("empty parts are no parameters", HELLO, {"header": [], "body": [], "buttons": []}, [],
     "Hello World", HELLO.components[1]["text"]),
    ("at the limits", REMINDER, {"header": ["x" * 45], "body": ["a    b", "é" * 900, "🎉"],
                                 "buttons": [{"index": 1, "payload": "p" * 256}]}, [
        {"type": "header", "parameters": [{"type": "text", "text": "x" * 45}]},
        {"type": "body", "parameters": [{"type": "text", "text": "a    b"},
                                        {"type": "text", "text": "é" * 900},
                                        {"type": "text", "text": "🎉"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "p" * 256}]},
     ], "Appointment on " + "x" * 45, f"Hello a    b, this is a reminder of your appointment "
     f"with {'é' * 900} at 🎉. Tap a button to confirm or reschedule."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "template", "params", "components", "header", "body"),
    FILLED,
    ids=[c[0] for c in FILLED],
)
def test_parameters_are_filled_in(
    case: str,
    template: Template,
    params: dict[str, Any],
    components: list[dict[str, Any]],
    header: str | None,
    body: str,
) -> None:
    content = fill_template(template, params)
    assert content.type is MessageType.TEMPLATE
    assert content.template is not None
    assert (content.template.name, content.template.language) == (template.name, "en_US")
    assert list(content.template.components) == components
    assert (content.header, content.body) == (header, body)
    assert content.from_dict(content.as_dict()) == content  # stored and read back unchanged


def test_the_customer_sees_every_button() -> None:
    content = fill_template(ORDER, SPEC_PARAMS)
    assert content.footer == "Thank you for shopping with us"
    assert content.buttons == (
        Button("track-4521", "Track order"),
        Button("https://shop.example.com/orders/4521", "View order"),
    )
    # Without a payload a tap returns the button's text, so that is its id.
    reminder = fill_template(REMINDER, REMINDER_PARAMS)
    assert reminder.buttons == (Button("Confirm", "Confirm"), Button("Reschedule", "Reschedule"))
    call = meta(components=[
        {"type": "BODY", "text": "Call us"},
        {"type": "BUTTONS", "buttons": [
            {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550001111"},
            {"type": "URL", "text": "Site", "url": "https://example.com/help"}]},
    ])  # fmt: skip
    assert fill_template(call, {}).buttons == (
        Button("+15550001111", "Call"),
        Button("https://example.com/help", "Site"),
    )
