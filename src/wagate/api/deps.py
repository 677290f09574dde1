"""What route handlers need, as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.api.acceptor import Acceptor
from wagate.api.ratelimit import AccountRateLimiter
from wagate.api.request_log import note_account
from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.errors import InvalidToken, MissingToken, RateLimited
from wagate.egress import EgressPolicy
from wagate.http_server import requests_in_flight
from wagate.store import accounts as account_store
from wagate.store.db import write_tx
from wagate.store.media_files import MediaFiles, media_files_for


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    wake_dispatcher: Any = field(default=None)  # Callable[[], None] | None
    rate_limiter: AccountRateLimiter = field(default_factory=AccountRateLimiter)
    acceptor: Acceptor = field(init=False)
    egress: EgressPolicy = field(init=False)
    media_files: MediaFiles = field(init=False)

    def __post_init__(self) -> None:
        self.acceptor = Acceptor(
            self.engine,
            self.clock,
            rate_check=self.rate_limiter.check,
            in_flight=requests_in_flight,
        )
        self.egress = EgressPolicy.from_settings(self.settings)
        self.media_files = media_files_for(self.settings, self.engine)

    def notify_queued(self) -> None:
        if self.wake_dispatcher is not None:
            self.wake_dispatcher()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The dependency (`ServicesDep`). async: FastAPI runs a plain `def` dependency in its
    thread pool, a thread hand-off and several turns of the event loop for every request."""
    return services_of(request)


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
    """The account id for a token; the same error for unknown and revoked tokens. Also applies
    the account's API rate limit."""
    if not token:
        raise MissingToken()
    now = services.clock.now()
    async with services.engine.connect() as conn:
        caller = await account_store.authenticate(conn, token=token, now=now)
    if caller is None:
        raise InvalidToken()
    note_account(caller.account_id)
    if caller.stale_token_id is not None:
        # last_used_at is a hint for people, refreshed at most once a minute: only then write.
        async with write_tx(services.engine) as conn:
            await account_store.touch_token(conn, token_id=caller.stale_token_id, now=now)
    wait = services.rate_limiter.check(caller.account_id, caller.api_rate)
    if wait is not None:
        raise RateLimited(wait, api_rate=caller.api_rate)
    return caller.account_id


async def require_account(request: Request, services: ServicesDep) -> str:
    return await authenticate(services, bearer_token(request))


AccountDep = Annotated[str, Depends(require_account)]
