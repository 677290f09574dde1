"""`/v1/channels`: the account's WhatsApp numbers and the pace they are sent at (no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wagate.api.deps import AccountDep, ServicesDep
from wagate.api.schemas import error_responses
from wagate.store import accounts as account_store

router = APIRouter(prefix="/v1", tags=["channels"])


class PairRate(BaseModel):
    burst: int = Field(description="Messages to one customer that may go at once")
    interval_seconds: float = Field(description="Then one message per this many seconds")


class ChannelOut(BaseModel):
    id: str
    phone_number_id: str
    waba_id: str
    display_phone_number: str | None
    mps: int = Field(description="Messages per second this number is paced at")
    pair_rate: PairRate
    is_default: bool
    is_sandbox: bool
    created_at: str


class ChannelList(BaseModel):
    data: list[ChannelOut]


@router.get(
    "/channels",
    response_model=ChannelList,
    responses=error_responses(401, 429, 503),
    summary="The account's WhatsApp numbers",
)
async def list_channels(account_id: AccountDep, services: ServicesDep) -> Any:
    async with services.engine.connect() as conn:
        found = await account_store.list_channels(conn, account_id=account_id)
    pair_rate = {
        "burst": services.settings.pair_burst,
        "interval_seconds": services.settings.pair_interval,
    }
    return {"data": [c.public() | {"pair_rate": pair_rate} for c in found]}
