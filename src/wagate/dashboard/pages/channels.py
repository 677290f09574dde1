"""Channels: the account's WhatsApp numbers, and what to paste into Meta's app settings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard import queries
from wagate.dashboard.rules import (
    DEFAULT_GRAPH_URL,
    ChannelForm,
    check_channel_form,
    mask_secret,
)
from wagate.dashboard.web import (
    AdminForm,
    AdminSignedIn,
    PageNotFound,
    Posted,
    SignedIn,
    dashboard_of,
    render,
    see_other,
)
from wagate.store import accounts as account_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx

router = APIRouter(include_in_schema=False)

_FIELDS = (
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "verify_token",
    "graph_url",
    "mps",
)


def webhook_url(request: Request, channel: Channel | None = None) -> str:
    """The URL Meta must call (the configured public URL, else the one this page came from):
    the channel's own, or the shared one."""
    public = dashboard_of(request).services.settings.public_url
    shared = (public or str(request.base_url)).rstrip("/") + "/webhooks/whatsapp"
    return f"{shared}/{channel.id}" if channel is not None else shared


def _values(channel: Channel | None) -> dict[str, str]:
    if channel is None:
        return {"graph_url": DEFAULT_GRAPH_URL, "mps": "80"}
    return {
        "phone_number_id": channel.phone_number_id,
        "waba_id": channel.waba_id,
        "display_phone_number": channel.display_phone_number or "",
        "verify_token": channel.verify_token,
        "graph_url": channel.graph_url,
        "mps": str(channel.mps),
    }


@router.get("/channels")
async def channel_list(request: Request, user: SignedIn) -> Response:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        found = await account_store.list_channels(conn, account_id=user.account_id)
    gate = getattr(request.app.state, "sandbox_gate", None)
    return render(
        request,
        "channels.html",
        channels=found,
        sandbox_on=gate is not None and gate.serving,
        mask=mask_secret,
        webhook_url=webhook_url(request),
        channel_webhook_url=lambda channel: webhook_url(request, channel),
        saved=request.query_params.get("saved"),
    )


def _form_page(
    request: Request,
    *,
    channel: Channel | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    gate = getattr(request.app.state, "sandbox_gate", None)
    return render(
        request,
        "channel_form.html",
        status=status,
        channel=channel,
        # Adding a real channel turns the sandbox off at once: say so before it happens.
        sandbox_goes=gate is not None and gate.serving and not gate.keep,
        values=values,
        errors=errors or {},
        mask=mask_secret,
        webhook_url=webhook_url(request, channel),
    )


@router.get("/channels/new")
async def new_channel(request: Request, user: AdminSignedIn) -> Response:
    return _form_page(request, channel=None, values=_values(None))


async def _checked(
    request: Request, posted: Posted, *, new: bool
) -> tuple[ChannelForm | None, dict[str, str]]:
    """The form's values, or every problem with them: the form's rules, then whether the
    egress policy lets wagate reach its Graph URL (url_not_allowed, with the reason)."""
    form, problems = check_channel_form(dict(posted.form), new=new)
    errors = {p.field: p.message for p in problems}
    if form is not None:
        refusal = await dashboard_of(request).services.egress.url_problem(form.graph_url)
        if refusal is not None:
            return None, {"graph_url": refusal}
    return form, errors


@router.post("/channels")
async def add_channel(request: Request, posted: AdminForm) -> Response:
    values = {name: posted.text(name) for name in _FIELDS}
    form, errors = await _checked(request, posted, new=True)
    if form is not None:
        services = dashboard_of(request).services
        try:
            async with write_tx(services.engine) as conn:
                channel = await account_store.add_channel(
                    conn,
                    account_id=posted.user.account_id,
                    phone_number_id=form.phone_number_id,
                    waba_id=form.waba_id,
                    display_phone_number=form.display_phone_number,
                    access_token=form.access_token or "",
                    app_secret=form.app_secret or "",
                    verify_token=form.verify_token,
                    graph_url=form.graph_url,
                    mps=form.mps,
                    now=services.clock.now(),
                )
        except account_store.AlreadyExists:
            errors["phone_number_id"] = "This phone number id is already a channel."
        else:
            gate = getattr(request.app.state, "sandbox_gate", None)
            if gate is not None:
                await gate.check()  # a real channel now: the sandbox goes at once
            return see_other(f"/channels?saved={channel.id}#{channel.id}")
    return _form_page(request, channel=None, values=values, errors=errors, status=422)


async def _own_channel(request: Request, account_id: str, channel_id: str) -> Channel:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        channel = await queries.account_channel(conn, account_id=account_id, channel_id=channel_id)
    if channel is None:
        raise PageNotFound("This account has no such channel.")
    if channel.is_sandbox:
        raise PageNotFound(
            "The sandbox channel is managed by wagate itself and cannot be edited.",
            title="Not editable",
            status=409,
        )
    return channel


@router.get("/channels/{channel_id}/edit")
async def edit_channel(channel_id: str, request: Request, user: AdminSignedIn) -> Response:
    channel = await _own_channel(request, user.account_id, channel_id)
    return _form_page(request, channel=channel, values=_values(channel))


@router.post("/channels/{channel_id}")
async def save_channel(channel_id: str, request: Request, posted: AdminForm) -> Response:
    channel = await _own_channel(request, posted.user.account_id, channel_id)
    values = {name: posted.text(name) for name in _FIELDS}
    form, errors = await _checked(request, posted, new=False)
    if form is not None:
        services = dashboard_of(request).services
        try:
            async with write_tx(services.engine) as conn:
                await queries.update_channel(
                    conn, account_id=posted.user.account_id, channel_id=channel.id, form=form
                )
        except account_store.AlreadyExists:
            errors["phone_number_id"] = "Another channel has this phone number id."
        else:
            gate = getattr(request.app.state, "sandbox_gate", None)
            if gate is not None:
                await gate.check()  # a real channel now: the sandbox goes at once
            return see_other(f"/channels?saved={channel.id}#{channel.id}")
    return _form_page(request, channel=channel, values=values, errors=errors, status=422)
