"""Every message kind as the dashboard draws it, read from Meta's own shapes.

Outbound messages are read from the Cloud API send body (`Message` in Meta's description) that
`wagate.cloud.payloads.build_message_payload` makes for a stored message; inbound ones from
`inbound_messages.content`, Meta's inbound webhook message object without `from`, `id` and
`timestamp`. Either becomes one small value per kind (`Text`, `Buttons`, `ListMenu`, `Cta`,
`LocationRequest`, `Media`, `Location`, `Contacts`, `Reaction`, `Tapped`, `Order`, `System`,
`Unsupported`, `Other`) that `_kinds.html` draws with one macro each.

Media sub-objects may carry `"wagate_media_id": "med_…"`, our own copy of the file: the page then
shows it from `/media/{id}` on the dashboard (same origin, so the CSP's `default-src 'self'`
allows it). A file only known by a link elsewhere or by Meta's media id is named, never loaded:
the pages load nothing from other sites. `MediaFile` is what the store knows about one of our
files (its type, size and name), looked up for a whole thread at once.

Nothing here trusts the shapes: a field of the wrong type is treated as absent, and a kind the
dashboard does not know is drawn as `Other` with its type named.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
MEDIA_ROUTE = "/media/"


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One of the account's stored files, as far as a page needs it."""

    id: str
    mime_type: str | None = None
    size: int | None = None
    filename: str | None = None
    state: str = "ready"  # ready, pending (an inbound file being downloaded) or failed
    error: str | None = None  # why a download failed


MediaLookup = Mapping[str, MediaFile]


# --------------------------------------------------------------------------- the kinds


@dataclass(frozen=True, slots=True)
class Media:
    """An image, video, audio (or voice note), document or sticker."""

    media_type: str
    url: str | None = None  # our own copy, on this server
    link: str | None = None  # the sender's link elsewhere: shown, never loaded
    meta_id: str | None = None  # only Meta's media id is known
    caption: str | None = None
    filename: str | None = None
    size: int | None = None
    mime_type: str | None = None
    voice: bool = False
    inbound: bool = False  # the customer's: without our copy, it is still being downloaded
    # Of our copy: ready, pending (being downloaded), failed (`error` says why) or missing.
    state: str = "ready"
    error: str | None = None
    kind: str = "media"

    @property
    def extension(self) -> str:
        """What a document chip shows in its icon: PDF, DOCX, … (from the name, else the type)."""
        name = (self.filename or "").strip(".")
        if "." in name:
            ext = name.rsplit(".", 1)[1]
            if 0 < len(ext) <= 5 and ext.isalnum():
                return ext.upper()
        if self.mime_type and "/" in self.mime_type:
            sub = self.mime_type.split("/", 1)[1].split(";", 1)[0]
            return {"pdf": "PDF", "plain": "TXT", "msword": "DOC"}.get(sub, sub[:4].upper())
        return "FILE"

    @property
    def size_text(self) -> str:
        return human_size(self.size)

    @property
    def label(self) -> str:
        if self.voice:
            return "Voice message"
        return {"image": "Photo", "sticker": "Sticker"}.get(
            self.media_type, self.media_type.capitalize()
        )


@dataclass(frozen=True, slots=True)
class Header:
    text: str | None = None
    media: Media | None = None


@dataclass(frozen=True, slots=True)
class Text:
    body: str
    kind: str = "text"


@dataclass(frozen=True, slots=True)
class Buttons:
    """Reply buttons (an interactive `button` message)."""

    body: str
    header: Header | None = None
    footer: str | None = None
    buttons: tuple[tuple[str, str], ...] = ()  # (id, title)
    kind: str = "buttons"


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    title: str | None
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class ListMenu:
    body: str
    button: str
    sections: tuple[Section, ...]
    header: Header | None = None
    footer: str | None = None
    kind: str = "list"


@dataclass(frozen=True, slots=True)
class Cta:
    body: str
    display_text: str
    url: str | None  # None when it is not an http(s) link (then it is not made a link)
    shown_url: str
    header: Header | None = None
    footer: str | None = None
    kind: str = "cta"


@dataclass(frozen=True, slots=True)
class LocationRequest:
    body: str
    kind: str = "location_request"


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float | None
    longitude: float | None
    name: str | None = None
    address: str | None = None
    url: str | None = None  # the place's own site (inbound business locations)
    kind: str = "location"

    @property
    def coordinates(self) -> str:
        if self.latitude is None or self.longitude is None:
            return "no coordinates"
        ns = "N" if self.latitude >= 0 else "S"
        ew = "E" if self.longitude >= 0 else "W"
        return f"{abs(self.latitude):.5f}° {ns}, {abs(self.longitude):.5f}° {ew}"

    @property
    def map_link(self) -> str | None:
        """A link out to OpenStreetMap (followed only when clicked; the card loads no tiles)."""
        if self.latitude is None or self.longitude is None:
            return None
        lat, lon = f"{self.latitude:.6f}", f"{self.longitude:.6f}"
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    organization: str | None = None
    phones: tuple[tuple[str, str | None, str | None], ...] = ()  # (shown, tel: link, type)
    emails: tuple[tuple[str, str | None], ...] = ()  # (address, type)
    urls: tuple[tuple[str, str | None], ...] = ()  # (shown, http(s) link or None)
    addresses: tuple[str, ...] = ()
    birthday: str | None = None

    @property
    def initial(self) -> str:
        for char in self.name:
            if char.isalnum():
                return char.upper()
        return "?"


@dataclass(frozen=True, slots=True)
class Contacts:
    contacts: tuple[Contact, ...]
    kind: str = "contacts"


@dataclass(frozen=True, slots=True)
class Reaction:
    message_id: str
    emoji: str  # "" takes a reaction back
    kind: str = "reaction"


@dataclass(frozen=True, slots=True)
class Tapped:
    """The customer tapped a reply button, a list row or a template's quick reply."""

    source: str  # button_reply, list_reply or button
    title: str
    id: str | None = None
    description: str | None = None
    kind: str = "tapped"

    @property
    def note(self) -> str:
        return {
            "list_reply": "Chose from the list",
            "button": "Tapped a quick reply",
        }.get(self.source, "Tapped a button")


@dataclass(frozen=True, slots=True)
class OrderItem:
    product: str
    quantity: int
    price: str
    currency: str
    total: str


@dataclass(frozen=True, slots=True)
class Order:
    catalog_id: str | None
    items: tuple[OrderItem, ...]
    totals: tuple[str, ...]  # "55.00 USD", one per currency
    text: str | None = None
    kind: str = "order"


@dataclass(frozen=True, slots=True)
class System:
    body: str
    system_type: str | None = None
    new_wa_id: str | None = None
    kind: str = "system"


@dataclass(frozen=True, slots=True)
class Unsupported:
    problems: tuple[str, ...]
    kind: str = "unsupported"


@dataclass(frozen=True, slots=True)
class Other:
    """A kind the dashboard cannot draw (yet): named, with whatever text it carries."""

    type: str
    body: str | None = None
    kind: str = "other"


Content = (
    Text
    | Buttons
    | ListMenu
    | Cta
    | LocationRequest
    | Media
    | Location
    | Contacts
    | Reaction
    | Tapped
    | Order
    | System
    | Unsupported
    | Other
)


@dataclass(frozen=True, slots=True)
class Reacted:
    """A reaction shown on the bubble it is about."""

    emoji: str
    mine: bool  # by whoever is looking at the page


# --------------------------------------------------------------------------- reading Meta's shapes


def outbound_content(payload: Mapping[str, Any], media: MediaLookup | None = None) -> Content:
    """A send body (`Message`) as the customer sees it on their phone."""
    files = media or {}
    kind = _str(payload.get("type")) or "text"
    part = _dict(payload.get(kind))
    if kind == "text":
        return Text(_str(part.get("body")) or "")
    if kind == "interactive":
        return _interactive(part, files)
    if kind in MEDIA_KINDS:
        return _media(kind, part, files)
    if kind == "location":
        return _location(part)
    if kind == "contacts":
        return _contacts(payload.get("contacts"))
    if kind == "reaction":
        return Reaction(_str(part.get("message_id")) or "", _str(part.get("emoji")) or "")
    if kind == "template":
        return Other("template", _str(part.get("name")))
    return Other(kind)


def inbound_content(content: Mapping[str, Any], media: MediaLookup | None = None) -> Content:
    """A customer's message (`inbound_messages.content`) as the business sees it."""
    files = media or {}
    kind = _str(content.get("type")) or "unsupported"
    part = _dict(content.get(kind))
    if kind == "text":
        return Text(_str(part.get("body")) or "")
    if kind == "interactive":
        reply_type = _str(part.get("type")) or ""
        reply = _dict(part.get(reply_type))
        if reply_type in ("button_reply", "list_reply"):
            return Tapped(
                reply_type,
                _str(reply.get("title")) or _str(reply.get("id")) or "",
                id=_str(reply.get("id")),
                description=_str(reply.get("description")),
            )
        # nfm_reply (a Flow's answer) and anything newer: name it.
        return Other(f"interactive {reply_type}".strip(), _str(_dict(part.get("body")).get("text")))
    if kind == "button":
        return Tapped(
            "button",
            _str(part.get("text")) or _str(part.get("payload")) or "",
            id=_str(part.get("payload")),
        )
    if kind == "voice":  # what some senders call a voice note: audio with voice set
        return _media("audio", part, files, voice=True, inbound=True)
    if kind in MEDIA_KINDS:
        voice = kind == "audio" and part.get("voice") is True
        return _media(kind, part, files, voice=voice, inbound=True)
    if kind == "location":
        return _location(part)
    if kind == "contacts":
        return _contacts(content.get("contacts"))
    if kind == "reaction":
        return Reaction(_str(part.get("message_id")) or "", _str(part.get("emoji")) or "")
    if kind == "order":
        return _order(part)
    if kind == "system":
        return System(
            _str(part.get("body")) or "The customer's account changed.",
            system_type=_str(part.get("type")),
            new_wa_id=_str(part.get("wa_id")) or _str(part.get("new_wa_id")),
        )
    if kind in ("unsupported", "unknown"):
        return Unsupported(_problems(content.get("errors")))
    return Other(kind, _str(part.get("body")) or _str(part.get("caption")))


def media_ids(node: Any) -> set[str]:
    """Every `wagate_media_id` inside a payload or content (to look them up in one query)."""
    found: set[str] = set()
    for item in _dicts(node):
        value = item.get("wagate_media_id")
        if isinstance(value, str) and value:
            found.add(value)
    return found


def media_url(media_id: str) -> str:
    return MEDIA_ROUTE + quote(media_id, safe="")


def human_size(size: int | None) -> str:
    """Bytes as WhatsApp's document chips show them: 812 B, 14 kB, 2.4 MB."""
    if size is None or size < 0:
        return ""
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB"):
        size_f = size / 1000
        if size_f < 1000 or unit == "GB":
            return f"{size_f:.0f} {unit}" if size_f >= 10 else f"{size_f:.1f} {unit}"
        size = int(size_f)
    return ""  # pragma: no cover - the loop always returns


def web_link(value: Any) -> str | None:
    """`value` when it is an http(s) URL with a host, else None (never `javascript:` etc.)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if (
        parts.scheme.lower() in ("http", "https")
        and parts.netloc
        and not any(c in url for c in "\r\n\t ")
    ):
        return url
    return None


# --------------------------------------------------------------------------- pieces


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _media(
    kind: str,
    part: dict[str, Any],
    files: MediaLookup,
    *,
    voice: bool = False,
    inbound: bool = False,
) -> Media:
    ours = _str(part.get("wagate_media_id"))
    stored = files.get(ours) if ours else None
    filename = _str(part.get("filename")) or (stored.filename if stored else None)
    if stored is not None:
        state = stored.state
    elif ours:
        state = "missing"  # deleted with its messages (retention), or not this account's
    else:
        state = "pending" if inbound else "ready"
    return Media(
        media_type=kind,
        url=media_url(ours) if ours and state == "ready" else None,
        state=state,
        error=stored.error if stored else None,
        link=None if ours else web_link(part.get("link")),
        meta_id=None if ours else _str(part.get("id")),
        caption=_str(part.get("caption")),
        filename=filename,
        size=stored.size if stored else None,
        mime_type=(stored.mime_type if stored else None) or _str(part.get("mime_type")),
        voice=voice,
        inbound=inbound,
    )


def _header(part: Any, files: MediaLookup) -> Header | None:
    header = _dict(part)
    kind = _str(header.get("type"))
    if kind == "text":
        text = _str(header.get("text"))
        return Header(text=text) if text else None
    if kind in ("image", "video", "document"):
        return Header(media=_media(kind, _dict(header.get(kind)), files))
    return None


def _text_of(part: Any) -> str:
    return _str(_dict(part).get("text")) or ""


def _interactive(part: dict[str, Any], files: MediaLookup) -> Content:
    kind = _str(part.get("type")) or ""
    action = _dict(part.get("action"))
    header = _header(part.get("header"), files)
    body = _text_of(part.get("body"))
    footer = _str(_dict(part.get("footer")).get("text"))
    if kind == "button":
        buttons = []
        for button in _list(action.get("buttons")):
            reply = _dict(_dict(button).get("reply"))
            title = _str(reply.get("title"))
            if title:
                buttons.append((_str(reply.get("id")) or title, title))
        return Buttons(body, header=header, footer=footer, buttons=tuple(buttons))
    if kind == "list":
        sections = []
        for section in _list(action.get("sections")):
            rows = tuple(
                Row(
                    id=_str(row.get("id")) or "",
                    title=_str(row.get("title")) or "",
                    description=_str(row.get("description")),
                )
                for row in map(_dict, _list(_dict(section).get("rows")))
            )
            sections.append(Section(_str(_dict(section).get("title")), rows))
        return ListMenu(
            body,
            button=_str(action.get("button")) or "Options",
            sections=tuple(sections),
            header=header,
            footer=footer,
        )
    if kind == "cta_url":
        parameters = _dict(action.get("parameters"))
        url = _str(parameters.get("url")) or ""
        return Cta(
            body,
            display_text=_str(parameters.get("display_text")) or url,
            url=web_link(url),
            shown_url=url,
            header=header,
            footer=footer,
        )
    if kind == "location_request_message":
        return LocationRequest(body)
    return Other(f"interactive {kind}".strip(), body or None)


def _location(part: dict[str, Any]) -> Location:
    latitude, longitude = _number(part.get("latitude")), _number(part.get("longitude"))
    if latitude is not None and not -90 <= latitude <= 90:
        latitude = None
    if longitude is not None and not -180 <= longitude <= 180:
        longitude = None
    return Location(
        latitude=latitude,
        longitude=longitude,
        name=_str(part.get("name")),
        address=_str(part.get("address")),
        url=web_link(part.get("url")),
    )


def _contact(card: dict[str, Any]) -> Contact:
    name = _dict(card.get("name"))
    formatted = _str(name.get("formatted_name")) or " ".join(
        n
        for key in ("prefix", "first_name", "middle_name", "last_name", "suffix")
        if (n := _str(name.get(key)))
    )
    org = _dict(card.get("org"))
    organization = " · ".join(
        v for key in ("company", "department", "title") if (v := _str(org.get(key)))
    )
    phones = []
    for phone in map(_dict, _list(card.get("phones"))):
        shown = _str(phone.get("phone")) or ("+" + wa if (wa := _str(phone.get("wa_id"))) else None)
        if shown:
            digits = "".join(c for c in shown if c.isdigit())
            tel = "tel:+" + digits if digits else None
            phones.append((shown, tel, _str(phone.get("type"))))
    emails = [
        (address, _str(e.get("type")))
        for e in map(_dict, _list(card.get("emails")))
        if (address := _str(e.get("email")))
    ]
    urls = [
        (shown, web_link(shown))
        for u in map(_dict, _list(card.get("urls")))
        if (shown := _str(u.get("url")))
    ]
    addresses = []
    for place in map(_dict, _list(card.get("addresses"))):
        parts = [
            v
            for key in ("street", "city", "state", "zip", "country")
            if (v := _str(place.get(key)))
        ]
        if parts:
            addresses.append(", ".join(parts))
    return Contact(
        name=formatted or (phones[0][0] if phones else "Contact"),
        organization=organization or None,
        phones=tuple(phones),
        emails=tuple(emails),
        urls=tuple(urls),
        addresses=tuple(addresses),
        birthday=_str(card.get("birthday")),
    )


def _contacts(cards: Any) -> Contacts:
    return Contacts(tuple(_contact(card) for card in map(_dict, _list(cards))))


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _order(part: dict[str, Any]) -> Order:
    items = []
    totals: dict[str, Decimal] = {}
    for item in map(_dict, _list(part.get("product_items"))):
        quantity = item.get("quantity")
        quantity = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 0
        price = _decimal(item.get("item_price")) or Decimal(0)
        currency = _str(item.get("currency")) or ""
        line = price * quantity
        totals[currency] = totals.get(currency, Decimal(0)) + line
        items.append(
            OrderItem(
                product=_str(item.get("product_retailer_id")) or "?",
                quantity=quantity,
                price=f"{price:.2f}",
                currency=currency,
                total=f"{line:.2f}",
            )
        )
    return Order(
        catalog_id=_str(part.get("catalog_id")),
        items=tuple(items),
        totals=tuple(f"{amount:.2f} {currency}".strip() for currency, amount in totals.items()),
        text=_str(part.get("text")),
    )


def _problems(errors: Any) -> tuple[str, ...]:
    found = []
    for error in map(_dict, _list(errors)):
        title = _str(error.get("title")) or _str(error.get("message"))
        details = _str(_dict(error.get("error_data")).get("details"))
        code = error.get("code")
        text = " — ".join(t for t in (title, details if details != title else None) if t)
        if isinstance(code, int) and not isinstance(code, bool):
            text = f"{text} ({code})" if text else str(code)
        if text:
            found.append(text)
    return tuple(found)
