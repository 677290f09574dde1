"""Reactions and read receipts: the kinds that point at another message (SPEC §8).

`POST /v1/messages/reaction`: `message_id` is one of ours (`msg_…`, looked up in the caller's
account) or the wamid of a message the customer sent to one of the account's numbers; `emoji`
is one emoji, `""` removes the reaction. The reaction goes out on the number that sent or
received that message, to the customer of that conversation (`phone` must be theirs). It is
stored with `reply_to` = `message_id`: the outbox turns one of our ids into its wamid when the
reaction is sent, as for a quoted message (a reaction to a message that was never sent fails
with `reaction_target_not_sent`). `reply_to`, if given, must be that same message.

`POST /v1/conversations/{phone}/read`: marks the customer's latest message read (to any of the
account's numbers, or to `channel` when given), on the number it was sent to; `typing: true`
also shows a typing indicator (until the next message or 25 s). It is queued like any message,
so it is durable and paced with the recipient's other messages (Meta counts it against the
rate); its status stops at `accepted` (Meta answers `{"success": true}`, without a wamid, and
sends no status webhooks for it).

Error codes (HTTP 422 unless said): `missing_field` (message_id or emoji absent),
`invalid_emoji` (not exactly one emoji), `field_too_long` (message_id over 255),
`message_not_found` (no such message for this account), `reaction_phone_mismatch` (the
message belongs to another customer), `reaction_channel_mismatch` (channel names another
number than the message's), `invalid_field` (typing not a boolean; reply_to not message_id),
409 `outside_service_window` for a read receipt when the customer never wrote or the window
is closed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import emoji as emoji_data

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.kinds.fields import describe_type, quote_input, read_bool, read_extras
from wagate.domain.models import MessageContent, MessageType, SendRequest

MESSAGE_ID_MAX = 255


@dataclass(frozen=True, slots=True)
class Target:
    """A message a reaction or read receipt points at, and the conversation it is in."""

    message_id: str  # msg_… or a wamid
    channel_id: str
    channel_names: tuple[str, ...]  # what `channel` may say for that number
    phone: str


class TargetLookups(Protocol):
    """Reads scoped to the caller's account (store/kind_targets.py)."""

    async def our_message(self, message_id: str) -> Target | None:
        """One of the account's own messages."""

    async def inbound_message(self, wamid: str) -> Target | None:
        """A customer's message to one of the account's numbers."""

    async def latest_inbound(self, channel: str | None, phone: str) -> Target | None:
        """The customer's latest message to the given number (else to any of the account's)."""


def parse_reaction(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    errors: list[FieldError] = []
    message_id = _message_id(fields.get("message_id"), errors)
    reaction = _emoji(fields.get("emoji"), errors)
    extras = read_extras(fields, form, errors)
    if message_id is not None and extras.reply_to not in (None, message_id):
        errors.append(
            FieldError(
                "reply_to",
                "invalid_field",
                "A reaction cannot quote another message; leave reply_to out (message_id "
                "already says which message the reaction is on).",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    assert message_id is not None and reaction is not None
    content = MessageContent(
        type=MessageType.REACTION,
        body=reaction,
        data={"message_id": message_id, "emoji": reaction},
    )
    return dataclasses.replace(extras.request(content), reply_to=message_id)


def _message_id(value: object, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        errors.append(
            FieldError(
                "message_id",
                "missing_field",
                "message_id is required: the msg_… id of one of your messages, or the wamid of "
                "a message the customer sent.",
            )
        )
        return None
    if not isinstance(value, str) or value != value.strip():
        shown = quote_input(value) if isinstance(value, str) else describe_type(value)
        errors.append(
            FieldError("message_id", "invalid_field", f"message_id must be an id; got {shown}.")
        )
        return None
    if len(value) > MESSAGE_ID_MAX:
        errors.append(
            FieldError(
                "message_id",
                "field_too_long",
                f"message_id is {len(value)} characters; at most {MESSAGE_ID_MAX}.",
            )
        )
        return None
    return value


def _emoji(value: object, errors: list[FieldError]) -> str | None:
    if value is None:
        errors.append(
            FieldError(
                "emoji",
                "missing_field",
                'emoji is required: one emoji such as "👍", or "" to remove your reaction.',
            )
        )
        return None
    if value == "":
        return ""
    if not isinstance(value, str) or not emoji_data.is_emoji(value):
        shown = quote_input(value) if isinstance(value, str) else describe_type(value)
        errors.append(
            FieldError(
                "emoji",
                "invalid_emoji",
                f'emoji must be exactly one emoji, such as "👍" or "❤️" ("" removes the '
                f"reaction); got {shown}.",
            )
        )
        return None
    return value


async def resolve_reaction(send: SendRequest, lookups: TargetLookups) -> SendRequest:
    """The reaction bound to the conversation of the message it is on; raises
    `ValidationFailed` when that message is not the account's or not this customer's."""
    message_id = send.reply_to
    assert message_id is not None  # parse_reaction sets it
    target = (
        await lookups.our_message(message_id)
        if message_id.startswith("msg_")
        else await lookups.inbound_message(message_id)
    )
    if target is None:
        raise ValidationFailed(
            [
                FieldError(
                    "message_id",
                    "message_not_found",
                    f"This account has no message {quote_input(message_id)}; react to one of "
                    "your messages (msg_…) or to the wamid of a message a customer sent you.",
                )
            ]
        )
    errors = []
    if target.phone != send.phone:
        errors.append(
            FieldError(
                "message_id",
                "reaction_phone_mismatch",
                f"Message {quote_input(message_id)} is in the conversation with {target.phone}, "
                f"not {send.phone}; a reaction goes to the conversation of its message.",
            )
        )
    if send.channel is not None and send.channel not in target.channel_names:
        errors.append(
            FieldError(
                "channel",
                "reaction_channel_mismatch",
                f"Message {quote_input(message_id)} was sent or received on channel "
                f"{target.channel_id}; leave channel out, or name that one.",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return dataclasses.replace(send, channel=target.channel_id)


def parse_read(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    """A read receipt for the customer in `fields["phone"]` (the path's phone)."""
    errors: list[FieldError] = []
    typing = read_bool(fields.get("typing"), "typing", form, errors)
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    content = MessageContent(type=MessageType.READ, body="", data={"typing": typing})
    return dataclasses.replace(extras.request(content), reply_to=None)


async def resolve_read(send: SendRequest, lookups: TargetLookups) -> SendRequest | None:
    """The receipt bound to the customer's latest message, or None when they never wrote to
    that number (the caller answers `outside_service_window`)."""
    target = await lookups.latest_inbound(send.channel, send.phone)
    if target is None:
        return None
    data = dict(send.content.data or {}) | {"message_id": target.message_id}
    content = dataclasses.replace(send.content, data=data)
    return dataclasses.replace(send, content=content, channel=target.channel_id)
