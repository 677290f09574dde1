"""Checking a sign-in: argon2 off the event loop, failures slowed and then blocked per email,
unknown emails treated exactly like known ones (same work, same answers, same timing)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from wagate.api.deps import Services
from wagate.dashboard.rules import FAILED_SIGN_IN_SECONDS, block_after
from wagate.store import users as user_store
from wagate.store.db import write_tx


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_token: str


@dataclass(frozen=True, slots=True)
class WrongPassword:
    """Wrong email or password (the two are never told apart)."""


@dataclass(frozen=True, slots=True)
class Blocked:
    seconds: float


Outcome = SignedIn | WrongPassword | Blocked


class UnknownEmails:
    """Failure counts for emails that have no user, kept in memory, so that guessing at an
    unknown email gets blocked just like guessing at a known one (otherwise the block would
    tell which emails exist)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()

    def blocked_until(self, email: str) -> datetime | None:
        return self._seen.get(email, (0, None))[1]

    def failed(self, email: str, now: datetime) -> datetime | None:
        failures = self._seen.pop(email, (0, None))[0] + 1
        block = block_after(failures)
        until = now + block if block else None
        self._seen[email] = (failures, until)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return until


async def attempt_sign_in(
    services: Services, unknown: UnknownEmails, *, email: str, password: str
) -> Outcome:
    """Check `email` and `password`; on success open a session. Failed and blocked attempts
    answer no sooner than FAILED_SIGN_IN_SECONDS after they started."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await _check(services, unknown, user_store.normalize_email(email), password)
    if not isinstance(outcome, SignedIn):
        await asyncio.sleep(max(0.0, FAILED_SIGN_IN_SECONDS - (loop.time() - started)))
    return outcome


async def _check(services: Services, unknown: UnknownEmails, email: str, password: str) -> Outcome:
    now = services.clock.now()
    async with services.engine.connect() as conn:
        user = await user_store.find_user(conn, email=email)
    if user is None:
        await asyncio.to_thread(user_store.verify_password, user_store.dummy_hash(), password)
        until = unknown.blocked_until(email)
        if until is None or until <= now:
            until = unknown.failed(email, now)
        return _blocked(until, now) or WrongPassword()
    until = user["blocked_until"]
    if until is not None and until > now:
        # Blocked: the password is not even looked at, but the same time is spent.
        await asyncio.to_thread(user_store.verify_password, user_store.dummy_hash(), password)
        return Blocked((until - now).total_seconds())
    if not await asyncio.to_thread(user_store.verify_password, user["password_hash"], password):
        async with write_tx(services.engine) as conn:
            failures = await user_store.count_failed_sign_in(conn, user_id=user["id"])
            block = block_after(failures)
            until = now + block if block else None
            if until is not None:
                await user_store.block_sign_in(conn, user_id=user["id"], until=until)
        return _blocked(until, now) or WrongPassword()
    async with write_tx(services.engine) as conn:
        token = await user_store.start_session(conn, user_id=user["id"], now=now)
    return SignedIn(token)


def _blocked(until: datetime | None, now: datetime) -> Blocked | None:
    return Blocked((until - now).total_seconds()) if until is not None and until > now else None
