"""Templates: the account's message templates as last synced from Meta, each previewed as a
customer would see it, and a button that syncs them again."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from wagate.dashboard.views import template_bubble
from wagate.dashboard.web import PostedForm, SignedIn, dashboard_of, render, see_other
from wagate.store import accounts as account_store
from wagate.store import templates as template_store
from wagate.template_sync import fetch_channels, store_synced

router = APIRouter(include_in_schema=False)


async def _page(request: Request, account_id: str, *, status: int = 200, **extra: Any) -> Response:
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        views = await template_store.list_templates(conn, account_id=account_id)
        found = await account_store.list_channels(conn, account_id=account_id)
    return render(
        request,
        "templates.html",
        status=status,
        templates=[(v, template_bubble(v)) for v in views],
        channels={c.id: c for c in found},
        synced=request.query_params.get("synced"),
        **{"sync_error": None} | extra,
    )


@router.get("/templates")
async def templates(request: Request, user: SignedIn) -> Response:
    return await _page(request, user.account_id)


@router.post("/templates/sync")
async def sync(request: Request, posted: PostedForm) -> Response:
    """The same sync as `POST /v1/templates/sync`: all of the account's channels or none."""
    services = dashboard_of(request).services
    async with services.engine.connect() as conn:
        found = await account_store.list_channels(conn, account_id=posted.user.account_id)
    http: httpx.AsyncClient | None = getattr(request.app.state, "cloud_http", None)
    if http is None:
        return await _page(
            request, posted.user.account_id, status=503, sync_error="The server is starting."
        )
    synced = await fetch_channels(
        found, lambda _: http, version=services.settings.graph_api_version
    )
    failed = [s for s in synced if s.error is not None]
    if failed:
        problems = "; ".join(s.problem() for s in failed)
        return await _page(
            request,
            posted.user.account_id,
            status=502,
            sync_error=f"{problems[0].upper()}{problems[1:]}. Nothing was changed.",
        )
    await store_synced(services.engine, synced, now=services.clock.now())
    count = sum(len(s.templates) for s in synced)
    return see_other(f"/templates?synced={count}")
