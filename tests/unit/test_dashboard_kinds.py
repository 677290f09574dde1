"""Every message kind drawn as WhatsApp draws it, from Meta's own shapes.

The fixtures are real shapes: each outbound one is validated against Meta's `Message` schema
and each inbound one, wrapped in a webhook, against `WebhookPayload` (both from
../shared/meta/business-messaging-api_v23.0.yaml), after taking out our `wagate_media_id`.
Then the bubble is drawn with the dashboard's own templates and read back as HTML: what a user
would see (a thumbnail from our server, a list whose rows open from its button, a link button,
a location card with no map tiles, …), and that nothing on the page comes from another site.
"""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from tests.support import meta_schema as ms
from tests.support.meta_schema import requires_meta_spec
from wagate.dashboard import kinds, views
from wagate.dashboard.kinds import MediaFile
from wagate.dashboard.web import templates

CUSTOMER = "14155552671"
OUR_WAMID = "wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
THEIR_WAMID = "wamid.HBgLMTQxNTU1NTI2NzEVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
MEDIA = {
    "med_photo": MediaFile("med_photo", "image/jpeg", 48_213, None),
    "med_clip": MediaFile("med_clip", "video/mp4", 2_400_000, None),
    "med_song": MediaFile("med_song", "audio/ogg", 18_000, None),
    "med_invoice": MediaFile("med_invoice", "application/pdf", 2_431_877, "invoice-4521.pdf"),
    "med_sticker": MediaFile("med_sticker", "image/webp", 31_000, None),
}


def send(kind: str, part: Any, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": kind,
    }
    body[kind] = part
    body.update(extra)
    return body


# --------------------------------------------------------------------------- outbound fixtures

OUTBOUND: dict[str, dict[str, Any]] = {
    "text": send("text", {"body": "Your order *4521* ships today.", "preview_url": False}),
    "buttons": send(
        "interactive",
        {
            "type": "button",
            "header": {"type": "image", "image": {"id": "1", "wagate_media_id": "med_photo"}},
            "body": {"text": "Does this look right?"},
            "footer": {"text": "Shop & Co"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
    ),
    "list": send(
        "interactive",
        {
            "type": "list",
            "header": {"type": "text", "text": "Shipping"},
            "body": {"text": "How fast do you want it?"},
            "footer": {"text": "Prices include tax"},
            "action": {
                "button": "Choose speed",
                "sections": [
                    {
                        "title": "Standard",
                        "rows": [{"id": "std", "title": "Ground", "description": "3 to 5 days"}],
                    },
                    {
                        "title": "Fast",
                        "rows": [
                            {"id": "express", "title": "Express", "description": "Next day"},
                            {"id": "same_day", "title": "Same day"},
                        ],
                    },
                ],
            },
        },
    ),
    "cta": send(
        "interactive",
        {
            "type": "cta_url",
            "header": {"type": "text", "text": "Your receipt"},
            "body": {"text": "Tap to see your order."},
            "footer": {"text": "Valid 24 h"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "See order", "url": "https://shop.example/o/4521"},
            },
        },
    ),
    "location_request": send(
        "interactive",
        {
            "type": "location_request_message",
            "body": {"text": "Where should we deliver?"},
            "action": {"name": "send_location"},
        },
    ),
    "image": send(
        "image", {"id": "1001", "caption": "Your _new_ sofa", "wagate_media_id": "med_photo"}
    ),
    "image_by_link": send("image", {"link": "https://cdn.example/sofa.jpg"}),
    "video": send("video", {"id": "1002", "caption": "Assembly", "wagate_media_id": "med_clip"}),
    "audio": send("audio", {"id": "1003", "wagate_media_id": "med_song"}),
    "document": send(
        "document", {"id": "1004", "caption": "Invoice", "wagate_media_id": "med_invoice"}
    ),
    "document_by_link": send(
        "document", {"link": "https://cdn.example/terms.pdf", "filename": "terms.pdf"}
    ),
    "sticker": send("sticker", {"id": "1005", "wagate_media_id": "med_sticker"}),
    "location": send(
        "location",
        {
            "latitude": "51.50135",
            "longitude": "-0.14189",
            "name": "Buckingham Palace",
            "address": "London SW1A 1AA",
        },
    ),
    "contacts": send(
        "contacts",
        [
            {
                "name": {
                    "formatted_name": "Lucía Gómez",
                    "first_name": "Lucía",
                    "last_name": "Gómez",
                },
                "org": {"company": "Shop & Co", "title": "Support"},
                "phones": [{"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "WORK"}],
                "emails": [{"email": "lucia@shop.example", "type": "WORK"}],
                "urls": [{"url": "https://shop.example", "type": "WORK"}],
                "addresses": [{"street": "1 Main St", "city": "Springfield", "type": "WORK"}],
                "birthday": "1990-04-01",
            }
        ],
    ),
    "reaction": send("reaction", {"message_id": THEIR_WAMID, "emoji": "👍"}),
}

# Meta's documentation defines these interactive types, but its OpenAPI description's enum of
# `interactive.type` leaves them out. Their objects are checked against the documented shape
# below, and the rest of the body against the description (with a reply-button stand-in).
DOCUMENTED_ONLY = {
    "cta_url": {
        "type": "object",
        "required": ["type", "body", "action"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "cta_url"},
            "header": {"type": "object", "required": ["type"]},
            "body": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 1024}},
            },
            "footer": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 60}},
            },
            "action": {
                "type": "object",
                "required": ["name", "parameters"],
                "additionalProperties": False,
                "properties": {
                    "name": {"const": "cta_url"},
                    "parameters": {
                        "type": "object",
                        "required": ["display_text", "url"],
                        "additionalProperties": False,
                        "properties": {
                            "display_text": {"type": "string", "maxLength": 20},
                            "url": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
    "location_request_message": {
        "type": "object",
        "required": ["type", "body", "action"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "location_request_message"},
            "body": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 1024}},
            },
            "action": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"const": "send_location"}},
            },
        },
    },
}
STAND_IN = {
    "type": "button",
    "body": {"text": "x"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "x", "title": "x"}}]},
}


def without_our_ids(node: Any) -> Any:
    """Meta's shape: the payload minus the `wagate_media_id` we add to media objects."""
    if isinstance(node, dict):
        return {k: without_our_ids(v) for k, v in node.items() if k != "wagate_media_id"}
    if isinstance(node, list):
        return [without_our_ids(v) for v in node]
    return node


def validate_send(payload: dict[str, Any]) -> None:
    body = without_our_ids(payload)
    interactive = body.get("interactive") or {}
    documented = DOCUMENTED_ONLY.get(interactive.get("type"))
    if documented is not None:
        Draft202012Validator(documented).validate(interactive)
        body = {**body, "interactive": STAND_IN}
    ms.validate_message(body)


# --------------------------------------------------------------------------- inbound fixtures

INBOUND: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "Hi! Is it *in stock*?"}},
    "button_reply": {
        "type": "interactive",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
    },
    "list_reply": {
        "type": "interactive",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "express", "title": "Express", "description": "Next day"},
        },
    },
    "button": {
        "type": "button",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "button": {"payload": "STOP_PROMOS", "text": "Stop promotions"},
    },
    "image": {
        "type": "image",
        "image": {
            "caption": "The scratch",
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
            "id": "1003383421387256",
            "wagate_media_id": "med_photo",
        },
    },
    "image_not_downloaded": {
        "type": "image",
        "image": {
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
            "id": "1003383421387257",
        },
    },
    "video": {
        "type": "video",
        "video": {
            "mime_type": "video/mp4",
            "sha256": "abc=",
            "id": "11",
            "wagate_media_id": "med_clip",
        },
    },
    "audio": {
        "type": "audio",
        "audio": {
            "mime_type": "audio/ogg",
            "sha256": "abc=",
            "id": "12",
            "voice": False,
            "wagate_media_id": "med_song",
        },
    },
    "voice": {
        "type": "audio",
        "audio": {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "abc=",
            "id": "13",
            "voice": True,
            "wagate_media_id": "med_song",
        },
    },
    "document": {
        "type": "document",
        "document": {
            "filename": "invoice-4521.pdf",
            "mime_type": "application/pdf",
            "sha256": "abc=",
            "id": "14",
            "wagate_media_id": "med_invoice",
        },
    },
    "sticker": {
        "type": "sticker",
        "sticker": {
            "mime_type": "image/webp",
            "sha256": "abc=",
            "id": "15",
            "animated": False,
            "wagate_media_id": "med_sticker",
        },
    },
    "location": {
        "type": "location",
        "location": {
            "address": "101 Forest Ave, Palo Alto, CA 94301",
            "latitude": 37.44221496582,
            "longitude": -122.16165924072,
            "name": "Philz Coffee",
            "url": "https://philzcoffee.com/",
        },
    },
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {
                    "first_name": "Barbara",
                    "last_name": "Johnson",
                    "formatted_name": "Barbara J. Johnson",
                },
                "org": {"company": "Meta Inc"},
                "phones": [{"phone": "+14125550829", "wa_id": "14125550829"}],
                "emails": [{"email": "barbara@example.com", "type": "Work"}],
            }
        ],
    },
    "reaction": {"type": "reaction", "reaction": {"message_id": OUR_WAMID, "emoji": "❤️"}},
    "order": {
        "type": "order",
        "order": {
            "catalog_id": "194836987003835",
            "text": "",
            "product_items": [
                {
                    "product_retailer_id": "di9ozbzfi4",
                    "quantity": 2,
                    "item_price": 30,
                    "currency": "USD",
                },
                {
                    "product_retailer_id": "nqryix03ez",
                    "quantity": 1,
                    "item_price": 25.5,
                    "currency": "USD",
                },
            ],
        },
    },
    "system": {
        "type": "system",
        "system": {
            "body": "User Sheena Nelson changed from 16505551234 to 12195555358",
            "wa_id": "12195555358",
            "type": "user_changed_number",
        },
    },
    "unsupported": {
        "type": "unsupported",
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
    },
}


def webhook(content: dict[str, Any]) -> dict[str, Any]:
    """The inbound content as Meta posts it: with from/id/timestamp, inside a webhook."""
    message = {"from": CUSTOMER, "id": THEIR_WAMID, "timestamp": "1749416383"}
    message.update(without_our_ids(content))
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "messages": [message],
    }
    if content["type"] != "system":  # Meta sends no contacts with a system message
        value["contacts"] = [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


# --------------------------------------------------------------------------- drawing and reading


class Page(HTMLParser):
    """The drawn HTML read back: every element with its attributes, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.words: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.words.append(" ".join(data.split()))

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def loads(self) -> list[str]:
        """Everything the browser would fetch by itself (not links, which wait for a click)."""
        return [
            a[name]
            for t, a in self.elements
            for name in ("src", "poster", "data")
            if name in a and t != "a"
        ] + [a["href"] for t, a in self.elements if t == "link" and "href" in a]


def draw(bubbles: list[views.Bubble], tap: str | None = None) -> Page:
    template = templates.from_string(
        '{% from "_macros.html" import bubble with context %}'
        "{% for b in thread %}{{ bubble(b, tap=tap) }}{% endfor %}"
    )
    return Page(template.render(thread=bubbles, tap=tap, csrf_token="csrf-1"))


def outbound(name: str, **view: Any) -> views.Bubble:
    stored = {"id": "msg_0001", "status": "delivered", "created_at": "2026-12-06T04:00:00Z"}
    stored.update(view)
    return views.from_payload(stored, OUTBOUND[name], MEDIA)


def inbound(name: str, wamid: str = THEIR_WAMID) -> views.Bubble:
    item = {"wamid": wamid, "at": "2026-12-06T04:01:00Z"}
    return views.from_inbound_content(item, INBOUND[name], MEDIA)


# ------------------------------------------------------------------ the fixtures are Meta's


@requires_meta_spec
@pytest.mark.parametrize("name", sorted(OUTBOUND))
def test_outbound_fixture_is_a_meta_send_body(name: str) -> None:
    validate_send(OUTBOUND[name])


@requires_meta_spec
@pytest.mark.parametrize("name", sorted(INBOUND))
def test_inbound_fixture_is_a_meta_webhook_message(name: str) -> None:
    ms.validate_webhook(webhook(INBOUND[name]))


@requires_meta_spec
def test_a_broken_fixture_would_be_caught() -> None:
    broken = copy.deepcopy(OUTBOUND["list"])
    broken["interactive"]["action"]["sections"][0]["rows"][0]["title"] = "x" * 25
    with pytest.raises(ValidationError):
        validate_send(broken)
    cta = copy.deepcopy(OUTBOUND["cta"])
    del cta["interactive"]["action"]["parameters"]["url"]
    with pytest.raises(ValidationError, match="url"):
        validate_send(cta)
    with pytest.raises(ValidationError):
        ms.validate_webhook(webhook({"type": "location", "location": {"latitude": 1}}))


# --------------------------------------------------------------------------- every kind, drawn


@pytest.mark.parametrize("name", sorted(OUTBOUND))
def test_no_outbound_kind_loads_anything_from_another_site(name: str) -> None:
    page = draw([outbound(name)])
    assert page.loads() == [] or all(src.startswith("/media/") for src in page.loads())
    assert not page.all("iframe") and not page.all("script") and not page.all("style")


@pytest.mark.parametrize("name", sorted(INBOUND))
def test_no_inbound_kind_loads_anything_from_another_site(name: str) -> None:
    page = draw([inbound(name)])
    assert all(src.startswith("/media/") for src in page.loads())
    assert not page.all("iframe") and not page.all("script") and not page.all("style")


def test_photo_is_a_thumbnail_from_our_server_with_its_caption() -> None:
    page = draw([outbound("image")])
    (img,) = page.all("img")
    assert img["src"] == "/media/med_photo"
    assert img["alt"] == "Your _new_ sofa"
    assert "Your new sofa" in page.text  # WhatsApp formatting applied to the caption
    assert page.all("em")


def test_photo_known_only_by_a_link_is_named_not_loaded() -> None:
    page = draw([outbound("image_by_link")])
    assert page.loads() == []
    assert "https://cdn.example/sofa.jpg" in page.text
    assert page.all("a", href="https://cdn.example/sofa.jpg")


def test_inbound_photo_not_downloaded_yet_says_so() -> None:
    page = draw([inbound("image_not_downloaded")])
    assert page.loads() == []
    assert "not downloaded yet" in page.text


def test_video_and_audio_play_from_our_server() -> None:
    page = draw([outbound("video"), inbound("audio")])
    (video,) = page.all("video")
    (audio,) = page.all("audio")
    assert video["src"] == "/media/med_clip" and "controls" in video
    assert audio["src"] == "/media/med_song" and "controls" in audio
    # A live update of the thread keeps a playing player as it is.
    assert video.get("hx-preserve") == "true" and video["id"]
    assert "Assembly" in page.text


def test_voice_note_is_marked_as_one() -> None:
    page = draw([inbound("voice")])
    assert page.all("audio")
    assert page.all("div", class_="wa-file wa-file-audio wa-voice", **{"data-kind": "audio"})


def test_document_chip_shows_name_size_and_type_and_downloads() -> None:
    page = draw([inbound("document")])
    (chip,) = page.all("a", class_="wa-doc")
    assert chip["href"] == "/media/med_invoice?download=1"
    assert "invoice-4521.pdf" in page.text
    assert "2.4 MB · PDF" in page.text


def test_document_by_link_names_its_file_and_link() -> None:
    page = draw([outbound("document_by_link")])
    assert page.loads() == []
    assert "terms.pdf" in page.text and "from https://cdn.example/terms.pdf" in page.text


def test_sticker_has_no_bubble_around_it() -> None:
    page = draw([outbound("sticker")])
    assert page.all("div", class_="bubble-wrap mine bare", **{"data-kind": "sticker"})
    assert page.all("img")[0]["src"] == "/media/med_sticker"


def test_reply_buttons_with_a_photo_header() -> None:
    page = draw([outbound("buttons")])
    assert page.all("img")[0]["src"] == "/media/med_photo"
    assert [a.get("class") for a in page.all("span", class_="wa-button")] == ["wa-button"] * 2
    assert "Does this look right? Shop & Co" in page.text
    assert "Yes No" in page.text


def test_list_is_a_button_that_opens_its_sections_and_rows() -> None:
    page = draw([outbound("list")])
    (menu,) = page.all("details", class_="wa-list")
    assert menu.get("hx-preserve") == "true"  # stays open across live updates
    assert "open" not in menu  # closed until its button is pressed
    text = page.text
    assert "Shipping How fast do you want it? Prices include tax" in text
    assert text.index("Choose speed") < text.index("Standard") < text.index("Ground")
    assert "3 to 5 days" in text and "Fast Express Next day Same day" in text
    assert not page.all("form")  # the business only looks at its own list


def test_list_rows_are_tapped_on_the_sandbox_phone() -> None:
    bubble = outbound("list", wamid=OUR_WAMID)
    page = draw([bubble], tap="/sandbox-phone/14155552671/reply")
    forms = page.all("form", action="/sandbox-phone/14155552671/reply")
    assert len(forms) == 3
    ids = [a["value"] for a in page.all("input", name="row_id")]
    assert ids == ["std", "express", "same_day"]
    assert {a["value"] for a in page.all("input", name="context")} == {OUR_WAMID}
    assert [a["value"] for a in page.all("input", name="row_description")] == [
        "3 to 5 days",
        "Next day",
    ]


def test_cta_is_a_link_button() -> None:
    page = draw([outbound("cta")])
    (link,) = page.all("a", class_="wa-button")
    assert link["href"] == "https://shop.example/o/4521"
    assert link["rel"] == "noopener noreferrer"
    assert "See order" in page.text and "Your receipt" in page.text


def test_cta_to_a_non_web_url_is_not_made_a_link() -> None:
    payload = copy.deepcopy(OUTBOUND["cta"])
    payload["interactive"]["action"]["parameters"]["url"] = "javascript:alert(1)"
    page = draw([views.from_payload({"id": "msg_1"}, payload)])
    assert not page.all("a", class_="wa-button")
    assert all("javascript" not in a.get("href", "") for _, a in page.elements)


def test_location_request_asks_for_the_location() -> None:
    page = draw([outbound("location_request")])
    assert "Where should we deliver?" in page.text
    assert page.all("span", class_="wa-button") and page.text.endswith("Send location")
    shared = draw([outbound("location_request", wamid=OUR_WAMID)], tap="/sandbox-phone/1/reply")
    assert shared.all("input", name="latitude") and shared.all("input", name="longitude")


def test_location_card_is_drawn_here_with_a_link_out() -> None:
    page = draw([outbound("location")])
    assert page.loads() == []
    assert "Buckingham Palace London SW1A 1AA 51.50135° N, 0.14189° W" in page.text
    (out,) = page.all("a", rel="noopener noreferrer", target="_blank")
    assert out["href"].startswith("https://www.openstreetmap.org/?mlat=51.501350&mlon=-0.141890")
    inbound_page = draw([inbound("location")])
    assert "Philz Coffee" in inbound_page.text and "37.44221° N, 122.16166° W" in inbound_page.text
    assert inbound_page.all("a", href="https://philzcoffee.com/")


def test_contact_card() -> None:
    page = draw([outbound("contacts")])
    text = page.text
    assert "L Lucía Gómez Shop & Co · Support" in text
    assert page.all("a", href="tel:+19835552319")
    assert page.all("a", href="mailto:lucia@shop.example")
    assert page.all("a", href="https://shop.example")
    assert "1 Main St, Springfield" in text and "Birthday 1990-04-01" in text


def test_reactions_sit_on_the_bubble_they_react_to() -> None:
    ours = outbound("text", wamid=OUR_WAMID)
    theirs = inbound("text", wamid=THEIR_WAMID)
    thread = views.with_reactions(
        [
            ours,
            theirs,
            inbound("reaction", wamid="wamid.r1"),
            outbound("reaction", wamid="wamid.r2"),
        ]
    )
    assert len(thread) == 2  # the reactions are not bubbles of their own
    assert thread[0].reactions == (kinds.Reacted("❤️", mine=False),)
    assert thread[1].reactions == (kinds.Reacted("👍", mine=True),)
    page = draw(thread)
    assert [a.get("title") for a in page.all("span")][-1] == "Your reaction"
    assert "❤️" in page.text and "👍" in page.text


def test_a_later_reaction_replaces_the_earlier_one_and_empty_takes_it_back() -> None:
    ours = outbound("text", wamid=OUR_WAMID)
    first = inbound("reaction", wamid="wamid.r1")
    changed = views.from_inbound_content(
        {"wamid": "wamid.r2"},
        {"type": "reaction", "reaction": {"message_id": OUR_WAMID, "emoji": "😮"}},
    )
    assert views.with_reactions([ours, first, changed])[0].reactions == (
        kinds.Reacted("😮", False),
    )
    removed = views.from_inbound_content(
        {"wamid": "wamid.r3"},
        {"type": "reaction", "reaction": {"message_id": OUR_WAMID, "emoji": ""}},
    )
    assert views.with_reactions([ours, first, removed])[0].reactions == ()


def test_a_reaction_to_a_message_not_shown_is_its_own_bubble() -> None:
    thread = views.with_reactions([inbound("reaction", wamid="wamid.r1")])
    assert len(thread) == 1
    assert "Reacted ❤️ to a message" in draw(thread).text


def test_tapped_replies_say_what_was_chosen() -> None:
    page = draw([inbound("button_reply"), inbound("list_reply"), inbound("button")])
    text = page.text
    assert "Tapped a button Yes" in text
    assert "Chose from the list Express Next day" in text
    assert "Tapped a quick reply Stop promotions" in text


def test_order_lists_items_and_total() -> None:
    page = draw([inbound("order")])
    text = page.text
    assert "Order 2 items" in text
    assert "di9ozbzfi4 2 60.00 USD" in text and "nqryix03ez 1 25.50 USD" in text
    assert "Total 85.50 USD" in text


def test_system_message_is_a_notice_not_a_bubble() -> None:
    page = draw([inbound("system")])
    assert page.all("div", class_="bubble-wrap system", **{"data-kind": "system"})
    assert not page.all("div", class_="bubble")
    assert "User Sheena Nelson changed from 16505551234 to 12195555358" in page.text


def test_unsupported_message_is_shown_clearly() -> None:
    page = draw([inbound("unsupported")])
    text = page.text
    assert "A message WhatsApp's Cloud API does not support" in text
    assert "Message type unknown — Message type is currently not supported. (131051)" in text


def test_an_unknown_kind_is_named() -> None:
    bubble = views.from_inbound_content({"wamid": "w"}, {"type": "hologram", "hologram": {}})
    assert "A hologram message" in draw([bubble]).text


@pytest.mark.parametrize(
    "content",
    [
        {"type": "image", "image": "not an object"},
        {"type": "location", "location": {"latitude": "north", "longitude": 500}},
        {"type": "contacts", "contacts": [{"name": 3, "phones": "x"}]},
        {"type": "order", "order": {"product_items": [{"quantity": "2", "item_price": "NaN"}]}},
        {"type": "interactive", "interactive": {"type": "list_reply"}},
        {"type": "unsupported", "errors": "none"},
        {},
    ],
)
def test_odd_shapes_are_drawn_without_failing(content: dict[str, Any]) -> None:
    page = draw([views.from_inbound_content({"wamid": "w"}, content)])
    assert page.elements


def test_text_from_a_customer_cannot_become_markup() -> None:
    hostile = '<img src=x onerror=alert(1)>"'
    contents = [
        {"type": "location", "location": {"latitude": 1, "longitude": 2, "name": hostile}},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": hostile}}]},
        {"type": "document", "document": {"filename": hostile, "wagate_media_id": "med_x"}},
        {
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "1", "title": hostile}},
        },
        {"type": "system", "system": {"body": hostile}},
    ]
    for content in contents:
        page = draw([views.from_inbound_content({"wamid": "w"}, content)])
        assert not page.all("img"), content
        assert hostile in page.text, content


def test_media_ids_are_collected_for_one_lookup() -> None:
    assert kinds.media_ids(OUTBOUND["buttons"]) == {"med_photo"}
    assert kinds.media_ids(INBOUND["document"]) == {"med_invoice"}
    assert kinds.media_ids(OUTBOUND["location"]) == set()


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (812, "812 B"),
        (14_200, "14 kB"),
        (2_431_877, "2.4 MB"),
        (104_857_600, "105 MB"),
        (None, ""),
    ],
)
def test_sizes_as_document_chips_show_them(size: int | None, shown: str) -> None:
    assert kinds.human_size(size) == shown


def test_a_file_still_downloading_or_failed_or_gone_says_so() -> None:
    content = INBOUND["image"]
    pending = {"med_photo": MediaFile("med_photo", "image/jpeg", None, None, state="pending")}
    failed = {
        "med_photo": MediaFile(
            "med_photo", None, None, None, state="failed", error="sha256 did not match"
        )
    }
    for lookup, says in [
        (pending, "not downloaded yet"),
        (failed, "could not be downloaded: sha256 did not match"),
        ({}, "no longer kept"),
    ]:
        page = draw([views.from_inbound_content({"wamid": "w"}, content, lookup)])
        assert page.loads() == [], says
        assert says in page.text
    chip = draw([views.from_inbound_content({"wamid": "w"}, INBOUND["document"], {})])
    assert not chip.all("a", class_="wa-doc") and "invoice-4521.pdf" in chip.text
