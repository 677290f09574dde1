"""Conversations: one customer's thread both ways, their 24-hour window, and sending to them
(free-form while the window is open, a template when it is closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.api.media import keep_upload
from wagate.api.upload import MultipartUpload
from wagate.dashboard import queries, sending, template_form, views
from wagate.dashboard import thread as drawn_thread
from wagate.dashboard.compose_kinds import COMPOSE_KINDS, input_for
from wagate.dashboard.rules import buttons_from_lines, lenient_phone, phone_digits
from wagate.dashboard.web import (
    CSRF_FIELD,
    CSRF_HEADER,
    CsrfRefused,
    PageNotFound,
    Posted,
    PostedForm,
    SignedIn,
    csrf_matches,
    dashboard_of,
    render,
    see_other,
)
from wagate.domain.errors import ValidationFailed, WagateError
from wagate.domain.kinds import SEND_KINDS
from wagate.domain.kinds.media import parse_media
from wagate.domain.messages import parse_send_request
from wagate.domain.templates import APPROVED, build_template_send, template_from_meta
from wagate.store import accounts as account_store
from wagate.store import media as media_store
from wagate.store import messages as message_store
from wagate.store import templates as template_store
from wagate.store.accounts import Channel
from wagate.store.kind_targets import AccountTargets
from wagate.store.users import SignedInUser

router = APIRouter(include_in_schema=False)

THREAD_LENGTH = 50


@router.get("/conversations")
async def conversation_list(request: Request, user: SignedIn) -> Response:
    wanted = request.query_params.get("phone", "").strip()
    error = None
    if wanted:
        phone, problems = lenient_phone(wanted)
        if phone is not None:
            return see_other(f"/conversations/{phone_digits(phone)}")
        error = problems[0].message
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        people = await queries.recipients(
            conn, account_id=user.account_id, now=services.clock.now()
        )
        found = await account_store.list_channels(conn, account_id=user.account_id)
    return render(
        request,
        "conversations.html",
        status=422 if error else 200,
        people=people,
        channels={c.id: c for c in found},
        wanted=wanted,
        errors={"phone": error} if error else {},
        now=services.clock.now(),
    )


def _phone(digits: str) -> str:
    phone, problems = lenient_phone(digits)
    if phone is None:
        raise PageNotFound(problems[0].message, title="Not a phone number")
    return phone


async def _conversation(
    request: Request, user: SignedInUser, digits: str, channel_id: str | None
) -> dict[str, Any]:
    phone = _phone(digits)
    services = dashboard_of(request).services
    now = services.clock.now()
    async with services.engine.connect() as conn:
        channel = await account_store.channel_for_send(
            conn,
            account_id=user.account_id,
            wanted=channel_id or None,
            unavailable=services.acceptor.unavailable_channels,
        )
        if channel is None:
            raise PageNotFound(
                "This account has no such channel. Add one under Channels first.",
                title="No channel",
            )
        approved: list[dict[str, Any]] = []
        conversation = await message_store.conversation(
            conn,
            account_id=user.account_id,
            channel=channel,
            phone=phone,
            now=now,
            limit=THREAD_LENGTH,
        )
        if not conversation["window_open"]:
            # Only a template can go out now: offer the number's approved ones.
            approved = await template_store.list_templates(
                conn, account_id=user.account_id, channel_id=channel.id, status=APPROVED
            )
    thread = await drawn_thread.bubbles(
        services,
        account_id=user.account_id,
        phone=phone,
        items=list(reversed(conversation["messages"])),
    )
    expires = conversation["window_expires_at"]
    window_left = datetime.fromisoformat(expires.replace("Z", "+00:00")) - now if expires else None
    return {
        "phone": phone,
        "digits": phone_digits(phone),
        "channel": channel,
        "c": conversation,
        "thread": thread,
        "now": now,
        "window_left": window_left,
        "approved": approved,
    }


def _template_choice(
    context: dict[str, Any], key: str, typed: dict[str, str] | None = None
) -> dict[str, Any]:
    """The template picked in the compose box (by "name|language"), its inputs and preview."""
    for view in context["approved"]:
        if template_form.template_key(view) == key:
            template = template_from_meta(view)
            return {
                "chosen": view,
                "chosen_key": key,
                "inputs": template_form.param_inputs(template, typed),
                "template_preview": views.draft_bubble(view, typed or {}),
            }
    return {"chosen": None, "chosen_key": "", "inputs": [], "template_preview": None}


def _page(
    request: Request,
    context: dict[str, Any],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    draft: dict[str, str] | None = None,
    template_key: str | None = None,
) -> Response:
    key = template_key if template_key is not None else request.query_params.get("template", "")
    return render(
        request,
        "conversation.html",
        status=status,
        errors=errors or {},
        draft=draft or {},
        sent=request.query_params.get("sent"),
        **context,
        **_template_choice(context, key, draft),
    )


@router.get("/conversations/{digits}")
async def conversation_page(digits: str, request: Request, user: SignedIn) -> Response:
    context = await _conversation(request, user, digits, request.query_params.get("channel"))
    return _page(request, context)


@router.get("/conversations/{digits}/live")
async def conversation_live(digits: str, request: Request, user: SignedIn) -> Response:
    """The window and the thread, fetched every 3 s. When the window opened or closed since
    the page was drawn (`shown`), the compose box is redrawn too (an out-of-band swap)."""
    context = await _conversation(request, user, digits, request.query_params.get("channel"))
    shown = request.query_params.get("shown")
    changed = shown != ("open" if context["c"]["window_open"] else "closed")
    return render(
        request,
        "_conversation_live.html",
        compose_changed=changed,
        errors={},
        draft={},
        **context,
        **_template_choice(context, ""),
    )


def _send_request(posted: Posted, phone: str, channel: Channel) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "phone": phone,
        "message": posted.text("message"),
        "channel": channel.id,
        "idempotency_key": posted.text("idempotency_key"),
    }
    for name in ("header", "footer"):
        if posted.text(name).strip():
            fields[name] = posted.text(name)
    buttons = buttons_from_lines(posted.text("buttons"))
    if buttons:
        fields["buttons"] = buttons
    return fields


@router.post("/conversations/{digits}/send")
async def send(digits: str, request: Request, posted: PostedForm) -> Response:
    context = await _conversation(request, posted.user, digits, posted.text("channel"))
    channel: Channel = context["channel"]
    draft = {k: posted.text(k) for k in ("message", "header", "footer", "buttons")}
    try:
        send_request = parse_send_request(_send_request(posted, context["phone"], channel))
    except ValidationFailed as exc:
        errors: dict[str, str] = {}
        for problem in exc.errors:
            name = problem.field.split("[", 1)[0]
            errors.setdefault("message" if name == "phone" else name, problem.message)
        return _page(request, context, status=422, errors=errors, draft=draft)
    outcome = await sending.queue_message(
        dashboard_of(request).services,
        account_id=posted.user.account_id,
        channel=channel,
        request=send_request,
    )
    if isinstance(outcome, WagateError):
        return _page(request, context, status=409, errors={"message": outcome.message}, draft=draft)
    return see_other(
        f"/conversations/{context['digits']}?channel={channel.id}&sent={outcome['id']}#compose"
    )


@router.post("/conversations/{digits}/send-template")
async def send_template(digits: str, request: Request, posted: PostedForm) -> Response:
    """Send Template from the compose box: checked against the synced template exactly as
    `POST /v1/messages/template` checks it."""
    context = await _conversation(request, posted.user, digits, posted.text("channel"))
    channel: Channel = context["channel"]
    key = posted.text("template")
    typed = {k: v for k, v in posted.form.items() if isinstance(v, str)}
    choice = _template_choice(context, key, typed)
    if choice["chosen"] is None:
        errors = {"template": "Pick one of this number's approved templates."}
        return _page(request, context, status=422, errors=errors, template_key="")
    template = template_from_meta(choice["chosen"])
    async with dashboard_of(request).services.engine.connect() as conn:
        candidates = await template_store.templates_named(
            conn, channel_id=channel.id, name=template.name
        )
    fields = {
        "phone": context["phone"],
        "template": template.name,
        "language": template.language,
        "params": template_form.params_from_form(template, typed),
        "channel": channel.id,
        "idempotency_key": posted.text("idempotency_key"),
    }
    try:
        send_request = build_template_send(fields, candidates)
    except ValidationFailed as exc:
        # Each problem beside the input it is about (params.body[2] is the one labelled {{3}}).
        errors = {}
        for problem in exc.errors:
            name = template_form.field_for_error(template, typed, problem.field) or "template"
            errors.setdefault(name, problem.message)
        return _page(request, context, status=422, errors=errors, draft=typed, template_key=key)
    outcome = await sending.queue_message(
        dashboard_of(request).services,
        account_id=posted.user.account_id,
        channel=channel,
        request=send_request,
    )
    if isinstance(outcome, WagateError):
        errors = {"template": outcome.message}
        return _page(request, context, status=409, errors=errors, draft=typed, template_key=key)
    return see_other(
        f"/conversations/{context['digits']}?channel={channel.id}&sent={outcome['id']}#compose"
    )


@router.post("/conversations/{digits}/send-kind")
async def send_kind(digits: str, request: Request, posted: PostedForm) -> Response:
    """A list, link button, location, location request, contact card or reaction from the
    compose box: its inputs become the fields of its endpoint, checked by the same parser and
    accepted by the same path as `POST /v1/messages/<kind>`."""
    context = await _conversation(request, posted.user, digits, posted.text("channel"))
    channel: Channel = context["channel"]
    kind = COMPOSE_KINDS.get(posted.text("kind"))
    if kind is None:
        return _page(request, context, status=422, errors={"kind": "Pick what to send."})
    draft = {name: posted.text(name) for name in kind.inputs} | {"kind": kind.name}
    fields = kind.fields(draft) | {
        "phone": context["phone"],
        "channel": channel.id,
        "idempotency_key": posted.text("idempotency_key"),
    }
    declared = SEND_KINDS[kind.name]
    services = dashboard_of(request).services
    try:
        send_request = declared.parse(fields, form=True)
        if declared.resolve is not None:
            async with services.engine.connect() as conn:
                targets = AccountTargets(conn, posted.user.account_id)
                send_request = await declared.resolve(send_request, targets)
    except ValidationFailed as exc:
        errors: dict[str, str] = {}
        for problem in exc.errors:
            errors.setdefault(input_for(kind, problem), problem.message)
        return _page(request, context, status=422, errors=errors, draft=draft)
    outcome = await sending.queue_message(
        services, account_id=posted.user.account_id, channel=channel, request=send_request
    )
    if isinstance(outcome, WagateError):
        first = kind.inputs[0]
        return _page(request, context, status=409, errors={first: outcome.message}, draft=draft)
    return see_other(
        f"/conversations/{context['digits']}?channel={channel.id}&sent={outcome['id']}#compose"
    )


@router.post("/conversations/{digits}/send-media")
async def send_media(digits: str, request: Request, user: SignedIn) -> Response:
    """A photo, video, audio, document or sticker from the compose box: the file streams into
    the media store exactly as `POST /v1/media` takes it (sniffed, checked against Meta's
    limits), then goes out as `POST /v1/messages/media` sends it, by its `med_…` id.

    The form is multipart, so its CSRF token is read from the fields that come before the
    file (and checked again once the body is read): nothing is stored without it."""
    context = await _conversation(request, user, digits, request.query_params.get("channel"))
    services = dashboard_of(request).services
    upload = MultipartUpload(request)

    async def checked() -> AsyncIterator[bytes]:
        first = True
        async for chunk in upload.file_chunks():
            if first and not _csrf_ok(request, user, upload.fields):
                raise CsrfRefused()
            first = False
            yield chunk

    draft = {"upload": ""}
    try:
        kept = await keep_upload(services, user.account_id, upload, checked())
    except ValidationFailed as exc:
        if not _csrf_ok(request, user, upload.fields):
            raise CsrfRefused() from None
        errors = {"file": exc.errors[0].message if exc.errors else exc.message}
        return _page(request, context, status=422, errors=errors, draft=draft)
    if not _csrf_ok(request, user, upload.fields):
        await services.media_files.delete(user.account_id, [kept["id"]])
        raise CsrfRefused()
    fields = upload.fields
    channel: Channel = context["channel"]
    wanted: dict[str, Any] = {
        "phone": context["phone"],
        "channel": channel.id,
        "media_type": kept["media_type"],
        "media_id": kept["id"],
        "idempotency_key": fields.get("idempotency_key", ""),
    }
    if fields.get("caption", "").strip() and kept["media_type"] in ("image", "video", "document"):
        wanted["caption"] = fields["caption"]
    if kept["media_type"] == "document" and kept.get("filename"):
        wanted["filename"] = kept["filename"]
    draft = {"upload": "", "caption": fields.get("caption", "")}
    try:
        send_request = parse_media(wanted, form=True)
        async with services.engine.connect() as conn:
            send_request = await media_store.check_media_send(
                send_request, conn=conn, account_id=user.account_id, policy=services.egress
            )
    except ValidationFailed as exc:
        errors = {}
        for problem in exc.errors:
            errors.setdefault("caption" if problem.field == "caption" else "file", problem.message)
        return _page(request, context, status=422, errors=errors, draft=draft)
    outcome = await sending.queue_message(
        services, account_id=user.account_id, channel=channel, request=send_request
    )
    if isinstance(outcome, WagateError):
        return _page(request, context, status=409, errors={"file": outcome.message}, draft=draft)
    return see_other(
        f"/conversations/{context['digits']}?channel={channel.id}&sent={outcome['id']}#compose"
    )


def _csrf_ok(request: Request, user: SignedInUser, fields: dict[str, str]) -> bool:
    sent = fields.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    return csrf_matches(user.csrf_token, sent)
