"""Using the dashboard over HTTP in tests: users, a signed-in client with its CSRF token, and a
count of the SQL statements a page runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.harness import BASE
from wagate.clock import Clock, SystemClock
from wagate.store import accounts as account_store
from wagate.store import users as user_store
from wagate.store.db import write_tx

PASSWORD = "correct horse battery"
_SIGN_IN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SESSION_TOKEN = re.compile(r'"X-CSRF-Token": "([^"]+)"')


async def add_user(
    engine: AsyncEngine,
    *,
    account: str,
    email: str,
    password: str = PASSWORD,
    is_admin: bool = False,
    clock: Clock | None = None,
) -> str:
    """A dashboard user of `account` (made if missing); returns the account's id."""
    now = (clock or SystemClock()).now()
    async with write_tx(engine) as conn:
        found = await account_store.find_account(conn, name=account)
        if found is None:
            found = await account_store.create_account(conn, name=account, now=now)
        await user_store.create_user(
            conn,
            account_id=found["id"],
            email=email,
            password_hash=user_store.hash_password(password),
            is_admin=is_admin,
            now=now,
        )
    return str(found["id"])


def client_for(app: FastAPI, base_url: str = BASE) -> httpx.AsyncClient:
    """A browser of its own (its own cookie jar) talking to the app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def sign_in_form(client: httpx.AsyncClient) -> str:
    """Open the sign-in page; returns the form's CSRF token (its cookie is now in the jar)."""
    page = await client.get("/sign-in")
    assert page.status_code == 200, page.text
    found = _SIGN_IN_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


async def try_sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    token = await sign_in_form(client)
    form = {"email": email, "password": password, "csrf_token": token} | extra
    return await client.post("/sign-in", data=form)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in; returns the session's CSRF token, as the pages carry it."""
    answer = await try_sign_in(client, email, password)
    assert answer.status_code == 303, answer.text
    page = await client.get("/messages")
    assert page.status_code == 200, page.text
    return csrf_of(page)


def csrf_of(page: httpx.Response) -> str:
    found = _SESSION_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


@contextmanager
def counting_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` meanwhile (transaction control left out)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
