"""Validation of a Send Message request (`POST /v1/messages`, SPEC §1) into a `SendRequest`.

`parse_send_request` takes the already-decoded body and either returns a `SendRequest` or raises
`ValidationFailed` listing every broken rule, in field order (phone, message, header, footer,
buttons, preview_url, reply_to, metadata, channel, idempotency_key); the first is the `code`.
`token` is handled before this and ignored here, as are unknown fields.

Error codes (all HTTP 422):

    missing_field              phone or message is absent or null (phone also when "")
    invalid_phone_format       phone is not "+" and digits; the message shows the corrected form
    invalid_phone_number       phone is well formed but not a valid number (libphonenumber)
    invalid_field              a field has the wrong type (e.g. message is a number, preview_url
                               is not a boolean), or a string holds a character that cannot be
                               stored or sent (NUL, an unpaired surrogate), or an identifier
                               (reply_to, channel, idempotency_key) has surrounding spaces
    empty_message              message is "" or only whitespace
    message_too_long           message over 4096 characters (text) or 1024 (interactive)
    header_too_long            header over 60 characters
    footer_too_long            footer over 60 characters
    buttons_required           header or footer given without buttons
    too_many_buttons           more than 3 buttons
    invalid_button             buttons is not an array of {"id", "title"} objects (an empty
                               array included), or a button has a missing, extra or non-string
                               key, an empty or blank title, an empty id, or an id with
                               leading or trailing spaces; in form bodies, buttons is not JSON
    button_title_too_long      a button title over 20 characters
    button_id_too_long         a button id over 256 characters
    duplicate_button_id        two buttons share an id
    duplicate_button_title     two buttons share a title (compared after trimming spaces)
    field_too_long             reply_to over 128, channel over 128, idempotency_key over 255
    invalid_metadata           metadata is not a JSON object (in form bodies: not JSON)
    metadata_too_large         metadata over 4 KiB as compact UTF-8 JSON

Decisions where the contract is silent:

- An empty or whitespace-only `header`/`footer` counts as absent, and an empty `reply_to`,
  `channel` or `idempotency_key` likewise (forms send empty inputs as ""). Present values are
  kept exactly as sent, the message body included: nothing is trimmed or rewritten.
- `buttons: []` is refused (`invalid_button`) rather than treated as absent, because it most
  likely means the caller's button list came out empty by mistake.
- Only the first 10 buttons are checked one by one, so a huge array cannot produce a huge
  error response; `too_many_buttons` already says to cut the list to 3.
- `preview_url` is ignored for interactive messages (the Cloud API has no such field there).
- In a JSON body `buttons` must be an array and `metadata` an object, never strings holding
  JSON; in a form body (`form=True`) they are JSON strings and `preview_url` is one of
  true/false/1/0/on/off/yes/no (any case), an empty value meaning "not given".
- Lengths count Unicode code points (Python `len`): an emoji such as 👍 is one character, a
  flag or a family emoji is several.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wagate.domain.errors import FieldError, InvalidBody, ValidationFailed
from wagate.domain.models import Button, MessageContent, MessageType, SendRequest
from wagate.domain.phone import describe_type, normalize_phone, quote_input

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
MAX_BUTTONS = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
REPLY_TO_MAX = 128
CHANNEL_MAX = 128
IDEMPOTENCY_KEY_MAX = 255
METADATA_MAX_BYTES = 4096
BUTTONS_CHECKED = 10

# What a form may send for a yes/no field (in any case, spaces around).
TRUE_WORDS = frozenset({"true", "1", "on", "yes"})
FALSE_WORDS = frozenset({"false", "0", "off", "no", ""})
_BUTTON_EXAMPLE = '[{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]'


def parse_send_request(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    """Validate a decoded Send Message body; raise `ValidationFailed` listing every problem.

    `form=True` for urlencoded and multipart bodies, whose values are all strings.
    """
    if not isinstance(fields, Mapping):
        raise InvalidBody("The request body must be a JSON object or a form.")
    raw_header, raw_footer, raw_buttons = (fields.get(k) for k in ("header", "footer", "buttons"))
    # The type is decided by which fields are present, before any of them is checked, so the
    # body's length limit is right even when, say, a button is broken.
    header_given = _text_given(raw_header)
    footer_given = _text_given(raw_footer)
    buttons_given = raw_buttons is not None and not (form and raw_buttons == "")
    interactive = header_given or footer_given or buttons_given
    message_type = MessageType.INTERACTIVE if interactive else MessageType.TEXT

    errors: list[FieldError] = []
    phone, phone_errors = normalize_phone(fields.get("phone"), form=form)
    errors += phone_errors
    body = _message_body(fields.get("message"), message_type, errors)
    header = _optional_text(raw_header, "header", HEADER_MAX, "header_too_long", errors)
    footer = _optional_text(raw_footer, "footer", FOOTER_MAX, "footer_too_long", errors)

    buttons: tuple[Button, ...] = ()
    if buttons_given:
        buttons = _buttons(raw_buttons, form, errors)
    elif interactive:
        errors.append(
            FieldError(
                "buttons",
                "buttons_required",
                "A header or footer makes this an interactive message, and Meta requires at "
                f"least one button on an interactive message. Add 1 to {MAX_BUTTONS} buttons, "
                f"e.g. {_BUTTON_EXAMPLE}, or leave out the header and footer to send plain text.",
            )
        )

    preview_url = read_bool(fields.get("preview_url"), "preview_url", form, errors)
    reply_to = _optional_id(fields.get("reply_to"), "reply_to", REPLY_TO_MAX, errors)
    metadata = _metadata(fields.get("metadata"), form, errors)
    channel = _optional_id(fields.get("channel"), "channel", CHANNEL_MAX, errors)
    idempotency_key = _optional_id(
        fields.get("idempotency_key"), "idempotency_key", IDEMPOTENCY_KEY_MAX, errors
    )

    if errors:
        raise ValidationFailed(errors)
    assert phone is not None and body is not None  # no errors means both were accepted
    content = MessageContent(
        type=message_type,
        body=body,
        header=header,
        footer=footer,
        buttons=buttons,
        preview_url=preview_url and message_type is MessageType.TEXT,
    )
    return SendRequest(
        phone=phone,
        content=content,
        reply_to=reply_to,
        metadata=metadata,
        channel=channel,
        idempotency_key=idempotency_key,
    )


def _message_body(value: object, message_type: MessageType, errors: list[FieldError]) -> str | None:
    if value is None:
        errors.append(
            FieldError("message", "missing_field", "message is required: the text to send.")
        )
        return None
    if not isinstance(value, str):
        errors.append(_wrong_type("message", value, "a string"))
        return None
    if not value.strip():
        what = "empty" if value == "" else "only whitespace"
        errors.append(
            FieldError("message", "empty_message", f"message is {what}; write the text to send.")
        )
        return None
    if (bad := _unstorable("message", value)) is not None:
        errors.append(bad)
        return None
    if message_type is MessageType.TEXT and len(value) > TEXT_MAX:
        errors.append(
            FieldError(
                "message",
                "message_too_long",
                f"message is {len(value)} characters; a text message can have at most "
                f"{TEXT_MAX}. Shorten it or split it into several messages.",
            )
        )
        return None
    if message_type is MessageType.INTERACTIVE and len(value) > INTERACTIVE_BODY_MAX:
        errors.append(
            FieldError(
                "message",
                "message_too_long",
                f"message is {len(value)} characters; an interactive message (one with a "
                f"header, footer or buttons) can have at most {INTERACTIVE_BODY_MAX}, Meta's "
                f"limit for an interactive body. Shorten it, or leave out header, footer and "
                f"buttons to send it as text (up to {TEXT_MAX}).",
            )
        )
        return None
    return value


def _text_given(value: object) -> bool:
    """Whether header / footer counts as present: anything but null, "" or whitespace."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _optional_text(
    value: object, name: str, limit: int, too_long: str, errors: list[FieldError]
) -> str | None:
    """header / footer: blank means absent; otherwise a string of at most `limit` characters."""
    if not _text_given(value):
        return None
    if not isinstance(value, str):
        errors.append(_wrong_type(name, value, "a string"))
        return None
    if (bad := _unstorable(name, value)) is not None:
        errors.append(bad)
        return None
    if len(value) > limit:
        errors.append(
            FieldError(
                name,
                too_long,
                f"{name} is {len(value)} characters; WhatsApp allows at most {limit}.",
            )
        )
        return None
    return value


def _buttons(value: object, form: bool, errors: list[FieldError]) -> tuple[Button, ...]:
    if form and isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            errors.append(
                FieldError(
                    "buttons",
                    "invalid_button",
                    f"buttons is not valid JSON; in a form body send it as a JSON array, "
                    f"e.g. {_BUTTON_EXAMPLE}.",
                )
            )
            return ()
    if not isinstance(value, list):
        errors.append(
            FieldError(
                "buttons",
                "invalid_button",
                f"buttons must be an array of 1 to {MAX_BUTTONS} buttons, e.g. {_BUTTON_EXAMPLE}; "
                f"got {describe_type(value)}.",
            )
        )
        return ()
    if not value:
        errors.append(
            FieldError(
                "buttons",
                "invalid_button",
                f"buttons is empty; send 1 to {MAX_BUTTONS} buttons, or leave the field out "
                "for a text message.",
            )
        )
        return ()
    if len(value) > MAX_BUTTONS:
        errors.append(
            FieldError(
                "buttons",
                "too_many_buttons",
                f"buttons has {len(value)} buttons; WhatsApp allows at most {MAX_BUTTONS} "
                "quick-reply buttons on a message.",
            )
        )

    accepted: list[Button] = []
    seen = _SeenParts()
    for index, item in enumerate(value[:BUTTONS_CHECKED]):
        button = _button(item, index, seen, errors)
        if button is not None:
            accepted.append(button)
    return tuple(accepted)


class _SeenParts:
    """Ids and titles of the buttons checked so far, with the index that used each first."""

    def __init__(self) -> None:
        self.id: dict[str, int] = {}
        self.title: dict[str, int] = {}


def _button(item: object, index: int, seen: _SeenParts, errors: list[FieldError]) -> Button | None:
    path = f"buttons[{index}]"
    if not isinstance(item, dict):
        errors.append(
            FieldError(
                path,
                "invalid_button",
                f'{path} must be an object {{"id": …, "title": …}}; got {describe_type(item)}.',
            )
        )
        return None
    if "reply" in item and "id" not in item:
        # Meta's own shape ({"type": "reply", "reply": {...}}) is the likeliest mix-up.
        errors.append(
            FieldError(
                path,
                "invalid_button",
                f'{path} looks like a Cloud API button; send just {{"id": …, "title": …}} '
                "and wagate builds Meta's format.",
            )
        )
        return None
    extra = sorted(str(key) for key in item if key not in ("id", "title"))
    if extra:
        names = ", ".join(quote_input(key) for key in extra[:5])
        errors.append(
            FieldError(
                path,
                "invalid_button",
                f'{path} has unknown field(s) {names}; a button has only "id" and "title".',
            )
        )
    # Id and title are checked independently (uniqueness included), so that one request
    # reports every problem even when a button has several.
    button_id = _button_id(item.get("id"), f"{path}.id", errors)
    if button_id is not None and not _unique(button_id, index, "id", seen.id, errors):
        button_id = None
    title = _button_title(item.get("title"), f"{path}.title", errors)
    # Titles are compared without surrounding spaces: " Yes" and "Yes" look the same on screen.
    if title is not None and not _unique(title.strip(), index, "title", seen.title, errors):
        title = None
    if extra or button_id is None or title is None:
        return None
    return Button(id=button_id, title=title)


def _button_id(value: object, path: str, errors: list[FieldError]) -> str | None:
    problem = _button_id_problem(value, path)
    if problem is not None:
        errors.append(problem)
        return None
    assert isinstance(value, str)  # _button_id_problem refuses anything else
    return value


def _button_id_problem(value: object, path: str) -> FieldError | None:
    def invalid(message: str) -> FieldError:
        return FieldError(path, "invalid_button", message)

    if value is None:
        return invalid(f"{path} is missing; give each button a unique id (sent back on a tap).")
    if not isinstance(value, str):
        return invalid(f"{path} must be a string; got {describe_type(value)}.")
    if not value.strip():
        return invalid(f"{path} is empty; ids are 1 to {BUTTON_ID_MAX} characters.")
    if value != value.strip():
        # Ids are matched exactly when the customer taps; padding would be invisible there.
        return invalid(
            f"{path} {quote_input(value)} has leading or trailing spaces; "
            f"write it as {quote_input(value.strip())}."
        )
    if (bad := _unstorable(path, value, code="invalid_button")) is not None:
        return bad
    if len(value) > BUTTON_ID_MAX:
        return FieldError(
            path,
            "button_id_too_long",
            f"{path} is {len(value)} characters; WhatsApp allows at most {BUTTON_ID_MAX}.",
        )
    return None


def _button_title(value: object, path: str, errors: list[FieldError]) -> str | None:
    problem = _button_title_problem(value, path)
    if problem is not None:
        errors.append(problem)
        return None
    assert isinstance(value, str)  # _button_title_problem refuses anything else
    return value


def _button_title_problem(value: object, path: str) -> FieldError | None:
    def invalid(message: str) -> FieldError:
        return FieldError(path, "invalid_button", message)

    if value is None:
        return invalid(f"{path} is missing; give each button the text shown on it.")
    if not isinstance(value, str):
        return invalid(f"{path} must be a string; got {describe_type(value)}.")
    if not value.strip():
        return invalid(f"{path} is empty; titles are 1 to {BUTTON_TITLE_MAX} characters.")
    if (bad := _unstorable(path, value, code="invalid_button")) is not None:
        return bad
    if len(value) > BUTTON_TITLE_MAX:
        return FieldError(
            path,
            "button_title_too_long",
            f"{path} is {len(value)} characters; WhatsApp allows at most {BUTTON_TITLE_MAX}.",
        )
    return None


def _unique(
    key: str, index: int, part: str, seen: dict[str, int], errors: list[FieldError]
) -> bool:
    """Record `key` for button `index`; False (with an error) when an earlier button has it."""
    if key not in seen:
        seen[key] = index
        return True
    errors.append(
        FieldError(
            f"buttons[{index}].{part}",
            f"duplicate_button_{part}",
            f"buttons[{index}].{part} {quote_input(key)} is the same as "
            f"buttons[{seen[key]}].{part}; each button needs its own {part}.",
        )
    )
    return False


def read_bool(value: object, name: str, form: bool, errors: list[FieldError]) -> bool:
    """A yes/no field (`preview_url`, `typing`); absent is False. A form's text says it in
    words (true/false, on/off, yes/no, 1/0)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if form and isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        errors.append(
            FieldError(
                name,
                "invalid_field",
                f"{name} {quote_input(value)} is not a yes/no value; send true or false.",
            )
        )
        return False
    errors.append(_wrong_type(name, value, "true or false"))
    return False


def _optional_id(value: object, name: str, limit: int, errors: list[FieldError]) -> str | None:
    """reply_to / channel / idempotency_key: an identifier, kept exactly as given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append(_wrong_type(name, value, "a string"))
        return None
    if value != value.strip():
        # Identifiers are matched exactly later on; stray spaces would silently never match.
        errors.append(
            FieldError(
                name,
                "invalid_field",
                f"{name} {quote_input(value)} has leading or trailing spaces; remove them.",
            )
        )
        return None
    if (bad := _unstorable(name, value)) is not None:
        errors.append(bad)
        return None
    if len(value) > limit:
        errors.append(
            FieldError(
                name,
                "field_too_long",
                f"{name} is {len(value)} characters; at most {limit} are allowed.",
            )
        )
        return None
    return value


def _metadata(value: object, form: bool, errors: list[FieldError]) -> dict[str, Any]:
    if value is None or (form and value == ""):
        return {}
    if form and isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            errors.append(
                FieldError(
                    "metadata",
                    "invalid_metadata",
                    'metadata is not valid JSON; send a JSON object, e.g. {"order_id": "4521"}.',
                )
            )
            return {}
    if not isinstance(value, dict):
        errors.append(
            FieldError(
                "metadata",
                "invalid_metadata",
                f'metadata must be a JSON object, e.g. {{"order_id": "4521"}}; '
                f"got {describe_type(value)}.",
            )
        )
        return {}
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(encoded.encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        # NaN/Infinity, unpaired surrogates or non-JSON values: nothing a callback could carry.
        errors.append(
            FieldError(
                "metadata",
                "invalid_metadata",
                "metadata holds a value that is not plain JSON (NaN, Infinity or an invalid "
                "character); use strings, numbers, booleans, null, arrays and objects.",
            )
        )
        return {}
    if "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot store NUL, so it would fail later instead of now.
        errors.append(
            FieldError("metadata", "invalid_metadata", "metadata contains a NUL character.")
        )
        return {}
    if size > METADATA_MAX_BYTES:
        errors.append(
            FieldError(
                "metadata",
                "metadata_too_large",
                f"metadata is {size} bytes as JSON; at most {METADATA_MAX_BYTES} (4 KiB) are "
                "allowed. Keep ids in it and look the details up on your side.",
            )
        )
        return {}
    return value


def _unstorable(name: str, value: str, *, code: str = "invalid_field") -> FieldError | None:
    """An error when `value` holds a character that cannot be stored or sent as UTF-8 text."""
    if "\x00" in value:
        # PostgreSQL text columns reject NUL, and WhatsApp would not show it anyway.
        return FieldError(name, code, f"{name} contains a NUL character (\\u0000); remove it.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone UTF-16 surrogate (e.g. "\ud83d" from a JSON body) has no UTF-8 encoding.
        return FieldError(
            name,
            code,
            f"{name} contains an unpaired UTF-16 surrogate, which is not a valid character; "
            "check how the text was encoded.",
        )
    return None


def _wrong_type(name: str, value: object, expected: str) -> FieldError:
    return FieldError(
        name, "invalid_field", f"{name} must be {expected}; got {describe_type(value)}."
    )
