"""Roles in the dashboard (SPEC §10, issue 12 point 3) and managing users (issue 15): only admins
add or change channels, users and callback settings; admins remove, promote, demote and reset
users, never the last admin; a removed or reset user's sessions end; nobody reaches another
account's users or tokens (issue 12 point 2)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dashboard import PASSWORD, add_user, client_for, sign_in, try_sign_in
from tests.support.harness import Harness
from tests.support.processes import cli, cli_json, wagate_env
from tests.support.tenants import add_tenant
from wagate.store import accounts as account_store
from wagate.store import callback_log
from wagate.store import users as user_store
from wagate.store.db import write_tx
from wagate.store.tables import channels, dashboard_sessions, users

ADMIN = "admin@example.com"
MEMBER = "member@example.com"


async def _user_id(gateway: Harness, email: str) -> str:
    async with gateway.engine.connect() as conn:
        found = await user_store.find_user(conn, email=email)
    assert found is not None
    return str(found["id"])


async def _snapshot(gateway: Harness) -> tuple[object, ...]:
    """Everything a member's forms could change: channels, the sandbox account's users, its
    callback settings."""
    async with gateway.engine.connect() as conn:
        chans = (await conn.execute(select(channels).order_by(channels.c.id))).all()
        people = (
            await conn.execute(
                select(users)
                .where(users.c.account_id == await gateway.account_id())
                .order_by(users.c.id)
            )
        ).all()
        callback = await callback_log.get_callback(conn, account_id=await gateway.account_id())
    return tuple(chans), tuple(people), callback


@pytest.fixture
async def member(gateway: Harness) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A member (not an admin) of the sandbox account, signed in, beside an admin and a real
    channel and callback URL of the account."""
    await add_user(gateway.engine, account="sandbox", email=ADMIN, is_admin=True)
    await add_user(gateway.engine, account="sandbox", email=MEMBER)
    async with write_tx(gateway.engine) as conn:
        await account_store.add_channel(
            conn, account_id=await gateway.account_id(), phone_number_id="106540352242922",
            waba_id="102290129340398", access_token="EAAG-token", app_secret="app-secret",
            verify_token="verify", graph_url="https://graph.facebook.com", mps=80,
            now=gateway.clock.now(),
        )  # fmt: skip
        await callback_log.set_callback(
            conn, account_id=await gateway.account_id(), url="http://127.0.0.1:9/hook"
        )
    async with client_for(gateway.app) as browser:
        yield browser, await sign_in(browser, MEMBER)


CHANNEL_FORM = {
    "phone_number_id": "555000111",
    "waba_id": "555000222",
    "access_token": "stolen-token",
    "app_secret": "stolen-secret",
    "verify_token": "v",
    "graph_url": "https://graph.facebook.com",
    "mps": "10",
}


def _admins_only(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert "Admins only" in answer.text and "Only an admin of this account" in answer.text


async def test_a_member_cannot_open_the_channel_forms(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    browser, _ = member
    channel = next(c for c in await _channels(gateway) if not c.is_sandbox)
    _admins_only(await browser.get("/channels/new"))
    _admins_only(await browser.get(f"/channels/{channel.id}/edit"))
    page = (await browser.get("/channels")).text
    assert "/channels/new" not in page and "/edit" not in page
    assert "Only an admin of this account can add or change channels" in page


async def _channels(gateway: Harness) -> list[account_store.Channel]:
    async with gateway.engine.connect() as conn:
        return await account_store.list_channels(conn, account_id=await gateway.account_id())


async def test_a_member_cannot_add_a_channel(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    browser, csrf = member
    before = await _snapshot(gateway)
    _admins_only(await browser.post("/channels", data={"csrf_token": csrf, **CHANNEL_FORM}))
    assert await _snapshot(gateway) == before


async def test_a_member_cannot_change_a_channel(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    browser, csrf = member
    channel = next(c for c in await _channels(gateway) if not c.is_sandbox)
    before = await _snapshot(gateway)
    changed = CHANNEL_FORM | {"phone_number_id": channel.phone_number_id, "graph_url": "https://x"}
    answer = await browser.post(f"/channels/{channel.id}", data={"csrf_token": csrf, **changed})
    _admins_only(answer)
    assert await _snapshot(gateway) == before


@pytest.mark.parametrize(
    "form",
    [
        {"action": "save", "url": "http://127.0.0.1:10/elsewhere"},
        {"action": "clear"},
        {"action": "rotate"},
    ],
)
async def test_a_member_cannot_change_the_callback_settings(
    gateway: Harness, member: tuple[httpx.AsyncClient, str], form: dict[str, str]
) -> None:
    browser, csrf = member
    before = await _snapshot(gateway)
    _admins_only(await browser.post("/callbacks/settings", data={"csrf_token": csrf, **form}))
    assert await _snapshot(gateway) == before
    page = (await browser.get("/callbacks")).text
    assert 'action="/callbacks/settings"' not in page
    secret = before[2].callback_secret  # type: ignore[attr-defined]
    assert secret and secret not in page  # the signing secret is an admin's to see


async def test_a_member_cannot_add_or_change_users(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    browser, csrf = member
    admin_id = await _user_id(gateway, ADMIN)
    me = await _user_id(gateway, MEMBER)
    before = await _snapshot(gateway)
    for path, form in (
        ("/settings/users", {"email": "new@example.com", "is_admin": "on"}),
        (f"/settings/users/{me}/role", {"role": "admin"}),
        (f"/settings/users/{admin_id}/role", {"role": "member"}),
        (f"/settings/users/{admin_id}/remove", {}),
        (f"/settings/users/{admin_id}/password", {"password": "a new password 123"}),
    ):
        _admins_only(await browser.post(path, data={"csrf_token": csrf, **form}))
    assert await _snapshot(gateway) == before
    page = (await browser.get("/settings/users")).text
    assert "/remove" not in page and "Only an admin can add, remove or change users" in page
    # The admin still signs in with their password.
    async with client_for(gateway.app) as other:
        assert (await try_sign_in(other, ADMIN)).status_code == 303


async def test_without_the_form_token_even_an_admin_is_refused(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    async with client_for(gateway.app) as admin:
        await sign_in(admin, ADMIN)
        refused = await admin.post(f"/settings/users/{await _user_id(gateway, MEMBER)}/remove")
    assert refused.status_code == 403 and "This form has expired" in refused.text


# --------------------------------------------------------------------------- managing users


async def _sessions(gateway: Harness, email: str) -> int:
    async with gateway.engine.connect() as conn:
        result = await conn.execute(
            select(func.count())
            .select_from(dashboard_sessions)
            .join(users, users.c.id == dashboard_sessions.c.user_id)
            .where(users.c.email == email)
        )
    return int(result.scalar_one())


async def test_an_admin_removes_a_user_whose_sessions_end(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    member_browser, _ = member
    async with client_for(gateway.app) as admin:
        csrf = await sign_in(admin, ADMIN)
        done = await admin.post(
            f"/settings/users/{await _user_id(gateway, MEMBER)}/remove",
            data={"csrf_token": csrf},
        )
        assert done.status_code == 303 and done.headers["location"].startswith(
            "/settings/users?done="
        )
        page = await admin.get(done.headers["location"])
        assert f"{MEMBER} was removed and signed out" in page.text
        assert MEMBER not in (await admin.get("/settings/users")).text
    assert await _sessions(gateway, MEMBER) == 0
    assert (await member_browser.get("/messages")).status_code == 303  # to the sign-in page
    async with client_for(gateway.app) as again:
        assert (await try_sign_in(again, MEMBER)).status_code == 401


async def test_an_admin_promotes_and_demotes_but_the_last_admin_stays(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    member_browser, _ = member
    admin_id, member_id = await _user_id(gateway, ADMIN), await _user_id(gateway, MEMBER)
    async with client_for(gateway.app) as admin:
        csrf = await sign_in(admin, ADMIN)
        # The only admin cannot be demoted or removed, not even by themselves.
        for path, form in (
            (f"/settings/users/{admin_id}/role", {"role": "member"}),
            (f"/settings/users/{admin_id}/remove", {}),
        ):
            refused = await admin.post(path, data={"csrf_token": csrf, **form})
            assert refused.status_code == 409, refused.text
            assert "last admin" in refused.text
        promoted = await admin.post(
            f"/settings/users/{member_id}/role",
            data={"csrf_token": csrf, "role": "admin"},
            follow_redirects=True,
        )
        assert f"{MEMBER} is now an admin" in promoted.text
        # At once: the member's next page is an admin's.
        assert (await member_browser.get("/channels/new")).status_code == 200
        demoted = await admin.post(
            f"/settings/users/{admin_id}/role",
            data={"csrf_token": csrf, "role": "member"},
            follow_redirects=True,
        )
        assert f"{ADMIN} is now a member" in demoted.text
        bad = await admin.post(
            f"/settings/users/{member_id}/role", data={"csrf_token": csrf, "role": "owner"}
        )
        assert bad.status_code == 403  # no longer an admin
    async with gateway.engine.connect() as conn:
        roles = dict((await conn.execute(select(users.c.email, users.c.is_admin))).all())
    assert roles == {ADMIN: False, MEMBER: True}


async def test_an_admin_resets_a_password_shown_once_and_the_user_is_signed_out(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    member_browser, _ = member
    member_id = await _user_id(gateway, MEMBER)
    async with client_for(gateway.app) as admin:
        csrf = await sign_in(admin, ADMIN)
        done = await admin.post(f"/settings/users/{member_id}/password", data={"csrf_token": csrf})
        assert done.status_code == 303
        page = (await admin.get(done.headers["location"])).text
        found = re.search(r'id="new-password" type="text" readonly value="([^"]+)"', page)
        assert found and "shown only this once" in page
        again = (await admin.get(done.headers["location"])).text  # a reload
        assert found.group(1) not in again and "shown only once" in again
        too_short = await admin.post(
            f"/settings/users/{member_id}/password", data={"csrf_token": csrf, "password": "short"}
        )
        assert too_short.status_code == 422 and "at least 10 characters" in too_short.text
    assert (await member_browser.get("/messages")).status_code == 303
    async with client_for(gateway.app) as fresh:
        assert (await try_sign_in(fresh, MEMBER, PASSWORD)).status_code == 401
        assert (await try_sign_in(fresh, MEMBER, found.group(1))).status_code == 303

    async with client_for(gateway.app) as admin:
        csrf = await sign_in(admin, ADMIN)
        chosen = await admin.post(
            f"/settings/users/{member_id}/password",
            data={"csrf_token": csrf, "password": "chosen by the admin"},
            follow_redirects=True,
        )
        assert f"{MEMBER} has a new password" in chosen.text
        assert "chosen by the admin" not in chosen.text
    async with client_for(gateway.app) as fresh:
        assert (await try_sign_in(fresh, MEMBER, "chosen by the admin")).status_code == 303


# --------------------------------------------------------------------------- across accounts


async def test_an_admin_of_another_account_reaches_none_of_its_users_or_tokens(
    gateway: Harness, member: tuple[httpx.AsyncClient, str]
) -> None:
    other = await add_tenant(gateway, "globex")
    await add_user(gateway.engine, account="globex", email="boss@globex.example", is_admin=True)
    member_id, admin_id = await _user_id(gateway, MEMBER), await _user_id(gateway, ADMIN)
    async with gateway.engine.connect() as conn:
        [a_token] = await account_store.list_tokens(conn, account_id=await gateway.account_id())
    before = await _snapshot(gateway)
    async with client_for(gateway.app) as globex:
        csrf = await sign_in(globex, "boss@globex.example")
        for path, form in (
            (f"/settings/users/{member_id}/remove", {}),
            (f"/settings/users/{admin_id}/role", {"role": "member"}),
            (f"/settings/users/{member_id}/password", {"password": "taken over 12345"}),
            (f"/settings/api/tokens/{a_token['id']}/revoke", {}),
            (f"/settings/api/tokens/{a_token['prefix']}/revoke", {}),
        ):
            answer = await globex.post(path, data={"csrf_token": csrf, **form})
            assert answer.status_code == 404, (path, answer.text)
        shown = (await globex.get("/settings/users")).text
        shown += (await globex.get("/settings/api")).text
    assert MEMBER not in shown and ADMIN not in shown and a_token["prefix"] not in shown
    assert await _snapshot(gateway) == before
    async with gateway.engine.connect() as conn:
        [still] = await account_store.list_tokens(conn, account_id=await gateway.account_id())
    assert still["revoked_at"] is None
    assert (await gateway.client.get("/v1/channels", headers=gateway.auth)).status_code == 200
    assert (await gateway.client.get("/v1/channels", headers=other.auth)).status_code == 200


def test_the_cli_scopes_token_revocation_to_the_account_named(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    cli_json(env, "accounts", "create", "--name", "acme")
    cli_json(env, "accounts", "create", "--name", "globex")
    made = cli_json(env, "tokens", "create", "--account", "acme", "--name", "ci")
    refused = cli(env, "tokens", "revoke", made["id"], "--account", "globex", check=False)
    assert refused.returncode != 0 and "no live token" in refused.stderr
    assert cli_json(env, "tokens", "list", "--account", "acme")[0]["revoked_at"] is None
    assert cli_json(env, "tokens", "list", "--account", "globex") == []


def test_the_cli_removes_promotes_and_demotes_users_but_keeps_the_last_admin(
    tmp_path: Path,
) -> None:
    env = wagate_env(tmp_path / "data")
    cli_json(env, "accounts", "create", "--name", "acme")
    for email, extra in (("a@acme.example", ["--admin"]), ("b@acme.example", [])):
        cli_json(env, "users", "create", "--account", "acme", "--email", email, *extra)
    demote = ("users", "set-role", "--email", "a@acme.example", "--role", "member")
    last = cli(env, *demote, check=False)
    assert last.returncode != 0 and "last admin" in last.stderr
    gone = cli(env, "users", "remove", "--email", "a@acme.example", check=False)
    assert gone.returncode != 0 and "last admin" in gone.stderr
    promoted = cli_json(env, "users", "set-role", "--email", "b@acme.example", "--role", "admin")
    assert promoted == {"email": "b@acme.example", "role": "admin"}
    assert cli_json(env, "users", "remove", "--email", "a@acme.example")["removed"] is True
    listed = cli_json(env, "users", "list")
    assert [(u["email"], u["is_admin"]) for u in listed] == [("b@acme.example", True)]
    unknown = cli(env, "users", "remove", "--email", "nobody@acme.example", check=False)
    assert unknown.returncode != 0 and "no user with that email" in unknown.stderr
