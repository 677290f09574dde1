"""Meta's Graph API errors, in Meta's envelope, as the sandbox answers them."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

VERSION_RE = re.compile(r"^v\d+\.\d+$")
PHONE_RE = re.compile(r"^\+?\d{7,15}$")


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


class GraphError(Exception):
    """An error the Graph API answers with, in Meta's envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: str | None = None,
        http_status: int = 400,
        type_: str = "OAuthException",
        subcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.http_status = http_status
        self.type = type_
        self.subcode = subcode
        self.retry_after: float | None = None
        """Seconds for a `Retry-After` header (injected faults only; Meta sends none)."""

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


def invalid_token() -> GraphError:
    return GraphError(
        190, "Invalid OAuth access token - Cannot parse access token", http_status=401
    )


def expired_token(now: datetime | None = None) -> GraphError:
    """Meta's answer when the access token has expired (code 190, subcode 463)."""
    now = now or datetime.now(UTC)
    fmt = "%A, %d-%b-%y %H:%M:%S UTC"
    expired = (now - timedelta(hours=1)).strftime(fmt)
    return GraphError(
        190,
        f"Error validating access token: Session has expired on {expired}. "
        f"The current time is {now.strftime(fmt)}.",
        http_status=401,
        subcode=463,
    )


def unknown_object(object_id: str, method: str = "post") -> GraphError:
    return GraphError(
        100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api",
        type_="GraphMethodException",
        subcode=33,
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(2500, f"Unknown path components: {path}")


def required(param: str) -> GraphError:
    text = f"The parameter {param} is required."
    return GraphError(100, f"(#100) {text}", details=text)


def unexpected_key(key: str, param: str) -> GraphError:
    text = f'Unexpected key "{key}" on param "{param}".'
    return GraphError(100, f"(#100) {text}", details=text)


def wrong_type(param: str, kind: str) -> GraphError:
    text = f"Param {param} must be {kind}."
    return GraphError(100, f"(#100) {text}", details=text)


def not_one_of(param: str, allowed: tuple[str, ...], got: object) -> GraphError:
    choices = ", ".join(a.upper() for a in allowed)
    text = f'Param {param} must be one of {{{choices}}} - got "{got}".'
    return GraphError(100, f"(#100) {text}", details=text)


def invalid_parameter(details: str) -> GraphError:
    return GraphError(100, "(#100) Invalid parameter", details=details)


def invalid_value(details: str) -> GraphError:
    return GraphError(131009, "(#131009) Parameter value is not valid", details=details)


def throughput_reached() -> GraphError:
    return GraphError(
        130429,
        "(#130429) Rate limit hit",
        details="Cloud API message throughput has been reached.",
        subcode=2494055,
    )


def pair_rate_hit() -> GraphError:
    return GraphError(
        131056,
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        details="Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
    )


def service_unavailable() -> GraphError:
    return GraphError(
        2,
        "(#2) Service temporarily unavailable",
        details="The sandbox is shutting down; retry later.",
        http_status=503,
    )
