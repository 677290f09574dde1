"""Webhook signatures and parsing, table-driven over real Meta payload shapes.

Meta's example files (../shared/meta/examples) are used when present; the inline fixtures below
follow Meta's webhook reference (and are themselves checked against Meta's schema where the
shape is one the schema describes).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import meta_schema
from tests.support.meta_schema import requires_meta_spec
from wagate.cloud import WebhookBatch, WebhookParseError, parse_webhook, sign, verify_signature
from wagate.domain.models import MetaError, Status

SECRET = "8f2c1b7e0d9a4c6e5b3a2f1e0d9c8b7a"
PNID = "106540352242922"
PNID_2 = "209876543210987"
WABA = "102290129340398"
CUSTOMER = "16505551234"
OUR_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA"


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --------------------------------------------------------------------------- signatures

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
GOOD = sign(SECRET, BODY)


@pytest.mark.parametrize(
    ("secret", "body", "header", "ok"),
    [
        pytest.param(SECRET, BODY, GOOD, True, id="valid"),
        pytest.param(
            SECRET, BODY, GOOD.upper().replace("SHA256=", "sha256="), True, id="upper hex"
        ),
        pytest.param(SECRET, BODY, f"  {GOOD} ", True, id="surrounding spaces"),
        pytest.param("another-secret", BODY, GOOD, False, id="wrong secret"),
        pytest.param(SECRET, BODY + b" ", GOOD, False, id="tampered body (trailing space)"),
        pytest.param(SECRET, BODY.replace(b"[]", b"[{}]"), GOOD, False, id="tampered body"),
        pytest.param(SECRET, BODY, None, False, id="missing header"),
        pytest.param(SECRET, BODY, "", False, id="empty header"),
        pytest.param(SECRET, BODY, "sha1=" + GOOD[7:47], False, id="sha1 prefix"),
        pytest.param(SECRET, BODY, "sha1=" + GOOD[7:], False, id="sha1 prefix, sha256 digest"),
        pytest.param(SECRET, BODY, GOOD[7:], False, id="no prefix"),
        pytest.param(SECRET, BODY, "sha256=" + "zz" * 32, False, id="bad hex"),
        pytest.param(SECRET, BODY, GOOD[:-2], False, id="short digest"),
        pytest.param(SECRET, BODY, GOOD + "00", False, id="long digest"),
        pytest.param(SECRET, BODY, "sha256=", False, id="prefix only"),
        pytest.param(SECRET, BODY, f"{GOOD},{GOOD}", False, id="two values"),
        pytest.param("", BODY, sign("", BODY), False, id="empty secret"),
    ],
)
def test_verify_signature(secret: str, body: bytes, header: str | None, ok: bool) -> None:
    assert verify_signature(secret, body, header) is ok


def test_sign_is_metas_header_format() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published vector.
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


def test_signature_is_over_raw_bytes_not_reencoded_json() -> None:
    raw = json.dumps({"object": "whatsapp_business_account", "x": "é"}, ensure_ascii=False)
    raw_bytes = raw.encode("utf-8")
    header = sign(SECRET, raw_bytes)
    assert verify_signature(SECRET, raw_bytes, header)
    assert not verify_signature(SECRET, json.dumps(json.loads(raw)).encode(), header)


# --------------------------------------------------------------------------- payload builders


def envelope(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": list(entries)}


def entry(*changes: dict[str, Any], waba: str = WABA) -> dict[str, Any]:
    return {"id": waba, "changes": list(changes)}


def messages_change(
    messages: list[Any], contacts: list[Any] | None = None, pnid: str = PNID
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
    }
    if contacts is not None:
        value["contacts"] = contacts
    value["messages"] = messages
    return {"value": value, "field": "messages"}


def statuses_change(statuses: list[Any], pnid: str = PNID) -> dict[str, Any]:
    return {
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
            "statuses": statuses,
        },
        "field": "messages",
    }


def contact(wa_id: str = CUSTOMER, name: str = "Sheena Nelson", **extra: Any) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id, **extra}


def message(kind: str, body: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "from": CUSTOMER,
        "id": f"wamid.IN-{kind}",
        "timestamp": "1750000000",
        "type": kind,
    }
    if body is not None:
        out[kind] = body
    out.update(extra)
    return out


def inbound(*messages: dict[str, Any], contacts: list[Any] | None = None) -> dict[str, Any]:
    return envelope(
        entry(messages_change(list(messages), [contact()] if contacts is None else contacts))
    )


def status(
    state: str, wamid: str = OUR_WAMID, seconds: int = 1750000100, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(seconds),
        "recipient_id": CUSTOMER,
    }
    out.update(extra)
    return out


CONVERSATION = {
    "id": "72b14d6bd5407799e66f64d1b338e567",
    "origin": {"type": "service"},
}
PRICING = {
    "billable": False,
    "pricing_model": "PMP",
    "type": "free_customer_service",
    "category": "service",
}
REPLY_CONTEXT = {"from": "15550783881", "id": OUR_WAMID}
MEDIA = {
    "mime_type": "image/jpeg",
    "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
    "id": "1003383421387256",
}
BSUID = "US.13491208655302741918"
NUMBER_CHANGED = "User Sheena Nelson changed from 16505551234 to 12195555358"


# --------------------------------------------------------------------------- inbound messages

# (case, webhook body, expected facts of each InboundMessage, in order)
INBOUND_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "text",
        inbound(message("text", {"body": "Does it come in another color?"})),
        [
            {
                "phone_number_id": PNID,
                "wa_id": CUSTOMER,
                "wamid": "wamid.IN-text",
                "timestamp": ts(1750000000),
                "kind": "text",
                "text": "Does it come in another color?",
                "button_id": None,
                "button_payload": None,
                "context_wamid": None,
                "profile_name": "Sheena Nelson",
                "user_id": None,
            }
        ],
    ),
    (
        "text reply quoting our message",
        inbound(message("text", {"body": "this one"}, context=REPLY_CONTEXT)),
        [{"kind": "text", "text": "this one", "context_wamid": OUR_WAMID}],
    ),
    (
        "interactive button_reply",
        inbound(
            message(
                "interactive",
                {
                    "type": "button_reply",
                    "button_reply": {"id": "cancel-button", "title": "Cancel"},
                },
                context=REPLY_CONTEXT,
            )
        ),
        [
            {
                "kind": "button_reply",
                "text": "Cancel",
                "button_id": "cancel-button",
                "button_payload": None,
                "context_wamid": OUR_WAMID,
            }
        ],
    ),
    (
        "interactive list_reply",
        inbound(
            message(
                "interactive",
                {
                    "type": "list_reply",
                    "list_reply": {
                        "id": "priority_express",
                        "title": "Priority Mail Express",
                        "description": "Next Day to 2 Days",
                    },
                },
                context=REPLY_CONTEXT,
            )
        ),
        [{"kind": "list_reply", "text": "Priority Mail Express", "button_id": "priority_express"}],
    ),
    (
        "template quick-reply tap",
        inbound(
            message(
                "button",
                {"payload": "track-4521", "text": "Track order"},
                context=REPLY_CONTEXT,
            )
        ),
        [
            {
                "kind": "button",
                "text": "Track order",
                "button_id": None,
                "button_payload": "track-4521",
                "context_wamid": OUR_WAMID,
            }
        ],
    ),
    (
        "image with caption",
        inbound(message("image", {"caption": "Cracked screen", **MEDIA})),
        [{"kind": "image", "text": "Cracked screen"}],
    ),
    (
        "video with caption",
        inbound(message("video", {"caption": "Unboxing", **MEDIA, "mime_type": "video/mp4"})),
        [{"kind": "video", "text": "Unboxing"}],
    ),
    (
        "document with caption",
        inbound(
            message(
                "document",
                {
                    "caption": "Invoice",
                    "filename": "receipt.pdf",
                    **MEDIA,
                    "mime_type": "application/pdf",
                },
            )
        ),
        [{"kind": "document", "text": "Invoice"}],
    ),
    (
        "voice note",
        inbound(message("audio", {**MEDIA, "mime_type": "audio/ogg; codecs=opus", "voice": True})),
        [{"kind": "voice", "text": None}],
    ),
    (
        "sticker",
        inbound(message("sticker", {**MEDIA, "mime_type": "image/webp", "animated": False})),
        [{"kind": "sticker", "text": None}],
    ),
    (
        "reaction",
        inbound(message("reaction", {"message_id": OUR_WAMID, "emoji": "\U0001f44d"})),
        [{"kind": "reaction", "text": "\U0001f44d", "context_wamid": OUR_WAMID}],
    ),
    (
        "reaction removed",
        inbound(message("reaction", {"message_id": OUR_WAMID, "emoji": ""})),
        [{"kind": "reaction", "text": None, "context_wamid": OUR_WAMID}],
    ),
    (
        "location",
        inbound(
            message(
                "location",
                {
                    "address": "101 Forest Ave, Palo Alto, CA 94301",
                    "latitude": 37.44221496582,
                    "longitude": -122.16165924072,
                    "name": "Philz Coffee",
                    "url": "https://philzcoffee.com/",
                },
            )
        ),
        [{"kind": "location", "text": "Philz Coffee"}],
    ),
    (
        "contacts",
        inbound(
            message(
                "contacts",
                contacts=[
                    {
                        "name": {
                            "first_name": "Lucía",
                            "last_name": "Gómez",
                            "formatted_name": "Lucía Gómez",
                        },
                        "phones": [
                            {"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "MOBILE"}
                        ],
                    }
                ],
            )
        ),
        [{"kind": "contacts", "text": "Lucía Gómez"}],
    ),
    (
        "order",
        inbound(
            message(
                "order",
                {
                    "catalog_id": "194836987003835",
                    "text": "Gift wrap please",
                    "product_items": [
                        {
                            "product_retailer_id": "di9ozbzfi4",
                            "quantity": 2,
                            "item_price": 30,
                            "currency": "USD",
                        }
                    ],
                },
            )
        ),
        [{"kind": "order", "text": "Gift wrap please"}],
    ),
    (
        "unsupported",
        inbound(
            message(
                "unsupported",
                errors=[
                    {
                        "code": 131051,
                        "title": "Message type unknown",
                        "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."},
                    }
                ],
            )
        ),
        [{"kind": "unsupported", "text": None, "wa_id": CUSTOMER}],
    ),
    (
        "a type Meta added later",
        inbound(message("request_welcome")),
        # One closed set of kinds (domain/inbound_kinds.py); the message itself is kept.
        [{"kind": "unsupported", "text": None, "wa_id": CUSTOMER}],
    ),
    (
        "system (number change), no contacts",
        envelope(
            entry(
                messages_change(
                    [
                        message(
                            "system",
                            {
                                "body": NUMBER_CHANGED,
                                "wa_id": "12195555358",
                                "type": "user_changed_number",
                            },
                        )
                    ]
                )
            )
        ),
        [
            {
                "kind": "system",
                "text": NUMBER_CHANGED,
                "profile_name": None,
            }
        ],
    ),
    (
        "user_id beside wa_id",
        inbound(
            message("text", {"body": "hi"}, from_user_id=BSUID),
            contacts=[contact(user_id=BSUID)],
        ),
        [{"wa_id": CUSTOMER, "user_id": BSUID, "profile_name": "Sheena Nelson"}],
    ),
    (
        "user_id only (username user, no phone number)",
        envelope(
            entry(
                messages_change(
                    [
                        {
                            "from_user_id": BSUID,
                            "id": "wamid.IN-bsuid",
                            "timestamp": "1750000000",
                            "type": "text",
                            "text": {"body": "hello from a username"},
                        }
                    ],
                    [{"profile": {"name": "Ana", "username": "@ana"}, "user_id": BSUID}],
                )
            )
        ),
        [
            {
                "wa_id": BSUID,
                "user_id": BSUID,
                "profile_name": "Ana",
                "text": "hello from a username",
            }
        ],
    ),
    (
        "user_id only on the contact",
        envelope(
            entry(
                messages_change(
                    [
                        {
                            "id": "wamid.IN-bsuid2",
                            "timestamp": "1750000000",
                            "type": "text",
                            "text": {"body": "x"},
                        }
                    ],
                    [{"profile": {"name": "Ana"}, "user_id": BSUID}],
                )
            )
        ),
        [{"wa_id": BSUID, "user_id": BSUID, "profile_name": "Ana"}],
    ),
    (
        "profile names matched by wa_id, two senders in one change",
        envelope(
            entry(
                messages_change(
                    [
                        message(
                            "text", {"body": "first"}, id="wamid.A", **{"from": "447700900001"}
                        ),
                        message(
                            "text", {"body": "second"}, id="wamid.B", **{"from": "919876543210"}
                        ),
                    ],
                    [contact("919876543210", "Asha"), contact("447700900001", "Oliver")],
                )
            )
        ),
        [
            {
                "wamid": "wamid.A",
                "wa_id": "447700900001",
                "profile_name": "Oliver",
                "text": "first",
            },
            {"wamid": "wamid.B", "wa_id": "919876543210", "profile_name": "Asha", "text": "second"},
        ],
    ),
]

# Cases whose shape Meta's schema does not (yet) describe.
NOT_IN_METAS_SCHEMA = {
    "a type Meta added later": "request_welcome is not in IncomingMessage's mapping",
    "user_id only on the contact": "a message with neither from nor from_user_id",
}


def _facts(obj: Any, keys: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in keys}


@pytest.mark.parametrize(
    ("body", "expected"), [pytest.param(b, e, id=name) for name, b, e in INBOUND_CASES]
)
def test_inbound_messages(body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    batch = parse_webhook(body)
    assert batch.ignored == 0, batch.ignored_reasons
    assert batch.statuses == []
    assert [_facts(m, e) for m, e in zip(batch.inbound, expected, strict=True)] == expected
    assert batch.phone_number_ids == {PNID}
    for msg in batch.inbound:
        assert msg.timestamp.tzinfo is UTC


@requires_meta_spec
@pytest.mark.parametrize(
    "body",
    [pytest.param(b, id=name) for name, b, _ in INBOUND_CASES if name not in NOT_IN_METAS_SCHEMA],
)
def test_inbound_fixtures_are_metas_shape(body: dict[str, Any]) -> None:
    meta_schema.validate_webhook(body)


# --------------------------------------------------------------------------- statuses

FAILED = status(
    "failed",
    seconds=1751142888,
    errors=[
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
    ],
)

STATUS_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "sent",
        envelope(
            entry(statuses_change([status("sent", conversation=CONVERSATION, pricing=PRICING)]))
        ),
        [
            {
                "phone_number_id": PNID,
                "wamid": OUR_WAMID,
                "status": Status.SENT,
                "timestamp": ts(1750000100),
                "recipient_id": CUSTOMER,
                "errors": (),
            }
        ],
    ),
    (
        "delivered",
        envelope(entry(statuses_change([status("delivered", pricing=PRICING)]))),
        [{"status": Status.DELIVERED, "errors": ()}],
    ),
    (
        "read",
        envelope(entry(statuses_change([status("read", seconds=1750000200)]))),
        [{"status": Status.READ, "timestamp": ts(1750000200)}],
    ),
    (
        "failed with errors",
        envelope(entry(statuses_change([FAILED]))),
        [
            {
                "status": Status.FAILED,
                "timestamp": ts(1751142888),
                "errors": (MetaError(131026, "Message undeliverable", "Message Undeliverable."),),
            }
        ],
    ),
    (
        "failed, error without error_data",
        envelope(
            entry(
                statuses_change(
                    [
                        status(
                            "failed",
                            errors=[
                                {
                                    "code": 131047,
                                    "title": "Re-engagement message",
                                    "message": "More than 24 hours",
                                }
                            ],
                        )
                    ]
                )
            )
        ),
        [{"errors": (MetaError(131047, "Re-engagement message", "More than 24 hours"),)}],
    ),
    (
        "failed, error with only a message",
        envelope(
            entry(statuses_change([status("failed", errors=[{"code": 1, "message": "Boom"}])]))
        ),
        [{"errors": (MetaError(1, "Boom", "Boom"),)}],
    ),
    (
        "recipient_user_id only",
        envelope(
            entry(
                statuses_change(
                    [
                        {
                            "id": OUR_WAMID,
                            "status": "delivered",
                            "timestamp": "1750000100",
                            "recipient_user_id": BSUID,
                        }
                    ]
                )
            )
        ),
        [{"recipient_id": BSUID, "status": Status.DELIVERED}],
    ),
    (
        "several in one change, in order",
        envelope(
            entry(
                statuses_change(
                    [
                        status("read", "wamid.1", 1750000300),
                        status("sent", "wamid.2", 1750000100),
                        status("delivered", "wamid.1", 1750000200),
                    ]
                )
            )
        ),
        [
            {"wamid": "wamid.1", "status": Status.READ},
            {"wamid": "wamid.2", "status": Status.SENT},
            {"wamid": "wamid.1", "status": Status.DELIVERED},
        ],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [pytest.param(b, e, id=name) for name, b, e in STATUS_CASES]
)
def test_statuses(body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    batch = parse_webhook(body)
    assert batch.ignored == 0, batch.ignored_reasons
    assert batch.inbound == []
    assert [_facts(s, e) for s, e in zip(batch.statuses, expected, strict=True)] == expected


@requires_meta_spec
@pytest.mark.parametrize(
    "body", [pytest.param(b, id=name) for name, b, _ in STATUS_CASES if "user_id" not in name]
)
def test_status_fixtures_are_metas_shape(body: dict[str, Any]) -> None:
    meta_schema.validate_webhook(body)


@pytest.mark.parametrize(
    "state", ["deleted", "warning", "accepted", "queued", "SENT", "", None, ["read"]]
)
def test_untracked_statuses_are_ignored(state: Any) -> None:
    batch = parse_webhook(envelope(entry(statuses_change([status("read"), status(state)]))))
    assert [s.status for s in batch.statuses] == [Status.READ]
    assert batch.ignored == 1
    assert "not tracked" in batch.ignored_reasons[0]


# --------------------------------------------------------------------------- Meta's example files

EXAMPLE_EXPECTATIONS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "inbound_text.json": (
        [
            {
                "phone_number_id": PNID,
                "wa_id": "16505551234",
                "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC),
                "kind": "text",
                "text": "Does it come in another color?",
                "context_wamid": None,
                "profile_name": "Sheena Nelson",
            }
        ],
        [],
    ),
    "inbound_button_reply.json": (
        [
            {
                "wa_id": "16505551234",
                "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
                "timestamp": datetime(2025, 6, 15, 22, 5, 36, tzinfo=UTC),
                "kind": "button_reply",
                "text": "Cancel",
                "button_id": "cancel-button",
                "context_wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA",
                "profile_name": "Sheena Nelson",
            }
        ],
        [],
    ),
    "status_sent.json": (
        [],
        [
            {
                "phone_number_id": PNID,
                "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                "status": Status.SENT,
                "timestamp": datetime(2025, 6, 15, 23, 27, 53, tzinfo=UTC),
                "recipient_id": "16505551234",
                "errors": (),
            }
        ],
    ),
    "status_failed.json": (
        [],
        [
            {
                "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
                "status": Status.FAILED,
                "timestamp": datetime(2025, 6, 28, 20, 34, 48, tzinfo=UTC),
                "errors": (
                    MetaError(
                        131049,
                        "This message was not delivered to maintain healthy ecosystem engagement.",
                        "In order to maintain a healthy ecosystem engagement, the message failed "
                        "to be delivered.",
                    ),
                ),
            }
        ],
    ),
}


@requires_meta_spec
@pytest.mark.parametrize("name", sorted(EXAMPLE_EXPECTATIONS))
def test_metas_example_files(name: str) -> None:
    if not (meta_schema.meta_examples_dir() / name).is_file():
        pytest.skip(f"{name} is not present")
    inbound_expected, statuses_expected = EXAMPLE_EXPECTATIONS[name]
    batch = parse_webhook(meta_schema.load_meta_example(name))
    assert batch.ignored == 0
    assert batch.phone_number_ids == {PNID}
    assert [_facts(m, e) for m, e in zip(batch.inbound, inbound_expected, strict=True)] == (
        inbound_expected
    )
    assert [_facts(s, e) for s, e in zip(batch.statuses, statuses_expected, strict=True)] == (
        statuses_expected
    )


# --------------------------------------------------------------------------- batches and garbage


def test_batch_of_two_entries_by_two_changes() -> None:
    body = envelope(
        entry(
            messages_change(
                [
                    message("text", {"body": "one"}, id="wamid.in1"),
                    message(
                        "interactive",
                        {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
                        id="wamid.in2",
                        context=REPLY_CONTEXT,
                    ),
                ],
                [contact()],
            ),
            statuses_change([status("sent", "wamid.out1"), status("delivered", "wamid.out1")]),
        ),
        entry(
            statuses_change([status("read", "wamid.out2")], pnid=PNID_2),
            messages_change(
                [
                    message(
                        "button",
                        {"payload": "stop", "text": "Stop"},
                        id="wamid.in3",
                        context=REPLY_CONTEXT,
                        **{"from": "919876543210"},
                    )
                ],
                [contact("919876543210", "Asha")],
                pnid=PNID_2,
            ),
            waba="987654321098765",
        ),
    )

    batch = parse_webhook(body)
    assert batch.ignored == 0
    assert batch.phone_number_ids == {PNID, PNID_2}
    assert [
        (m.phone_number_id, m.wamid, m.kind, m.wa_id, m.profile_name) for m in batch.inbound
    ] == [
        (PNID, "wamid.in1", "text", CUSTOMER, "Sheena Nelson"),
        (PNID, "wamid.in2", "button_reply", CUSTOMER, "Sheena Nelson"),
        (PNID_2, "wamid.in3", "button", "919876543210", "Asha"),
    ]
    assert [(s.phone_number_id, s.wamid, s.status) for s in batch.statuses] == [
        (PNID, "wamid.out1", Status.SENT),
        (PNID, "wamid.out1", Status.DELIVERED),
        (PNID_2, "wamid.out2", Status.READ),
    ]


@requires_meta_spec
def test_batch_fixture_is_metas_shape() -> None:
    body = envelope(
        entry(
            messages_change([message("text", {"body": "one"})], [contact()]),
            statuses_change([status("sent")]),
        ),
        entry(statuses_change([status("read")], pnid=PNID_2), waba="987654321098765"),
    )
    meta_schema.validate_webhook(body)
    assert len(parse_webhook(body).statuses) == 2


def test_large_batch() -> None:
    body = envelope(
        entry(
            statuses_change(
                [status("delivered", f"wamid.{i}", 1750000000 + i) for i in range(1000)]
            )
        )
    )
    batch = parse_webhook(body)
    assert len(batch.statuses) == 1000
    assert batch.statuses[-1].timestamp == ts(1750000999)


def test_garbage_mixed_in_is_skipped_and_counted() -> None:
    good_text = message("text", {"body": "still here"}, id="wamid.good")
    body = envelope(
        "not an entry",
        {"id": WABA},  # no changes
        {"id": WABA, "changes": "nope"},
        entry(
            "not a change",
            {"field": "messages"},  # no value
            {"field": "messages", "value": "text"},
            {
                "field": "account_update",
                "value": {"event": "VERIFIED_ACCOUNT", "metadata": {"phone_number_id": PNID_2}},
            },
            {
                "field": "messages",
                "value": {"messaging_product": "whatsapp", "messages": [good_text]},
            },
            {
                "field": "messages",
                "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID}},
            },
            messages_change(
                [
                    None,
                    42,
                    "wamid.string",
                    {**good_text, "id": ""},
                    {k: v for k, v in good_text.items() if k != "id"},
                    {**good_text, "timestamp": "yesterday"},
                    {**good_text, "timestamp": None},
                    {**good_text, "timestamp": "-5"},
                    {**good_text, "timestamp": "99999999999999999999"},
                    {k: v for k, v in good_text.items() if k != "from"},  # no sender, 2 contacts
                    good_text,
                    {**good_text, "id": "wamid.odd", "type": None, "text": ["x"], "context": "y"},
                    {
                        **good_text,
                        "id": "wamid.weird-parts",
                        "type": "interactive",
                        "interactive": 5,
                    },
                ],
                [contact(), contact("447700900001", "Oliver"), "garbage", {"profile": "x"}],
            ),
            statuses_change(
                [
                    status("read", "wamid.s1"),
                    None,
                    {"status": "read", "timestamp": "1750000000"},
                    status("deleted", "wamid.s2"),
                    status("read", "wamid.s3", errors="not a list"),
                    {
                        **status("failed", "wamid.s4"),
                        "errors": [None, {"code": "x"}, {"code": 131026, "title": "T"}],
                    },
                    {**status("read", "wamid.s5"), "timestamp": {"seconds": 1}},
                ]
            ),
        ),
    )
    batch = parse_webhook(body)

    assert [(m.wamid, m.kind, m.text) for m in batch.inbound] == [
        ("wamid.good", "text", "still here"),
        ("wamid.odd", "unsupported", None),
        ("wamid.weird-parts", "unsupported", None),
    ]
    assert [(s.wamid, s.status) for s in batch.statuses] == [
        ("wamid.s1", Status.READ),
        ("wamid.s3", Status.READ),
        ("wamid.s4", Status.FAILED),
    ]
    assert batch.statuses[1].errors == ()
    assert batch.statuses[2].errors == (MetaError(None, "", ""), MetaError(131026, "T", ""))
    assert batch.phone_number_ids == {PNID, PNID_2}
    skipped_entries = 3
    skipped_changes = 6  # not a change, no value, value text, account_update, no metadata, empty
    skipped_messages = 10
    skipped_statuses = 4
    assert (
        batch.ignored == skipped_entries + skipped_changes + skipped_messages + skipped_statuses
    ), batch.ignored_reasons
    assert len(batch.ignored_reasons) == batch.ignored
    assert any("account_update" in r for r in batch.ignored_reasons)
    assert any("bad timestamp" in r for r in batch.ignored_reasons)


def test_reasons_are_bounded() -> None:
    body = envelope(entry(statuses_change([status("deleted", f"wamid.{i}") for i in range(500)])))
    batch = parse_webhook(body)
    assert batch.ignored == 500
    assert len(batch.ignored_reasons) == 100


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "whatsapp_business_account",
        42,
        {},
        {"object": "page", "entry": []},
        {"object": "instagram", "entry": []},
        {"entry": []},
    ],
)
def test_not_a_whatsapp_webhook(body: Any) -> None:
    with pytest.raises(WebhookParseError):
        parse_webhook(body)


@pytest.mark.parametrize("entries", [None, "x", {}, 5])
def test_entry_not_a_list(entries: Any) -> None:
    batch = parse_webhook({"object": "whatsapp_business_account", "entry": entries})
    assert batch == WebhookBatch(ignored=1, ignored_reasons=["entry: not a list"])
    assert batch.empty


def test_empty_entry_list() -> None:
    batch = parse_webhook(envelope())
    assert batch.empty and batch.ignored == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1750000000", ts(1750000000)),
        (" 1750000000 ", ts(1750000000)),
        (1750000000, ts(1750000000)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1750000000.5", None),
        ("", None),
        (True, None),
        (float("nan"), None),
        ("-1", None),
        (-1, None),
        (10**20, None),
    ],
)
def test_timestamps(value: Any, expected: datetime | None) -> None:
    body = inbound({**message("text", {"body": "x"}), "timestamp": value})
    batch = parse_webhook(body)
    if expected is None:
        assert batch.inbound == [] and batch.ignored == 1
    else:
        assert batch.inbound[0].timestamp == expected
        assert batch.inbound[0].timestamp.tzinfo is UTC


def test_parse_does_not_mutate_its_input() -> None:
    body = inbound(message("text", {"body": "x"}))
    before = copy.deepcopy(body)
    parse_webhook(body)
    assert body == before


def test_from_with_plus_and_integer_ids() -> None:
    body = inbound(message("text", {"body": "x"}, **{"from": "+16505551234"}))
    assert parse_webhook(body).inbound[0].wa_id == CUSTOMER
    body = inbound(message("text", {"body": "x"}, **{"from": 16505551234}))
    assert parse_webhook(body).inbound[0].phone == "+16505551234"
