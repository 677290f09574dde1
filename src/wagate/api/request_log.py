"""One log line per HTTP request: method, path, status, duration and the caller's account.

Never the query string (Meta's verification handshake carries the verify token in it), a
header or a body. Probes and the dashboard's static files (`QUIET_PATHS`) are logged at debug
level: a load balancer polling /healthz every second would otherwise drown the log.

The account is learnt during the request: whoever authenticates the caller calls
`note_account` (the API's token check, the dashboard's session check), which fills in the
holder this middleware put in a context variable; a mutable holder, because a context
variable set further down would not be seen up here once a copy of the context was made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from wagate.logs import emit_fast

log = logging.getLogger("wagate.http")

QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/static/", "/favicon")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Caller:
    __slots__ = ("account",)

    def __init__(self) -> None:
        self.account: str | None = None


_caller: ContextVar[_Caller | None] = ContextVar("wagate_caller", default=None)


def note_account(account_id: str) -> None:
    """Record whose request this is, for its log line."""
    caller = _caller.get()
    if caller is not None:
        caller.account = account_id


class RequestLog:
    """Pure ASGI middleware writing one line per request when it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if len(path) > 200 or not path.isprintable():  # a line per request, never forged lines
            path = path[:200].encode("unicode_escape").decode("ascii")
        level = logging.DEBUG if path.startswith(QUIET_PATHS) else logging.INFO
        if not log.isEnabledFor(level):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        caller = _Caller()
        token = _caller.set(caller)
        status = 500

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            _caller.reset(token)
            duration_ms = (time.perf_counter() - started) * 1000
            method: str = scope.get("method", "")
            emit_fast(
                log,
                level,
                "%s %s %d %.1fms %s",
                (method, path, status, duration_ms, caller.account or "-"),
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration_ms, 2),
                    "account": caller.account,
                },
            )
