"""Checking a sign-in (SPEC §10): argon2 in a small pool of its own, failures counted per
(client address, email) so that a flood from elsewhere cannot lock the real user out, unknown
emails treated exactly like known ones (same answers, same timing).

- `PasswordHashing`: argon2 (64 MiB, ~0.2 s) runs on `WORKERS` threads of its own, at a
  low CPU priority, with at most `WAITING` more queued; beyond that a sign-in is refused at
  once (503 with Retry-After), so a flood never queues without end, never takes the threads that
  `/readyz`, the database and the API use (asyncio's default pool), and never takes the CPU
  from the event loop.
- `SignInThrottle`: failure counts in a bounded LRU (at most `capacity` keys; attacker-chosen
  emails and addresses evict the oldest entries, never grow memory). A key is the address and
  the email together; an address also has a count across all emails, with a higher allowance,
  so that guessing many emails from one address is slowed too. IPv6 addresses count by /64."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from wagate.api.deps import Services
from wagate.dashboard.rules import FAILED_SIGN_IN_SECONDS, FREE_FAILURES, block_after
from wagate.store import users as user_store
from wagate.store.db import write_tx

T = TypeVar("T")

ADDRESS_FREE_FAILURES = 4 * FREE_FAILURES
"""Failed sign-ins from one address, whatever the emails, before it is slowed too."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_token: str


@dataclass(frozen=True, slots=True)
class WrongPassword:
    """Wrong email or password (the two are never told apart)."""


@dataclass(frozen=True, slots=True)
class Blocked:
    seconds: float


@dataclass(frozen=True, slots=True)
class Busy:
    """Too many sign-ins are being checked at once: try again in `seconds`."""

    seconds: float = 2.0


Outcome = SignedIn | WrongPassword | Blocked | Busy


class HashingBusy(Exception):
    """The password-hashing pool and its queue are full."""


class PasswordHashing:
    """argon2 on a bounded pool of its own: `run` raises HashingBusy when `workers + waiting`
    hashes are in flight already, instead of queueing."""

    # One thread on a machine of two cores or fewer: a hash at a time (argon2 itself runs its
    # lanes on several threads) leaves the other core to the API.
    WORKERS = 1 if (os.cpu_count() or 1) <= 2 else 2
    WAITING = 4

    def __init__(self, workers: int = WORKERS, waiting: int = WAITING) -> None:
        self.limit = workers + waiting
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="wagate-argon2", initializer=_low_priority
        )
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return self._in_flight >= self.limit

    async def run(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._in_flight >= self.limit:
                raise HashingBusy()
            self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


NICENESS = 10
"""The hashing threads' niceness: the event loop (0) outweighs them ten to one for the CPU,
while they are not starved outright on a machine busy with other work (19 starved them for
seconds)."""


def _low_priority() -> None:
    """Run this hashing thread (and the threads argon2 starts from it, which inherit it) at a
    low CPU priority: on a busy machine the event loop, which answers the API and the probes,
    goes first, and hashing takes the time left (Linux: niceness is per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


def _verify_unknown(password: str) -> bool:
    """The same work as checking a real user's password (the dummy hash made in the pool)."""
    user_store.verify_password(user_store.dummy_hash(), password)
    return False


def address_key(host: str | None) -> str:
    """Who is signing in, as far as counting goes: the address, an IPv6 one by its /64 (one
    machine usually holds a whole /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SignInThrottle:
    """Failures per (address, email) and per address, in at most `capacity` entries."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], tuple[int, datetime | None]] = OrderedDict()

    def blocked_until(self, address: str, email: str, now: datetime) -> datetime | None:
        """When the later of the pair's and the address's blocks ends, if either is on."""
        ends = [
            until
            for key in ((address, email), (address, "*"))
            if (until := self._seen.get(key, (0, None))[1]) is not None and until > now
        ]
        return max(ends) if ends else None

    def failed(self, address: str, email: str, now: datetime) -> datetime | None:
        """Count a failure; returns when the resulting block ends (None: not blocked)."""
        pair = self._count((address, email), now, lambda n: block_after(n))
        wide = self._count(
            (address, "*"),
            now,
            lambda n: (
                block_after(n - ADDRESS_FREE_FAILURES + FREE_FAILURES)
                if n >= ADDRESS_FREE_FAILURES
                else None
            ),
        )
        ends = [u for u in (pair, wide) if u is not None]
        return max(ends) if ends else None

    def succeeded(self, address: str, email: str) -> None:
        self._seen.pop((address, email), None)

    def forget_email(self, email: str) -> None:
        """Lift every block on `email` (an admin reset its password)."""
        for key in [k for k in self._seen if k[1] == email]:
            del self._seen[key]

    def _count(
        self, key: tuple[str, str], now: datetime, block: Callable[[int], timedelta | None]
    ) -> datetime | None:
        failures = self._seen.pop(key, (0, None))[0] + 1
        length = block(failures)
        until = now + length if length else None
        self._seen[key] = (failures, until)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return until

    def __len__(self) -> int:
        return len(self._seen)


async def attempt_sign_in(
    services: Services,
    throttle: SignInThrottle,
    hashing: PasswordHashing,
    *,
    address: str,
    email: str,
    password: str,
) -> Outcome:
    """Check `email` and `password` from `address`; on success open a session. Failed, blocked
    and refused (busy) attempts answer no sooner than FAILED_SIGN_IN_SECONDS after they started."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await _check(
        services, throttle, hashing, address, user_store.normalize_email(email), password
    )
    if not isinstance(outcome, SignedIn):
        # Refusals too: a flooding client waits for each answer instead of looping on them.
        await asyncio.sleep(max(0.0, FAILED_SIGN_IN_SECONDS - (loop.time() - started)))
    return outcome


async def _check(
    services: Services,
    throttle: SignInThrottle,
    hashing: PasswordHashing,
    address: str,
    email: str,
    password: str,
) -> Outcome:
    now = services.clock.now()
    until = throttle.blocked_until(address, email, now)
    if until is not None:
        # Counted per address, so a block says nothing of whether the email exists, and
        # checking no password keeps a blocked flood off the hashing pool.
        return Blocked((until - now).total_seconds())
    if hashing.full:  # answered before any lookup: a flood's refusals cost next to nothing
        return Busy()
    async with services.engine.connect() as conn:
        user = await user_store.find_user(conn, email=email)
    try:
        if user is None:
            matches = await hashing.run(_verify_unknown, password)
        else:
            matches = await hashing.run(user_store.verify_password, user["password_hash"], password)
    except HashingBusy:
        return Busy()
    if user is None or not matches:
        until = throttle.failed(address, email, services.clock.now())
        return _blocked(until, now) or WrongPassword()
    throttle.succeeded(address, email)
    async with write_tx(services.engine) as conn:
        token = await user_store.start_session(conn, user_id=user["id"], now=now)
    return SignedIn(token)


def _blocked(until: datetime | None, now: datetime) -> Blocked | None:
    return Blocked((until - now).total_seconds()) if until is not None and until > now else None
