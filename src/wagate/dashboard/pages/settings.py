"""Settings → API (the account's API tokens) and Settings → Users (who may sign in)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard.rules import email_problem
from wagate.dashboard.web import (
    DashboardError,
    PageNotFound,
    PostedForm,
    SignedIn,
    dashboard_of,
    render,
    see_other,
)
from wagate.store import accounts as account_store
from wagate.store import users as user_store
from wagate.store.db import write_tx
from wagate.store.users import SignedInUser

router = APIRouter(include_in_schema=False)


async def _tokens_page(
    request: Request,
    user: SignedInUser,
    *,
    status: int = 200,
    new_token: str | None = None,
    new_name: str = "",
    errors: dict[str, str] | None = None,
    token_gone: bool = False,
) -> Response:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        tokens = await account_store.list_tokens(conn, account_id=user.account_id)
    tokens.sort(key=lambda t: t["created_at"], reverse=True)
    public_url = services.settings.public_url
    return render(
        request,
        "settings_api.html",
        status=status,
        live=[t for t in tokens if t["revoked_at"] is None],
        revoked=[t for t in tokens if t["revoked_at"] is not None],
        new_token=new_token,
        new_name=new_name,
        errors=errors or {},
        base_url=(public_url or str(request.base_url)).rstrip("/"),
        revoked_prefix=request.query_params.get("revoked"),
        token_gone=token_gone,
    )


@router.get("/settings")
async def settings_home(user: SignedIn) -> Response:
    return see_other("/settings/api")


@router.get("/settings/api")
async def tokens(request: Request, user: SignedIn) -> Response:
    created = request.query_params.get("created")
    if not created:
        return await _tokens_page(request, user)
    shown = dashboard_of(request).flashes.take(user.csrf_token, created)
    if shown is None:  # a reload, or a link opened elsewhere: the token was shown once
        return await _tokens_page(request, user, token_gone=True)
    return await _tokens_page(request, user, new_token=shown["token"], new_name=shown["name"])


@router.post("/settings/api/tokens")
async def create_token(request: Request, posted: PostedForm) -> Response:
    name = posted.text("name").strip()
    if not name or len(name) > 200:
        problem = "Give the token a name (at most 200 characters)."
        return await _tokens_page(
            request, posted.user, status=422, new_name=name, errors={"name": problem}
        )
    services = dashboard_of(request).services
    async with write_tx(services.engine) as conn:
        token, _ = await account_store.create_token(
            conn, account_id=posted.user.account_id, name=name, now=services.clock.now()
        )
    # Redirect, so that reloading the page that shows the token cannot make a second one.
    shown = dashboard_of(request).flashes.put(
        posted.user.csrf_token, {"token": token, "name": name}
    )
    return see_other(f"/settings/api?created={shown}")


@router.post("/settings/api/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request, posted: PostedForm) -> Response:
    services = dashboard_of(request).services
    async with write_tx(services.engine) as conn:
        revoked = await account_store.revoke_token(
            conn, token_id=token_id, account_id=posted.user.account_id, now=services.clock.now()
        )
    if not revoked:
        raise PageNotFound("This account has no live API token with that id.")
    return see_other(f"/settings/api?revoked={token_id}")


# ---------------------------------------------------------------- users


async def _users_page(
    request: Request,
    user: SignedInUser,
    *,
    status: int = 200,
    created: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    email: str = "",
) -> Response:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        people = await user_store.list_users(conn, account_id=user.account_id)
    return render(
        request,
        "settings_users.html",
        status=status,
        people=people,
        created=created,
        errors=errors or {},
        email=email,
    )


@router.get("/settings/users")
async def users(request: Request, user: SignedIn) -> Response:
    return await _users_page(request, user)


@router.post("/settings/users")
async def add_user(request: Request, posted: PostedForm) -> Response:
    if not posted.user.is_admin:
        raise DashboardError(
            "Only an admin of this account can add users.", title="Admins only", status=403
        )
    email = user_store.normalize_email(posted.text("email"))
    problem = email_problem(email)
    if problem:
        return await _users_page(
            request, posted.user, status=422, errors={"email": problem}, email=email
        )
    password = secrets.token_urlsafe(12)
    password_hash = await asyncio.to_thread(user_store.hash_password, password)
    services = dashboard_of(request).services
    try:
        async with write_tx(services.engine) as conn:
            await user_store.create_user(
                conn,
                account_id=posted.user.account_id,
                email=email,
                password_hash=password_hash,
                is_admin=posted.text("is_admin") == "on",
                now=services.clock.now(),
            )
    except account_store.AlreadyExists:
        return await _users_page(
            request,
            posted.user,
            status=422,
            errors={"email": "Someone already signs in with this email."},
            email=email,
        )
    return await _users_page(
        request, posted.user, status=201, created={"email": email, "password": password}
    )
