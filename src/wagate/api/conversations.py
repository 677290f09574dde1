"""`/v1/conversations/{phone}`: the customer service window and the thread both ways."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wagate.api.deps import AccountDep, ServicesDep
from wagate.api.schemas import Conversation, error_responses
from wagate.domain.errors import NotFound, ValidationFailed
from wagate.domain.phone import normalize_phone
from wagate.store import accounts as account_store
from wagate.store import messages as message_store

router = APIRouter(prefix="/v1", tags=["conversations"])


@router.get(
    "/conversations/{phone}",
    response_model=Conversation,
    responses=error_responses(401, 404, 422, 429, 503),
    summary="The window and the latest messages with one customer",
)
async def get_conversation(
    phone: str,
    account_id: AccountDep,
    services: ServicesDep,
    channel: Annotated[str | None, Query(description="Channel id or phone number id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    normalized, errors = normalize_phone(phone)
    if errors or normalized is None:
        raise ValidationFailed(errors)
    async with services.engine.connect() as conn:
        found = await account_store.channel_for_send(
            conn, account_id=account_id, wanted=channel or None
        )
        if found is None:
            raise NotFound("This account has no such channel.", field="channel")
        return await message_store.conversation(
            conn,
            account_id=account_id,
            channel=found,
            phone=normalized,
            now=services.clock.now(),
            limit=limit,
        )
