"""Sending from the conversation page: through the same group-committed accept path as
`POST /v1/messages` (window checked in the transaction, message, `queued` event and outbox row
together), for the signed-in user's account instead of a token's."""

from __future__ import annotations

import dataclasses
from typing import Any

from wagate.api.deps import Services
from wagate.domain.errors import WagateError
from wagate.domain.models import SendRequest
from wagate.store.accepts import AcceptRequest
from wagate.store.accounts import Channel


async def queue_message(
    services: Services, *, account_id: str, channel: Channel, request: SendRequest
) -> dict[str, Any] | WagateError:
    """The stored message (its id under "id"), or the error that refused it (nothing stored).

    The page's form carries an idempotency key made when it was drawn, so a double click or a
    resubmitted form answers with the first message instead of sending twice."""
    request = dataclasses.replace(request, channel=channel.id)
    outcome = await services.acceptor.accept(AcceptRequest("", request, account_id=account_id))
    if isinstance(outcome, WagateError):
        return outcome
    if isinstance(outcome, dict):
        services.notify_queued()
        return outcome
    return {"id": outcome.message_id}  # the first answer to this form's idempotency key
