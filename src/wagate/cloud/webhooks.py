"""Check and read the webhooks Meta POSTs for a WhatsApp Business Account.

* `verify_signature` checks `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body,
  keyed with the app secret>`) in constant time; `sign` makes that header (for the sandbox and
  tests).
* `parse_webhook` turns a decoded body into facts: the customers' messages (`InboundMessage`,
  each of which opens the service window) and the statuses of our messages (`StatusUpdate`).

Meta batches: one POST may hold many entries, each with many changes, each with many messages
or statuses (up to 1,000 updates). One odd item must not cost the others, so the parser never
raises for content: an item it cannot use (no id, a bad timestamp, a status it does not track
such as "deleted", a change `field` other than "messages", ...) is skipped and counted in
`WebhookBatch.ignored`, with a short reason in `ignored_reasons`. Only a body that is not a
WhatsApp Business Account webhook at all (not an object, or `object` is not
"whatsapp_business_account") raises `WebhookParseError`.

Text is kept as sent except for NUL characters, which become U+FFFD (no database text column
takes them, and one must not cost the rest of a batch); an identifier longer than
`MAX_ID_LENGTH` is no identifier, and a kind, button id or profile name is cut to what is kept.

Identifiers: a customer is identified by `from` (their WhatsApp id, digits) and, since Meta
introduced usernames, by a business-scoped user id (`user_id` in `contacts[]`, `from_user_id`
on the message). When a message carries no phone-number id at all (a username user who hides
their number), `wa_id` falls back to the contact's `wa_id` if any, else to the business-scoped
user id, so that the window and conversation are still keyed on a stable id; `user_id` always
holds the business-scoped id when Meta sent one. Likewise a status without `recipient_id`
reports `recipient_user_id` as its recipient.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wagate.domain.inbound_kinds import inbound_content, inbound_kind
from wagate.domain.models import InboundMessage, MetaError, Status, StatusUpdate
from wagate.ids import new_id

WHATSAPP_OBJECT = "whatsapp_business_account"
SIGNATURE_HEADER = "X-Hub-Signature-256"
TRACKED_STATUSES = frozenset({Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED})
_TRACKED_VALUES = frozenset(s.value for s in TRACKED_STATUSES)

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_MAX_REASONS = 100
MAX_ID_LENGTH = 255  # wamids and ids are kept in columns this wide
# What is kept of the free-form facts of a message (the widths of their columns).
MAX_KIND, MAX_BUTTON_ID, MAX_PROFILE_NAME = 32, 256, 200


class WebhookParseError(ValueError):
    """The body is not a WhatsApp Business Account webhook."""


# --------------------------------------------------------------------------- signatures


def sign(app_secret: str, raw_body: bytes) -> str:
    """The `X-Hub-Signature-256` header value Meta would send for this body."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """Whether `header` is a valid `sha256=` signature of exactly these bytes.

    Missing or malformed headers (another algorithm such as `sha1=`, bad hex, wrong length)
    and an empty app secret are all simply False.
    """
    if not app_secret or not header:
        return False
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(1).lower())


# --------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class WebhookBatch:
    """Everything usable in one webhook POST, in the order Meta listed it."""

    inbound: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    phone_number_ids: set[str] = field(default_factory=set)  # business numbers it concerns
    ignored: int = 0  # entries, changes, messages and statuses skipped
    ignored_reasons: list[str] = field(default_factory=list)  # the first 100, for logs

    def ignore(self, where: str, why: str) -> None:
        self.ignored += 1
        if len(self.ignored_reasons) < _MAX_REASONS:
            self.ignored_reasons.append(f"{where}: {why}")

    @property
    def empty(self) -> bool:
        return not self.inbound and not self.statuses


def parse_webhook(payload: Any) -> WebhookBatch:
    """Read a decoded webhook body; see the module docstring for what is skipped."""
    if not isinstance(payload, Mapping):
        raise WebhookParseError(f"a webhook body is a JSON object, not {type(payload).__name__}")
    if payload.get("object") != WHATSAPP_OBJECT:
        raise WebhookParseError(
            f"object is {payload.get('object')!r}, expected {WHATSAPP_OBJECT!r}"
        )
    batch = WebhookBatch()
    entries = payload.get("entry")
    if not isinstance(entries, list):
        batch.ignore("entry", "not a list")
        return batch
    for e, entry in enumerate(entries):
        where = f"entry[{e}]"
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            batch.ignore(where, "no changes list")
            continue
        for c, change in enumerate(changes):
            _parse_change(batch, change, f"{where}.changes[{c}]")
    return batch


def _parse_change(batch: WebhookBatch, change: Any, where: str) -> None:
    if not isinstance(change, Mapping):
        batch.ignore(where, "not an object")
        return
    value = change.get("value")
    if not isinstance(value, Mapping):
        batch.ignore(where, "no value object")
        return
    metadata = value.get("metadata")
    phone_number_id = (
        _id(metadata.get("phone_number_id")) if isinstance(metadata, Mapping) else None
    )
    if phone_number_id is not None:
        batch.phone_number_ids.add(phone_number_id)
    if change.get("field") != "messages":
        batch.ignore(where, f"field {change.get('field')!r} is not handled")
        return
    if phone_number_id is None:
        batch.ignore(where, "no metadata.phone_number_id")
        return

    known = False
    messages = value.get("messages")
    if isinstance(messages, list):
        known = True
        contacts = _Contacts(value.get("contacts"))
        for i, item in enumerate(messages):
            _parse_message(batch, item, phone_number_id, contacts, f"{where}.messages[{i}]")
    statuses = value.get("statuses")
    if isinstance(statuses, list):
        known = True
        for i, item in enumerate(statuses):
            _parse_status(batch, item, phone_number_id, f"{where}.statuses[{i}]")
    if not known:
        batch.ignore(where, "no messages or statuses")


class _Contacts:
    """`value.contacts[]`: the senders' profiles, matched to messages by wa_id or user_id."""

    def __init__(self, contacts: Any) -> None:
        self.items: list[Mapping[str, Any]] = [
            c for c in (contacts if isinstance(contacts, list) else []) if isinstance(c, Mapping)
        ]

    def find(self, wa_id: str | None, user_id: str | None) -> Mapping[str, Any] | None:
        for key, wanted in (("wa_id", wa_id), ("user_id", user_id)):
            if wanted is not None:
                for contact in self.items:
                    if _id(contact.get(key)) == wanted:
                        return contact
        return self.items[0] if len(self.items) == 1 else None


def _parse_message(
    batch: WebhookBatch, item: Any, phone_number_id: str, contacts: _Contacts, where: str
) -> None:
    if not isinstance(item, Mapping):
        batch.ignore(where, "not an object")
        return
    wamid = _id(item.get("id"))
    if wamid is None:
        batch.ignore(where, "no message id")
        return
    timestamp = _epoch(item.get("timestamp"))
    if timestamp is None:
        batch.ignore(where, f"bad timestamp {item.get('timestamp')!r}")
        return
    sender = _wa_id(item.get("from"))
    from_user_id = _id(item.get("from_user_id"))
    contact = contacts.find(sender, from_user_id)
    user_id = from_user_id or (_id(contact.get("user_id")) if contact else None)
    wa_id = sender or (_wa_id(contact.get("wa_id")) if contact else None) or user_id
    if wa_id is None:
        batch.ignore(where, "no sender (from, from_user_id or contacts)")
        return
    profile = contact.get("profile") if contact else None
    profile_name = _text(profile.get("name")) if isinstance(profile, Mapping) else None

    msg_type = _text(item.get("type")) or "unknown"
    extract = _EXTRACTORS.get(msg_type, _nothing)
    facts = extract(item, msg_type)
    context = item.get("context")
    context_wamid = _id(context.get("id")) if isinstance(context, Mapping) else None

    batch.inbound.append(
        InboundMessage(
            phone_number_id=phone_number_id,
            wa_id=wa_id,
            wamid=wamid,
            timestamp=timestamp,
            kind=inbound_kind(item),
            text=facts.text,
            button_id=facts.button_id[:MAX_BUTTON_ID] if facts.button_id else None,
            button_payload=facts.button_payload,
            context_wamid=context_wamid or facts.context_wamid,
            profile_name=profile_name[:MAX_PROFILE_NAME] if profile_name else None,
            user_id=user_id,
            content=(content := inbound_content(item)),
            media=_media_object(item, msg_type, content),
        )
    )


def _parse_status(batch: WebhookBatch, item: Any, phone_number_id: str, where: str) -> None:
    if not isinstance(item, Mapping):
        batch.ignore(where, "not an object")
        return
    wamid = _id(item.get("id"))
    if wamid is None:
        batch.ignore(where, "no message id")
        return
    raw_status = item.get("status")
    if not (isinstance(raw_status, str) and raw_status in _TRACKED_VALUES):
        batch.ignore(where, f"status {raw_status!r} is not tracked")
        return
    status = Status(raw_status)
    timestamp = _epoch(item.get("timestamp"))
    if timestamp is None:
        batch.ignore(where, f"bad timestamp {item.get('timestamp')!r}")
        return
    errors = item.get("errors")
    batch.statuses.append(
        StatusUpdate(
            phone_number_id=phone_number_id,
            wamid=wamid,
            status=status,
            timestamp=timestamp,
            recipient_id=_wa_id(item.get("recipient_id")) or _id(item.get("recipient_user_id")),
            errors=tuple(
                _meta_error(e)
                for e in (errors if isinstance(errors, list) else [])
                if isinstance(e, Mapping)
            ),
        )
    )


def _meta_error(error: Mapping[str, Any]) -> MetaError:
    message = _text(error.get("message"))
    error_data = error.get("error_data")
    details = _text(error_data.get("details")) if isinstance(error_data, Mapping) else None
    return MetaError(
        code=_int(error.get("code")),
        title=_text(error.get("title")) or message or "",
        details=details or message or "",
    )


# --------------------------------------------------------------------------- message types


@dataclass(frozen=True, slots=True)
class _Facts:
    kind: str | None = None  # None: Meta's `type`
    text: str | None = None
    button_id: str | None = None
    button_payload: str | None = None
    context_wamid: str | None = None  # used when the message has no `context.id`


def _sub(item: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = item.get(key)
    return value if isinstance(value, Mapping) else {}


def _nothing(item: Mapping[str, Any], msg_type: str) -> _Facts:
    return _Facts()


def _text_message(item: Mapping[str, Any], msg_type: str) -> _Facts:
    return _Facts(text=_text(_sub(item, "text").get("body")))


def _interactive(item: Mapping[str, Any], msg_type: str) -> _Facts:
    interactive = _sub(item, "interactive")
    kind = _text(interactive.get("type")) or "interactive"
    reply = _sub(interactive, kind)  # button_reply, list_reply, nfm_reply, ...
    return _Facts(
        kind=kind,
        text=_text(reply.get("title")) or _text(reply.get("body")),
        button_id=_text(reply.get("id")),
    )


def _button(item: Mapping[str, Any], msg_type: str) -> _Facts:
    button = _sub(item, "button")
    return _Facts(text=_text(button.get("text")), button_payload=_text(button.get("payload")))


def _media(item: Mapping[str, Any], msg_type: str) -> _Facts:
    return _Facts(text=_text(_sub(item, msg_type).get("caption")))


MEDIA_MESSAGE_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
_MEDIA_KEYS = {"id": 128, "mime_type": 128, "sha256": 128, "filename": 255, "caption": 4096}


def _media_object(
    item: Mapping[str, Any], msg_type: str, content: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A file's media object, its strings bounded, with the `med_…` id it will be kept under
    (also written into the stored `content`'s media object as "wagate_media_id"); None when
    the message carries no file Meta lets us download."""
    if msg_type not in MEDIA_MESSAGE_TYPES:
        return None
    given = _sub(item, msg_type)
    media: dict[str, Any] = {}
    for key, limit in _MEDIA_KEYS.items():
        value = _text(given.get(key))
        if value:
            media[key] = value[:limit]
    if "id" not in media:
        return None
    if given.get("voice") is True:
        media["voice"] = True
    media["wagate_media_id"] = new_id("med")
    stored = content.get(msg_type) if content is not None else None
    if isinstance(stored, dict):
        stored["wagate_media_id"] = media["wagate_media_id"]
    return media


def _location(item: Mapping[str, Any], msg_type: str) -> _Facts:
    location = _sub(item, "location")
    text = _text(location.get("name")) or _text(location.get("address"))
    lat, lng = location.get("latitude"), location.get("longitude")
    if text is None and _is_number(lat) and _is_number(lng):
        text = f"{lat},{lng}"
    return _Facts(text=text)


def _contacts(item: Mapping[str, Any], msg_type: str) -> _Facts:
    shared = item.get("contacts")
    names = [
        name
        for c in (shared if isinstance(shared, list) else [])
        if isinstance(c, Mapping) and (name := _text(_sub(c, "name").get("formatted_name")))
    ]
    return _Facts(text=", ".join(names) or None)


def _reaction(item: Mapping[str, Any], msg_type: str) -> _Facts:
    reaction = _sub(item, "reaction")
    # An empty emoji means the customer removed their reaction.
    return _Facts(text=_text(reaction.get("emoji")), context_wamid=_id(reaction.get("message_id")))


def _order(item: Mapping[str, Any], msg_type: str) -> _Facts:
    return _Facts(text=_text(_sub(item, "order").get("text")))


def _system(item: Mapping[str, Any], msg_type: str) -> _Facts:
    return _Facts(text=_text(_sub(item, "system").get("body")))


_EXTRACTORS: dict[str, Callable[[Mapping[str, Any], str], _Facts]] = {
    "text": _text_message,
    "interactive": _interactive,
    "button": _button,
    "image": _media,
    "video": _media,
    "audio": _media,
    "document": _media,
    "sticker": _media,
    "location": _location,
    "contacts": _contacts,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
}


# --------------------------------------------------------------------------- small readers


def _text(value: Any) -> str | None:
    """A non-empty string (its NULs replaced), else None."""
    if not isinstance(value, str) or value == "":
        return None
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _id(value: Any) -> str | None:
    """An identifier: a non-blank string of at most `MAX_ID_LENGTH` characters without NULs
    (or an integer, which some senders emit)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        found = str(value)
    elif isinstance(value, str) and value.strip():
        found = value.strip()
    else:
        return None
    return found if len(found) <= MAX_ID_LENGTH and "\x00" not in found else None


def _wa_id(value: Any) -> str | None:
    """A WhatsApp id: digits, without the `+` some senders add."""
    found = _id(value)
    return (found.lstrip("+") or None) if found else None


def _int(value: Any) -> int | None:
    """An error code: an integer (or a string of one) that fits a 64-bit column."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _epoch(value: Any) -> datetime | None:
    """Meta's `timestamp` (a string of epoch seconds) as an aware UTC datetime."""
    seconds: float
    if isinstance(value, str) and re.fullmatch(r"\d{1,12}", value.strip()):
        seconds = int(value.strip())
    elif _is_number(value):
        seconds = value
    else:
        return None
    if seconds < 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
