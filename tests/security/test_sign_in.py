"""Sign-in throttling that cannot lock the real user out, and password hashing in a bounded pool
of its own (SPEC §10, issue 12 point 6). Speed under a flood is measured by
benchmarks/bench_signin_flood.py, not here."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.dashboard import PASSWORD, add_user, sign_in, try_sign_in
from tests.support.harness import BASE, Harness, running_gateway
from tests.support.tenants import sqlite_url
from wagate.clock import ManualClock
from wagate.dashboard.rules import FREE_FAILURES
from wagate.dashboard.signin import (
    ADDRESS_FREE_FAILURES,
    HashingBusy,
    PasswordHashing,
    SignInThrottle,
    address_key,
)
from wagate.store import users as user_store

ADMIN = "admin@localhost"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = ManualClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data", clock=clock) as harness:
        await add_user(harness.engine, account="sandbox", email=ADMIN, is_admin=True)
        yield harness


def browser_at(gateway: Harness, address: str) -> httpx.AsyncClient:
    """A browser whose requests come from `address`."""
    transport = httpx.ASGITransport(app=gateway.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def test_a_flood_from_elsewhere_does_not_lock_the_real_user_out(gateway: Harness) -> None:
    async with browser_at(gateway, "203.0.113.9") as attacker:
        codes = [(await try_sign_in(attacker, ADMIN, "guess")).status_code for _ in range(8)]
        assert codes[: FREE_FAILURES - 1] == [401] * (FREE_FAILURES - 1)
        assert set(codes[FREE_FAILURES - 1 :]) == {429}
        # The attacker's address stays blocked, even with the right password.
        assert (await try_sign_in(attacker, ADMIN)).status_code == 429
    async with browser_at(gateway, "198.51.100.20") as owner:
        signed_in = await try_sign_in(owner, ADMIN, PASSWORD)
    assert signed_in.status_code == 303, signed_in.text


async def test_guessing_many_emails_from_one_address_is_slowed_too(gateway: Harness) -> None:
    async with browser_at(gateway, "203.0.113.10") as attacker:
        codes = [
            (await try_sign_in(attacker, f"user{n}@example.com", "guess")).status_code
            for n in range(ADDRESS_FREE_FAILURES + 1)
        ]
        assert codes[: ADDRESS_FREE_FAILURES - 1] == [401] * (ADDRESS_FREE_FAILURES - 1)
        assert codes[-1] == 429
    async with browser_at(gateway, "198.51.100.21") as owner:
        assert (await try_sign_in(owner, ADMIN)).status_code == 303


async def test_an_ipv6_attacker_counts_as_one_per_64(gateway: Harness) -> None:
    for n in range(FREE_FAILURES):
        async with browser_at(gateway, f"2001:db8:1:2::{n + 1:x}") as attacker:
            last = await try_sign_in(attacker, ADMIN, "guess")
    assert last.status_code == 429
    async with browser_at(gateway, "2001:db8:1:3::1") as owner:
        assert (await try_sign_in(owner, ADMIN)).status_code == 303


async def test_a_full_hashing_pool_refuses_with_retry_after_and_readyz_does_not_wait(
    gateway: Harness,
) -> None:
    hashing = PasswordHashing(workers=1, waiting=1)
    gateway.app.state.dashboard.hashing = hashing
    release = threading.Event()
    held = [asyncio.create_task(hashing.run(release.wait, 30)) for _ in range(2)]
    try:
        await asyncio.sleep(0.05)
        async with browser_at(gateway, "198.51.100.30") as owner:
            busy = await try_sign_in(owner, ADMIN)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "2"
            assert "Try again in a few seconds" in busy.text
            # The API's and the probes' threads are not the hashing pool's.
            ready = await gateway.client.get("/readyz")
            assert ready.status_code == 200, ready.text
        release.set()
        await asyncio.gather(*held)
        async with browser_at(gateway, "198.51.100.30") as owner:
            assert (await try_sign_in(owner, ADMIN)).status_code == 303
    finally:
        release.set()
        hashing.close()


async def test_the_pool_refuses_beyond_its_bound() -> None:
    hashing = PasswordHashing(workers=1, waiting=0)
    release = threading.Event()
    first = asyncio.create_task(hashing.run(release.wait, 30))
    await asyncio.sleep(0.05)
    with pytest.raises(HashingBusy):
        await hashing.run(lambda: True)
    release.set()
    assert await first is True
    assert await hashing.run(lambda: "free again") == "free again"
    hashing.close()


def test_failure_counts_stay_bounded_whatever_the_flood() -> None:
    throttle = SignInThrottle(capacity=1000)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    for n in range(20_000):
        throttle.failed(f"198.51.{n % 250}.{n // 250}", f"victim{n}@example.com", now)
    assert len(throttle) <= 1000


def test_addresses_are_counted_as_people_hold_them() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key(None) == "unknown"


async def test_an_admins_reset_lifts_the_users_block(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email="forgetful@example.com")
    async with browser_at(gateway, "198.51.100.40") as user:
        for _ in range(FREE_FAILURES):
            last = await try_sign_in(user, "forgetful@example.com", "not it")
        assert last.status_code == 429
    async with browser_at(gateway, "198.51.100.41") as admin:
        csrf = await sign_in(admin, ADMIN)
        async with gateway.engine.connect() as conn:
            found = await user_store.find_user(conn, email="forgetful@example.com")
        assert found is not None
        reset = await admin.post(
            f"/settings/users/{found['id']}/password",
            data={"csrf_token": csrf, "password": "a fresh password"},
        )
        assert reset.status_code == 303
    async with browser_at(gateway, "198.51.100.40") as user:
        again = await try_sign_in(user, "forgetful@example.com", "a fresh password")
    assert again.status_code == 303, again.text
