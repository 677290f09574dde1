"""Messages of every origin (the API's view, customers' inbound messages, the sandbox's record)
as chat bubbles, the one shape the templates draw."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wagate.dashboard import kinds, template_form
from wagate.domain.templates import template_from_meta
from wagate.domain.templates.shape import shape_of

_TAPPED = {"button_reply", "list_reply", "button"}
_CALL = re.compile(r"\+?[0-9]{6,16}")


@dataclass(frozen=True, slots=True)
class Bubble:
    mine: bool  # drawn on the right, in green: the side of whoever is looking
    body: str | None
    at: Any  # ISO string, datetime or epoch seconds
    header: str | None = None
    footer: str | None = None
    buttons: list[dict[str, str]] = field(default_factory=list)
    status: str | None = None
    note: str | None = None  # a line above the text: "Template …", "Tapped a button"
    wamid: str | None = None
    link: str | None = None
    message_id: str | None = None  # ours (msg_…), for reactions that name it
    # A template's media header: {"kind": "image", "link": …}, drawn as a frame with its link
    # (pages load nothing from other sites, so the file itself is not shown).
    media: dict[str, Any] | None = None
    # Every other kind (dashboard.kinds): a list menu, a photo, a location card, ... Text and
    # reply buttons use the fields above; `header_media` is an interactive message's media header.
    content: kinds.Content | None = None
    header_media: kinds.Media | None = None
    reactions: tuple[kinds.Reacted, ...] = ()
    # A reply quotes the message it answers (`quotes`: its wamid or our msg_ id); `quote` is
    # what the bubble shows of it, filled in by `with_quotes`.
    quotes: str | None = None
    quote: str | None = None

    @property
    def key(self) -> str:
        """A stable name for the bubble's elements (ids kept across live updates)."""
        source = self.message_id or self.wamid or self.link or ""
        return "b-" + re.sub(r"[^A-Za-z0-9_-]", "", source)[-40:]


def template_note(template: dict[str, Any] | None) -> str:
    if not template:
        return "Template message"
    name = template.get("name") or template.get("template") or "?"
    language = template.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    return f"Template {name}" + (f" ({language})" if language else "")


def outbound_fields(view: Mapping[str, Any], *, mine: bool = True) -> dict[str, Any]:
    """What every bubble of ours takes from the stored message: side, time, ticks, ids, and
    the message it replies to (a reaction's target is not a quote)."""
    message_id = view.get("id")
    replied = view.get("reply_to") if view.get("type") != "reaction" else None
    return {
        "quotes": replied if isinstance(replied, str) and replied else None,
        "mine": mine,
        "at": view.get("created_at") or view.get("at"),
        "status": view.get("status"),
        "wamid": view.get("wamid"),
        "link": f"/messages/{message_id}" if message_id else None,
        "message_id": message_id,
    }


def from_api_message(view: dict[str, Any], *, mine: bool = True) -> Bubble:
    """An outbound message as `store.messages.message_view` shows it."""
    note = None
    body = view.get("message")
    if view.get("type") == "template":
        note = template_note(view.get("template"))
        body = body or view.get("preview")
    return Bubble(
        mine=mine,
        body=body,
        at=view.get("created_at"),
        header=view.get("header"),
        footer=view.get("footer"),
        buttons=list(view.get("buttons") or []),
        status=view.get("status"),
        note=note,
        wamid=view.get("wamid"),
        link=f"/messages/{view['id']}" if view.get("id") else None,
        message_id=view.get("id"),
    )


def receipt_bubble(view: Mapping[str, Any]) -> Bubble:
    """A read receipt (`POST /v1/conversations/{phone}/read`): not a message anyone reads, so
    it is said in words, with the customer's message it marks."""
    content = view.get("content")
    data: Mapping[str, Any] = content if isinstance(content, dict) else {}
    typing = " and shows them that you are typing" if data.get("typing") else ""
    marked = data.get("message_id")
    return Bubble(
        body=f"Marks the customer's message read (blue ticks on their phone){typing}."
        + (f" Message: {marked}" if marked else ""),
        note="Read receipt",
        **outbound_fields(view),
    )


def content_bubble(content: kinds.Content, **common: Any) -> Bubble:
    """A bubble for one kind read by `dashboard.kinds` (`common`: mine, at, status, wamid,
    link)."""
    if isinstance(content, kinds.Text):
        return Bubble(body=content.body, **common)
    header = getattr(content, "header", None)
    fields: dict[str, Any] = {}
    if isinstance(header, kinds.Header):
        fields = {"header": header.text, "header_media": header.media}
    if isinstance(content, kinds.Buttons):
        buttons = [{"id": i, "title": t} for i, t in content.buttons]
        return Bubble(body=content.body, footer=content.footer, buttons=buttons, **fields, **common)
    if isinstance(content, kinds.ListMenu | kinds.Cta):
        return Bubble(body=content.body, footer=content.footer, content=content, **fields, **common)
    if isinstance(content, kinds.LocationRequest):
        return Bubble(body=content.body, content=content, **common)
    if isinstance(content, kinds.Tapped):
        return Bubble(body=content.title, note=content.note, content=content, **common)
    return Bubble(body=None, content=content, **common)


def from_payload(
    view: Mapping[str, Any],
    payload: Mapping[str, Any],
    media: kinds.MediaLookup | None = None,
    *,
    mine: bool = True,
) -> Bubble:
    """An outbound message of any kind, drawn from the Cloud API body Meta gets for it
    (`cloud.payloads.build_message_payload`); `view` is the stored message
    (`store.messages.message_view`) for its time, status and link. A template is drawn from
    its stored text instead (Meta's body holds only its name and parameters)."""
    if payload.get("type") == "template":
        return from_api_message(dict(view), mine=mine)
    return content_bubble(
        kinds.outbound_content(payload, media), **outbound_fields(view, mine=mine)
    )


def from_inbound_content(
    item: Mapping[str, Any],
    content: Mapping[str, Any],
    media: kinds.MediaLookup | None = None,
    *,
    mine: bool = False,
) -> Bubble:
    """A customer's message of any kind, from `inbound_messages.content` (Meta's inbound
    message object); `item` gives its time and wamid."""
    shown = kinds.inbound_content(content, media)
    context = content.get("context")
    quoted = context.get("id") if isinstance(context, dict) else None
    if isinstance(shown, kinds.Tapped | kinds.Reaction):
        quoted = None  # a tap answers its message by itself; a reaction sits on it
    return content_bubble(
        shown,
        mine=mine,
        at=item.get("at") or item.get("timestamp"),
        wamid=item.get("wamid"),
        quotes=quoted if isinstance(quoted, str) and quoted else None,
    )


def with_reactions(bubbles: Iterable[Bubble]) -> list[Bubble]:
    """Reactions drawn on the bubbles they react to, as WhatsApp shows them: the latest one
    from each side counts, an empty emoji takes it back. A reaction to a message that is not
    in the thread (older than what is shown) stays a bubble of its own; so does one of ours
    that failed to go out."""
    listed = list(bubbles)
    # A reaction names its target by Meta's id, or (one of ours, not yet sent) by our own.
    names: dict[str, str] = {}
    for b in listed:
        if not isinstance(b.content, kinds.Reaction):
            for name in (b.message_id, b.wamid):
                if name:
                    names[name] = b.key
    given: dict[str, dict[bool, str]] = {}
    kept: list[Bubble] = []
    for b in listed:
        reaction = b.content
        if (
            isinstance(reaction, kinds.Reaction)
            and reaction.message_id in names
            and b.status != "failed"
        ):
            given.setdefault(names[reaction.message_id], {})[b.mine] = reaction.emoji
            continue
        kept.append(b)
    out = []
    for b in kept:
        on = given.get(b.key) if not isinstance(b.content, kinds.Reaction) else None
        if on:
            shown = tuple(kinds.Reacted(e, mine) for mine, e in sorted(on.items()) if e)
            b = dataclasses.replace(b, reactions=shown)
        out.append(b)
    return out


def _preview(b: Bubble) -> str:
    """A quoted message in a few words, as WhatsApp shows it above a reply."""
    c = b.content
    if isinstance(c, kinds.Media):
        words = c.caption or c.filename or ""
        return f"{c.label}: {words}" if words else c.label
    if isinstance(c, kinds.Location):
        return "Location: " + (c.name or c.address or c.coordinates)
    if isinstance(c, kinds.Contacts):
        return "Contact: " + ", ".join(card.name for card in c.contacts)
    if isinstance(c, kinds.Order):
        return f"Order of {len(c.items)} item" + ("" if len(c.items) == 1 else "s")
    text = b.body or b.header or b.note or "a message"
    return text if len(text) <= 90 else text[:89] + "…"


def with_quotes(bubbles: Iterable[Bubble]) -> list[Bubble]:
    """Each reply with the message it quotes shown above it (in a few words), or said to be
    older than the thread when it is not in it."""
    listed = list(bubbles)
    names: dict[str, Bubble] = {}
    for b in listed:
        for name in (b.message_id, b.wamid):
            if name:
                names[name] = b
    out = []
    for b in listed:
        if b.quotes:
            target = names.get(b.quotes)
            quote = _preview(target) if target is not None else "a message not shown here"
            b = dataclasses.replace(b, quote=quote)
        out.append(b)
    return out


def _inbound_text(kind: str | None, text: str | None) -> tuple[str | None, str | None]:
    """(note, body) for a customer's message of Meta's `kind`."""
    if kind in _TAPPED:
        return "Tapped a button", text
    if kind in (None, "text"):
        return None, text
    return f"Sent {'an' if kind[0] in 'aeiou' else 'a'} {kind}", text


def from_inbound(item: dict[str, Any], *, mine: bool = False) -> Bubble:
    """A customer's message, as `store.messages.conversation` lists it."""
    note, body = _inbound_text(item.get("kind"), item.get("text"))
    return Bubble(mine=mine, body=body, at=item.get("at"), note=note, wamid=item.get("wamid"))


def from_thread(item: dict[str, Any]) -> Bubble:
    """One entry of `store.messages.conversation`'s thread, seen by the business."""
    if item.get("direction") == "inbound":
        return from_inbound(item)
    return from_api_message(item)


def _tappable(button: dict[str, Any], *, template: bool) -> dict[str, str]:
    """A button as the sandbox phone draws it: `tap` names the reply field a tap sends
    (`button_id` for an interactive message, `payload` for a template's quick reply); a
    template's link and call buttons (their id is the URL or the number) cannot be tapped."""
    button_id, title = str(button.get("id", "")), str(button.get("title", ""))
    if not template:
        return {"id": button_id, "title": title, "tap": "button_id"}
    if button_id.startswith(("http://", "https://")) or _CALL.fullmatch(button_id):
        return {"id": button_id, "title": title, "tap": ""}
    return {"id": button_id, "title": title, "tap": "payload"}


def from_sandbox(item: dict[str, Any], sent: dict[str, Any] | None = None) -> Bubble:
    """One entry of `Sandbox.messages`, seen by the customer (their own messages on the
    right). `sent` is the gateway's stored content of the same message, when known: for a
    template, it holds the text with its parameters filled in."""
    customer = item.get("direction") == "inbound"
    kind = item.get("type")
    note = None
    body, header, footer = item.get("text"), item.get("header"), item.get("footer")
    buttons = list(item.get("buttons") or [])
    if customer:
        note, body = _inbound_text(kind, body)
        buttons = []
    elif kind == "template":
        note = template_note(item.get("template"))
        if sent:
            body, header, footer = sent.get("body"), sent.get("header"), sent.get("footer")
            buttons = list(sent.get("buttons") or [])
    return Bubble(
        mine=customer,
        body=body,
        at=item.get("timestamp"),
        header=header,
        footer=footer,
        buttons=[_tappable(b, template=kind == "template") for b in buttons],
        status=None if customer else item.get("status"),
        note=note,
        wamid=item.get("wamid"),
    )


def template_bubble(view: dict[str, Any]) -> Bubble:
    """A synced template as WhatsApp shows it: filled with Meta's examples when it can be, else
    with its placeholders."""
    template = template_from_meta(view)
    media = template_form.draft(template, {})["media"]
    filled = template_form.preview(template)
    if filled is not None:
        return Bubble(
            mine=True,
            body=filled.body,
            at=None,
            header=None if media else filled.header,
            footer=filled.footer,
            buttons=[{"id": b.id, "title": b.title} for b in filled.buttons],
            media=media,
        )
    shape = shape_of(template)
    return Bubble(
        mine=True,
        body=shape.body_text,
        at=None,
        header=None if media else shape.header_text,
        footer=shape.footer,
        buttons=[{"id": str(b.index), "title": b.text} for b in shape.buttons],
        media=media,
    )


def draft_bubble(view: dict[str, Any], typed: dict[str, str]) -> Bubble:
    """The template being filled in a conversation's form: what was typed so far, and the
    placeholders still to fill (never Meta's sample values)."""
    drafted = template_form.draft(template_from_meta(view), typed)
    return Bubble(
        mine=True,
        body=drafted["body"],
        at=None,
        header=drafted["header"],
        footer=drafted["footer"],
        buttons=drafted["buttons"],
        media=drafted["media"],
    )
