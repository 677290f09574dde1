"""Inbound kinds (SPEC §8, issue 14 point 5, issue 15.7): one closed set of names for what a
customer sends, Meta's message kept as received, and the callback naming each as the
conversation API does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.meta_schema import requires_meta_spec, validate_webhook
from wagate.cloud.webhooks import parse_webhook
from wagate.domain.callbacks import inbound_event
from wagate.domain.inbound_kinds import INBOUND_KINDS, inbound_content, inbound_kind
from wagate.store.messages import attach_reactions

WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
OURS = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"


def webhook(message: dict[str, Any], *, contacts: bool = True) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100000000000001"},
        "messages": [{"from": "16505551234", "id": WAMID, "timestamp": "1750090702", **message}],
    }
    if contacts:
        value["contacts"] = [{"profile": {"name": "Asha"}, "wa_id": "16505551234"}]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}],
    }


MEDIA = {"id": "1234", "mime_type": "image/jpeg", "sha256": "abc"}
CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("text", {"type": "text", "text": {"body": "hi"}}, "text", "hi"),
    (
        "button_reply",
        {"type": "interactive", "context": {"from": "15550001111", "id": OURS},
         "interactive": {"type": "button_reply", "button_reply": {"id": "y", "title": "Yes"}}},
        "button_reply",
        "Yes",
    ),
    (
        "list_reply",
        {"type": "interactive", "context": {"from": "15550001111", "id": OURS},
         "interactive": {"type": "list_reply",
                         "list_reply": {"id": "m", "title": "Medium", "description": "Two"}}},
        "list_reply",
        "Medium",
    ),
    ("template quick reply", {"type": "button", "context": {"from": "15550001111", "id": OURS},
                              "button": {"payload": "p", "text": "Track"}}, "button", "Track"),
    ("image", {"type": "image", "image": {**MEDIA, "caption": "Cracked"}}, "image", "Cracked"),
    ("audio", {"type": "audio", "audio": {**MEDIA, "voice": False}}, "audio", None),
    ("voice", {"type": "audio", "audio": {**MEDIA, "voice": True}}, "voice", None),
    ("document", {"type": "document", "document": {**MEDIA, "filename": "a.pdf"}}, "document",
     None),
    ("sticker", {"type": "sticker", "sticker": {**MEDIA, "animated": False}}, "sticker", None),
    ("video", {"type": "video", "video": {**MEDIA, "mime_type": "video/mp4"}}, "video", None),
    (
        "location",
        {"type": "location", "location": {"latitude": 37.44, "longitude": -122.16,
                                          "name": "Philz Coffee", "address": "101 Forest Ave"}},
        "location",
        "Philz Coffee",
    ),
    (
        "contacts",
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "Lucía Gómez",
                                                    "first_name": "Lucía"}}]},
        "contacts",
        "Lucía Gómez",
    ),
    ("reaction", {"type": "reaction", "reaction": {"message_id": OURS, "emoji": "👍"}},
     "reaction", "👍"),
    (
        "order",
        {"type": "order", "order": {"catalog_id": "1", "text": "Gift wrap", "product_items": [
            {"product_retailer_id": "a", "quantity": 1, "item_price": 3.5, "currency": "USD"}]}},
        "order",
        "Gift wrap",
    ),
    (
        "unsupported",
        {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown",
                                            "message": "Message type unknown",
                                            "error_data": {"details": "not supported"}}]},
        "unsupported",
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "message", "kind", "text"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_is_named_and_kept(
    case: str, message: dict[str, Any], kind: str, text: str | None
) -> None:
    [parsed] = parse_webhook(webhook(message)).inbound
    assert parsed.kind == kind
    assert parsed.text == text
    content = parsed.content
    assert content is not None
    media = content.get(message["type"])
    if isinstance(media, dict) and "wagate_media_id" in media:
        # A customer's file: the id it is kept under, beside what Meta sent (store/media.py).
        assert parsed.media is not None
        assert media["wagate_media_id"] == parsed.media["wagate_media_id"]
        content = {**content, message["type"]: {k: v for k, v in media.items()
                                                if k != "wagate_media_id"}}  # fmt: skip
    assert content == message  # as Meta sent it, without from, id and timestamp
    assert kind in INBOUND_KINDS


@requires_meta_spec
@pytest.mark.parametrize(("case", "message", "kind", "text"), CASES, ids=[c[0] for c in CASES])
def test_the_cases_are_metas_own_shapes(
    case: str, message: dict[str, Any], kind: str, text: str | None
) -> None:
    validate_webhook(webhook(message))


def test_system_messages_come_without_contacts() -> None:
    message = {"type": "system", "system": {"body": "User changed number", "wa_id": "1999",
                                            "type": "user_changed_number"}}  # fmt: skip
    [parsed] = parse_webhook(webhook(message, contacts=False)).inbound
    assert (parsed.kind, parsed.text) == ("system", "User changed number")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {}}},
        {"type": "request_welcome"},
        {"type": "unknown", "errors": []},
        {"type": 5},
        {},
    ],
)
def test_anything_else_is_unsupported(message: dict[str, Any]) -> None:
    assert inbound_kind(message) == "unsupported"


def test_content_is_storable() -> None:
    content = inbound_content(
        {"from": "1", "id": "w", "timestamp": "1", "type": "text", "text": {"body": "a\x00b"},
         "x": [float("nan"), float("inf"), {"k\x00": 1}]}
    )  # fmt: skip
    assert content == {
        "type": "text",
        "text": {"body": "a\ufffdb"},
        "x": [None, None, {"k\ufffd": 1}],
    }


@pytest.mark.parametrize("kind", ["button_reply", "list_reply", "button", "voice", "reaction"])
def test_the_callback_names_the_kind_as_the_conversation_does(kind: str) -> None:
    [parsed] = parse_webhook(webhook(CASES[0][1])).inbound
    message = type(parsed)(**{**{f: getattr(parsed, f) for f in parsed.__slots__}, "kind": kind})
    event = inbound_event(
        event_id="evt_1",
        created_at=datetime(2026, 12, 6, tzinfo=UTC),
        channel_id="ch_1",
        message=message,
        reply_to="msg_1",
    )
    assert event["data"]["kind"] == kind
    assert event["data"]["content"] == parsed.content
    assert event["data"]["reacts_to"] == ("msg_1" if kind == "reaction" else None)


def test_reactions_sit_on_the_message_they_are_on() -> None:
    ours = {"direction": "outbound", "id": "msg_1", "wamid": OURS, "type": "text"}
    theirs = {"direction": "inbound", "wamid": WAMID, "kind": "text"}
    thread = [  # newest first
        {"direction": "inbound", "wamid": "w3", "kind": "reaction", "text": "",
         "context_wamid": OURS},
        {"direction": "outbound", "id": "msg_3", "type": "reaction",
         "content": {"message_id": WAMID, "emoji": "👍"}},
        {"direction": "inbound", "wamid": "w2", "kind": "reaction", "text": "🎉",
         "context_wamid": OURS},
        theirs,
        ours,
    ]  # fmt: skip
    attach_reactions(thread)
    assert ours["reactions"] == {"customer": None, "business": None}  # 🎉, then removed
    assert theirs["reactions"] == {"customer": None, "business": "👍"}
    assert [m.get("reacts_to") for m in thread[:3]] == ["msg_1", WAMID, "msg_1"]


def test_a_reaction_names_our_message_even_off_the_page() -> None:
    thread = [{"direction": "inbound", "wamid": "w", "kind": "reaction", "text": "👍",
               "context_wamid": OURS}]  # fmt: skip
    attach_reactions(thread, {OURS: "msg_1"})
    assert thread[0]["reacts_to"] == "msg_1"
    attach_reactions(thread)
    assert thread[0]["reacts_to"] == OURS
