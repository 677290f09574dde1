"""Proves tests/support/meta_schema.py: Meta's own examples pass it, broken payloads fail it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import ValidationError

from tests.support import meta_schema as ms
from tests.support.meta_schema import requires_meta_spec

pytestmark = requires_meta_spec

# Meta's example send bodies that do not validate even against the repaired description, and
# why. Each is a fault in the example or a gap in the description, not in the validator.
KNOWN_INVALID_SEND_EXAMPLES: dict[str, str] = {
    "Send Catalog Template Message": "sub_type 'CATALOG' is upper case; the enum has 'catalog'",
    "Send Flow Template Message": "button sub_type 'flow' is missing from the description's enum",
    "Send Multi-Product Message": "header.type is the placeholder '<HEADER_TYPE>'",
    "Send Order Details Message": "interactive type 'order_details' is not in the description",
    "Send Order Status Message": "interactive type 'order_status' is not in the description",
    "Send Reply to List Message": "omits type 'interactive', so it reads as a text message",
    "Send Sample Issue Resolution Template": "button index is the integer 1, not a string",
    "Send typing indicator and read receipt": "a mark-as-read request, not a Message",
}

EXAMPLE_FILES: dict[str, Callable[[Any], None]] = {
    "inbound_text.json": ms.validate_webhook,
    "inbound_button_reply.json": ms.validate_webhook,
    "status_sent.json": ms.validate_webhook,
    "status_failed.json": ms.validate_webhook,
    "send_response.json": ms.validate_send_response,
    "error_130429.json": ms.validate_error_response,
}


def _send_example_names() -> list[str]:
    return sorted(ms.send_examples()) if ms.meta_spec_available() else []


# --------------------------------------------------------------------------- Meta's own examples


def test_meta_has_about_fifty_send_examples() -> None:
    assert 45 <= len(ms.send_examples()) <= 60
    assert set(KNOWN_INVALID_SEND_EXAMPLES) <= set(ms.send_examples())


@pytest.mark.parametrize("name", _send_example_names())
def test_meta_send_example(name: str) -> None:
    body = ms.send_examples()[name]
    if name in KNOWN_INVALID_SEND_EXAMPLES:
        with pytest.raises(ValidationError):
            ms.validate_message(body)
    else:
        ms.validate_message(body)


def test_most_send_examples_validate() -> None:
    valid = [
        n for n in ms.send_examples() if not ms.schema_errors("Message", ms.send_examples()[n])
    ]
    assert len(valid) >= 40
    assert "Send Reply Button" in valid and "Send Text Message" in valid


def test_every_example_file_is_covered() -> None:
    present = {p.name for p in ms.meta_examples_dir().glob("*.json")}
    assert present == set(EXAMPLE_FILES)


@pytest.mark.parametrize("filename", sorted(EXAMPLE_FILES))
def test_meta_example_file_validates(filename: str) -> None:
    EXAMPLE_FILES[filename](ms.load_meta_example(filename))


@pytest.mark.parametrize(
    ("filename", "wrong"),
    [
        ("inbound_text.json", ms.validate_send_response),
        ("send_response.json", ms.validate_webhook),
        ("error_130429.json", ms.validate_send_response),
        ("status_sent.json", ms.validate_error_response),
    ],
)
def test_example_file_fails_the_wrong_schema(filename: str, wrong: Callable[[Any], None]) -> None:
    with pytest.raises(ValidationError):
        wrong(ms.load_meta_example(filename))


def test_the_raw_description_really_has_the_quirks() -> None:
    """If Meta fixes these, the repairs in meta_schema.py should go."""
    raw = ms.raw_spec()["components"]["schemas"]
    assert raw["TextMessage"]["allOf"][1]["additionalProperties"] is False
    assert "recipient_type" in raw["BaseMessageProperties"]["required"]
    assert "policy" in raw["LanguageObject"]["required"]
    assert raw["TemplateComponent"]["properties"]["index"]["pattern"] == "^[2-6, 11-14]$"
    # The webhook's IncomingMessage points at the *send* TextMessage, not TextMessage_2.
    assert {"$ref": "#/components/schemas/TextMessage"} in raw["IncomingMessage"]["oneOf"]
    assert "TextMessage_2" in raw


# --------------------------------------------------------------------------- it can fail

TEXT = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "919876543210",
    "type": "text",
    "text": {"body": "Hello *world*", "preview_url": False},
}


def _button(i: int) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": f"id-{i}", "title": f"Title {i}"}}


BUTTONS = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+14155552671",
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "text", "text": "Header"},
        "body": {"text": "Pick one"},
        "footer": {"text": "Footer"},
        "action": {"buttons": [_button(1), _button(2), _button(3)]},
    },
    "context": {"message_id": "wamid.ABC"},
}


def _edit(base: dict[str, Any], fn: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    fn(out)
    return out


def test_good_baselines_validate() -> None:
    ms.validate_message(TEXT)
    ms.validate_message(BUTTONS)
    ms.validate_message({k: v for k, v in TEXT.items() if k not in ("recipient_type", "type")})


BROKEN_MESSAGES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown key in text", _edit(TEXT, lambda m: m["text"].update(foo=1)), "'foo' was unexpected"),
    ("unknown top-level key", _edit(TEXT, lambda m: m.update(priority="high")), "'priority'"),
    ("missing to", _edit(TEXT, lambda m: m.pop("to")), "'to' is a required property"),
    ("wrong type", _edit(TEXT, lambda m: m.update(type="txt")), "'txt' is not one of"),
    ("type/body mismatch", _edit(TEXT, lambda m: m.update(type="image")), "'text' was unexpected"),
    ("to is a number", _edit(TEXT, lambda m: m.update(to=919876543210)), "is not of type 'string'"),
    ("bad recipient_type", _edit(TEXT, lambda m: m.update(recipient_type="person")), "person"),
    ("preview_url string", _edit(TEXT, lambda m: m["text"].update(preview_url="yes")), "boolean"),
    ("not an object", ["text"], "is not of type 'object'"),  # type: ignore[list-item]
    (
        "4 buttons",
        _edit(BUTTONS, lambda m: m["interactive"]["action"]["buttons"].append(_button(4))),
        "too long",
    ),
    ("0 buttons", _edit(BUTTONS, lambda m: m["interactive"]["action"].update(buttons=[])), ""),
    (
        "title > 20",
        _edit(
            BUTTONS,
            lambda m: m["interactive"]["action"]["buttons"][0]["reply"].update(title="x" * 21),
        ),
        "",
    ),
    (
        "id > 256",
        _edit(
            BUTTONS,
            lambda m: m["interactive"]["action"]["buttons"][0]["reply"].update(id="x" * 257),
        ),
        "",
    ),
    (
        "button type",
        _edit(BUTTONS, lambda m: m["interactive"]["action"]["buttons"][0].update(type="url")),
        "",
    ),
    (
        "reply no id",
        _edit(BUTTONS, lambda m: m["interactive"]["action"]["buttons"][0]["reply"].pop("id")),
        "",
    ),
    (
        "header > 60",
        _edit(BUTTONS, lambda m: m["interactive"]["header"].update(text="x" * 61)),
        "too long",
    ),
    (
        "footer > 60",
        _edit(BUTTONS, lambda m: m["interactive"]["footer"].update(text="x" * 61)),
        "too long",
    ),
    (
        "body > 1024",
        _edit(BUTTONS, lambda m: m["interactive"]["body"].update(text="x" * 1025)),
        "too long",
    ),
    ("header no type", _edit(BUTTONS, lambda m: m["interactive"]["header"].pop("type")), "'type'"),
    ("no action", _edit(BUTTONS, lambda m: m["interactive"].pop("action")), "'action'"),
    (
        "interactive type",
        _edit(BUTTONS, lambda m: m["interactive"].update(type="buttons")),
        "'buttons'",
    ),
    (
        "unknown key in interactive",
        _edit(BUTTONS, lambda m: m.update(text={"body": "x"})),
        "'text'",
    ),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [pytest.param(p, e, id=name) for name, p, e in BROKEN_MESSAGES],
)
def test_broken_message_is_rejected(payload: Any, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        ms.validate_message(payload)
    assert expected in info.value.message


def test_error_message_says_where() -> None:
    with pytest.raises(ValidationError) as info:
        ms.validate_message(BROKEN_MESSAGES[0][1])
    assert info.value.message.startswith("Message at text:")


def _status(status: str = "delivered") -> dict[str, Any]:
    body = ms.load_meta_example("status_sent.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = status
    return dict(body)


def _first_message(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = body["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


BROKEN_WEBHOOKS: list[tuple[str, Callable[[], Any]]] = [
    ("unknown status", lambda: _status("deleted")),
    ("wrong object type", lambda: ["not", "an", "object"]),
    ("missing entry", lambda: {"object": "whatsapp_business_account"}),
    (
        "message without id",
        lambda: _edit(
            ms.load_meta_example("inbound_text.json"), lambda b: _first_message(b).pop("id")
        ),
    ),
    (
        "integer timestamp",
        lambda: _edit(
            ms.load_meta_example("inbound_text.json"),
            lambda b: _first_message(b).update(timestamp=1749416383),
        ),
    ),
    (
        "unknown message type",
        lambda: _edit(
            ms.load_meta_example("inbound_text.json"),
            lambda b: _first_message(b).update(type="txt"),
        ),
    ),
    (
        "button reply without title",
        lambda: _edit(
            ms.load_meta_example("inbound_button_reply.json"),
            lambda b: _first_message(b)["interactive"]["button_reply"].pop("title"),
        ),
    ),
    (
        "missing metadata",
        lambda: _edit(
            ms.load_meta_example("status_failed.json"),
            lambda b: b["entry"][0]["changes"][0]["value"].pop("metadata"),
        ),
    ),
    (
        "value with no messages, statuses or groups",
        lambda: _edit(
            ms.load_meta_example("status_failed.json"),
            lambda b: b["entry"][0]["changes"][0]["value"].pop("statuses"),
        ),
    ),
    (
        "error code as string",
        lambda: _edit(
            ms.load_meta_example("status_failed.json"),
            lambda b: b["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0].update(
                code="131049"
            ),
        ),
    ),
]


@pytest.mark.parametrize("make", [pytest.param(f, id=n) for n, f in BROKEN_WEBHOOKS])
def test_broken_webhook_is_rejected(make: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError):
        ms.validate_webhook(make())


def test_read_and_delivered_statuses_validate() -> None:
    ms.validate_webhook(_status("delivered"))
    ms.validate_webhook(_status("read"))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"messaging_product": "whatsapp", "messages": []},
        {"messaging_product": "whatsapp", "messages": [{"message_status": "accepted"}]},
    ],
)
def test_broken_send_response_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ms.validate_send_response(payload)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"error": {"message": "x", "type": "OAuthException"}},
        {"error": {"message": "x", "type": "OAuthException", "code": "130429"}},
    ],
)
def test_broken_error_response_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ms.validate_error_response(payload)


def test_quirks_are_documented() -> None:
    assert {"allOf-merge", "recipient_type", "template-index", "webhook-refs"} <= set(ms.QUIRKS)
    json.dumps(ms.QUIRKS)  # plain data
