"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from wagate.api.deps import ServicesDep
from wagate.store.db import make_sync_engine, migrations_current

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _migrations_current(url: str) -> bool:
    engine = make_sync_engine(url)
    try:
        return migrations_current(engine)
    finally:
        engine.dispose()


@router.get("/readyz", summary="Storage is reachable and migrated")
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await asyncio.to_thread(
            _migrations_current, services.settings.resolved_database_url
        )
    except Exception as exc:  # any storage failure means "not ready", never a 500
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, 503)
    if not current:
        return JSONResponse({"status": "unavailable", "reason": "migrations pending"}, 503)
    return JSONResponse({"status": "ok"})
