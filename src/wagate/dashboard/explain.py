"""Why a message failed and what to do about it, in plain words (from Meta's code, or ours)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wagate.domain import meta_errors


@dataclass(frozen=True, slots=True)
class FailureExplanation:
    headline: str
    explanation: str
    action: str
    meta_code: int | None
    meta_title: str | None
    meta_details: str | None
    code: str | None


# Failures that wagate decides itself, with no Meta code to look up.
_OURS = {
    "outside_service_window": (
        "Customer service window closed",
        "The customer's 24-hour window closed before the message could be handed to Meta, so "
        "it was not sent.",
        "Send an approved template instead (POST /v1/messages/template), or wait for the "
        "customer to write again.",
    ),
    "retries_exhausted": (
        "Gave up after many attempts",
        "Meta or the network kept failing for this message, and wagate stopped retrying.",
        "Check the channel's settings and Meta's status page, then send the message again.",
    ),
}
_UNKNOWN = (
    "The message could not be sent",
    "Meta refused the message with an error wagate has no explanation for.",
    "Read Meta's words below; Meta's error-code reference explains the code.",
)


def explain_failure(error: dict[str, Any] | None) -> FailureExplanation | None:
    """`error` is a failed message's `error` as the API shows it (code, meta_code, title,
    details); None for a message that did not fail."""
    if not error:
        return None
    meta_code = error.get("meta_code")
    code = error.get("code")
    info = meta_errors.lookup(meta_code)
    if code in _OURS and (info is None or code == "retries_exhausted"):
        headline, explanation, action = _OURS[code]
    elif info is not None:
        headline, explanation, action = info.title, info.explanation, info.action
    else:
        headline, explanation, action = _UNKNOWN
    return FailureExplanation(
        headline=headline,
        explanation=explanation,
        action=action,
        meta_code=meta_code,
        meta_title=error.get("title"),
        meta_details=error.get("details"),
        code=code,
    )
