"""Meta's send body for every SPEC §8 kind, built from what an accepted request stores, and
validated against the `Message` schema of Meta's API description (a read receipt against
Meta's own example of one); and the sandbox refuses what Meta would."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.support.meta_schema import (
    requires_meta_spec,
    validate_message,
    validate_read_receipt,
)
from wagate.cloud import build_message_payload
from wagate.domain.kinds import (
    parse_contacts,
    parse_cta,
    parse_list,
    parse_location,
    parse_location_request,
    parse_reaction,
    parse_read,
)
from wagate.domain.models import MessageContent, MessageType
from wagate.sandbox.graph import GraphError
from wagate.sandbox.kind_validation import check_read_receipt
from wagate.sandbox.validation import validate_send

PHONE = "+14155552671"
WAMID = "wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"

FULL_CARD = {
    "name": {"formatted_name": "Asha Rao", "first_name": "Asha", "last_name": "Rao"},
    "phones": [{"phone": "+919876543210", "type": "WORK", "wa_id": "919876543210"}],
    "emails": [{"email": "asha@example.com", "type": "WORK"}],
    "org": {"company": "Acme", "department": "Sales", "title": "Lead"},
    "urls": [{"url": "https://example.com", "type": "WORK"}],
    "addresses": [{"street": "1 MG Rd", "city": "Bengaluru", "country_code": "IN", "type": "WORK"}],
    "birthday": "1990-08-18",
}

# (case, the content an accepted request stores, expected Meta body minus the envelope)
CASES: list[tuple[str, MessageContent, dict[str, Any]]] = [
    (
        "list",
        parse_list(
            {
                "phone": PHONE,
                "message": "Pick a size",
                "header": "Menu",
                "footer": "Tap below",
                "button": "Sizes",
                "sections": [
                    {"title": "Small", "rows": [{"id": "s", "title": "S", "description": "One"}]},
                    {"title": "Big", "rows": [{"id": "l", "title": "L"}]},
                ],
            }
        ).content,
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "header": {"type": "text", "text": "Menu"},
                "body": {"text": "Pick a size"},
                "footer": {"text": "Tap below"},
                "action": {
                    "button": "Sizes",
                    "sections": [
                        {
                            "title": "Small",
                            "rows": [{"id": "s", "title": "S", "description": "One"}],
                        },
                        {"title": "Big", "rows": [{"id": "l", "title": "L"}]},
                    ],
                },
            },
        },
    ),
    (
        "list, one untitled section",
        parse_list(
            {
                "phone": PHONE,
                "message": "Pick",
                "button": "Open",
                "sections": [{"rows": [{"id": "s", "title": "S"}]}],
            }
        ).content,
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {"button": "Open", "sections": [{"rows": [{"id": "s", "title": "S"}]}]},
            },
        },
    ),
    (
        "cta",
        parse_cta(
            {
                "phone": PHONE,
                "message": "Your order shipped",
                "header": "Order #4521",
                "footer": "Thanks",
                "button": "Track it",
                "url": "https://example.com/t/4521",
            }
        ).content,
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "header": {"type": "text", "text": "Order #4521"},
                "body": {"text": "Your order shipped"},
                "footer": {"text": "Thanks"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Track it", "url": "https://example.com/t/4521"},
                },
            },
        },
    ),
    (
        "location",
        parse_location(
            {
                "phone": PHONE,
                "latitude": 37.4847,
                "longitude": -122.1486,
                "name": "Meta HQ",
                "address": "1 Hacker Way",
            }
        ).content,
        {
            "type": "location",
            "location": {
                "latitude": 37.4847,
                "longitude": -122.1486,
                "name": "Meta HQ",
                "address": "1 Hacker Way",
            },
        },
    ),
    (
        "location, coordinates only",
        parse_location({"phone": PHONE, "latitude": 0, "longitude": 0}).content,
        {"type": "location", "location": {"latitude": 0.0, "longitude": 0.0}},
    ),
    (
        "location request",
        parse_location_request({"phone": PHONE, "message": "Where to?"}).content,
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "Where to?"},
                "action": {"name": "send_location"},
            },
        },
    ),
    (
        "contacts",
        parse_contacts({"phone": PHONE, "contacts": [FULL_CARD]}).content,
        {"type": "contacts", "contacts": [FULL_CARD]},
    ),
]


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_builds_metas_body(
    case: str, content: MessageContent, expected: dict[str, Any]
) -> None:
    payload = build_message_payload(to=PHONE, content=content)
    assert payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        **expected,
    }
    quoted = build_message_payload(to=PHONE, content=content, reply_to_wamid=WAMID)
    assert quoted["context"] == {"message_id": WAMID}


@requires_meta_spec
@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_matches_metas_schema(
    case: str, content: MessageContent, expected: dict[str, Any]
) -> None:
    validate_message(build_message_payload(to=PHONE, content=content))
    validate_message(build_message_payload(to=PHONE, content=content, reply_to_wamid=WAMID))


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_sandbox_takes_each_kind(
    case: str, content: MessageContent, expected: dict[str, Any]
) -> None:
    validate_send(build_message_payload(to=PHONE, content=content))


def test_reaction_goes_to_the_wamid_without_a_context() -> None:
    content = parse_reaction({"phone": PHONE, "message_id": "msg_1", "emoji": "👍"}).content
    payload = build_message_payload(to=PHONE, content=content, reply_to_wamid=WAMID)
    assert payload["type"] == "reaction"
    assert payload["reaction"] == {"message_id": WAMID, "emoji": "👍"}
    assert "context" not in payload
    removal = parse_reaction({"phone": PHONE, "message_id": WAMID, "emoji": ""}).content
    assert build_message_payload(to=PHONE, content=removal)["reaction"] == {
        "message_id": WAMID,
        "emoji": "",
    }
    # Without the wamid of one of our messages there is nothing to react to.
    with pytest.raises(ValueError, match="wamid"):
        build_message_payload(to=PHONE, content=content)


@requires_meta_spec
def test_reaction_matches_metas_schema() -> None:
    content = parse_reaction({"phone": PHONE, "message_id": "msg_1", "emoji": "❤️"}).content
    validate_message(build_message_payload(to=PHONE, content=content, reply_to_wamid=WAMID))
    validate_send(build_message_payload(to=PHONE, content=content, reply_to_wamid=WAMID))


def read_content(typing: bool) -> MessageContent:
    content = parse_read({"phone": PHONE, "typing": typing}).content
    return MessageContent(
        type=MessageType.READ, body="", data={**(content.data or {}), "message_id": WAMID}
    )


@pytest.mark.parametrize("typing", [False, True])
def test_read_receipt_is_its_own_body(typing: bool) -> None:
    payload = build_message_payload(to=PHONE, content=read_content(typing))
    expected: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": WAMID,
    }
    if typing:
        expected["typing_indicator"] = {"type": "text"}
    assert payload == expected


@requires_meta_spec
@pytest.mark.parametrize("typing", [False, True])
def test_read_receipt_matches_metas_example(typing: bool) -> None:
    validate_read_receipt(build_message_payload(to=PHONE, content=read_content(typing)))


@requires_meta_spec
@pytest.mark.parametrize(
    "broken",
    [
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "x"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "x" * 21, "url": "https://e"},
                },
            },
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "x"},
                "action": {"name": "send_location", "parameters": {}},
            },
        },
        {"type": "contacts", "contacts": []},
        {"type": "reaction", "reaction": {"message_id": WAMID, "emoji": "x", "extra": 1}},
    ],
)
def test_the_schema_repairs_still_refuse_broken_bodies(broken: dict[str, Any]) -> None:
    body = {"messaging_product": "whatsapp", "to": PHONE, **broken}
    with pytest.raises(jsonschema.ValidationError):
        validate_message(body)


@requires_meta_spec
def test_a_list_body_may_be_longer_than_other_interactive_bodies() -> None:
    fields = {"phone": PHONE, "button": "Open", "sections": [{"rows": [{"id": "a", "title": "A"}]}]}
    longest = build_message_payload(
        to=PHONE, content=parse_list({**fields, "message": "x" * 4096}).content
    )
    validate_message(longest)
    validate_send(longest)
    cta = build_message_payload(
        to=PHONE,
        content=parse_cta(
            {"phone": PHONE, "message": "x", "button": "b", "url": "https://example.com"}
        ).content,
    )
    cta["interactive"]["body"]["text"] = "x" * 1025
    with pytest.raises(jsonschema.ValidationError):
        validate_message(cta)
    with pytest.raises(GraphError):
        validate_send(cta)


SANDBOX_REFUSALS: list[tuple[str, dict[str, Any], int]] = [
    (
        "latitude out of range",
        {"type": "location", "location": {"latitude": 91, "longitude": 0}},
        131009,
    ),
    ("no longitude", {"type": "location", "location": {"latitude": 1}}, 100),
    (
        "six cards",
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}] * 6},
        131009,
    ),
    ("card without a name", {"type": "contacts", "contacts": [{"phones": []}]}, 100),
    (
        "bad phone type",
        {
            "type": "contacts",
            "contacts": [
                {"name": {"formatted_name": "A"}, "phones": [{"phone": "1", "type": "CELL"}]}
            ],
        },
        100,
    ),
    ("two emoji", {"type": "reaction", "reaction": {"message_id": WAMID, "emoji": "👍👍"}}, 131009),
    ("reaction without its message", {"type": "reaction", "reaction": {"emoji": "👍"}}, 100),
    (
        "reaction quoting",
        {
            "type": "reaction",
            "reaction": {"message_id": WAMID, "emoji": "👍"},
            "context": {"message_id": WAMID},
        },
        100,
    ),
    (
        "cta text too long",
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "x"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "x" * 21, "url": "https://e.com"},
                },
            },
        },
        131009,
    ),
    (
        "cta without url",
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "x"},
                "action": {"name": "cta_url", "parameters": {"display_text": "x"}},
            },
        },
        100,
    ),
    (
        "location request with a header",
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "header": {"type": "text", "text": "h"},
                "body": {"text": "x"},
                "action": {"name": "send_location"},
            },
        },
        100,
    ),
]


@pytest.mark.parametrize(
    ("case", "broken", "code"), SANDBOX_REFUSALS, ids=[c[0] for c in SANDBOX_REFUSALS]
)
def test_the_sandbox_refuses_as_meta_does(case: str, broken: dict[str, Any], code: int) -> None:
    with pytest.raises(GraphError) as caught:
        validate_send({"messaging_product": "whatsapp", "to": PHONE, **broken})
    assert caught.value.code == code


@pytest.mark.parametrize(
    "broken",
    [
        {"typing_indicator": {"type": "audio"}},
        {"typing_indicator": {"type": "text", "seconds": 5}},
        {"typing": True},
    ],
)
def test_the_sandbox_refuses_a_malformed_read_receipt(broken: dict[str, Any]) -> None:
    body = build_message_payload(to=PHONE, content=read_content(True)) | broken
    with pytest.raises(GraphError) as caught:
        check_read_receipt(body)
    assert caught.value.code == 100
    check_read_receipt(build_message_payload(to=PHONE, content=read_content(True)))
