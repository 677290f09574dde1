"""Callbacks: where the account's events go, the log of their deliveries (failures first to
the eye), and replaying one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard.rules import mask_secret
from wagate.dashboard.web import (
    AdminForm,
    PageNotFound,
    PostedForm,
    SignedIn,
    dashboard_of,
    render,
    see_other,
)
from wagate.domain.callbacks import SIGNATURE_HEADER, callback_url_problem
from wagate.store import callback_log
from wagate.store.db import write_tx
from wagate.store.users import SignedInUser

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SHOWN = ("failed", "pending", "delivered")


async def _context(request: Request, user: SignedInUser) -> dict[str, Any]:
    status = request.query_params.get("status", "")
    status = status if status in SHOWN else ""
    cursor = request.query_params.get("cursor", "")
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        settings = await callback_log.get_callback(conn, account_id=user.account_id)
        page, next_cursor = await callback_log.list_deliveries(
            conn,
            account_id=user.account_id,
            status=status or None,
            limit=PAGE_SIZE,
            cursor=int(cursor) if cursor.isdigit() and len(cursor) < 18 else None,
        )
        waiting = await callback_log.waiting_in_lane(
            conn,
            account_id=user.account_id,
            delivery_ids=[d["id"] for d in page if d["status"] == "pending"],
        )
    return {
        "settings": settings,
        "deliveries": [d | {"about": describe(d), "waiting": d["id"] in waiting} for d in page],
        "next_cursor": next_cursor,
        "shown_status": status,
        "cursor": cursor,
        "mask": mask_secret,
        "signature_header": SIGNATURE_HEADER,
    }


def describe(delivery: dict[str, Any]) -> dict[str, Any]:
    """What a delivery's event is about, to tell the rows apart: a status change of which
    message (`message.status · accepted → msg_…`), or which customer's message of what kind."""
    data = (delivery.get("event") or {}).get("data") or {}
    if delivery.get("type") == "message.status":
        return {"what": data.get("status"), "message_id": data.get("message_id")}
    if delivery.get("type") == "message.inbound":
        kind = data.get("kind") or "message"
        return {"what": f"{kind} from {data.get('phone', 'a customer')}", "message_id": None}
    return {"what": None, "message_id": delivery.get("message_id")}


@router.get("/callbacks")
async def callbacks(request: Request, user: SignedIn) -> Response:
    return render(
        request,
        "callbacks.html",
        errors={},
        url_typed=None,
        notice=request.query_params.get("done"),
        **await _context(request, user),
    )


@router.post("/callbacks/settings")
async def save_settings(request: Request, posted: AdminForm) -> Response:
    action = posted.text("action")
    url: str | None = posted.text("url").strip()
    services = dashboard_of(request).services
    if action == "clear" or not url:
        url = None
    elif action != "rotate":
        problem = callback_url_problem(url)
        refusal = None if problem else await services.egress.url_problem(url)
        if problem is not None or refusal is not None:
            return render(
                request,
                "callbacks.html",
                status=422,
                errors={"url": problem.message if problem else str(refusal)},
                url_typed=url,
                notice=None,
                **await _context(request, posted.user),
            )
    async with write_tx(services.engine) as conn:
        current = await callback_log.get_callback(conn, account_id=posted.user.account_id)
        if action == "rotate" and current is not None:
            url = current.callback_url
        await callback_log.set_callback(
            conn, account_id=posted.user.account_id, url=url, rotate_secret=action == "rotate"
        )
    done = {"rotate": "rotated", "clear": "cleared"}.get(action, "saved")
    return see_other(f"/callbacks?done={done}")


@router.post("/callbacks/{delivery_id}/replay")
async def replay(delivery_id: str, request: Request, posted: PostedForm) -> Response:
    services = dashboard_of(request).services
    try:
        async with write_tx(services.engine) as conn:
            delivery = await callback_log.replay(
                conn,
                account_id=posted.user.account_id,
                delivery_id=delivery_id,
                now=services.clock.now(),
            )
    except callback_log.DeliveryPending:
        return see_other("/callbacks?done=pending")
    if delivery is None:
        raise PageNotFound("This account has no callback delivery with that id.")
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.callbacks.wake()
    return see_other("/callbacks?done=replayed")
