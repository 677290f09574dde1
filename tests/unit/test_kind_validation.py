"""The SPEC §8 kinds' field rules (list, cta, location, location-request, contacts,
reaction, read): each rule has its own code and path, limits are inclusive, every problem is
listed, forms carry JSON strings; and what an accepted request stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wagate.domain.errors import ValidationFailed
from wagate.domain.kinds import (
    parse_contacts,
    parse_cta,
    parse_list,
    parse_location,
    parse_location_request,
    parse_reaction,
    parse_read,
)
from wagate.domain.models import MessageType, SendRequest

PHONE = "+14155552671"
OMIT = object()
ROW = {"id": "s", "title": "Small"}
CARD = {"name": {"formatted_name": "Asha Rao"}}

Parser = Callable[..., SendRequest]

BASES: dict[str, tuple[Parser, dict[str, Any]]] = {
    "list": (
        parse_list,
        {
            "message": "Pick a size",
            "button": "Sizes",
            "sections": [{"title": "Sizes", "rows": [ROW, {"id": "m", "title": "Medium"}]}],
        },
    ),
    "cta": (
        parse_cta,
        {"message": "Track it", "button": "Track", "url": "https://example.com/t/4521"},
    ),
    "location": (parse_location, {"latitude": 12.97, "longitude": 77.59}),
    "location_request": (parse_location_request, {"message": "Where should we deliver?"}),
    "contacts": (parse_contacts, {"contacts": [CARD]}),
    "reaction": (parse_reaction, {"message_id": "msg_1", "emoji": "👍"}),
    "read": (parse_read, {}),
}


def fields_of(kind: str, **changes: Any) -> dict[str, Any]:
    out = {"phone": PHONE, **BASES[kind][1], **changes}
    return {k: v for k, v in out.items() if v is not OMIT}


def problems(kind: str, *, form: bool = False, **changes: Any) -> list[tuple[str, str]]:
    parse = BASES[kind][0]
    with pytest.raises(ValidationFailed) as caught:
        parse(fields_of(kind, **changes), form=form)
    return [(e.field, e.code) for e in caught.value.errors]


def sections(*rows_per_section: int, titled: bool = True) -> list[dict[str, Any]]:
    out = []
    n = 0
    for i, count in enumerate(rows_per_section):
        rows = []
        for _ in range(count):
            rows.append({"id": f"r{n}", "title": f"Row {n}"})
            n += 1
        section: dict[str, Any] = {"rows": rows}
        if titled:
            section["title"] = f"Section {i}"
        out.append(section)
    return out


# --- accepted: what each kind stores ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(BASES))
def test_each_base_request_is_accepted_with_its_type(kind: str) -> None:
    request = BASES[kind][0](fields_of(kind))
    assert request.phone == PHONE
    assert request.content.type is MessageType(kind)
    assert request.content.data is not None


def test_list_keeps_its_parts() -> None:
    request = parse_list(
        fields_of(
            "list",
            header="Menu",
            footer="Tap to choose",
            sections=[{"rows": [{"id": "s", "title": "Small", "description": "Serves one"}]}],
        )
    )
    content = request.content
    assert (content.body, content.header, content.footer) == (
        "Pick a size",
        "Menu",
        "Tap to choose",
    )
    assert content.data == {
        "button": "Sizes",
        "sections": [{"rows": [{"id": "s", "title": "Small", "description": "Serves one"}]}],
    }


def test_location_body_names_the_place() -> None:
    assert parse_location(fields_of("location", name="Head office")).content.body == "Head office"
    assert parse_location(fields_of("location", address="1 MG Rd")).content.body == "1 MG Rd"
    assert parse_location(fields_of("location")).content.body == "12.97,77.59"


def test_reaction_points_at_its_message_and_may_be_removed() -> None:
    request = parse_reaction(fields_of("reaction", emoji=""))
    assert request.reply_to == "msg_1"
    assert request.content.data == {"message_id": "msg_1", "emoji": ""}
    assert parse_reaction(fields_of("reaction", reply_to="msg_1")).reply_to == "msg_1"


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👍🏽", "🇮🇳", "👨‍👩‍👧"])
def test_one_emoji_of_any_shape_is_accepted(emoji: str) -> None:
    assert parse_reaction(fields_of("reaction", emoji=emoji)).content.body == emoji


def test_read_receipt_typing_flag() -> None:
    assert parse_read(fields_of("read", typing=True)).content.data == {"typing": True}
    assert parse_read(fields_of("read", typing="yes"), form=True).content.data == {"typing": True}
    assert parse_read(fields_of("read")).content.data == {"typing": False}


def test_extras_are_kept_for_every_kind() -> None:
    request = parse_cta(
        fields_of(
            "cta",
            reply_to="wamid.X",
            metadata={"order": "4521"},
            channel="ch_1",
            idempotency_key="k-1",
        )
    )
    assert (request.reply_to, request.metadata, request.channel, request.idempotency_key) == (
        "wamid.X",
        {"order": "4521"},
        "ch_1",
        "k-1",
    )


# --- every rule, its code and its path ----------------------------------------------------


RULES: list[tuple[str, dict[str, Any], str, str]] = [
    # shared
    ("list", {"phone": OMIT}, "phone", "missing_field"),
    ("cta", {"phone": "+1 415 555 2671"}, "phone", "invalid_phone_format"),
    ("location", {"phone": "+10000000000"}, "phone", "invalid_phone_number"),
    ("contacts", {"metadata": [1]}, "metadata", "invalid_metadata"),
    ("location_request", {"metadata": {"x": "y" * 5000}}, "metadata", "metadata_too_large"),
    ("reaction", {"idempotency_key": "k" * 256}, "idempotency_key", "field_too_long"),
    ("cta", {"channel": " ch"}, "channel", "invalid_field"),
    # list
    ("list", {"message": OMIT}, "message", "missing_field"),
    ("list", {"message": "  "}, "message", "empty_message"),
    ("list", {"message": "x" * 4097}, "message", "message_too_long"),
    ("list", {"message": 5}, "message", "invalid_field"),
    ("list", {"header": "h" * 61}, "header", "header_too_long"),
    ("list", {"footer": "f" * 61}, "footer", "footer_too_long"),
    ("list", {"button": OMIT}, "button", "missing_field"),
    ("list", {"button": "b" * 21}, "button", "button_text_too_long"),
    ("list", {"sections": OMIT}, "sections", "missing_field"),
    ("list", {"sections": []}, "sections", "invalid_sections"),
    ("list", {"sections": "x"}, "sections", "invalid_sections"),
    ("list", {"sections": [5]}, "sections[0]", "invalid_sections"),
    ("list", {"sections": [{"rows": [ROW], "x": 1}]}, "sections[0]", "invalid_sections"),
    ("list", {"sections": [{"title": "T", "rows": []}]}, "sections[0].rows", "invalid_sections"),
    ("list", {"sections": sections(*[1] * 11)}, "sections", "too_many_sections"),
    ("list", {"sections": sections(6, 5)}, "sections", "too_many_rows"),
    (
        "list",
        {"sections": sections(1, 1, titled=False)},
        "sections[0].title",
        "section_title_required",
    ),
    (
        "list",
        {"sections": [{"title": "t" * 25, "rows": [ROW]}]},
        "sections[0].title",
        "section_title_too_long",
    ),
    ("list", {"sections": [{"rows": [{"id": "x"}]}]}, "sections[0].rows[0].title", "invalid_row"),
    ("list", {"sections": [{"rows": [{"title": "x"}]}]}, "sections[0].rows[0].id", "invalid_row"),
    ("list", {"sections": [{"rows": [5]}]}, "sections[0].rows[0]", "invalid_row"),
    (
        "list",
        {"sections": [{"rows": [{"id": " s", "title": "S"}]}]},
        "sections[0].rows[0].id",
        "invalid_row",
    ),
    (
        "list",
        {"sections": [{"rows": [{**ROW, "extra": 1}]}]},
        "sections[0].rows[0]",
        "invalid_row",
    ),
    (
        "list",
        {"sections": [{"rows": [{"id": "i" * 201, "title": "S"}]}]},
        "sections[0].rows[0].id",
        "row_id_too_long",
    ),
    (
        "list",
        {"sections": [{"rows": [{"id": "s", "title": "t" * 25}]}]},
        "sections[0].rows[0].title",
        "row_title_too_long",
    ),
    (
        "list",
        {"sections": [{"rows": [{**ROW, "description": "d" * 73}]}]},
        "sections[0].rows[0].description",
        "row_description_too_long",
    ),
    (
        "list",
        {"sections": [{"title": "A", "rows": [ROW]}, {"title": "B", "rows": [ROW]}]},
        "sections[1].rows[0].id",
        "duplicate_row_id",
    ),
    # cta
    ("cta", {"message": "x" * 1025}, "message", "message_too_long"),
    ("cta", {"message": ""}, "message", "empty_message"),
    ("cta", {"button": "b" * 21}, "button", "button_text_too_long"),
    ("cta", {"button": ""}, "button", "missing_field"),
    ("cta", {"url": OMIT}, "url", "missing_field"),
    ("cta", {"url": "http://example.com"}, "url", "invalid_url"),
    ("cta", {"url": "https://"}, "url", "invalid_url"),
    ("cta", {"url": "example.com/x"}, "url", "invalid_url"),
    ("cta", {"url": "https://example.com/a b"}, "url", "invalid_url"),
    ("cta", {"url": "https://example.com/" + "a" * 2000}, "url", "url_too_long"),
    ("cta", {"header": "h" * 61}, "header", "header_too_long"),
    ("cta", {"footer": "f" * 61}, "footer", "footer_too_long"),
    # location
    ("location", {"latitude": OMIT}, "latitude", "missing_field"),
    ("location", {"longitude": OMIT}, "longitude", "missing_field"),
    ("location", {"latitude": 90.5}, "latitude", "invalid_latitude"),
    ("location", {"latitude": "north"}, "latitude", "invalid_latitude"),
    ("location", {"latitude": True}, "latitude", "invalid_latitude"),
    ("location", {"longitude": -180.01}, "longitude", "invalid_longitude"),
    ("location", {"longitude": float("nan")}, "longitude", "invalid_longitude"),
    ("location", {"name": "n" * 1001}, "name", "field_too_long"),
    ("location", {"address": 5}, "address", "invalid_field"),
    # location request
    ("location_request", {"message": OMIT}, "message", "missing_field"),
    ("location_request", {"message": "x" * 1025}, "message", "message_too_long"),
    # contacts
    ("contacts", {"contacts": OMIT}, "contacts", "missing_field"),
    ("contacts", {"contacts": []}, "contacts", "invalid_contacts"),
    ("contacts", {"contacts": {"name": "x"}}, "contacts", "invalid_contacts"),
    ("contacts", {"contacts": [CARD] * 6}, "contacts", "too_many_contacts"),
    ("contacts", {"contacts": [5]}, "contacts[0]", "invalid_contact"),
    ("contacts", {"contacts": [{}]}, "contacts[0].name.formatted_name", "contact_name_required"),
    (
        "contacts",
        {"contacts": [{"name": {"formatted_name": " "}}]},
        "contacts[0].name.formatted_name",
        "contact_name_required",
    ),
    ("contacts", {"contacts": [{**CARD, "nickname": "A"}]}, "contacts[0]", "invalid_contact"),
    (
        "contacts",
        {"contacts": [{**CARD, "phones": [{"phone": "+1", "type": "CELL"}]}]},
        "contacts[0].phones[0].type",
        "invalid_contact",
    ),
    (
        "contacts",
        {"contacts": [{**CARD, "phones": [{"type": "WORK"}]}]},
        "contacts[0].phones[0].phone",
        "invalid_contact",
    ),
    (
        "contacts",
        {"contacts": [{**CARD, "emails": "a@b.c"}]},
        "contacts[0].emails",
        "invalid_contact",
    ),
    (
        "contacts",
        {"contacts": [{**CARD, "org": {"company": 5}}]},
        "contacts[0].org.company",
        "invalid_contact",
    ),
    (
        "contacts",
        {"contacts": [{**CARD, "birthday": "1990-02-30"}]},
        "contacts[0].birthday",
        "invalid_birthday",
    ),
    (
        "contacts",
        {"contacts": [{**CARD, "urls": [{"url": "u" * 1001}]}]},
        "contacts[0].urls[0].url",
        "field_too_long",
    ),
    # reaction
    ("reaction", {"message_id": OMIT}, "message_id", "missing_field"),
    ("reaction", {"message_id": 5}, "message_id", "invalid_field"),
    ("reaction", {"message_id": "m" * 256}, "message_id", "field_too_long"),
    ("reaction", {"emoji": OMIT}, "emoji", "missing_field"),
    ("reaction", {"emoji": "ok"}, "emoji", "invalid_emoji"),
    ("reaction", {"emoji": "👍👍"}, "emoji", "invalid_emoji"),
    ("reaction", {"emoji": 1}, "emoji", "invalid_emoji"),
    ("reaction", {"reply_to": "msg_2"}, "reply_to", "invalid_field"),
    # read
    ("read", {"typing": "yes"}, "typing", "invalid_field"),
    ("read", {"phone": "14155552671"}, "phone", "invalid_phone_format"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "path", "code"),
    RULES,
    ids=[f"{kind}-{code}-{path}-{i}" for i, (kind, _, path, code) in enumerate(RULES)],
)
def test_each_rule_has_its_code_and_path(
    kind: str, changes: dict[str, Any], path: str, code: str
) -> None:
    found = problems(kind, **changes)
    assert (path, code) in found, found
    assert found[0] == (path, code) or code in {"too_many_rows", "too_many_sections"}, found


LIMITS: list[tuple[str, str, int]] = [
    ("list", "message", 4096),
    ("list", "header", 60),
    ("list", "footer", 60),
    ("list", "button", 20),
    ("cta", "message", 1024),
    ("cta", "button", 20),
    ("location_request", "message", 1024),
]


@pytest.mark.parametrize(("kind", "name", "limit"), LIMITS)
def test_limits_are_inclusive(kind: str, name: str, limit: int) -> None:
    BASES[kind][0](fields_of(kind, **{name: "é" * limit}))
    with pytest.raises(ValidationFailed):
        BASES[kind][0](fields_of(kind, **{name: "é" * (limit + 1)}))


def test_list_limits_are_inclusive() -> None:
    parse_list(fields_of("list", sections=sections(*[1] * 10)))  # 10 sections, 10 rows
    parse_list(
        fields_of(
            "list",
            sections=[
                {
                    "title": "t" * 24,
                    "rows": [{"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}],
                }
            ],
        )
    )
    parse_contacts(fields_of("contacts", contacts=[CARD] * 5))
    parse_location(fields_of("location", latitude=-90, longitude=180))


def test_every_problem_is_listed_phone_first() -> None:
    found = problems("cta", phone=OMIT, message="", button="b" * 21, url="ftp://x")
    assert found == [
        ("phone", "missing_field"),
        ("message", "empty_message"),
        ("button", "button_text_too_long"),
        ("url", "invalid_url"),
    ]


def test_error_messages_say_how_to_fix() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_list(fields_of("list", sections=sections(6, 5)))
    assert "at most 10 rows" in caught.value.errors[0].message
    with pytest.raises(ValidationFailed) as caught:
        parse_cta(fields_of("cta", url="http://example.com"))
    assert "https" in caught.value.errors[0].message


def test_form_bodies_carry_json_and_numbers_as_strings() -> None:
    form = {
        "phone": PHONE,
        "message": "Pick",
        "button": "Sizes",
        "sections": '[{"rows": [{"id": "s", "title": "Small"}]}]',
        "metadata": '{"a": 1}',
    }
    request = parse_list(form, form=True)
    assert request.content.data == {"button": "Sizes", "sections": [{"rows": [ROW]}]}
    assert request.metadata == {"a": 1}
    located = parse_location({"phone": PHONE, "latitude": "12.5", "longitude": "-3"}, form=True)
    assert located.content.data == {"latitude": 12.5, "longitude": -3.0}
    assert problems("list", form=True, sections="[{") == [("sections", "invalid_sections")]
    assert problems("contacts", form=True, contacts="nope") == [("contacts", "invalid_contacts")]
    assert problems("location", form=True, latitude="") == [("latitude", "missing_field")]


def test_a_huge_list_reports_a_bounded_number_of_errors() -> None:
    found = problems("list", sections=[{"rows": [{"id": 1}] * 1000}] * 1000)
    assert len(found) < 100
