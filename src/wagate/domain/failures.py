"""Our stable error codes for messages that failed, next to Meta's numeric code."""

from __future__ import annotations

# The failures a business most often has to act on get a readable code of their own; any other
# code Meta reports is `meta_error` (its number is always kept in `meta_code`).
_SLUGS = {
    131026: "undeliverable",
    131047: "outside_service_window",
    131049: "ecosystem_limited",
    131050: "user_stopped_marketing",
    131051: "unsupported_message_type",
    131052: "media_download_failed",
    131053: "media_upload_failed",
    131008: "missing_parameter",
    131009: "invalid_parameter",
    131021: "sender_is_recipient",
    131030: "recipient_not_allowed",
    131031: "account_locked",
    131042: "payment_issue",
    132000: "template_params_mismatch",
    132001: "template_not_found",
    132005: "template_text_too_long",
    132007: "template_policy_violation",
    132012: "template_param_format_mismatch",
    132015: "template_paused",
    132016: "template_disabled",
    100: "invalid_request",
    190: "access_token_expired",
    130429: "rate_limited",
    131056: "pair_rate_limited",
}


def error_slug(meta_code: int | None) -> str:
    if meta_code is None:
        return "send_failed"
    return _SLUGS.get(meta_code, "meta_error")
