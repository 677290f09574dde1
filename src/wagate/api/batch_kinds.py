"""What a batch item may be (SPEC §9): its `kind` → the parser that turns it into a send.

Each parser takes the item's fields and the batch's `BatchContext` (the caller's account, the
templates looked up so far) and returns a `SendRequest`, or raises `ValidationFailed` listing
every problem, exactly as the kind's own endpoint would. A new kind is one line in `KINDS`
(a pure parser is wrapped with `pure`); until then it is refused per item with `invalid_field`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.domain.errors import FieldError, InvalidBody, InvalidToken, ValidationFailed
from wagate.domain.kinds import SEND_KINDS, Kind, TargetLookups
from wagate.domain.kinds.media import parse_media
from wagate.domain.messages import parse_send_request
from wagate.domain.models import SendRequest
from wagate.domain.templates import build_template_send, lookup_keys
from wagate.domain.templates.model import Template
from wagate.store import accounts as account_store
from wagate.store import media as media_store
from wagate.store import templates as template_store
from wagate.store.accepts import unknown_channel_field
from wagate.store.accounts import Caller, Channel
from wagate.store.kind_targets import EngineTargets

DEFAULT_KIND = "text"
# SPEC §8's kinds this server does not send yet: refused per item, each with its reason.
NOT_YET: tuple[str, ...] = ()


class Lookups(Protocol):
    async def caller(self) -> Caller:
        """The token's account (raises InvalidToken for the whole request)."""

    async def channel(self, wanted: str | None) -> Channel | None:
        """The caller's channel that would send: by id, number or display number, else the
        default."""

    async def templates(self, channel: Channel, name: str) -> list[Template]:
        """The channel's synced templates of that name."""

    async def targets(self) -> TargetLookups:
        """The messages of the caller's account that reactions may point at."""

    async def media_send(self, send: SendRequest, account_id: str) -> SendRequest:
        """A media send checked against the account's stored file."""


ItemParser = Callable[[Mapping[str, Any], Lookups], Awaitable[SendRequest]]


def pure(parse: Callable[..., SendRequest]) -> ItemParser:
    """A parser that needs nothing but the fields (`parse(fields, form=False)`)."""

    async def run(fields: Mapping[str, Any], _: Lookups) -> SendRequest:
        return parse(fields, form=False)

    return run


async def template_item(fields: Mapping[str, Any], lookups: Lookups) -> SendRequest:
    """As `POST /v1/messages/template`: checked against the channel's synced copy."""
    name, wanted = lookup_keys(fields)
    channel = await lookups.channel(wanted)
    if channel is None:
        return build_template_send(fields, [], channel_error=unknown_channel_field(wanted))
    candidates = [] if name is None else await lookups.templates(channel, name)
    return build_template_send(fields, candidates)


def kind_item(kind: Kind) -> ItemParser:
    """A SPEC §8 kind, as its own endpoint takes it (reactions looked up in the account)."""

    async def run(fields: Mapping[str, Any], lookups: Lookups) -> SendRequest:
        send = kind.parse(fields, form=False)
        if kind.resolve is not None:
            send = await kind.resolve(send, await lookups.targets())
        return send

    return run


async def media_item(fields: Mapping[str, Any], lookups: Lookups) -> SendRequest:
    """As `POST /v1/messages/media`: a media_id is the account's file and fits the type (a
    media_url's address is checked when it is fetched)."""
    send = parse_media(fields, form=False)
    if (send.content.data or {}).get("media_id") is None:
        return send
    caller = await lookups.caller()
    return await lookups.media_send(send, caller.account_id)


KINDS: dict[str, ItemParser] = {
    "text": pure(parse_send_request),  # covers interactive (header, footer, buttons)
    "template": template_item,
    "media": media_item,
    **{name: kind_item(kind) for name, kind in SEND_KINDS.items()},
}


async def parse_item(item: object, lookups: Lookups) -> SendRequest:
    """One batch item as a send; raises `ValidationFailed` or `InvalidBody` for this item."""
    if not isinstance(item, Mapping):
        raise InvalidBody(
            'Each item of messages must be a JSON object, e.g. {"phone": "+14155552671", '
            '"message": "Hi"}.'
        )
    kind = item.get("kind", DEFAULT_KIND)
    parser = KINDS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ValidationFailed([FieldError("kind", "invalid_field", _kind_problem(kind))])
    return await parser(item, lookups)


def _kind_problem(kind: object) -> str:
    known = ", ".join(KINDS)
    if isinstance(kind, str) and kind in NOT_YET:
        return f"Batch items of kind {kind!r} are not available on this server yet; use {known}."
    return f"kind must be one of {known} (default {DEFAULT_KIND}); got {kind!r}."


class BatchLookups:
    """`Lookups` for one batch request: each read made once, however many items need it."""

    def __init__(self, engine: AsyncEngine, clock: Clock, token: str) -> None:
        self.engine = engine
        self.clock = clock
        self.token = token
        self._caller: Caller | None = None
        self._channels: dict[str | None, Channel | None] = {}
        self._templates: dict[tuple[str, str], list[Template]] = {}

    async def caller(self) -> Caller:
        if self._caller is None:
            async with self.engine.connect() as conn:
                caller = await account_store.authenticate(
                    conn, token=self.token, now=self.clock.now()
                )
            if caller is None:
                raise InvalidToken()
            self._caller = caller
        return self._caller

    async def channel(self, wanted: str | None) -> Channel | None:
        if wanted not in self._channels:
            caller = await self.caller()
            async with self.engine.connect() as conn:
                self._channels[wanted] = await account_store.channel_for_send(
                    conn, account_id=caller.account_id, wanted=wanted
                )
        return self._channels[wanted]

    async def targets(self) -> TargetLookups:
        caller = await self.caller()
        return EngineTargets(self.engine, caller.account_id)

    async def media_send(self, send: SendRequest, account_id: str) -> SendRequest:
        async with self.engine.connect() as conn:
            return await media_store.check_media_send(
                send, conn=conn, account_id=account_id, policy=None
            )

    async def templates(self, channel: Channel, name: str) -> list[Template]:
        key = (channel.id, name)
        if key not in self._templates:
            async with self.engine.connect() as conn:
                self._templates[key] = await template_store.templates_named(
                    conn, channel_id=channel.id, name=name
                )
        return self._templates[key]
