"""The compose box's inputs as the fields of each kind's endpoint, checked by the kind's own
parser, and each problem put back beside the input it is about."""

from __future__ import annotations

from typing import Any

import pytest

from wagate.dashboard.compose_kinds import COMPOSE_KINDS, input_for, sections_from_lines
from wagate.domain.errors import ValidationFailed
from wagate.domain.kinds import SEND_KINDS

PHONE = "+14155552671"


@pytest.mark.parametrize(
    ("typed", "sections"),
    [
        ("Ground", [{"rows": [{"id": "ground", "title": "Ground"}]}]),
        (
            "# Standard\nstd | Ground | 3 to 5 days\n\n# Fast\nexpress | Express",
            [
                {"title": "Standard", "rows": [
                    {"id": "std", "title": "Ground", "description": "3 to 5 days"}]},
                {"title": "Fast", "rows": [{"id": "express", "title": "Express"}]},
            ],
        ),
        # Ids made from titles never clash, with each other or with typed ones.
        ("Same\nSame\nsame | Typed", [{"rows": [
            {"id": "same", "title": "Same"}, {"id": "same-2", "title": "Same"},
            {"id": "same", "title": "Typed"}]}]),
        ("a | b | c | d", [{"rows": [{"id": "a", "title": "b", "description": "c | d"}]}]),
        ("¿Qué?", [{"rows": [{"id": "qu", "title": "¿Qué?"}]}]),
        ("¿?", [{"rows": [{"id": "row", "title": "¿?"}]}]),
        ("", []),
    ],
)  # fmt: skip
def test_list_rows_typed_one_a_line(typed: str, sections: list[dict[str, Any]]) -> None:
    assert sections_from_lines(typed) == sections


def parse(kind: str, **typed: str) -> Any:
    compose = COMPOSE_KINDS[kind]
    fields = compose.fields(typed) | {"phone": PHONE, "idempotency_key": "k"}
    return SEND_KINDS[kind].parse(fields, form=True)


def problems(kind: str, **typed: str) -> dict[str, str]:
    compose = COMPOSE_KINDS[kind]
    with pytest.raises(ValidationFailed) as caught:
        parse(kind, **typed)
    return {input_for(compose, p): p.code for p in caught.value.errors}


def test_each_form_makes_what_its_endpoint_takes() -> None:
    listed = parse("list", message="Pick", button="Choose", sections="a | A\nb | B | two")
    assert listed.content.data["sections"][0]["rows"][1]["description"] == "two"
    cta = parse("cta", message="Receipt", button="See", url=" https://shop.example/o/1 ")
    assert cta.content.data["url"] == "https://shop.example/o/1"
    place = parse("location", latitude="51.5", longitude="-0.14", name="Shop", address="")
    assert place.content.data["latitude"] == 51.5 and "address" not in place.content.data
    card = parse("contacts", contact_name="Lucía", contact_phone="+1 983 555 2319")
    assert card.content.data["contacts"][0]["phones"][0]["phone"] == "+1 983 555 2319"
    assert parse("location_request", message="Where?").content.body == "Where?"


@pytest.mark.parametrize(
    ("kind", "typed", "shown"),
    [
        ("list", {"message": "", "button": "B", "sections": "a"}, {"message"}),
        ("list", {"message": "m", "button": "x" * 21, "sections": "a"}, {"button"}),
        ("list", {"message": "m", "button": "B", "sections": ""}, {"sections"}),
        ("list", {"message": "m", "button": "B", "sections": "a | A\na | A"}, {"sections"}),
        ("list", {"message": "m", "button": "B",
                  "sections": "\n".join(f"r{n}" for n in range(11))}, {"sections"}),
        ("list", {"message": "m", "button": "B", "sections": "a", "header": "h" * 61},
         {"header"}),
        ("cta", {"message": "m", "button": "Go", "url": "ftp://x"}, {"url"}),
        ("cta", {"message": "m", "button": "", "url": "https://x.example"}, {"button"}),
        ("location", {"latitude": "91", "longitude": "0"}, {"latitude"}),
        ("location", {"latitude": "0", "longitude": "east"}, {"longitude"}),
        ("location_request", {"message": ""}, {"message"}),
        ("contacts", {"contact_name": ""}, {"contact_name"}),
        ("contacts", {"contact_name": "Sam", "contact_email": "e" * 2000}, {"contact_email"}),
        ("contacts", {"contact_name": "Sam", "contact_company": "c" * 2000},
         {"contact_company"}),
    ],
)  # fmt: skip
def test_each_problem_is_shown_beside_its_input(
    kind: str, typed: dict[str, str], shown: set[str]
) -> None:
    assert set(problems(kind, **typed)) == shown
