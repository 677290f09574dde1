"""The SPEC §8 kinds beside Send Message and templates, declared once and used everywhere.

A kind is a `Kind`: its name (the batch `kind`, and `messages.type`), the endpoint that sends
it, the pure parser that turns a decoded body into a `SendRequest` (raising `ValidationFailed`
listing every problem), and, for kinds that point at another message, an async resolver that
checks the pointed-at message in the caller's account. `api/kinds.py` makes an endpoint of
each, `api/batch_kinds.py` a batch kind, and `cloud/payloads.py` builds Meta's payload from the
stored `MessageContent` (whose `data` holds the kind's own fields). See
/work/helpers/NOTES_kinds.md (and the README) for the conventions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wagate.domain.kinds.contacts import parse_contacts
from wagate.domain.kinds.interactive import parse_cta, parse_list, parse_location_request
from wagate.domain.kinds.place import parse_location
from wagate.domain.kinds.reaction import (
    Target,
    TargetLookups,
    parse_reaction,
    parse_read,
    resolve_reaction,
    resolve_read,
)
from wagate.domain.models import MessageType, SendRequest

Parser = Callable[..., SendRequest]  # parse(fields, *, form: bool) -> SendRequest
Resolver = Callable[[SendRequest, TargetLookups], Awaitable[SendRequest]]


@dataclass(frozen=True, slots=True)
class Kind:
    type: MessageType  # its value is the batch `kind` and `messages.type`
    path: str  # the endpoint, under /v1
    summary: str  # the endpoint's OpenAPI summary
    body_schema: str  # the endpoint's body in api/schemas.py (and api/kind_schemas.py)
    parse: Parser
    resolve: Resolver | None = None  # for kinds that point at another message

    @property
    def name(self) -> str:
        return self.type.value


SEND_KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            MessageType.LIST,
            "/messages/list",
            "Send a list menu (up to 10 rows behind one button)",
            "SendListBody",
            parse_list,
        ),
        Kind(
            MessageType.CTA,
            "/messages/cta",
            "Send a message with a link button (call to action)",
            "SendCtaBody",
            parse_cta,
        ),
        Kind(
            MessageType.LOCATION,
            "/messages/location",
            "Send a location pin",
            "SendLocationBody",
            parse_location,
        ),
        Kind(
            MessageType.LOCATION_REQUEST,
            "/messages/location-request",
            "Ask the customer to share their location",
            "SendLocationRequestBody",
            parse_location_request,
        ),
        Kind(
            MessageType.CONTACTS,
            "/messages/contacts",
            "Send 1 to 5 contact cards",
            "SendContactsBody",
            parse_contacts,
        ),
        Kind(
            MessageType.REACTION,
            "/messages/reaction",
            "React to a message with an emoji (or remove the reaction)",
            "SendReactionBody",
            parse_reaction,
            resolve_reaction,
        ),
    )
}
"""The kinds sent with `POST /v1<path>` (media is added by api/media.py the same way)."""


__all__ = [
    "SEND_KINDS",
    "Kind",
    "Target",
    "TargetLookups",
    "parse_contacts",
    "parse_cta",
    "parse_list",
    "parse_location",
    "parse_location_request",
    "parse_reaction",
    "parse_read",
    "resolve_reaction",
    "resolve_read",
]
