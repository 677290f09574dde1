"""Contact cards (SPEC §8 `POST /v1/messages/contacts`), in Meta's shape.

`contacts` is an array of 1 to 5 cards, each as Meta's `ContactObject`: `name` (an object with
`formatted_name`, required, and optionally `first_name`, `last_name`, `middle_name`, `prefix`,
`suffix`), `phones` ([{"phone", "type"?, "wa_id"?}]), `emails` ([{"email", "type"?}]), `org`
({"company", "department", "title"}), `urls` ([{"url", "type"?}]), `addresses` ([{"street",
"city", "state", "zip", "country", "country_code", "type"?}]) and `birthday` ("YYYY-MM-DD").
A `type` is "HOME" or "WORK", as Meta's schema says.

Error codes (HTTP 422): `missing_field` (no contacts), `invalid_contacts` (not an array, empty,
or in a form not JSON), `too_many_contacts` (more than 5), `contact_name_required` (a card
without `name.formatted_name`), `invalid_contact` (an unknown key, a wrong type, a blank value,
a bad `type`), `invalid_birthday` (not a real YYYY-MM-DD date), `field_too_long` (a value over
1000 characters), and those every kind shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.kinds.fields import (
    describe_type,
    quote_input,
    read_extras,
    read_json,
    unstorable,
)
from wagate.domain.models import MessageContent, MessageType, SendRequest

MAX_CONTACTS = 5
MAX_ITEMS = 20  # phones, emails, ... per card
VALUE_MAX = 1000
CONTACT_TYPES = ("HOME", "WORK")
EXAMPLE = (
    '[{"name": {"formatted_name": "Asha Rao", "first_name": "Asha"}, '
    '"phones": [{"phone": "+919876543210", "type": "WORK"}]}]'
)

_NAME_KEYS = ("formatted_name", "first_name", "last_name", "middle_name", "prefix", "suffix")
_ORG_KEYS = ("company", "department", "title")
# Each list of a card: its item keys, the key the item needs, and whether it has a `type`.
_LISTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "phones": (("phone", "type", "wa_id"), "phone"),
    "emails": (("email", "type"), "email"),
    "urls": (("url", "type"), "url"),
    "addresses": (("street", "city", "state", "zip", "country", "country_code", "type"), None),
}
_CARD_KEYS = ("name", "org", "birthday", *_LISTS)


def parse_contacts(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    errors: list[FieldError] = []
    cards = _cards(fields.get("contacts"), form, errors)
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert cards is not None
    names = ", ".join(card["name"]["formatted_name"] for card in cards)
    content = MessageContent(type=MessageType.CONTACTS, body=names, data={"contacts": cards})
    return extras.request(content)


def _cards(value: object, form: bool, errors: list[FieldError]) -> list[dict[str, Any]] | None:
    if value is None or (form and value == ""):
        errors.append(
            FieldError(
                "contacts",
                "missing_field",
                f"contacts is required: 1 to {MAX_CONTACTS} contact cards, e.g. {EXAMPLE}.",
            )
        )
        return None
    value = read_json(value, "contacts", form, errors, code="invalid_contacts", example=EXAMPLE)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe_type(value)
        errors.append(
            FieldError(
                "contacts",
                "invalid_contacts",
                f"contacts must be an array of 1 to {MAX_CONTACTS} contact cards, e.g. "
                f"{EXAMPLE}; got {got}.",
            )
        )
        return None
    ok = True
    if len(value) > MAX_CONTACTS:
        errors.append(
            FieldError(
                "contacts",
                "too_many_contacts",
                f"contacts has {len(value)} cards; WhatsApp allows at most {MAX_CONTACTS} in "
                "one message.",
            )
        )
        ok = False
    cards = []
    for index, card in enumerate(value[:MAX_CONTACTS]):
        checked = _Card(f"contacts[{index}]", errors).check(card)
        if checked is None:
            ok = False
        else:
            cards.append(checked)
    return cards if ok else None


class _Card:
    def __init__(self, path: str, errors: list[FieldError]) -> None:
        self.path = path
        self.errors = errors
        self.ok = True

    def fail(self, where: str, message: str, code: str = "invalid_contact") -> None:
        self.errors.append(FieldError(where, code, message))
        self.ok = False

    def check(self, card: object) -> dict[str, Any] | None:
        path = self.path
        if not isinstance(card, dict):
            self.fail(path, f"{path} must be a contact card object; got {describe_type(card)}.")
            return None
        self.keys(card, path, _CARD_KEYS)
        out: dict[str, Any] = {}
        name = card.get("name")
        if not isinstance(name, dict) or not _filled(name.get("formatted_name")):
            self.fail(
                f"{path}.name.formatted_name",
                f"{path}.name.formatted_name is required: the name shown on the card, e.g. "
                '{"name": {"formatted_name": "Asha Rao"}}.',
                "contact_name_required",
            )
            if isinstance(name, dict):
                self.obj(name, f"{path}.name", _NAME_KEYS)
        else:
            out["name"] = self.obj(name, f"{path}.name", _NAME_KEYS)
        if "org" in card:
            out["org"] = self.obj(card["org"], f"{path}.org", _ORG_KEYS)
        if "birthday" in card:
            out["birthday"] = self.birthday(card["birthday"], f"{path}.birthday")
        for key, (item_keys, needed) in _LISTS.items():
            if key in card:
                out[key] = self.items(card[key], f"{path}.{key}", item_keys, needed)
        return out if self.ok else None

    def keys(self, obj: dict[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        extra = sorted(str(k) for k in obj if k not in allowed)
        if extra:
            names = ", ".join(quote_input(k) for k in extra[:5])
            self.fail(
                path,
                f"{path} has unknown field(s) {names}; allowed: {', '.join(allowed)}.",
            )

    def text(self, value: object, where: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"{where} must be a non-empty string; got {describe_type(value)}.")
            return None
        if (bad := unstorable(where, value, code="invalid_contact")) is not None:
            self.errors.append(bad)
            self.ok = False
            return None
        if len(value) > VALUE_MAX:
            self.fail(
                where,
                f"{where} is {len(value)} characters; at most {VALUE_MAX}.",
                "field_too_long",
            )
            return None
        return value

    def obj(self, value: object, path: str, allowed: tuple[str, ...]) -> dict[str, str]:
        if not isinstance(value, dict):
            self.fail(path, f"{path} must be an object; got {describe_type(value)}.")
            return {}
        self.keys(value, path, allowed)
        out = {}
        for key in allowed:
            if key in value and (text := self.text(value[key], f"{path}.{key}")) is not None:
                out[key] = text
        return out

    def items(
        self, value: object, path: str, allowed: tuple[str, ...], needed: str | None
    ) -> list[dict[str, str]]:
        if not isinstance(value, list):
            self.fail(path, f"{path} must be an array; got {describe_type(value)}.")
            return []
        if len(value) > MAX_ITEMS:
            self.fail(path, f"{path} has {len(value)} items; at most {MAX_ITEMS}.")
            return []
        out = []
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            if not isinstance(item, dict):
                self.fail(where, f"{where} must be an object; got {describe_type(item)}.")
                continue
            if needed is not None and needed not in item:
                self.fail(f"{where}.{needed}", f"{where}.{needed} is missing.")
            checked = self.obj(item, where, allowed)
            kind = checked.get("type")
            if kind is not None and kind not in CONTACT_TYPES:
                self.fail(
                    f"{where}.type",
                    f"{where}.type {quote_input(kind)} is not one of {', '.join(CONTACT_TYPES)}.",
                )
            out.append(checked)
        return out

    def birthday(self, value: object, where: str) -> str | None:
        if isinstance(value, str) and len(value) == 10:
            try:
                date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return value
        shown = quote_input(value) if isinstance(value, str) else describe_type(value)
        self.fail(
            where,
            f"{where} must be a date written YYYY-MM-DD, e.g. 1990-08-18; got {shown}.",
            "invalid_birthday",
        )
        return None


def _filled(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
