"""The message log (filterable, statuses live) and a message's own page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard import thread, views
from wagate.dashboard.explain import explain_failure
from wagate.dashboard.rules import day_range, id_at, lenient_phone
from wagate.dashboard.web import PageNotFound, SignedIn, dashboard_of, render
from wagate.domain.models import MessageType, Status
from wagate.store import messages as message_store
from wagate.store.users import SignedInUser

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FINAL = {Status.READ.value, Status.FAILED.value}


@dataclass
class LogFilters:
    status: str = ""
    phone: str = ""
    date_from: str = ""
    date_to: str = ""
    cursor: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **changes: str) -> str:
        values = {
            "status": self.status,
            "phone": self.phone,
            "from": self.date_from,
            "to": self.date_to,
            "cursor": self.cursor,
        } | changes
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        return bool(self.status or self.phone or self.date_from or self.date_to)


def _filters(request: Request) -> LogFilters:
    q = request.query_params
    return LogFilters(
        status=q.get("status", ""),
        phone=q.get("phone", "").strip(),
        date_from=q.get("from", "").strip(),
        date_to=q.get("to", "").strip(),
        cursor=q.get("cursor", "").strip(),
    )


async def _log(request: Request, user: SignedInUser) -> dict[str, Any]:
    filters = _filters(request)
    statuses = [s.value for s in Status]
    if filters.status and filters.status not in statuses:
        filters.errors["status"] = "Pick a status from the list."
    phone = None
    if filters.phone:
        phone, problems = lenient_phone(filters.phone)
        if problems:
            filters.errors["phone"] = problems[0].message
    since, until, problems = day_range(filters.date_from, filters.date_to)
    for problem in problems:
        filters.errors[problem.field] = problem.message
    page: list[dict[str, Any]] = []
    next_cursor = None
    if not filters.errors:
        before = filters.cursor or None
        if until is not None:
            bound = id_at("msg", until)
            before = min(before, bound) if before else bound
        services = dashboard_of(request).services
        async with services.engine.connect() as conn:
            page, next_cursor = await message_store.list_messages(
                conn,
                account_id=user.account_id,
                phone=phone,
                status=filters.status or None,
                limit=PAGE_SIZE,
                before_id=before,
                after_id=id_at("msg", since) if since else None,
            )
    return {
        "filters": filters,
        "statuses": statuses,
        "messages": page,
        "next_cursor": next_cursor,
        "errors": filters.errors,
    }


@router.get("/messages")
async def message_log(request: Request, user: SignedIn) -> Response:
    context = await _log(request, user)
    status = 422 if context["errors"] else 200
    return render(request, "messages.html", status=status, **context)


@router.get("/messages/log")
async def message_log_rows(request: Request, user: SignedIn) -> Response:
    """The log's table alone, which the page fetches every 2 s to keep statuses current."""
    return render(request, "_message_log.html", **await _log(request, user))


async def _message(request: Request, user: SignedInUser, message_id: str) -> dict[str, Any]:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        message = await message_store.get_message(
            conn, account_id=user.account_id, message_id=message_id
        )
    if message is None:
        raise PageNotFound(f"This account has no message {message_id[:60]!r}.")
    if message.get("type") == MessageType.READ.value:
        preview = views.receipt_bubble(message)
    else:
        [preview] = await thread.bubbles(
            services, account_id=user.account_id, phone=message["phone"], items=[message]
        ) or [views.from_api_message(message)]
    return {
        "m": message,
        "preview": preview,
        "failure": explain_failure(message.get("error")),
        "live": message["status"] not in FINAL,
    }


@router.get("/messages/{message_id}")
async def message_page(message_id: str, request: Request, user: SignedIn) -> Response:
    return render(request, "message.html", **await _message(request, user, message_id))


@router.get("/messages/{message_id}/live")
async def message_live(message_id: str, request: Request, user: SignedIn) -> Response:
    """The parts of a message's page that change, fetched every 2 s until it is final."""
    return render(request, "_message_live.html", **await _message(request, user, message_id))
