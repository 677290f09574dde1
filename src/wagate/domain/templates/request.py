"""A Send Template body (SPEC §1) checked against the channel's synced templates of the requested
name and turned into a `SendRequest`, every problem listed in field order."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wagate.domain.errors import FieldError, InvalidBody, ValidationFailed
from wagate.domain.messages import (
    CHANNEL_MAX,
    IDEMPOTENCY_KEY_MAX,
    REPLY_TO_MAX,
    _metadata,
    _optional_id,
    _unstorable,
)
from wagate.domain.models import SendRequest
from wagate.domain.phone import describe_type, normalize_phone, quote_input
from wagate.domain.templates.model import APPROVED, Template, template_from_meta
from wagate.domain.templates.params import fill_into

NAME_MAX = 512
LANGUAGE_MAX = 16
_WHY_NOT_APPROVED = {
    "REJECTED": "Meta rejected it; edit it in WhatsApp Manager and submit it again",
    "PAUSED": "Meta paused it because customers gave it poor feedback; edit it or wait until "
    "Meta lifts the pause",
    "DISABLED": "Meta disabled it for low quality; create a new template",
    "PENDING": "it is still waiting for Meta's review",
    "IN_APPEAL": "its rejection is being appealed and is still waiting for Meta's review",
    "LIMIT_EXCEEDED": "the account has more templates than Meta allows",
}


def build_template_send(
    fields: Mapping[str, Any],
    candidates: Sequence[Template],
    *,
    form: bool = False,
    channel_error: FieldError | None = None,
) -> SendRequest:
    """Check a Send Template body against `candidates` (the channel's synced templates of the
    requested name); raise `ValidationFailed` listing every problem in field order.

    `form=True` for urlencoded and multipart bodies (`params` and `metadata` are JSON strings).
    `channel_error` reports a `channel` the account does not have; then the template is not
    looked at.
    """
    if not isinstance(fields, Mapping):
        raise InvalidBody("The request body must be a JSON object or a form.")
    errors: list[FieldError] = []
    phone, phone_errors = normalize_phone(fields.get("phone"), form=form)
    errors += phone_errors
    name = _template_name(fields.get("template"), errors)
    language = _optional_id(fields.get("language"), "language", LANGUAGE_MAX, errors)
    language_ok = not any(e.field == "language" for e in errors)
    params = _params(fields.get("params"), form, errors)
    content = None
    if name is not None and language_ok and channel_error is None:
        template = choose_template(candidates, name, language, errors)
        if template is not None and params is not None:
            content = fill_into(template, params, errors)
    reply_to = _optional_id(fields.get("reply_to"), "reply_to", REPLY_TO_MAX, errors)
    metadata = _metadata(fields.get("metadata"), form, errors)
    channel = _optional_id(fields.get("channel"), "channel", CHANNEL_MAX, errors)
    if channel_error is not None:
        errors.append(channel_error)
    key = _optional_id(
        fields.get("idempotency_key"), "idempotency_key", IDEMPOTENCY_KEY_MAX, errors
    )
    if errors:
        raise ValidationFailed(errors)
    assert phone is not None and content is not None  # no errors means both were made
    return SendRequest(
        phone=phone,
        content=content,
        reply_to=reply_to,
        metadata=metadata,
        channel=channel,
        idempotency_key=key,
    )


def check_request(
    templates: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> list[FieldError]:
    """What `POST /v1/messages/template` would refuse about a JSON `body`, judged from
    `templates` as `GET /v1/templates` lists them (for checking a bulk send before it starts);
    empty when it would be accepted. Without a `channel` in the body, the first channel listed
    with that name stands for the account's default."""
    name, wanted = lookup_keys(body)
    views = [
        v
        for v in templates
        if v.get("name") == name
        and (wanted is None or wanted in (v.get("channel_id"), v.get("phone_number_id")))
    ]
    if wanted is None and views:
        views = [v for v in views if v.get("channel_id") == views[0].get("channel_id")]
    candidates = []
    for view in views:
        try:
            candidates.append(template_from_meta(view))
        except ValueError:
            continue
    try:
        build_template_send(body, candidates)
    except ValidationFailed as failed:
        return failed.errors
    return []


def lookup_keys(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The template name and channel to look up before checking, when usable as given."""

    def clean(value: object) -> str | None:
        ok = isinstance(value, str) and value and value == value.strip() and len(value) <= NAME_MAX
        return value if ok and isinstance(value, str) else None

    if not isinstance(fields, Mapping):
        return None, None
    return clean(fields.get("template")), clean(fields.get("channel"))


def _template_name(value: object, errors: list[FieldError]) -> str | None:
    def error(code: str, message: str) -> None:
        errors.append(FieldError("template", code, message))

    if value is None or (isinstance(value, str) and not value.strip()):
        error(
            "missing_field",
            "template is required: the name of an approved template, e.g. "
            '"order_confirmation" (GET /v1/templates lists them).',
        )
    elif not isinstance(value, str):
        error("invalid_field", f"template must be a string (its name); got {describe_type(value)}.")
    elif value != value.strip():
        error(
            "invalid_field",
            f"template {quote_input(value)} has leading or trailing spaces; remove them.",
        )
    elif (bad := _unstorable("template", value)) is not None:
        errors.append(bad)
    elif len(value) > NAME_MAX:
        error(
            "field_too_long", f"template is {len(value)} characters; names have at most {NAME_MAX}."
        )
    else:
        return value
    return None


def _params(value: object, form: bool, errors: list[FieldError]) -> dict[str, Any] | None:
    example = '{"body": ["Asha", "4521"]}'
    if value is None or (form and value == ""):
        return {}
    if form and isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            errors.append(
                FieldError(
                    "params",
                    "invalid_field",
                    f"params is not valid JSON; in a form body send a JSON object, e.g. {example}.",
                )
            )
            return None
    if not isinstance(value, dict):
        errors.append(
            FieldError(
                "params",
                "invalid_field",
                f"params must be an object with header, body and buttons, e.g. {example}; "
                f"got {describe_type(value)}.",
            )
        )
        return None
    extra = sorted(str(k) for k in value if k not in ("header", "body", "buttons"))
    if extra:
        names = ", ".join(quote_input(k) for k in extra[:5])
        errors.append(
            FieldError(
                "params",
                "invalid_field",
                f"params has unknown field(s) {names}; it takes header, body and buttons "
                "(a template's footer has no parameters).",
            )
        )
        return None
    return value


def choose_template(
    candidates: Sequence[Template],
    name: str,
    language: str | None,
    errors: list[FieldError],
) -> Template | None:
    """The approved template the request means, or None with the reason added to `errors`."""

    def not_found(message: str) -> None:
        errors.append(FieldError("template", "template_not_found", message))

    if not candidates:
        not_found(
            f"This account has no template named {quote_input(name)} on this channel. Check the "
            "name with GET /v1/templates; a template created recently appears after "
            "POST /v1/templates/sync."
        )
        return None
    languages = sorted({t.language for t in candidates})
    if language is None:
        if len(languages) > 1:
            errors.append(
                FieldError(
                    "language",
                    "missing_field",
                    f"language is required: template {quote_input(name)} exists in "
                    f"{', '.join(languages)}.",
                )
            )
            return None
        chosen = candidates[0]
    else:
        matches = [t for t in candidates if t.language.lower() == language.lower()]
        if not matches:
            not_found(
                f"Template {quote_input(name)} exists in {', '.join(languages)} but not in "
                f"{quote_input(language)}."
            )
            return None
        chosen = matches[0]
    if chosen.status != APPROVED:
        why = _WHY_NOT_APPROVED.get(chosen.status, f"its status is {chosen.status}")
        not_found(
            f"Template {quote_input(name)} ({chosen.language}) is {chosen.status.lower()}, not "
            f"approved: {why}. Only approved templates can be sent; sync with "
            "POST /v1/templates/sync after Meta approves it."
        )
        return None
    return chosen
