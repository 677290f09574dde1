"""Fault injection and Meta's sending limits.

The sandbox can play a hostile upstream. `POST /faults` (or `SandboxConfig.faults`, applied at
start) adds a fault; every send (`POST /{phone_number_id}/messages` with a valid body; not
mark-as-read) looks through the faults in the order they were added:

    {"code": 131026, "count": 2, "phone": "+16505551234", "mode": "status"}
        the next two sends to that number fail with Meta's error 131026. `mode: "response"`
        answers the send itself with Meta's error envelope (as Meta does for throttling,
        transient and request errors); `mode: "status"` accepts the send, then reports a
        `failed` status carrying the error (as Meta does for undeliverable messages). Each
        code has a default mode (`KNOWN_ERRORS`). `retry_after` (seconds, response mode only)
        adds a `Retry-After` header.
    {"kind": "http_500"} / {"kind": "http_503"} (any http_5xx)
        a bare 5xx from a proxy in front of the API, not Meta's envelope: an HTML page, or an
        empty body for 503. `retry_after` adds a `Retry-After` header.
    {"kind": "timeout", "seconds": 30}
        no answer: the request is held for `seconds` (default 30), or until the client hangs up
        or the sandbox closes, and the connection is then closed without a response. Nothing
        is sent.
    {"kind": "drop"}
        the connection is closed without a (complete) response. Nothing is sent.
    {"kind": "latency", "seconds": 0.2, "jitter": 0.1}
        the answer comes `seconds` (plus up to `jitter`, uniformly) later. Latency adds to
        whatever else happens to the send.

Common fields: `count` is how many times the fault fires before it is used up (default 1;
`null`: until cleared); `rate` (0..1, default 1) is the chance that it fires on each send it
applies to (with `rate` and no `count`, it never runs out); `phone` limits it to sends to one
recipient and `phone_number_id` to sends from one business number; `seed` seeds its random
draws (default: derived from `SandboxConfig.fault_seed` and the fault's id, or random when
that is None). The first fault that fires decides the send's fate; latency faults all add up.

`GET /faults` lists the faults (with `fired`, how often each has fired, and `count`, what is
left), `DELETE /faults/{id}` removes one and `DELETE /faults` all. `GET /stats` counts
`send_requests` and `faults_injected` (by code or kind) since the sandbox started, and
`requests_held` now.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, TypeGuard

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
    100: KnownError(
        "Invalid parameter",
        "The request included one or more unsupported or misspelled parameters.",
        400,
        "response",
    ),
    190: KnownError(
        "Access token has expired",
        "The access token has expired; generate a new one.",
        401,
        "response",
    ),
    368: KnownError(
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account is restricted or disabled for violating a platform policy.",
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
    131008: KnownError(
        "Required parameter is missing",
        "The request is missing a required parameter.",
        400,
        "response",
    ),
    131009: KnownError(
        "Parameter value is not valid",
        "One or more parameter values are invalid.",
        400,
        "response",
    ),
    131016: KnownError(
        "Service unavailable", "A service is temporarily unavailable.", 503, "response"
    ),
    131021: KnownError(
        "Recipient cannot be sender",
        "Sender and recipient phone number is the same.",
        400,
        "response",
    ),
    131026: KnownError(
        "Message undeliverable",
        "Unable to deliver message. The recipient may not be a WhatsApp user, may "
        "not have accepted the latest terms, or may use an old WhatsApp version.",
        400,
        "status",
    ),
    131030: KnownError(
        "Recipient phone number not in allowed list",
        "Recipient phone number not in allowed list: add it to the list in the App Dashboard.",
        400,
        "response",
    ),
    131031: KnownError(
        "Account has been locked",
        "The WhatsApp Business Account is restricted or disabled for violating a platform "
        "policy, or the data in the request could not be verified.",
        400,
        "response",
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
    131051: KnownError(
        "Unsupported message type", "Message type is not currently supported.", 400, "response"
    ),
    131056: KnownError(
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this "
        "phone number to the same phone number in a short period of time.",
        400,
        "response",
    ),
    131057: KnownError(
        "Account in maintenance mode",
        "Business Account is in maintenance mode.",
        500,
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
    133004: KnownError(
        "Server temporarily unavailable",
        "The server is temporarily unavailable.",
        503,
        "response",
    ),
}


def error_for(code: int) -> KnownError:
    return KNOWN_ERRORS.get(code) or KnownError(
        f"Error {code}", f"Injected error {code}.", 400, "status"
    )


# --------------------------------------------------------------------------- outcomes


class InjectedHttpError(Exception):
    """Answer with a bare HTTP error (not Meta's envelope), as a proxy or load balancer does."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"injected HTTP {status}")
        self.status = status
        self.retry_after = retry_after

    @property
    def body(self) -> bytes:
        if self.status == 503:
            return b""
        return (
            f"<html><head><title>{self.status} Server Error</title></head>"
            f"<body><h1>{self.status} Server Error</h1>"
            "<p>The server encountered a temporary error.</p></body></html>"
        ).encode()

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "text/html; charset=utf-8"} if self.body else {}
        if self.retry_after is not None:
            headers["Retry-After"] = retry_after_header(self.retry_after)
        return headers


class InjectedDrop(Exception):
    """Close the connection without a complete response."""


def retry_after_header(seconds: float) -> str:
    """`Retry-After` is delta-seconds, a whole number."""
    return str(math.ceil(seconds))


# --------------------------------------------------------------------------- faults

KINDS = ("meta", "latency", "timeout", "drop", "http_5xx")
_HTTP_KIND = re.compile(r"^http_(5\d\d)$")
_FIELDS = {
    "kind",
    "code",
    "mode",
    "count",
    "rate",
    "phone",
    "phone_number_id",
    "retry_after",
    "seconds",
    "jitter",
    "seed",
}
_KIND_FIELDS: dict[str, set[str]] = {
    "meta": {"code", "mode", "retry_after"},
    "latency": {"seconds", "jitter"},
    "timeout": {"seconds"},
    "drop": set(),
}
DEFAULT_TIMEOUT_SECONDS = 30.0


class FaultSpecError(ValueError):
    """A fault that cannot be injected: which field, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Fault:
    id: int
    kind: str  # "meta", "latency", "timeout", "drop" or "http_5xx" (e.g. "http_503")
    code: int | None = None
    mode: str | None = None
    remaining: int | None = 1  # None: until cleared
    rate: float = 1.0
    wa_id: str | None = None
    phone_number_id: str | None = None
    seconds: float | None = None
    jitter: float = 0.0
    retry_after: float | None = None
    seed: int | None = None
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def label(self) -> str:
        """What the fault injects: Meta's code, or the kind."""
        return str(self.code) if self.kind == "meta" else self.kind

    @property
    def http_status(self) -> int | None:
        match = _HTTP_KIND.match(self.kind)
        return int(match.group(1)) if match else None

    def applies_to(self, wa_id: str, phone_number_id: str | None) -> bool:
        return self.wa_id in (None, wa_id) and (
            self.phone_number_id is None or self.phone_number_id == phone_number_id
        )

    def fires(self) -> bool:
        """Draw for one send: whether the fault hits it (used up by one if so)."""
        if self.rate < 1.0 and not self.rng.random() < self.rate:
            return False
        self.fired += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    @property
    def used_up(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def delay(self) -> float:
        """A latency fault's delay for one send."""
        extra = self.rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0
        return (self.seconds or 0.0) + extra

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.kind == "meta":
            out.update(code=self.code, mode=self.mode)
        out.update(
            count=self.remaining,
            rate=self.rate,
            phone=None if self.wa_id is None else "+" + self.wa_id,
            phone_number_id=self.phone_number_id,
        )
        if self.kind in ("timeout", "latency"):
            out["seconds"] = self.seconds
        if self.kind == "latency":
            out["jitter"] = self.jitter
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.seed is not None:
            out["seed"] = self.seed
        out["fired"] = self.fired
        return out

    def graph_error(self) -> graph.GraphError:
        assert self.code is not None
        if self.code == 190:
            error = graph.expired_token()
        elif self.code == 130429:
            error = graph.throughput_reached()
        elif self.code == 131056:
            error = graph.pair_rate_hit()
        else:
            known = error_for(self.code)
            error = graph.GraphError(
                self.code,
                f"(#{self.code}) {known.title}",
                details=known.details,
                http_status=known.http_status,
            )
        error.retry_after = self.retry_after
        return error

    def status_error(self) -> dict[str, Any]:
        assert self.code is not None
        known = error_for(self.code)
        return events.status_error(self.code, known.title, known.details)


MAX_SECONDS = 86_400.0
"""The longest delay, hold or Retry-After a fault may ask for (a day)."""
MAX_CODE = 10**9
MAX_COUNT = 10**9


def _number(body: dict[str, Any], key: str, *, low: float, high: float = MAX_SECONDS) -> float:
    value = body[key]
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not low <= value <= high  # also NaN; and a huge int is not made a float
    ):
        raise FaultSpecError(key, f"{key} must be a number between {low:g} and {high:g}.")
    return float(value)


def _positive(body: dict[str, Any], key: str) -> float:
    value = _number(body, key, low=0.0)
    if value <= 0:
        raise FaultSpecError(key, f"{key} must be a positive number of seconds.")
    return value


def _int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class FaultSpec:
    """A validated `POST /faults` body, ready to become a `Fault`."""

    kind: str
    code: int | None = None
    mode: str | None = None
    remaining: int | None = 1
    rate: float = 1.0
    wa_id: str | None = None
    phone_number_id: str | None = None
    seconds: float | None = None
    jitter: float = 0.0
    retry_after: float | None = None
    seed: int | None = None


def parse_fault(body: object) -> FaultSpec:
    """Check a fault's description (a `POST /faults` body); raises `FaultSpecError`."""
    if not isinstance(body, dict):
        raise FaultSpecError("body", "Send a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise FaultSpecError(
            unknown[0],
            f"Unknown field {unknown[0]!r}; a fault has: {', '.join(sorted(_FIELDS))}.",
        )
    kind = body.get("kind")
    if kind is None:
        if "code" not in body:
            raise FaultSpecError(
                "code", "Give code (Meta's error code) or kind (" + ", ".join(KINDS) + ")."
            )
        kind = "meta"
    if not isinstance(kind, str) or not (kind in KINDS[:-1] or _HTTP_KIND.match(kind)):
        raise FaultSpecError(
            "kind", "kind must be one of meta, latency, timeout, drop, or http_5xx (e.g. http_503)."
        )
    spec = FaultSpec(kind=kind)

    own = _KIND_FIELDS.get(kind, {"retry_after"})  # the http_5xx kinds take retry_after
    for key in ("code", "mode", "retry_after", "seconds", "jitter"):
        if key in body and key not in own:
            raise FaultSpecError(key, f"{key} does not apply to a {kind} fault.")

    if kind == "meta":
        code = body.get("code")
        if not (_int(code) and 0 <= code <= MAX_CODE):
            raise FaultSpecError("code", "code must be Meta's numeric error code.")
        assert isinstance(code, int)
        mode = body.get("mode")
        if mode not in (None, "response", "status"):
            raise FaultSpecError("mode", 'mode must be "response" or "status".')
        spec.code, spec.mode = code, mode or error_for(code).mode
        if body.get("retry_after") is not None and spec.mode != "response":
            raise FaultSpecError("retry_after", "retry_after applies to response-mode faults only.")
    if body.get("retry_after") is not None:
        spec.retry_after = _number(body, "retry_after", low=0.0)
    if kind == "timeout":
        spec.seconds = DEFAULT_TIMEOUT_SECONDS
        if body.get("seconds") is not None:
            spec.seconds = _positive(body, "seconds")
    if kind == "latency":
        if body.get("seconds") is None:
            raise FaultSpecError("seconds", "A latency fault needs seconds (the delay).")
        spec.seconds = _positive(body, "seconds")
        if body.get("jitter") is not None:
            spec.jitter = _number(body, "jitter", low=0.0)

    if body.get("rate") is not None:
        spec.rate = _number(body, "rate", low=0.0, high=1.0)
    if "count" in body:
        count = body["count"]
        if count is not None and not (_int(count) and 1 <= count <= MAX_COUNT):
            raise FaultSpecError(
                "count", "count must be a positive integer, or null (until cleared)."
            )
        spec.remaining = count
    elif body.get("rate") is not None:
        spec.remaining = None  # a rate with no count: until cleared
    phone = body.get("phone")
    if phone is not None:
        if not isinstance(phone, str) or not graph.PHONE_RE.match(phone):
            raise FaultSpecError(
                "phone",
                "phone must be a phone number in international format, e.g. +16505551234.",
            )
        spec.wa_id = phone.lstrip("+")
    number = body.get("phone_number_id")
    if number is not None:
        if not isinstance(number, str) or not number.strip():
            raise FaultSpecError("phone_number_id", "phone_number_id must be a string.")
        spec.phone_number_id = number.strip()
    seed = body.get("seed")
    if seed is not None and not _int(seed):
        raise FaultSpecError("seed", "seed must be an integer.")
    spec.seed = seed
    return spec


@dataclass(frozen=True, slots=True)
class Draw:
    """What the faults do to one send: a delay first, then at most one fault."""

    delay: float = 0.0
    fault: Fault | None = None


NO_FAULT = Draw()


class Faults:
    """Injected faults, drawn by each send in order, plus Meta's throughput and pair limits."""

    def __init__(
        self,
        throughput: int | None,
        pair_interval: float | None,
        pair_burst: int,
        *,
        throughput_tolerance: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.queue: list[Fault] = []
        self.throughput = throughput
        self.throughput_tolerance = max(0.0, throughput_tolerance)
        self.pair_interval = pair_interval
        self.pair_burst = max(1, pair_burst)
        self.seed = seed
        self.injected: Counter[str] = Counter()
        self._next_id = 1
        self._recent: deque[float] = deque()
        self._pairs: dict[str, tuple[float, float]] = {}
        self._swept: float | None = None

    # --- injected faults ------------------------------------------------------------------

    def add_spec(self, spec: FaultSpec) -> Fault:
        fault_id, self._next_id = self._next_id, self._next_id + 1
        if spec.seed is not None:
            rng = random.Random(spec.seed)
        elif self.seed is not None:
            rng = random.Random(f"{self.seed}:{fault_id}")
        else:
            rng = random.Random()
        fault = Fault(
            id=fault_id,
            kind=spec.kind,
            code=spec.code,
            mode=spec.mode,
            remaining=spec.remaining,
            rate=spec.rate,
            wa_id=spec.wa_id,
            phone_number_id=spec.phone_number_id,
            seconds=spec.seconds,
            jitter=spec.jitter,
            retry_after=spec.retry_after,
            seed=spec.seed,
            rng=rng,
        )
        self.queue.append(fault)
        return fault

    def add(self, body: object) -> Fault:
        """Add a fault from its description (see the module docstring); `FaultSpecError` if
        it is not valid."""
        return self.add_spec(parse_fault(body))

    def remove(self, fault_id: int) -> bool:
        before = len(self.queue)
        self.queue = [f for f in self.queue if f.id != fault_id]
        return len(self.queue) < before

    def clear(self) -> None:
        self.queue.clear()

    def draw(self, wa_id: str, phone_number_id: str | None = None) -> Draw:
        """What the faults do to one send to `wa_id` from `phone_number_id`; the faults that
        fire are used up by one."""
        if not self.queue:
            return NO_FAULT
        delay = 0.0
        chosen: Fault | None = None
        for fault in self.queue:
            if not fault.applies_to(wa_id, phone_number_id):
                continue
            if fault.kind == "latency":
                if fault.fires():
                    delay += fault.delay()
                    self.injected[fault.label] += 1
            elif chosen is None and fault.fires():
                chosen = fault
                self.injected[fault.label] += 1
        self.queue = [f for f in self.queue if not f.used_up]
        return Draw(delay, chosen)

    # --- Meta's limits --------------------------------------------------------------------

    @property
    def throughput_window_limit(self) -> int | None:
        """Most sends accepted in any one-second window (see `check_limits`)."""
        if self.throughput is None:
            return None
        return max(self.throughput, math.floor(self.throughput * (1 + self.throughput_tolerance)))

    # Recipients whose pair allowance has refilled are forgotten at most this often (clock
    # seconds): a campaign to a million customers must not leave a million entries behind.
    SWEEP_EVERY = 60.0

    @property
    def tracked_pairs(self) -> int:
        """How many recipients the pair limit remembers (full allowances go at the next sweep)."""
        return len(self._pairs)

    def _sweep_pairs(self, now: float, interval: float) -> None:
        if self._swept is None:
            self._swept = now
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        burst = float(self.pair_burst)
        self._pairs = {
            wa_id: (tokens, last)
            for wa_id, (tokens, last) in self._pairs.items()
            if self._allowance(tokens, last, now, interval) < burst
        }

    def _allowance(self, tokens: float, last: float, now: float, interval: float) -> float:
        """A recipient's pair allowance at `now`: what was left at `last`, refilled one per
        `interval` up to the burst."""
        return min(float(self.pair_burst), tokens + (now - last) / interval)

    def check_limits(self, wa_id: str, now: float | None = None) -> None:
        """Raise Meta's throttling error if this send would exceed a limit; else count it.

        Throughput is a sliding one-second window, as Meta states its limit ("80 messages per
        second") and as the gateway's contract reads ("never more than that many in any
        one-second window"), with a tolerance of `throughput_tolerance` (a fraction) above the
        limit. Why a tolerance: a send is timestamped when this event loop gets round to it, not
        when it left the sender; a stall here (a big webhook batch, a SQLite commit) makes
        sends spaced ~10 ms apart arrive as 0.2 ms gaps next to 56 ms ones, so a sender that
        paces correctly would be refused by a strict count, and Meta does not measure its
        limit to the millisecond either. Why a window and not a token bucket or GCRA at
        1/limit: those judge spacing at the scale of one interval, so they need a tolerance as
        long as the longest stall in seconds, whereas a one-second window lets a sender's own
        headroom absorb the stall (wagate paces at 96 % of the limit: with 8 % tolerance a
        stall of ~110 ms at 100/s still passes). It stays strict where it matters: a sender
        10 % over the limit for a second holds 1.1 x limit in that second, and is refused.
        """
        now = time.monotonic() if now is None else now
        limit = self.throughput_window_limit
        if limit is not None:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= limit:
                raise graph.throughput_reached()
        if self.pair_interval is not None:
            self._sweep_pairs(now, self.pair_interval)
            tokens, last = self._pairs.get(wa_id, (float(self.pair_burst), now))
            tokens = self._allowance(tokens, last, now, self.pair_interval)
            if tokens < 1.0:
                self._pairs[wa_id] = (tokens, now)
                raise graph.pair_rate_hit()
            self._pairs[wa_id] = (tokens - 1.0, now)
        if limit is not None:
            self._recent.append(now)
