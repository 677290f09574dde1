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
from typing import Any

import pytest
from jsonschema import ValidationError

from tests.support import meta_schema as ms
from tests.support.kind_fixtures import (
    INBOUND,
    MEDIA,
    OUR_WAMID,
    OUTBOUND,
    THEIR_WAMID,
    Page,
    validate_send,
    webhook,
)
from tests.support.meta_schema import requires_meta_spec
from wagate.dashboard import kinds, views
from wagate.dashboard.kinds import MediaFile
from wagate.dashboard.web import templates

# --------------------------------------------------------------------------- drawing and reading


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


def test_a_reply_shows_the_message_it_quotes() -> None:
    photo = outbound("image", wamid=OUR_WAMID)
    question = views.from_inbound_content(
        {"wamid": THEIR_WAMID},
        {"type": "text", "text": {"body": "Does it come in *blue*?"},
         "context": {"from": "15550783881", "id": OUR_WAMID}},
    )  # fmt: skip
    answer = outbound("text", wamid="wamid.answer", reply_to=THEIR_WAMID)
    lost = outbound("text", wamid="wamid.lost", reply_to="msg_older")
    tapped = inbound("list_reply", wamid="wamid.tap")  # its context is the list: no quote
    thread = views.with_quotes([photo, question, answer, lost, tapped])
    assert [b.quote for b in thread] == [
        None,
        "Photo: Your _new_ sofa",
        "Does it come in *blue*?",
        "a message not shown here",
        None,
    ]
    page = draw(thread)
    quotes = [a for t, a in page.elements if t == "div" and a.get("class") == "wa-quote"]
    assert len(quotes) == 3
    assert "Replying to: Photo: Your new sofa" in page.text


@pytest.mark.parametrize(
    ("filename", "mime", "shown"),
    [
        ("invoice.pdf", None, "PDF"),
        ("archive.tar.gz", None, "GZ"),
        (".bashrc", None, "FILE"),
        ("report", "application/pdf", "PDF"),
        (None, "text/plain", "TXT"),
        ("notes.a-very-long-suffix", "application/msword", "DOC"),
        (None, None, "FILE"),
    ],
)
def test_a_document_chip_names_its_type(filename: str | None, mime: str | None, shown: str) -> None:
    assert kinds.Media("document", filename=filename, mime_type=mime).extension == shown
