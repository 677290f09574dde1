"""Field readers shared by the SPEC §8 kinds: each appends `FieldError`s to a list and returns
the accepted value (or None), so one request reports every problem, as Send Message does.

Form bodies (`form=True`) carry every value as a string: arrays and objects are JSON strings,
numbers are decimal strings, yes/no fields are true/false/1/0/on/off/yes/no.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from wagate.domain.errors import FieldError
from wagate.domain.messages import (
    CHANNEL_MAX,
    IDEMPOTENCY_KEY_MAX,
    REPLY_TO_MAX,
    _metadata,
    _optional_id,
    _unstorable,
    _wrong_type,
    read_bool,
)
from wagate.domain.models import MessageContent, SendRequest
from wagate.domain.phone import describe_type, normalize_phone, quote_input

URL_MAX = 2000
PLACE_TEXT_MAX = 1000  # a location's name or address (Meta documents no limit)

__all__ = [
    "Extras",
    "describe_type",
    "quote_input",
    "read_bool",
    "read_extras",
    "read_json",
    "read_number",
    "read_optional_text",
    "read_required_text",
    "read_url",
    "unstorable",
    "wrong_type",
]

unstorable = _unstorable
wrong_type = _wrong_type


class Extras:
    """phone and the extras of SPEC §1 (reply_to, metadata, channel, idempotency_key)."""

    def __init__(self, fields: Mapping[str, Any], form: bool, errors: list[FieldError]) -> None:
        self.phone, phone_errors = normalize_phone(fields.get("phone"), form=form)
        # The phone's problems come first, as in Send Message.
        errors[:0] = phone_errors
        self.reply_to = _optional_id(fields.get("reply_to"), "reply_to", REPLY_TO_MAX, errors)
        self.metadata = _metadata(fields.get("metadata"), form, errors)
        self.channel = _optional_id(fields.get("channel"), "channel", CHANNEL_MAX, errors)
        self.idempotency_key = _optional_id(
            fields.get("idempotency_key"), "idempotency_key", IDEMPOTENCY_KEY_MAX, errors
        )

    def request(self, content: MessageContent) -> SendRequest:
        assert self.phone is not None  # only called when no field was refused
        return SendRequest(
            phone=self.phone,
            content=content,
            reply_to=self.reply_to,
            metadata=self.metadata,
            channel=self.channel,
            idempotency_key=self.idempotency_key,
        )


def read_extras(fields: Mapping[str, Any], form: bool, errors: list[FieldError]) -> Extras:
    return Extras(fields, form, errors)


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def read_required_text(
    value: object,
    name: str,
    limit: int,
    errors: list[FieldError],
    *,
    too_long: str,
    empty: str = "missing_field",
    missing: str = "missing_field",
    what: str = "the text",
    why: str = "",
) -> str | None:
    """A required text field (a message body, a button's text): not blank, at most `limit`."""
    if value is None:
        errors.append(FieldError(name, missing, f"{name} is required: {what}."))
        return None
    if not isinstance(value, str):
        errors.append(_wrong_type(name, value, "a string"))
        return None
    if not value.strip():
        state = "empty" if value == "" else "only whitespace"
        errors.append(FieldError(name, empty, f"{name} is {state}; write {what}."))
        return None
    if (bad := _unstorable(name, value)) is not None:
        errors.append(bad)
        return None
    if len(value) > limit:
        errors.append(
            FieldError(
                name,
                too_long,
                f"{name} is {len(value)} characters; WhatsApp allows at most {limit}{why}.",
            )
        )
        return None
    return value


def read_optional_text(
    value: object, name: str, limit: int, errors: list[FieldError], *, too_long: str
) -> str | None:
    """An optional text field: blank means absent; otherwise at most `limit` characters."""
    if not _given(value):
        return None
    return read_required_text(value, name, limit, errors, too_long=too_long)


def read_url(value: object, name: str, errors: list[FieldError]) -> str | None:
    """A required https URL with a host (what WhatsApp opens when the button is tapped)."""
    if value is None or value == "":
        errors.append(FieldError(name, "missing_field", f"{name} is required: an https:// link."))
        return None
    if not isinstance(value, str):
        errors.append(_wrong_type(name, value, "a string"))
        return None
    if (bad := _unstorable(name, value, code="invalid_url")) is not None:
        errors.append(bad)
        return None
    if len(value) > URL_MAX:
        errors.append(
            FieldError(
                name, "url_too_long", f"{name} is {len(value)} characters; at most {URL_MAX}."
            )
        )
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() != "https" or not host or value != value.strip():
        errors.append(
            FieldError(
                name,
                "invalid_url",
                f"{name} {quote_input(value)} is not an https:// link with a host; WhatsApp "
                "opens only https links, e.g. https://example.com/orders/4521.",
            )
        )
        return None
    if any(c.isspace() for c in value):
        errors.append(
            FieldError(name, "invalid_url", f"{name} contains spaces; encode them as %20.")
        )
        return None
    return value


def read_number(
    value: object,
    name: str,
    low: float,
    high: float,
    form: bool,
    errors: list[FieldError],
    *,
    code: str,
) -> float | None:
    """A required number in [low, high] (a form sends it as a decimal string)."""
    if value is None or (form and value == ""):
        errors.append(FieldError(name, "missing_field", f"{name} is required: a number."))
        return None
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip()) if value.strip() else None
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        shown = quote_input(value) if isinstance(value, str) else describe_type(value)
        errors.append(
            FieldError(
                name, code, f"{name} must be a number from {low:g} to {high:g}; got {shown}."
            )
        )
        return None
    return number


def read_json(
    value: object, name: str, form: bool, errors: list[FieldError], *, code: str, example: str
) -> object:
    """A form's JSON string decoded (a JSON body's value as it is); None after an error."""
    if form and isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            errors.append(
                FieldError(
                    name,
                    code,
                    f"{name} is not valid JSON; in a form body send it as JSON, e.g. {example}.",
                )
            )
            return None
    return value
