"""Meta Cloud API error codes as data: what each means, and whether a send should be retried.

`META_ERRORS` is the table (code → `MetaErrorInfo`) the dispatcher classifies failures with and
the dashboard explains them from; `classify` adds the rules for codes not in it, and
`backoff_seconds` says how long to wait before the next attempt. Source: Meta's Cloud API
error-code reference (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).

Retry classes:

    THROTTLED   Meta asked us to slow down (throughput, pair rate, app or account call limits):
                retry later, honouring Retry-After; the pacing layer should also back off.
    TRANSIENT   Meta or the network failed this time (downtime, overload, timeouts, 5xx):
                retry with exponential backoff.
    PERMANENT   the request, the recipient, the template or the business account is the
                problem: retrying the same message fails the same way, so fail it at once and
                keep Meta's code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol


class RetryClass(StrEnum):
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class MetaErrorInfo:
    """One Meta error code, explained for the person reading the dashboard."""

    code: int
    retry_class: RetryClass
    title: str  # Meta's title for the code
    explanation: str  # what it means, in plain words
    action: str  # what the business can do about it

    @property
    def retryable(self) -> bool:
        return self.retry_class is not RetryClass.PERMANENT


BASE_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 15 * 60.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
PAIR_RATE_LIMIT_CODE = 131056

_T = RetryClass.THROTTLED
_R = RetryClass.TRANSIENT
_P = RetryClass.PERMANENT

# fmt: off
# (code, class, title, explanation, action). Kept as one flat table so that adding or
# reclassifying a code is a one-line change that reviewers can check against Meta's page.
_TABLE: tuple[tuple[int, RetryClass, str, str, str], ...] = (
    # --- Throttling -------------------------------------------------------------------------
    (4, _T, "Too many API calls",
     "The Meta app has reached its API call rate limit.",
     "Nothing to do: wagate retries later. If it persists, check the app's rate limits in "
     "Meta's App Dashboard."),
    (80007, _T, "Rate limit issues",
     "The WhatsApp Business Account has reached its API rate limit.",
     "Nothing to do: wagate retries later. If it persists, lower the channel's throughput."),
    (130429, _T, "Rate limit hit",
     "The business number reached its Cloud API message throughput.",
     "Nothing to do: wagate retries later. If it persists, lower the channel's messages/s "
     "to what Meta granted the number."),
    (131056, _T, "(Business Account, Consumer Account) pair rate limit hit",
     "Too many messages went to this one recipient from this number in a short time.",
     "Nothing to do: wagate waits and retries. Space out messages to the same person."),
    (133016, _T, "Account register/deregister rate limit exceeded",
     "Too many registration or deregistration attempts for this number in a short time.",
     "Wait before registering the number again."),
    # --- Transient ----------------------------------------------------------------------------
    (1, _R, "API Unknown",
     "An unknown error: an invalid request or a problem on Meta's side.",
     "wagate retries. If it keeps failing, check metastatus.com for WhatsApp Business API "
     "outages."),
    (2, _R, "API Service",
     "Meta's service is temporarily down or overloaded.",
     "Nothing to do: wagate retries. Check metastatus.com if it lasts."),
    (131000, _R, "Something went wrong",
     "The message failed because of an unknown error on Meta's side.",
     "wagate retries. If it keeps failing, contact Meta support with the message's details."),
    (131016, _R, "Service unavailable",
     "A WhatsApp service is temporarily unavailable.",
     "Nothing to do: wagate retries. Check metastatus.com if it lasts."),
    (131057, _R, "Account in maintenance mode",
     "The business account is in maintenance mode, for instance during a throughput upgrade.",
     "Nothing to do: wagate retries; maintenance usually ends within minutes."),
    (133004, _R, "Server temporarily unavailable",
     "Meta's server is temporarily unavailable.",
     "Nothing to do: wagate retries. Check metastatus.com if it lasts."),
    # --- Authorization and permissions ----------------------------------------------------------
    (0, _P, "AuthException",
     "Meta could not authenticate the request: the access token has expired or been "
     "invalidated.",
     "Create a new access token and update the channel's settings."),
    (3, _P, "API Method",
     "The access token lacks a capability or permission this call needs.",
     "Check the token in Meta's Access Token Debugger for whatsapp_business_messaging."),
    (10, _P, "Permission denied",
     "A permission the app needs was not granted or has been removed.",
     "Check the token's permissions in Meta's Access Token Debugger."),
    (190, _P, "Access token has expired",
     "The channel's access token has expired.",
     "Create a new access token (a System User token does not expire) and update the channel."),
    (200, _P, "API Permission",
     "A permission the app needs was not granted or has been removed (codes 200-299).",
     "Check the token's permissions in Meta's Access Token Debugger."),
    # --- Integrity and account ------------------------------------------------------------------
    (368, _P, "Temporarily blocked for policies violations",
     "The WhatsApp Business Account is restricted or disabled for violating a platform policy.",
     "Read the notice in WhatsApp Manager and follow Meta's policy enforcement guidance."),
    (130497, _P, "Business account is restricted from messaging users in this country",
     "The business may not message users in the recipient's country.",
     "See the WhatsApp Business Messaging Policy for the countries allowed for your business."),
    (131031, _P, "Account has been locked",
     "The business account is locked, for a policy violation or data that could not be "
     "verified.",
     "Check the account's status in WhatsApp Manager and contact Meta support."),
    (131042, _P, "Business eligibility payment issue",
     "A payment problem: no valid payment method, a credit line over its limit, or the "
     "account's currency or time zone not set.",
     "Fix the payment settings of the WhatsApp Business Account in Meta Business Suite."),
    (131045, _P, "Incorrect certificate",
     "The business number has a registration problem (its certificate is wrong).",
     "Register the phone number again in WhatsApp Manager."),
    (133000, _P, "Incomplete deregistration",
     "A previous deregistration of this number did not finish.",
     "Deregister the number again, then register it."),
    (133005, _P, "Two-step verification PIN mismatch",
     "The two-step verification PIN given is wrong.",
     "Use the right PIN, or reset it in WhatsApp Manager."),
    (133006, _P, "Phone number re-verification needed",
     "The business number must be verified again before it can be used.",
     "Verify the number again in WhatsApp Manager."),
    (133008, _P, "Too many two-step verification PIN guesses",
     "Too many wrong PINs were tried for this number.",
     "Wait for the lockout Meta names in the error details, then try again."),
    (133009, _P, "Two-step verification PIN guessed too fast",
     "PINs were tried too quickly for this number.",
     "Wait a little, then try again."),
    (133010, _P, "Phone number not registered",
     "The business number is not registered on the WhatsApp Business Platform.",
     "Register the number in WhatsApp Manager, then send again."),
    # --- Request --------------------------------------------------------------------------------
    (33, _P, "Parameter value is not valid",
     "The business phone number id is wrong, or the number has been deleted.",
     "Check the channel's phone number id against WhatsApp Manager."),
    (100, _P, "Invalid parameter",
     "The request had an unsupported, misspelled or invalid parameter.",
     "Read the details Meta gave; if wagate built the request, please report it."),
    (131005, _P, "Access denied",
     "Permission to send from this number was not granted or has been removed.",
     "Check the app's permissions for the WhatsApp Business Account."),
    (131008, _P, "Required parameter is missing",
     "The request left out a parameter Meta requires.",
     "Read the details Meta gave; if wagate built the request, please report it."),
    (131009, _P, "Parameter value is not valid",
     "A parameter value is invalid, for instance a wrong phone number id or a media link.",
     "Read the details Meta gave for the parameter, fix it and send a new message."),
    (131021, _P, "Recipient cannot be sender",
     "The message was addressed to the business number itself.",
     "Send to a customer's number, not to the channel's own number."),
    (131051, _P, "Unsupported message type",
     "Meta does not support this message type.",
     "Send a text, interactive or template message."),
    (131052, _P, "Media download error",
     "The media the customer sent could not be downloaded.",
     "Ask the customer to send the media again another way."),
    (131053, _P, "Media upload error",
     "The media in the message could not be uploaded, often an unsupported file type.",
     "Check the media's type and size against Meta's supported media list."),
    (135000, _P, "Generic user error",
     "The message failed because of an unknown problem with the request's parameters.",
     "Check the request, then contact Meta support with the error details if it persists."),
    # --- Recipient ------------------------------------------------------------------------------
    (130472, _P, "User's number is part of an experiment",
     "Meta withholds marketing messages from this user as part of an experiment.",
     "Do not resend; the user can still be reached once they message the business."),
    (131026, _P, "Message undeliverable",
     "WhatsApp could not deliver the message: the number may not be on WhatsApp, the user "
     "may not have accepted the latest terms, or uses an old WhatsApp version.",
     "Check that the number uses WhatsApp; reach the customer another way."),
    (131030, _P, "Recipient phone number not in allowed list",
     "A test business number can only message numbers on its allowed list.",
     "Add the recipient to the allowed list in the App Dashboard, or use a production number."),
    (131037, _P, "WhatsApp provided number needs display name approval",
     "The number's display name must be approved before it can send messages.",
     "Get the display name approved in WhatsApp Manager."),
    (131047, _P, "Re-engagement message",
     "More than 24 hours have passed since the customer last replied, so free-form messages "
     "are not allowed.",
     "Send an approved template with POST /v1/messages/template."),
    (131048, _P, "Spam rate limit hit",
     "Meta limits how many messages this number may send because too many earlier ones were "
     "blocked or reported as spam.",
     "Check the number's quality rating in WhatsApp Manager before sending more; retrying "
     "would only lower it further."),
    (131049, _P, "Meta chose not to deliver",
     "Meta did not deliver this marketing message to keep the user's engagement healthy: "
     "the user has received many marketing messages recently.",
     "Do not resend at once; try again much later, or send a utility template if it is "
     "important."),
    (131050, _P, "Unable to deliver marketing messages",
     "The user has chosen to stop receiving marketing messages from this business.",
     "Respect the choice; do not send marketing messages to this user."),
    # --- Templates ------------------------------------------------------------------------------
    (132000, _P, "Template param count mismatch",
     "The number of parameters sent does not match the template's placeholders.",
     "Sync templates (POST /v1/templates/sync) and send the parameters the template has."),
    (132001, _P, "Template does not exist",
     "There is no approved template of that name in that language.",
     "Check the template's name and language in WhatsApp Manager, then sync templates."),
    (132005, _P, "Template hydrated text too long",
     "The template's text with the parameters filled in is over Meta's length limit.",
     "Shorten the parameter values."),
    (132007, _P, "Template format character policy violated",
     "The template's content breaks WhatsApp's formatting policy.",
     "Read the details Meta gave and fix the parameter values."),
    (132012, _P, "Template parameter format mismatch",
     "A parameter value is not in the format the template expects (e.g. a currency or date).",
     "Send the parameter in the format the template was approved with."),
    (132015, _P, "Template is paused",
     "Meta paused the template because of low quality.",
     "Edit the template to improve it, or use another one."),
    (132016, _P, "Template is disabled",
     "Meta disabled the template because of low quality.",
     "Create a new template with different content."),
    (132068, _P, "Flow is blocked",
     "The WhatsApp Flow in the message is blocked.",
     "Fix the Flow in WhatsApp Manager."),
    (132069, _P, "Flow is throttled",
     "The WhatsApp Flow in the message is throttled.",
     "Fix the Flow's health in WhatsApp Manager."),
)
# fmt: on

META_ERRORS: Mapping[int, MetaErrorInfo] = MappingProxyType(
    {row[0]: MetaErrorInfo(*row) for row in _TABLE}
)

# Meta documents 200-299 as one "API Permission" range; the table holds it once, as 200.
_PERMISSION_RANGE = range(200, 300)


def lookup(code: int | None) -> MetaErrorInfo | None:
    """The table entry for a Meta error code, or None for a code the table does not know."""
    if code is None:
        return None
    info = META_ERRORS.get(code)
    if info is None and code in _PERMISSION_RANGE:
        base = META_ERRORS[200]
        info = MetaErrorInfo(code, base.retry_class, base.title, base.explanation, base.action)
    return info


def classify(code: int | None, http_status: int | None) -> RetryClass:
    """The retry class of a failed call or a failed status.

    A known code decides by itself. Otherwise: no code and no status (timeout, connection
    error) and 5xx, 408 are transient; 429 is throttling; any other 4xx is permanent. An
    unknown code with no status comes from a webhook's failed status, Meta's final word on
    that message, so it is permanent too.
    """
    info = lookup(code)
    if info is not None:
        return info.retry_class
    if http_status is None:
        return RetryClass.TRANSIENT if code is None else RetryClass.PERMANENT
    if http_status == 429:
        return RetryClass.THROTTLED
    if http_status >= 500 or http_status == 408:
        return RetryClass.TRANSIENT
    return RetryClass.PERMANENT


class UniformSource(Protocol):
    """What backoff needs from a random source; `random.Random` provides it."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff_seconds(
    attempt: int,
    retry_class: RetryClass,
    meta_code: int | None,
    retry_after: float | None,
    rng: UniformSource,
    *,
    base: float = BASE_BACKOFF_SECONDS,
) -> float:
    """Seconds to wait before the next try; `attempt` counts failed attempts so far (1, 2, …).
    `base` scales every wait (1 s in production; tests shrink it).

    Exponential backoff with full jitter, uniform between 0 and min(15 min, 2^(attempt-1) s),
    so that many messages failing together do not come back together. Throttling waits at
    least 1 s, so a jitter near zero does not hit the limit again at once. A pair-rate error
    (131056) waits 4^attempt s as Meta advises (4, 16, 64, … capped at 15 min). A Retry-After
    from Meta is a floor: we never come back sooner than it asks, even beyond the cap (up to
    a day).
    Permanent errors have no next try: asking is a bug, so it raises ValueError.
    """
    if retry_class is RetryClass.PERMANENT:
        raise ValueError("a permanent error is not retried, so it has no backoff")
    attempt = max(1, attempt)
    # The exponent is bounded so huge attempt counts cannot overflow a float.
    if meta_code == PAIR_RATE_LIMIT_CODE:
        delay = min(MAX_BACKOFF_SECONDS, base * 4.0 ** min(attempt, 16))
    else:
        ceiling = min(MAX_BACKOFF_SECONDS, base * 2.0 ** min(attempt - 1, 30))
        delay = rng.uniform(0.0, ceiling)
        if retry_class is RetryClass.THROTTLED:
            delay = max(delay, base)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > delay:
        # A day bounds a nonsensical header value; nothing Meta sends asks for longer.
        delay = min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
    return delay
