"""What route handlers need, as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.errors import InvalidToken, MissingToken
from wagate.store import accounts as account_store


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    wake_dispatcher: Any = field(default=None)  # Callable[[], None] | None

    def notify_queued(self) -> None:
        if self.wake_dispatcher is not None:
            self.wake_dispatcher()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(services: Services, token: str | None) -> str:
    """The account id for a token; the same error for unknown and revoked tokens."""
    if not token:
        raise MissingToken()
    async with services.engine.begin() as conn:
        account_id = await account_store.authenticate(conn, token=token, now=services.clock.now())
    if account_id is None:
        raise InvalidToken()
    return account_id


async def require_account(request: Request, services: ServicesDep) -> str:
    return await authenticate(services, bearer_token(request))


AccountDep = Annotated[str, Depends(require_account)]
