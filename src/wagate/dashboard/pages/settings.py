"""Settings → API (the account's API tokens) and Settings → Users (who may sign in)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.dashboard.rules import email_problem, password_problem
from wagate.dashboard.signin import HashingBusy
from wagate.dashboard.web import (
    AdminForm,
    DashboardError,
    PageNotFound,
    Posted,
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

Change = Callable[[AsyncConnection, str, str], Awaitable[dict[str, Any]]]
"""A change to a user: (connection, the admin's account, the user's id) -> what to show."""


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
# Only admins add, remove, promote, demote or reset users (SPEC §10); every change answers with
# a redirect (POST, redirect, GET) and what to show once (a new password) travels as a flash.


async def _users_page(
    request: Request,
    user: SignedInUser,
    *,
    status: int = 200,
    flash: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    email: str = "",
    shown_once_gone: bool = False,
) -> Response:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        people = await user_store.list_users(conn, account_id=user.account_id)
    return render(
        request,
        "settings_users.html",
        status=status,
        people=people,
        flash=flash or {},
        errors=errors or {},
        email=email,
        shown_once_gone=shown_once_gone,
    )


@router.get("/settings/users")
async def users(request: Request, user: SignedIn) -> Response:
    done = request.query_params.get("done")
    if not done:
        return await _users_page(request, user)
    shown = dashboard_of(request).flashes.take(user.csrf_token, done)
    if shown is None:  # a reload: a password is shown once
        return await _users_page(request, user, shown_once_gone=True)
    return await _users_page(request, user, flash=shown)


def _done(request: Request, user: SignedInUser, flash: dict[str, Any]) -> Response:
    key = dashboard_of(request).flashes.put(user.csrf_token, flash)
    return see_other(f"/settings/users?done={key}")


async def _hash(request: Request, password: str) -> str:
    try:
        return await dashboard_of(request).hashing.run(user_store.hash_password, password)
    except HashingBusy:
        raise DashboardError(
            "The server is busy checking passwords. Try again in a few seconds.",
            title="Busy",
            status=503,
        ) from None


@router.post("/settings/users")
async def add_user(request: Request, posted: AdminForm) -> Response:
    email = user_store.normalize_email(posted.text("email"))
    problem = email_problem(email)
    if problem:
        return await _users_page(
            request, posted.user, status=422, errors={"email": problem}, email=email
        )
    password = secrets.token_urlsafe(12)
    password_hash = await _hash(request, password)
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
    return _done(request, posted.user, {"kind": "added", "email": email, "password": password})


async def _change(request: Request, posted: Posted, user_id: str, change: Change) -> Response:
    """Run `change` on a user of the admin's own account; 404 for anyone else's users, 409
    when it would leave the account without an admin."""
    services = dashboard_of(request).services
    try:
        async with write_tx(services.engine) as conn:
            flash = await change(conn, posted.user.account_id, user_id[:64])
    except user_store.UnknownUser:
        raise PageNotFound("This account has no such user.") from None
    except user_store.LastAdmin as exc:
        raise DashboardError(
            f"{exc}. An account always keeps one admin, who can manage its channels, users "
            "and callbacks.",
            title="The last admin stays",
            status=409,
        ) from None
    return _done(request, posted.user, flash)


@router.post("/settings/users/{user_id}/remove")
async def remove_user(user_id: str, request: Request, posted: AdminForm) -> Response:
    async def change(conn: AsyncConnection, account_id: str, target: str) -> dict[str, Any]:
        gone = await user_store.remove_user(conn, account_id=account_id, user_id=target)
        return {"kind": "removed", "email": gone["email"]}

    return await _change(request, posted, user_id, change)


@router.post("/settings/users/{user_id}/role")
async def set_role(user_id: str, request: Request, posted: AdminForm) -> Response:
    role = posted.text("role")
    if role not in ("admin", "member"):
        raise DashboardError("Choose admin or member.", status=422)

    async def change(conn: AsyncConnection, account_id: str, target: str) -> dict[str, Any]:
        changed = await user_store.set_admin(
            conn, account_id=account_id, user_id=target, is_admin=role == "admin"
        )
        return {"kind": "role", "email": changed["email"], "role": role}

    return await _change(request, posted, user_id, change)


@router.post("/settings/users/{user_id}/password")
async def reset_password(user_id: str, request: Request, posted: AdminForm) -> Response:
    """A new password for the user: the admin's, or a generated one shown once. The user's
    sessions end, and any sign-in block on them is lifted."""
    chosen = posted.text("password")
    problem = password_problem(chosen) if chosen else None
    if problem:
        raise DashboardError(f"The new password: {problem}", status=422)
    password = chosen or secrets.token_urlsafe(12)
    password_hash = await _hash(request, password)
    reset_emails: list[str] = []

    async def change(conn: AsyncConnection, account_id: str, target: str) -> dict[str, Any]:
        reset = await user_store.reset_password(
            conn, account_id=account_id, user_id=target, password_hash=password_hash
        )
        reset_emails.append(str(reset["email"]))
        shown = None if chosen else password
        return {"kind": "password", "email": reset["email"], "password": shown}

    answer = await _change(request, posted, user_id, change)
    for email in reset_emails:  # their sign-in blocks end with the old password
        dashboard_of(request).sign_in_throttle.forget_email(email)
    return answer
