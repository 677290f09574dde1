"""A media message's payload (SPEC §8) for each kind, as Meta's `Message` schema says, and a
customer's file as Meta's webhook carries it; bulk rows with media columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import meta_schema
from tests.support.meta_schema import requires_meta_spec
from wagate.bulk import read_plan
from wagate.cloud.payloads import build_message_payload
from wagate.cloud.webhooks import parse_webhook
from wagate.domain.kinds.media import parse_media
from wagate.domain.models import MessageContent

CASES: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
    ({"media_type": "image", "media_id": "med_1", "caption": "*New*"}, "image",
     {"id": "4490709327384033", "caption": "*New*"}),
    ({"media_type": "video", "media_id": "med_1", "caption": "Unboxing"}, "video",
     {"id": "4490709327384033", "caption": "Unboxing"}),
    ({"media_type": "audio", "media_id": "med_1"}, "audio", {"id": "4490709327384033"}),
    ({"media_type": "document", "media_id": "med_1", "filename": "Invoice.pdf",
      "caption": "Yours"}, "document",
     {"id": "4490709327384033", "filename": "Invoice.pdf", "caption": "Yours"}),
    ({"media_type": "sticker", "media_id": "med_1"}, "sticker", {"id": "4490709327384033"}),
]  # fmt: skip


def _payload(fields: dict[str, Any], meta_id: str | None = "4490709327384033") -> Any:
    send = parse_media({"phone": "+14155552671", **fields})
    data = dict(send.content.data or {})
    if meta_id:
        data["meta_media_id"] = meta_id
    content = MessageContent(type=send.content.type, body=send.content.body, data=data)
    return build_message_payload(to=send.phone, content=content, reply_to_wamid="wamid.X")


@pytest.mark.parametrize(("fields", "kind", "media"), CASES, ids=[c[1] for c in CASES])
def test_each_media_kind_goes_by_metas_media_id(
    fields: dict[str, Any], kind: str, media: dict[str, Any]
) -> None:
    payload = _payload(fields)
    assert payload["type"] == kind and payload[kind] == media
    assert payload["context"] == {"message_id": "wamid.X"}


@requires_meta_spec
@pytest.mark.parametrize(("fields", "kind", "media"), CASES, ids=[c[1] for c in CASES])
def test_each_media_kind_matches_metas_schema(
    fields: dict[str, Any], kind: str, media: dict[str, Any]
) -> None:
    meta_schema.validate_message(_payload(fields))


def test_a_link_is_shown_as_a_link_until_it_is_uploaded() -> None:
    payload = _payload({"media_type": "image", "media_url": "https://a.example/x.png"}, None)
    assert payload["image"] == {"link": "https://a.example/x.png"}


def _customer_webhook(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100"},
            "contacts": [{"profile": {"name": "Asha"}, "wa_id": "14155552671"}],
            "messages": [message]}}]}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("meta_type", "media", "kind"),
    [
        ("image", {"id": "11", "mime_type": "image/jpeg", "sha256": "ab", "caption": "c"},
         "image"),
        ("audio", {"id": "12", "mime_type": "audio/ogg; codecs=opus", "sha256": "ab",
                   "voice": True}, "voice"),
        ("document", {"id": "13", "mime_type": "application/pdf", "sha256": "ab",
                      "filename": "a.pdf"}, "document"),
    ],
)  # fmt: skip
def test_a_customers_file_gets_its_wagate_id_in_the_stored_content(
    meta_type: str, media: dict[str, Any], kind: str
) -> None:
    message = {"from": "14155552671", "id": "wamid.A", "timestamp": "1764000000",
               "type": meta_type, meta_type: media}  # fmt: skip
    body = _customer_webhook(message)
    if meta_schema.meta_spec_available():
        meta_schema.validate_webhook(body)
    [inbound] = parse_webhook(body).inbound
    assert inbound.kind == kind
    assert inbound.media is not None and inbound.media["id"] == media["id"]
    assert inbound.media["wagate_media_id"].startswith("med_")
    assert inbound.content is not None
    assert inbound.content[meta_type]["wagate_media_id"] == inbound.media["wagate_media_id"]


def test_bulk_rows_with_media_columns_are_media_items(tmp_path: Path) -> None:
    csv = tmp_path / "catalogue.csv"
    csv.write_text(
        "phone,media_type,media_url,caption,message\n"
        "+14155552671,image,https://a.example/new.jpg,*New* in,\n"
        "+14155552672,,,,Plain text\n"
    )
    plan = read_plan(csv, template=None, language=None)
    media_row, text_row = plan.rows
    assert media_row.body == {
        "kind": "media", "phone": "+14155552671", "media_type": "image",
        "media_url": "https://a.example/new.jpg", "caption": "*New* in",
    }  # fmt: skip
    assert text_row.body == {"phone": "+14155552672", "message": "Plain text"}
