"""A small ASGI helper for wiring apps that call each other in one process."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class LateASGI:
    """An ASGI app whose target is filled in later, so that two apps can point at each other
    (the gateway calls the sandbox's Graph API; the sandbox posts webhooks to the gateway)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("LateASGI called before its app was set")
        await self.app(scope, receive, send)
