"""Callbacks to the business, as pure rules: the event bodies, their signature, the callback URL
rule and when a failed delivery is tried again (or given up and kept as a dead letter).

The signature (SPEC §5): `X-Wagate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>" keyed with the callback secret>`. Signing the timestamp with the body lets a
receiver reject a replayed request: one whose `t` is further than a tolerance from its clock.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from wagate.domain.errors import FieldError
from wagate.domain.models import InboundMessage, Status

SIGNATURE_HEADER = "X-Wagate-Signature"
DEFAULT_TOLERANCE = 300
"""Seconds a receiver accepts between the signature's `t` and its own clock (either way)."""
MAX_URL_LENGTH = 2000

STATUS_EVENT = "message.status"
INBOUND_EVENT = "message.inbound"


# --------------------------------------------------------------------------- signature


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Wagate-Signature` value for this body, sent at `timestamp` (unix seconds)."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_problem(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str | None:
    """Why a signature header does not prove this body came from wagate just now, or None when
    it does: "missing", "malformed", "stale" (its `t` is more than `tolerance` seconds from
    `now`, a replay or a skewed clock) or "mismatch" (another secret or another body)."""
    if not header or not header.strip():
        return "missing"
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return "malformed"
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                return "malformed"
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.strip().lower())
        # Other schemes (a future v2) are skipped, so receivers keep working when one is added.
    if timestamp is None or not candidates:
        return "malformed"
    if abs(now - timestamp) > tolerance:
        return "stale"
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        return "mismatch"
    return None


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long failed deliveries are retried. The first retry comes within `base` seconds;
    each later one waits up to twice as long (at most `max_delay`), with jitter so a receiver
    that comes back is not hit by every lane at once; after `give_up_after` seconds from the
    event, the last attempt's failure makes it a dead letter."""

    base: float = 30.0
    max_delay: float = 3600.0
    give_up_after: float = 25 * 3600.0


def next_attempt_at(
    policy: RetryPolicy,
    *,
    created_at: datetime,
    now: datetime,
    attempts: int,
    rng: random.Random,
) -> datetime | None:
    """When to try again after the `attempts`-th attempt failed at `now`, or None to give up.

    The retries reach right to the deadline (the last one is at `created_at + give_up_after`),
    so a delivery is retried for the whole period however the backoff falls."""
    deadline = created_at + timedelta(seconds=policy.give_up_after)
    if now >= deadline:
        return None
    ceiling = min(policy.base * 2.0 ** min(max(attempts, 1) - 1, 40), policy.max_delay)
    delay = ceiling / 2 + rng.random() * ceiling / 2
    return min(now + timedelta(seconds=delay), deadline)


# A receiver's answers that refuse the one event, not every event: only that event's lane backs
# off. Anything else that is not a 2xx (no answer, a refused connection, 5xx, 429, a redirect,
# 401/403/404: a receiver down, overloaded or misconfigured) backs off the account, whose events
# would all meet the same answer.
EVENT_REFUSALS = frozenset({400, 409, 413, 415, 422})


def receiver_down(status_code: int | None) -> bool:
    """Whether a failed attempt's answer (None: no answer) says the receiver, not the event, is
    the problem."""
    return status_code not in EVENT_REFUSALS


def account_retry_at(
    policy: RetryPolicy, *, failures: int, now: datetime, rng: random.Random
) -> datetime:
    """When to probe an account's receiver again after `failures` failed attempts in a row:
    within `base` after the first, each wait up to twice the one before (at most `max_delay`),
    jittered so that accounts that failed together do not come back together."""
    ceiling = min(policy.base * 2.0 ** min(max(failures, 1) - 1, 40), policy.max_delay)
    return now + timedelta(seconds=ceiling / 2 + rng.random() * ceiling / 2)


# --------------------------------------------------------------------------- the callback URL


def callback_url_problem(value: object, field: str = "url") -> FieldError | None:
    """Why `value` cannot be a callback URL (an absolute http(s) URL with a host), or None.
    Another scheme is the egress policy's `url_not_allowed`; whether the host may be reached
    is `wagate.egress.EgressPolicy.check_url`'s to say."""
    if not isinstance(value, str) or not value:
        return FieldError(field, "invalid_callback_url", f"{field} must be an http(s) URL.")
    if len(value) > MAX_URL_LENGTH:
        return FieldError(
            field,
            "invalid_callback_url",
            f"{field} is {len(value)} characters; at most {MAX_URL_LENGTH} are allowed.",
        )
    if value != value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        return FieldError(
            field, "invalid_callback_url", f"{field} must not contain spaces or control characters."
        )
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return FieldError(field, "invalid_callback_url", f"{field} is not a valid URL.")
    if parts.scheme and parts.hostname and parts.scheme.lower() not in ("http", "https"):
        return FieldError(
            field, "url_not_allowed", f"{parts.scheme}: URLs are not allowed; use https://."
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return FieldError(
            field,
            "invalid_callback_url",
            f"{field} must be an absolute http:// or https:// URL, e.g. "
            "https://example.com/wagate/events.",
        )
    if parts.fragment:
        return FieldError(
            field, "invalid_callback_url", f"{field} must not have a #fragment (it is not sent)."
        )
    return None


# --------------------------------------------------------------------------- event bodies


@dataclass(frozen=True, slots=True)
class StatusError:
    """Why a message failed, as callbacks and the API show it."""

    code: str  # our stable slug, e.g. "undeliverable"
    meta_code: int | None
    title: str
    details: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "meta_code": self.meta_code,
            "title": self.title,
            "details": self.details,
        }


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def status_event(
    *,
    event_id: str,
    created_at: datetime,
    message_id: str,
    phone: str,
    status: Status,
    occurred_at: datetime,
    wamid: str | None,
    error: StatusError | None,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """A `message.status` event: one status change of one message. `error` only when failed."""
    return {
        "id": event_id,
        "type": STATUS_EVENT,
        "created_at": iso(created_at),
        "data": {
            "message_id": message_id,
            "phone": phone,
            "status": status.value,
            "timestamp": iso(occurred_at),
            "wamid": wamid,
            "error": error.as_dict() if error is not None and status is Status.FAILED else None,
            "metadata": metadata,
        },
    }


def inbound_kind(kind: str) -> str:
    """The `kind` a callback shows: the same name as the conversation API's
    (domain/inbound_kinds.py; a reply-button tap is `button_reply`, a template quick reply
    `button`, a list pick `list_reply`)."""
    return kind


def inbound_event(
    *,
    event_id: str,
    created_at: datetime,
    channel_id: str,
    message: InboundMessage,
    reply_to: str | None,
) -> dict[str, Any]:
    """A `message.inbound` event: a customer's message or button tap. `reply_to` is our
    message id when the customer quoted (or tapped a button on) one of ours."""
    return {
        "id": event_id,
        "type": INBOUND_EVENT,
        "created_at": iso(created_at),
        "data": {
            "phone": message.phone,
            "wamid": message.wamid,
            "kind": inbound_kind(message.kind),
            "text": message.text,
            "content": message.content,
            **(
                {"reacts_to": reply_to or message.context_wamid}
                if message.kind == "reaction"
                else {}
            ),
            "button_id": message.button_id,
            "button_payload": message.button_payload,
            "reply_to": reply_to,
            "profile_name": message.profile_name,
            "channel_id": channel_id,
            # The message a reaction is on: our msg_… id, or the customer's own wamid.
            "reacts_to": (reply_to or message.context_wamid)
            if message.kind == "reaction"
            else None,
            "timestamp": iso(message.timestamp),
            **({"media": inbound_media_view(message.media)} if message.media else {}),
        },
    }


def inbound_media_view(media: dict[str, Any]) -> dict[str, Any]:
    """A customer's file in a `message.inbound` event: its `med_…` id at once, with `status`
    pending (the event does not wait for the download): `GET /v1/media/{id}` answers with the
    file as soon as it is kept, waiting a few seconds for a download in progress."""
    view: dict[str, Any] = {"id": media.get("wagate_media_id"), "status": "pending"}
    for key in ("mime_type", "sha256", "filename", "caption", "voice"):
        if key in media:
            view[key] = media[key]
    return view


def inbound_lane(channel_id: str, phone: str) -> str:
    """One customer's inbound events on one number are delivered in order."""
    return f"{channel_id}:{phone}"
