"""Fault injection and Meta's sending limits.

`POST /faults {"code": 131026, "count": 2, "phone": "+16505551234", "mode": "status"}` makes the
next two sends to that number (any number if `phone` is left out) fail with Meta's error 131026:
`mode: "response"` answers the send itself with Meta's error envelope (as Meta does for throttling
and transient errors), `mode: "status"` accepts it and then reports a `failed` status carrying the
error (as Meta does for undeliverable messages). Each code has a default mode.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from wagate.sandbox import events, graph


@dataclass(frozen=True, slots=True)
class KnownError:
    title: str
    details: str
    http_status: int
    mode: str  # "response" or "status"


KNOWN_ERRORS: dict[int, KnownError] = {
    1: KnownError("API Unknown", "Invalid request or possible server error.", 400, "response"),
    2: KnownError(
        "API Service", "Temporary due to downtime or due to being overloaded.", 503, "response"
    ),
    4: KnownError(
        "Application request limit reached",
        "Too many API calls from this app; try again later.",
        400,
        "response",
    ),
    80007: KnownError(
        "Rate limit issues",
        "The WhatsApp Business Account has reached its rate limit.",
        400,
        "response",
    ),
    130429: KnownError(
        "Rate limit hit", "Cloud API message throughput has been reached.", 400, "response"
    ),
    131000: KnownError(
        "Something went wrong", "Message failed to send due to an unknown error.", 500, "response"
    ),
    131016: KnownError(
        "Service unavailable", "A service is temporarily unavailable.", 503, "response"
    ),
    131026: KnownError(
        "Message undeliverable",
        "Unable to deliver message. The recipient may not be a WhatsApp user, may "
        "not have accepted the latest terms, or may use an old WhatsApp version.",
        400,
        "status",
    ),
    131047: KnownError(
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
        400,
        "status",
    ),
    131048: KnownError(
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages "
        "can be sent from this phone number.",
        400,
        "status",
    ),
    131049: KnownError(
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        400,
        "status",
    ),
    131056: KnownError(
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this "
        "phone number to the same phone number in a short period of time.",
        400,
        "response",
    ),
    132000: KnownError(
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values does not match the number of "
        "variables in the template.",
        400,
        "status",
    ),
    132001: KnownError(
        "Template does not exist",
        "The template does not exist in the specified language or has not been approved.",
        400,
        "response",
    ),
}


def error_for(code: int) -> KnownError:
    return KNOWN_ERRORS.get(code) or KnownError(
        f"Error {code}", f"Injected error {code}.", 400, "status"
    )


@dataclass
class Fault:
    code: int
    remaining: int
    wa_id: str | None
    mode: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "count": self.remaining,
            "mode": self.mode,
            "phone": None if self.wa_id is None else "+" + self.wa_id,
        }

    def graph_error(self) -> graph.GraphError:
        if self.code == 190:
            return graph.invalid_token()
        if self.code == 130429:
            return graph.throughput_reached()
        if self.code == 131056:
            return graph.pair_rate_hit()
        known = error_for(self.code)
        return graph.GraphError(
            self.code,
            f"(#{self.code}) {known.title}",
            details=known.details,
            http_status=known.http_status,
        )

    def status_error(self) -> dict[str, Any]:
        known = error_for(self.code)
        return events.status_error(self.code, known.title, known.details)


class Faults:
    """Injected faults, consumed by sends in order, plus Meta's throughput and pair limits."""

    def __init__(self, throughput: int | None, pair_interval: float | None, pair_burst: int):
        self.queue: list[Fault] = []
        self.throughput = throughput
        self.pair_interval = pair_interval
        self.pair_burst = max(1, pair_burst)
        self._recent: deque[float] = deque()
        self._pairs: dict[str, tuple[float, float]] = {}

    def add(self, code: int, count: int, wa_id: str | None, mode: str | None) -> Fault:
        fault = Fault(code, count, wa_id, mode or error_for(code).mode)
        self.queue.append(fault)
        return fault

    def take(self, wa_id: str) -> Fault | None:
        """The first injected fault that applies to a send to `wa_id`, used up by one."""
        for fault in self.queue:
            if fault.wa_id in (None, wa_id):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.queue.remove(fault)
                return fault
        return None

    def check_limits(self, wa_id: str, now: float | None = None) -> None:
        """Raise Meta's throttling error if this send would exceed a limit; else count it."""
        now = time.monotonic() if now is None else now
        if self.throughput is not None:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.throughput:
                raise graph.throughput_reached()
        if self.pair_interval is not None:
            tokens, last = self._pairs.get(wa_id, (float(self.pair_burst), now))
            tokens = min(float(self.pair_burst), tokens + (now - last) / self.pair_interval)
            if tokens < 1.0:
                self._pairs[wa_id] = (tokens, now)
                raise graph.pair_rate_hit()
            self._pairs[wa_id] = (tokens - 1.0, now)
        if self.throughput is not None:
            self._recent.append(now)
