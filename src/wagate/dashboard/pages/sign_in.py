"""Signing in and out."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard import signin
from wagate.dashboard.rules import wait_words
from wagate.dashboard.web import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    PostedForm,
    SignInRequired,
    csrf_matches,
    dashboard_of,
    is_https,
    read_form,
    render,
    safe_next,
    see_other,
    signed_in,
)
from wagate.store import users as user_store
from wagate.store.db import write_tx

router = APIRouter(include_in_schema=False)


def _form(
    request: Request,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    # The sign-in form has no session to hold its CSRF token: the token goes in a cookie and
    # in the form, and a POST must bring both (double submit).
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        status=status,
        headers=headers,
        sign_in_token=token,
        next=next_url,
        email=email,
        error=error,
        signed_out="signed_out" in request.query_params,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=12 * 3600,
        path="/sign-in",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )
    return response


@router.get("/")
async def home(request: Request) -> Response:
    return see_other("/messages")


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    try:
        await signed_in(request)
    except SignInRequired:
        return _form(request, next_url=next_url)
    return see_other(next_url)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    next_url = safe_next(form.get("next"))
    if not csrf_matches(request.cookies.get(SIGN_IN_COOKIE, ""), form.get(CSRF_FIELD)):
        return _form(
            request,
            next_url=next_url,
            email=email,
            status=403,
            error="This sign-in form had expired. Enter your email and password again.",
        )
    if not email.strip() or not password:
        return _form(
            request, next_url=next_url, email=email, status=422,
            error="Enter your email and your password.",
        )  # fmt: skip
    dashboard = dashboard_of(request)
    outcome = await signin.attempt_sign_in(
        dashboard.services,
        dashboard.sign_in_throttle,
        dashboard.hashing,
        address=signin.address_key(request.client.host if request.client else None),
        email=email,
        password=password,
    )
    if isinstance(outcome, signin.Busy):
        return _form(
            request,
            next_url=next_url,
            email=email,
            status=503,
            headers={"Retry-After": str(round(outcome.seconds))},
            error="Too many sign-ins are being checked right now. Try again in a few seconds.",
        )
    if isinstance(outcome, signin.Blocked):
        return _form(
            request,
            next_url=next_url,
            email=email,
            status=429,
            headers={"Retry-After": str(max(1, round(outcome.seconds)))},
            error=(
                "Too many failed sign-ins for this email from your address. "
                f"Try again in {wait_words(outcome.seconds)}."
            ),
        )
    if isinstance(outcome, signin.WrongPassword):
        return _form(
            request, next_url=next_url, email=email, status=401,
            error="That email and password do not match. Check both and try again.",
        )  # fmt: skip
    response = see_other(next_url)
    response.set_cookie(
        SESSION_COOKIE,
        outcome.session_token,
        max_age=int(user_store.SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, posted: PostedForm) -> Response:
    services = dashboard_of(request).services
    async with write_tx(services.engine) as conn:
        await user_store.end_session(conn, token=request.cookies.get(SESSION_COOKIE, ""))
    response = see_other("/sign-in?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
