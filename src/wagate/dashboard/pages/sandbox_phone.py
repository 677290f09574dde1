"""The sandbox phone: plays the customer. It shows what the business sent to a number, as
WhatsApp would, and replies or taps a button, which makes the sandbox post its signed webhook to
the gateway (opening the 24-hour window), exactly as `wagate sandbox reply` does."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from wagate.dashboard import queries
from wagate.dashboard import thread as drawn_thread
from wagate.dashboard.rules import lenient_phone, phone_digits
from wagate.dashboard.web import (
    CSRF_FIELD,
    CSRF_HEADER,
    CsrfRefused,
    DashboardError,
    PageNotFound,
    Posted,
    PostedForm,
    SignedIn,
    csrf_matches,
    dashboard_of,
    render,
    see_other,
)
from wagate.store import accounts as account_store
from wagate.store.accounts import Channel
from wagate.store.users import SignedInUser

router = APIRouter(include_in_schema=False)

FIRST_CUSTOMER = "+14155552671"
NOT_RUNNING = (
    "The sandbox is not answering. `wagate serve` runs it only while there is no real channel "
    "(adding one turns it off at once), unless WAGATE_SANDBOX=on."
)
THREAD_LENGTH = 50


class SandboxUnavailable(Exception):
    """The sandbox did not answer."""


class SandboxCustomer:
    """The simulated customer of one sandbox channel: the sandbox in this process when it is
    the channel's, else the sandbox's HTTP endpoints next to the channel's Graph URL."""

    def __init__(self, channel: Channel, local: Any) -> None:
        self.local = local if local is not None else None
        if self.local is not None and self.local.config.phone_number_id != channel.phone_number_id:
            self.local = None
        self.base = channel.graph_url.removesuffix("/graph")
        # The sandbox's own routes take its access token (the channel's): passed here, on the
        # server, so the browser never holds it.
        self.headers = {"Authorization": f"Bearer {channel.access_token}"}

    def _local(self) -> Any:
        """The sandbox in this process, if it is the channel's; SandboxUnavailable once it
        was turned off (a real channel was added)."""
        if self.local is not None and self.local.closed:
            raise SandboxUnavailable("the sandbox is off")
        return self.local

    async def messages(self, phone: str) -> list[dict[str, Any]]:
        local = self._local()
        if local is not None:
            found: list[dict[str, Any]] = local.messages(phone, THREAD_LENGTH)
            return found
        data = await self._call("GET", f"/customer/{phone_digits(phone)}/messages?limit=50")
        return data if isinstance(data, list) else []

    async def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The sandbox's answer: `wamid` and `delivered`, or `error` when it refused."""
        local = self._local()
        if local is not None:
            from wagate.sandbox.service import SandboxRequestError

            try:
                answer: dict[str, Any] = await local.reply(body)
            except SandboxRequestError as exc:
                return {"error": exc.message}
            return answer
        data = await self._call("POST", "/customer/reply", json=body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return {"error": data["error"].get("message", "The sandbox refused.")}
        return data if isinstance(data, dict) else {"error": "The sandbox gave no answer."}

    async def send_media(
        self, phone: str, kind: str, upload: UploadFile, caption: str | None
    ) -> dict[str, Any]:
        """The customer sends a file (Meta's webhook with its media object follows)."""
        if self.local is not None:
            from wagate.sandbox.media import customer_sends_media
            from wagate.sandbox.service import SandboxRequestError

            try:
                answer: dict[str, Any] = await customer_sends_media(
                    self.local, phone=phone, kind=kind, upload=upload, caption=caption, name=None
                )
            except SandboxRequestError as exc:
                return {"error": exc.message}
            return answer
        content = await upload.read()
        fields = {"phone": phone, "kind": kind, **({"caption": caption} if caption else {})}
        data = await self._call(
            "POST",
            "/customer/media",
            data=fields,
            files={"file": (upload.filename or "file", content, upload.content_type)},
        )
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return {"error": data["error"].get("message", "The sandbox refused.")}
        return data if isinstance(data, dict) else {"error": "The sandbox gave no answer."}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                response = await client.request(
                    method, self.base + path, headers=self.headers, **kwargs
                )
            if response.status_code in (404, 405) or response.status_code >= 500:
                raise SandboxUnavailable(f"HTTP {response.status_code}")
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SandboxUnavailable(str(exc)) from None


async def _sandbox_channel(request: Request, user: SignedInUser) -> Channel:
    if not user.has_sandbox:
        raise PageNotFound("This account has no sandbox channel, so there is no sandbox phone.")
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        found = await account_store.list_channels(conn, account_id=user.account_id)
    for channel in found:
        if channel.is_sandbox:
            return channel
    raise PageNotFound("This account has no sandbox channel, so there is no sandbox phone.")


async def _phone_view(
    request: Request, user: SignedInUser, phone: str, *, error: str | None = None
) -> dict[str, Any]:
    channel = await _sandbox_channel(request, user)
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        people = await queries.recipients(
            conn, account_id=user.account_id, now=services.clock.now(), channel_id=channel.id
        )
    customer = SandboxCustomer(channel, dashboard_of(request).sandbox)
    try:
        record = await customer.messages(phone)
    except SandboxUnavailable:
        record = []
        error = error or NOT_RUNNING
    # The sandbox keeps what went over the wire; each kind is drawn from what the gateway
    # stored for the same wamid (a template's text with its parameters, a list's rows, ...).
    thread = await drawn_thread.phone_bubbles(
        services,
        account_id=user.account_id,
        channel_id=channel.id,
        phone=phone,
        record=record,
    )
    return {
        "channel": channel,
        "people": people,
        "phone": phone,
        "digits": phone_digits(phone),
        "thread": thread,
        "error": error,
    }


@router.get("/sandbox-phone")
async def phone_home(request: Request, user: SignedIn) -> Response:
    wanted = request.query_params.get("phone", "").strip()
    if wanted:
        phone, problems = lenient_phone(wanted)
        if phone is None:
            context = await _phone_view(request, user, FIRST_CUSTOMER)
            context.update(wanted=wanted, errors={"phone": problems[0].message})
            return render(request, "sandbox_phone.html", status=422, **context)
        return see_other(f"/sandbox-phone/{phone_digits(phone)}")
    context = await _phone_view(request, user, FIRST_CUSTOMER)
    if context["people"]:
        return see_other(f"/sandbox-phone/{phone_digits(context['people'][0].phone)}")
    return render(request, "sandbox_phone.html", wanted="", errors={}, **context)


def _customer_phone(digits: str) -> str:
    phone, problems = lenient_phone(digits)
    if phone is None:
        raise PageNotFound(problems[0].message, title="Not a phone number")
    return phone


@router.get("/sandbox-phone/{digits}")
async def phone_page(digits: str, request: Request, user: SignedIn) -> Response:
    context = await _phone_view(request, user, _customer_phone(digits))
    return render(request, "sandbox_phone.html", wanted="", errors={}, **context)


@router.get("/sandbox-phone/{digits}/thread")
async def phone_thread(digits: str, request: Request, user: SignedIn) -> Response:
    """The phone's chat, fetched every 2 s, and the list of customers beside it."""
    context = await _phone_view(request, user, _customer_phone(digits))
    return render(request, "_phone_live.html", **context)


@router.post("/sandbox-phone/{digits}/reply")
async def reply(digits: str, request: Request, posted: PostedForm) -> Response:
    phone = _customer_phone(digits)
    channel = await _sandbox_channel(request, posted.user)
    body: dict[str, Any] = {"phone": phone}
    location = _shared_location(posted)
    if posted.text("row_id"):
        # A list row: Meta's list_reply (the sandbox tells rows from buttons by the message).
        body["button_id"] = posted.text("row_id")
        body["button_title"] = posted.text("row_title") or posted.text("row_id")
        if posted.text("context"):
            body["context"] = posted.text("context")
    elif location is not None:
        body["location"] = location
        if posted.text("context"):
            body["context"] = posted.text("context")
    elif posted.text("button_id"):
        body["button_id"] = posted.text("button_id")
        for name in ("button_title", "context"):
            if posted.text(name):
                body[name] = posted.text(name)
    elif posted.text("payload"):
        body["payload"] = posted.text("payload")
        body["button_text"] = posted.text("button_title") or posted.text("payload")
        if posted.text("context"):
            body["context"] = posted.text("context")
    else:
        body["text"] = posted.text("text")
    error = None
    if "text" in body and not body["text"].strip():
        error = "Type a message first."
    else:
        try:
            answer = await SandboxCustomer(channel, dashboard_of(request).sandbox).reply(body)
        except SandboxUnavailable:
            answer = {"error": NOT_RUNNING}
        error = answer.get("error")
        if error is None and not answer.get("delivered"):
            error = "Sent, but the gateway did not take the webhook yet; the sandbox retries."
    if request.headers.get("hx-request"):
        context = await _phone_view(request, posted.user, phone, error=error)
        return render(request, "_phone_answer.html", **context)
    if error:
        context = await _phone_view(request, posted.user, phone, error=error)
        return render(request, "sandbox_phone.html", status=422, wanted="", errors={}, **context)
    return see_other(f"/sandbox-phone/{phone_digits(phone)}")


def _shared_location(posted: Posted) -> dict[str, Any] | None:
    """The location the customer shares (the sandbox checks the numbers), if this is one."""
    if not (posted.text("latitude") or posted.text("longitude")):
        return None
    place: dict[str, Any] = {
        "latitude": posted.text("latitude").strip(),
        "longitude": posted.text("longitude").strip(),
    }
    for field, key in (("location_name", "name"), ("location_address", "address")):
        if posted.text(field).strip():
            place[key] = posted.text(field).strip()
    return place


PHONE_FILE_MAX = 16 * 1024 * 1024
"""The largest file the sandbox phone sends (WhatsApp's video and audio limit)."""
PHONE_FILE_KINDS = ("image", "video", "audio", "voice", "document", "sticker")


@router.post("/sandbox-phone/{digits}/media")
async def send_media(digits: str, request: Request, user: SignedIn) -> Response:
    """The customer sends a photo, video, audio, voice note, document or sticker: the sandbox
    keeps it and posts Meta's webhook with its media object, which the gateway downloads."""
    phone = _customer_phone(digits)
    channel = await _sandbox_channel(request, user)
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > PHONE_FILE_MAX + 64 * 1024:
        raise DashboardError(
            "The sandbox phone sends files of at most 16 MB.", title="Too large", status=413
        )
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # python-multipart raises several unrelated types
        raise DashboardError("That form could not be read.") from None
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_matches(user.csrf_token, sent):
        raise CsrfRefused()
    kind, upload, caption = form.get("kind"), form.get("file"), form.get("caption")
    error = None
    if kind not in PHONE_FILE_KINDS:
        error = "Pick what the file is: a photo, video, audio, voice note, document or sticker."
    elif not isinstance(upload, UploadFile) or not upload.filename:
        error = "Pick a file to send."
    else:
        text = caption.strip() if isinstance(caption, str) else ""
        customer = SandboxCustomer(channel, dashboard_of(request).sandbox)
        try:
            answer = await customer.send_media(phone, str(kind), upload, text or None)
        except SandboxUnavailable:
            answer = {"error": NOT_RUNNING}
        error = answer.get("error")
        if error is None and not answer.get("delivered"):
            error = "Sent, but the gateway did not take the webhook yet; the sandbox retries."
    if error:
        context = await _phone_view(request, user, phone, error=error)
        return render(request, "sandbox_phone.html", status=422, wanted="", errors={}, **context)
    return see_other(f"/sandbox-phone/{phone_digits(phone)}")
