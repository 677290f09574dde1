"""Putting the dashboard on the gateway's app: its pages at `/`, its assets at `/static`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from wagate.api.deps import Services
from wagate.dashboard.errors import install_error_pages
from wagate.dashboard.pages import (
    callbacks,
    channels,
    conversations,
    media,
    messages,
    sandbox_phone,
    settings,
    sign_in,
    templates,
)
from wagate.dashboard.web import Dashboard

STATIC = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI, services: Services, *, sandbox: Any = None) -> None:
    """Add the dashboard's routes (kept out of the OpenAPI description) to `app`. Call after
    the API's error handlers are installed: dashboard paths get HTML error pages instead.
    `sandbox`, when given, is the sandbox app mounted in this process."""
    app.state.dashboard = Dashboard(
        services, sandbox=getattr(getattr(sandbox, "state", None), "sandbox", None)
    )
    pages = (sign_in, messages, conversations, templates, callbacks, channels, settings, media)
    for page in (*pages, sandbox_phone):
        app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    install_error_pages(app)
