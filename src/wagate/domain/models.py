"""Value types shared by the domain, the store, the Cloud API client and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class MessageType(StrEnum):
    """`messages.type`, and the `type` of a send's 202 answer. Besides Send Message's two and
    templates, one per SPEC §8 kind, named as the batch `kind` (docs: NOTES in domain/kinds)."""

    TEXT = "text"
    INTERACTIVE = "interactive"  # reply buttons (Send Message with header/footer/buttons)
    TEMPLATE = "template"
    MEDIA = "media"
    LIST = "list"
    CTA = "cta"
    LOCATION = "location"
    LOCATION_REQUEST = "location_request"
    CONTACTS = "contacts"
    REACTION = "reaction"
    READ = "read"  # a read receipt (and typing indicator): POST /v1/conversations/{phone}/read

    @property
    def free_form(self) -> bool:
        """Whether the 24-hour window rule applies (every kind but templates, SPEC §8)."""
        return self is not MessageType.TEMPLATE


class Status(StrEnum):
    QUEUED = "queued"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Button:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class TemplateContent:
    """What a template message hands to Meta: the template's name, the language it is sent in,
    and Meta's `components` list with the parameters filled in (empty when it takes none)."""

    name: str
    language: str
    components: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "components": [dict(c) for c in self.components],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateContent:
        return cls(
            name=data["name"],
            language=data["language"],
            components=tuple(data.get("components") or ()),
        )


@dataclass(frozen=True, slots=True)
class MessageContent:
    """What the business asked to send, validated. `type` is derived, never given.

    For a template, `template` is what Meta needs, and `body`, `header`, `footer` and `buttons`
    are what the customer sees: the template's text with the parameters filled in, and its
    buttons (a quick reply's id is its payload, a URL button's the URL, a call button's the
    number).
    """

    type: MessageType
    body: str
    header: str | None = None
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    preview_url: bool = False
    template: TemplateContent | None = None
    # The kind's own fields, in wagate's shape (JSON): what `cloud/payloads.py` turns into
    # Meta's sub-object for the SPEC §8 kinds (list sections, a CTA's url, a location, ...).
    data: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value, "body": self.body}
        if self.type is MessageType.TEXT:
            out["preview_url"] = self.preview_url
        else:
            out["header"] = self.header
            out["footer"] = self.footer
            out["buttons"] = [{"id": b.id, "title": b.title} for b in self.buttons]
        if self.template is not None:
            out["template"] = self.template.as_dict()
        if self.data is not None:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageContent:
        return cls(
            type=MessageType(data["type"]),
            body=data["body"],
            header=data.get("header"),
            footer=data.get("footer"),
            buttons=tuple(Button(b["id"], b["title"]) for b in data.get("buttons") or ()),
            preview_url=bool(data.get("preview_url", False)),
            template=TemplateContent.from_dict(data["template"]) if data.get("template") else None,
            data=data.get("data"),
        )


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A validated `POST /v1/messages` body (the token is handled before this)."""

    phone: str  # E.164: "+" and digits
    content: MessageContent
    reply_to: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class MetaError:
    """An error as Meta reported it: numeric code, title, details."""

    code: int | None
    title: str
    details: str = ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message to the business, parsed from a Cloud API webhook."""

    phone_number_id: str  # the business number it was sent to
    wa_id: str  # the customer's WhatsApp id (digits, no "+")
    wamid: str
    timestamp: datetime  # when the customer sent it (UTC, from Meta's `timestamp`)
    kind: str  # one of domain/inbound_kinds.INBOUND_KINDS
    text: str | None = None  # body text, button title, caption, …
    button_id: str | None = None  # interactive button_reply id (or list_reply id)
    button_payload: str | None = None  # template quick-reply `button.payload`
    context_wamid: str | None = None  # the business message it replies to
    profile_name: str | None = None
    # Meta's business-scoped user id (BSUID), when given. A sender who hides their number
    # (a username user) has no wa_id; wa_id then holds this value instead.
    user_id: str | None = None
    # Meta's message object as received, without from/id/timestamp (domain/inbound_kinds.py).
    content: dict[str, Any] | None = None
    # A file (image, video, audio, voice, document, sticker): Meta's media object (id,
    # mime_type, sha256, filename, caption, voice) plus "wagate_media_id", the `med_…` id it
    # is kept under once downloaded (store/media.py).
    media: dict[str, Any] | None = None

    @property
    def phone(self) -> str:
        return "+" + self.wa_id


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status report for one of our messages, parsed from a Cloud API webhook."""

    phone_number_id: str
    wamid: str
    status: Status  # sent, delivered, read or failed
    timestamp: datetime
    recipient_id: str | None = None
    errors: tuple[MetaError, ...] = ()
