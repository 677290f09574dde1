"""The CLI's commands for the SPEC §8 kinds, beside `send` and `send-template` (one command per
kind, as the API has one endpoint per kind):

    wagate send-list --phone P --message M --button Sizes --row s=Small --row "m=Medium|Two"
    wagate send-list --phone P --message M --button Sizes --sections '[{"title": …, "rows": […]}]'
    wagate send-cta --phone P --message M --button Track --url https://…
    wagate send-location --phone P --latitude 12.97 --longitude 77.59 [--name --address]
    wagate request-location --phone P --message "Where should we deliver?"
    wagate send-contacts --phone P --contacts cards.json   (a file, or the JSON itself)
    wagate react --phone P --message-id msg_…|wamid… --emoji 👍   (--emoji "" removes)
    wagate mark-read --phone P [--typing]

All go through the Python client, so the CLI sends exactly what the API accepts. Also the
sandbox customer's options for these kinds (`wagate sandbox reply --list-reply …`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from wagate.cli_send import (
    JsonOpt,
    TokenOpt,
    _connection,
    _fail,
    _print_sent,
    api_failure,
)
from wagate.cli_server import LegacyUrlOpt, ServerOpt
from wagate.client import Accepted, ApiError, Client

PhoneOpt = Annotated[str, typer.Option(help="The customer, e.g. +14155552671")]
KeyOpt = Annotated[str | None, typer.Option(help="Makes a retry safe")]
ChannelOpt = Annotated[str | None, typer.Option(help="Which of the account's numbers")]
HeaderOpt = Annotated[str | None, typer.Option(help="Text above the body (60 at most)")]
FooterOpt = Annotated[str | None, typer.Option(help="Small text below the body (60 at most)")]


def _run(
    server: str | None,
    url: str | None,
    token: str | None,
    as_json: bool,
    call: Callable[[Client], Accepted],
) -> None:
    found, secret = _connection(server, url, token)
    with Client(found.url, secret) as wa:
        try:
            sent = call(wa)
        except ApiError as error:
            api_failure(error, as_json, found)
            return
    _print_sent(sent, as_json)


def json_or_file(value: str, option: str) -> Any:
    """A JSON value given inline, or the path of a file holding it."""
    text = value
    path = Path(value)
    if not value.lstrip().startswith(("[", "{")) and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        _fail(f"{option} is neither JSON nor a JSON file: {exc}")


def parse_row(spec: str) -> dict[str, str]:
    """`ID=TITLE` or `ID=TITLE|DESCRIPTION`."""
    ident, sep, rest = spec.partition("=")
    if not sep:
        raise typer.BadParameter(f"{spec!r}: write a row as ID=TITLE or ID=TITLE|DESCRIPTION")
    title, bar, description = rest.partition("|")
    row = {"id": ident, "title": title}
    if bar:
        row["description"] = description
    return row


def send_list(
    phone: PhoneOpt,
    message: Annotated[str, typer.Option(help="The body (4096 at most)")],
    button: Annotated[str, typer.Option(help="The button that opens the list (20 at most)")],
    row: Annotated[
        list[str] | None,
        typer.Option(help="A row ID=TITLE or ID=TITLE|DESCRIPTION (one section; up to 10)"),
    ] = None,
    sections: Annotated[
        str | None, typer.Option(help="All sections as JSON (or a JSON file) instead of --row")
    ] = None,
    header: HeaderOpt = None,
    footer: FooterOpt = None,
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a list menu (inside the window); the pick comes back as a list_reply."""
    if (row is None) == (sections is None):
        _fail("give the rows with --row (repeat it) or all sections with --sections")
    chosen = (
        json_or_file(sections, "--sections")
        if sections is not None
        else [{"rows": [parse_row(r) for r in row or []]}]
    )
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.send_list(
            phone,
            message,
            button=button,
            sections=chosen,
            header=header,
            footer=footer,
            channel=channel,
            idempotency_key=idempotency_key,
        ),
    )


def send_cta(
    phone: PhoneOpt,
    message: Annotated[str, typer.Option(help="The body (1024 at most)")],
    button: Annotated[str, typer.Option(help="The link button's text (20 at most)")],
    link: Annotated[str, typer.Option("--link", help="The https:// URL the button opens")],
    header: HeaderOpt = None,
    footer: FooterOpt = None,
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a message with a link button (inside the window)."""
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.send_cta(
            phone,
            message,
            button=button,
            url=link,
            header=header,
            footer=footer,
            channel=channel,
            idempotency_key=idempotency_key,
        ),
    )


def send_location(
    phone: PhoneOpt,
    latitude: Annotated[float, typer.Option(help="-90 to 90")],
    longitude: Annotated[float, typer.Option(help="-180 to 180")],
    name: Annotated[str | None, typer.Option(help="The place's name")] = None,
    address: Annotated[str | None, typer.Option(help="The place's address")] = None,
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a location pin (inside the window)."""
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.send_location(
            phone,
            latitude,
            longitude,
            name=name,
            address=address,
            channel=channel,
            idempotency_key=idempotency_key,
        ),
    )


def request_location(
    phone: PhoneOpt,
    message: Annotated[str, typer.Option(help="What to ask (1024 at most)")],
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the customer to share their location (inside the window)."""
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.request_location(
            phone, message, channel=channel, idempotency_key=idempotency_key
        ),
    )


def send_contacts(
    phone: PhoneOpt,
    contacts: Annotated[
        str, typer.Option(help="1 to 5 contact cards in Meta's shape: JSON, or a JSON file")
    ],
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send contact cards (inside the window)."""
    cards = json_or_file(contacts, "--contacts")
    if isinstance(cards, dict):
        cards = [cards]  # one card given on its own
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.send_contacts(phone, cards, channel=channel, idempotency_key=idempotency_key),
    )


def react(
    phone: PhoneOpt,
    message_id: Annotated[
        str, typer.Option(help="One of your messages (msg_…) or a customer's message (wamid…)")
    ],
    emoji: Annotated[str, typer.Option(help='One emoji; "" removes your reaction')],
    idempotency_key: KeyOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """React to a message with an emoji (inside the window)."""
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.react(phone, message_id, emoji, idempotency_key=idempotency_key),
    )


def mark_read(
    phone: PhoneOpt,
    typing: Annotated[
        bool, typer.Option("--typing", help="Also show a typing indicator (up to 25 s)")
    ] = False,
    idempotency_key: KeyOpt = None,
    channel: ChannelOpt = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark the customer's latest message read (blue ticks on their phone)."""
    _run(
        server,
        url,
        token,
        as_json,
        lambda wa: wa.mark_read(
            phone, typing=typing, channel=channel, idempotency_key=idempotency_key
        ),
    )


def register(app: typer.Typer) -> None:
    app.command("send-list")(send_list)
    app.command("send-cta")(send_cta)
    app.command("send-location")(send_location)
    app.command("request-location")(request_location)
    app.command("send-contacts")(send_contacts)
    app.command("react")(react)
    app.command("mark-read")(mark_read)


# --------------------------------------------------------------------------- the sandbox customer


def customer_kind_fields(
    *,
    list_reply: str | None = None,
    location: str | None = None,
    place: str | None = None,
    address: str | None = None,
    reaction: str | None = None,
    to: str | None = None,
    contacts: str | None = None,
    order: str | None = None,
    system: str | None = None,
    unsupported: bool = False,
) -> dict[str, Any]:
    """The `/sandbox/customer/reply` fields for `wagate sandbox reply`'s kind options (empty
    when none is given)."""
    fields: dict[str, Any] = {}
    if list_reply is not None:
        fields["button_id"] = list_reply  # the sandbox answers a list with a list_reply
    if location is not None:
        lat, comma, lon = location.partition(",")
        try:
            point = {"latitude": float(lat), "longitude": float(lon)}
        except ValueError:
            point = {}
        if not comma or not point:
            _fail(f"--location {location!r}: write it as LAT,LON, e.g. 12.9716,77.5946")
        fields["location"] = point | {
            k: v for k, v in (("name", place), ("address", address)) if v is not None
        }
    if reaction is not None:
        fields["reaction"] = {"emoji": reaction} | ({"message_id": to} if to else {})
    if contacts is not None:
        cards = json_or_file(contacts, "--contacts")
        fields["contacts"] = [cards] if isinstance(cards, dict) else cards
    if order is not None:
        fields["order"] = json_or_file(order, "--order") if order.strip() else True
    if system is not None:
        fields["system"] = {"body": system}
    if unsupported:
        fields["unsupported"] = True
    return fields
