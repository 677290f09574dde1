"""The embedded sandbox is for a server without real channels: it goes as soon as one is added.

`wagate serve` mounts the sandbox at `/sandbox` while the server has no real channel (or always,
with `WAGATE_SANDBOX=on`). `SandboxGate` is what is mounted: it passes requests to the sandbox
while it serves and, once a real channel exists, retires it at once, without a restart: its
routes answer 404, its webhook pump stops, and sends through a sandbox channel that pointed at
it are refused when they are made (422 `channel_unavailable`) instead of being accepted to fail
later. The gate looks for a real channel on every request to the sandbox's own routes (not
on its Graph API's, one per message sent), right after the dashboard adds a channel, and every
`CHECK_SECONDS` in the background (a channel added with `wagate channels add`, from another
process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from wagate.store.tables import channels

log = logging.getLogger("wagate.sandbox")

CHECK_SECONDS = 1.0

GONE_MESSAGE = (
    "The sandbox is off: this server has a real channel now (the sandbox runs only on a server "
    "without one, unless WAGATE_SANDBOX=on)."
)


async def real_channel_exists(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(channels.c.id).where(channels.c.is_sandbox.is_(False)).limit(1)
        )
        return found.first() is not None


async def unreachable_sandbox_channels(engine: AsyncEngine, local_url: str) -> frozenset[str]:
    """The sandbox channels whose Graph API is this server's own sandbox (which is not here)."""
    prefix = local_url.rstrip("/") + "/sandbox/"
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(channels.c.id, channels.c.graph_url).where(channels.c.is_sandbox.is_(True))
        )
        return frozenset(r.id for r in rows if (r.graph_url or "").startswith(prefix))


def _graph_call(scope: Scope) -> bool:
    """A Graph API call (a send, a media upload or download): the dispatcher's traffic, one
    per message. Those are not worth a query each; the background check (every
    `CHECK_SECONDS`) and the refusal of new sends at accept time cover them."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith(("/graph/", "/media-file/"))


class SandboxGate:
    """The ASGI app mounted at `/sandbox` in front of the sandbox's own app."""

    def __init__(
        self,
        app: ASGIApp,
        sandbox: Any,
        *,
        engine: AsyncEngine,
        local_url: str,
        keep: bool = False,
        on_retire: Any = None,
    ) -> None:
        """`sandbox`: the `wagate.sandbox.Sandbox` behind `app`; `keep`: WAGATE_SANDBOX=on (it
        stays whatever channels there are); `on_retire(channel_ids)`: told which channels
        cannot be sent through any more."""
        self.app = app
        self.sandbox = sandbox
        self.engine = engine
        self.local_url = local_url
        self.keep = keep
        self.on_retire = on_retire
        self.serving = True
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None

    @property
    def state(self) -> Any:
        """The sandbox app's state (`state.sandbox`), as when the app itself is mounted."""
        return getattr(self.app, "state", None)

    async def check(self) -> bool:
        """Retire the sandbox if a real channel exists now; whether it still serves."""
        if not self.serving or self.keep:
            return self.serving
        async with self._lock:
            if self.serving and await real_channel_exists(self.engine):
                await self._retire()
        return self.serving

    async def _retire(self) -> None:
        self.serving = False
        gone = await unreachable_sandbox_channels(self.engine, self.local_url)
        if self.on_retire is not None:
            self.on_retire(gone)
        log.warning(
            "a real channel was added: the sandbox is off now (its routes answer 404, the "
            "sandbox phone stops, and sends through the sandbox channel are refused with "
            "channel_unavailable); WAGATE_SANDBOX=on keeps it"
        )
        await self.sandbox.aclose()

    def start_watching(self) -> None:
        if self.keep or self._watch is not None:
            return
        self._watch = asyncio.create_task(self._watching(), name="wagate-sandbox-gate")

    async def _watching(self) -> None:
        while self.serving:
            try:
                await self.check()
            except Exception as exc:  # storage down for a moment: look again later
                log.debug("sandbox gate: %s", exc)
            await asyncio.sleep(CHECK_SECONDS)

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.serving and not _graph_call(scope):
            try:
                await self.check()
            except Exception as exc:  # storage down: the sandbox answers as it would
                log.debug("sandbox gate: %s", exc)
        if not self.serving and scope["type"] == "http":
            answer = JSONResponse(
                {"success": False, "error": {"code": "not_found", "message": GONE_MESSAGE}},
                status_code=404,
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
