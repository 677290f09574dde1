"""The conversation page's compose forms for every kind beyond text: what each form's inputs
become in the fields of its API endpoint (SPEC §8), so that the kind's own parser
(`wagate.domain.kinds`) checks them exactly as `POST /v1/messages/<kind>` does, and its
problems are put back beside the inputs they are about.

A list is typed as lines: `# Section title` starts a section, and every other line is a row,
`Title`, `id | Title` or `id | Title | Description` (an id is made from the title when none
is given, as for reply buttons).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wagate.domain.errors import FieldError

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ComposeKind:
    name: str  # the kind in wagate.domain.kinds.SEND_KINDS
    inputs: tuple[str, ...]  # the form's inputs, kept as typed when the page is redrawn
    fields: Callable[[Mapping[str, str]], dict[str, Any]]
    # An API field (the start of a problem's `field`) → the input it is shown beside.
    input_for: Mapping[str, str]


def _slug(title: str, fallback: str) -> str:
    return _SLUG.sub("-", title.lower()).strip("-") or fallback


def sections_from_lines(text: str) -> list[dict[str, Any]]:
    """A list's sections typed one line each (see the module's docstring)."""
    sections: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    taken: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            current = {"title": line.strip().lstrip("#").strip(), "rows": []}
            sections.append(current)
            continue
        if current is None:
            current = {"rows": []}
            sections.append(current)
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) == 1:
            title = parts[0]
            row_id = base = _slug(title, "row")
            n = 2
            while row_id in taken:  # a made-up id must not clash with another row's
                row_id, n = f"{base}-{n}", n + 1
            row: dict[str, Any] = {"id": row_id, "title": title}
        else:
            row = {"id": parts[0], "title": parts[1]}
            if len(parts) == 3 and parts[2]:
                row["description"] = parts[2]
        taken.add(row["id"])
        current["rows"].append(row)
    return sections


def _optional(form: Mapping[str, str], *names: str) -> dict[str, str]:
    return {name: form[name] for name in names if form.get(name, "").strip()}


def _list(form: Mapping[str, str]) -> dict[str, Any]:
    return {
        "message": form.get("message", ""),
        "button": form.get("button", ""),
        "sections": sections_from_lines(form.get("sections", "")),
        **_optional(form, "header", "footer"),
    }


def _cta(form: Mapping[str, str]) -> dict[str, Any]:
    return {
        "message": form.get("message", ""),
        "button": form.get("button", ""),
        "url": form.get("url", "").strip(),
        **_optional(form, "header", "footer"),
    }


def _location(form: Mapping[str, str]) -> dict[str, Any]:
    return {
        "latitude": form.get("latitude", ""),
        "longitude": form.get("longitude", ""),
        **_optional(form, "name", "address"),
    }


def _location_request(form: Mapping[str, str]) -> dict[str, Any]:
    return {"message": form.get("message", "")}


def _contacts(form: Mapping[str, str]) -> dict[str, Any]:
    card: dict[str, Any] = {"name": {"formatted_name": form.get("contact_name", "").strip()}}
    phone = form.get("contact_phone", "").strip()
    if phone:
        card["phones"] = [{"phone": phone, "type": "WORK"}]
    email = form.get("contact_email", "").strip()
    if email:
        card["emails"] = [{"email": email, "type": "WORK"}]
    company = form.get("contact_company", "").strip()
    if company:
        card["org"] = {"company": company}
    url = form.get("contact_url", "").strip()
    if url:
        card["urls"] = [{"url": url, "type": "WORK"}]
    return {"contacts": [card]}


def _reaction(form: Mapping[str, str]) -> dict[str, Any]:
    return {"message_id": form.get("message_id", ""), "emoji": form.get("emoji", "")}


_INTERACTIVE = {"message": "message", "header": "header", "footer": "footer", "button": "button"}

COMPOSE_KINDS: dict[str, ComposeKind] = {
    k.name: k
    for k in (
        ComposeKind(
            "list",
            ("message", "button", "sections", "header", "footer"),
            _list,
            {**_INTERACTIVE, "sections": "sections"},
        ),
        ComposeKind(
            "cta",
            ("message", "button", "url", "header", "footer"),
            _cta,
            {**_INTERACTIVE, "url": "url"},
        ),
        ComposeKind(
            "location",
            ("latitude", "longitude", "name", "address"),
            _location,
            {
                "latitude": "latitude",
                "longitude": "longitude",
                "name": "name",
                "address": "address",
            },
        ),
        ComposeKind("location_request", ("message",), _location_request, {"message": "message"}),
        ComposeKind(
            "contacts",
            ("contact_name", "contact_phone", "contact_email", "contact_company", "contact_url"),
            _contacts,
            {"contacts": "contact_name"},
        ),
        ComposeKind("reaction", ("message_id", "emoji"), _reaction, {"emoji": "emoji"}),
    )
}

_CONTACT_INPUTS = {
    "phones": "contact_phone",
    "emails": "contact_email",
    "org": "contact_company",
    "urls": "contact_url",
    "name": "contact_name",
}


def input_for(kind: ComposeKind, problem: FieldError) -> str:
    """The form input a problem is shown beside (the kind's first input when none fits)."""
    path = problem.field
    name = re.split(r"[.\[]", path, maxsplit=1)[0]
    if kind.name == "contacts":
        for part, shown in _CONTACT_INPUTS.items():
            if f".{part}" in path or f"].{part}" in path:
                return shown
    if name == "phone":
        return kind.inputs[0]
    return kind.input_for.get(name, kind.inputs[0])
