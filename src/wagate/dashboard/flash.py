"""Something to show once on the page a form redirects to (POST, redirect, GET): kept in this
process for a short while, bound to the session that made it, gone once read. So a reload of
the page that shows a new API token neither shows it again nor makes a second one.

Behind several `wagate api` processes, the redirect's GET must reach the process that handled
the POST (sticky sessions at the load balancer); elsewhere the page says the secret was shown
already, and the user makes another."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

TTL_SECONDS = 120.0
MAX_KEPT = 1000


@dataclass
class Flashes:
    _kept: dict[str, tuple[str, float, dict[str, Any]]] = field(default_factory=dict)

    def put(self, session: str, payload: dict[str, Any]) -> str:
        """Keep `payload` for `session`; returns the id to put in the redirect's URL."""
        now = time.monotonic()
        for key in [k for k, (_, until, _) in self._kept.items() if until < now]:
            del self._kept[key]
        while len(self._kept) >= MAX_KEPT:
            del self._kept[next(iter(self._kept))]
        key = secrets.token_urlsafe(16)
        self._kept[key] = (session, now + TTL_SECONDS, payload)
        return key

    def take(self, session: str, key: str) -> dict[str, Any] | None:
        """The payload, once, to the session that made it; None afterwards or elsewhere."""
        found = self._kept.get(key)
        if found is None or found[0] != session:
            return None
        del self._kept[key]
        return found[2] if found[1] >= time.monotonic() else None
