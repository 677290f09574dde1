"""Recipient phone numbers: the strict E.164 rule of the Send Message contract (SPEC §1).

A number must be written exactly as `+`, country code and digits (`+14155552671`) and be a valid
number by Google's libphonenumber rules. Nothing is silently repaired: input that is almost right
(spaces, dashes, parentheses, a missing `+`, a leading `00`) is refused with a message that shows
the corrected form, so the caller fixes their data once instead of relying on our guesses.

Codes: `missing_field` (absent or empty), `invalid_phone_format` (not `+` and digits),
`invalid_phone_number` (well formed, but not a number libphonenumber accepts).
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

from wagate.domain.errors import FieldError

E164_MAX_DIGITS = 15
EXAMPLE = "+14155552671"

_STRICT = re.compile(r"\+[0-9]{1,15}")
_PLUS_AND_DIGITS = re.compile(r"\+[0-9]+")
# Separators people type between digit groups. Unicode dashes and spaces are included because
# numbers pasted from documents and spreadsheets often carry them.
_SEPARATORS = re.compile(r"[\s\-.()/\u2010-\u2015\u2212]+")
_DIGITS_ONLY = re.compile(r"[0-9]+")
# What `+14155552671` becomes in a form body when its + was not encoded as %2B.
_PLUS_AS_SPACE = re.compile(r" +[0-9]{1,15}")


def normalize_phone(
    value: object, field: str = "phone", *, form: bool = False
) -> tuple[str | None, list[FieldError]]:
    """Check a recipient number: `(number, [])` when it is valid, else `(None, [error])`.

    The returned number is the input itself (already canonical E.164); it is never rewritten.
    `form=True` for a urlencoded body, where an unencoded `+` arrives as a space: the error
    then says so.
    """
    if value is None or value == "":
        return None, [_error(field, "missing_field", f"{field} is required, e.g. {EXAMPLE}.")]
    if not isinstance(value, str):
        return None, [_not_a_string(value, field)]
    if not value.strip():
        return None, [_error(field, "missing_field", f"{field} is empty; send e.g. {EXAMPLE}.")]

    if _STRICT.fullmatch(value):
        return _check_valid(value, field)
    if form and _PLUS_AS_SPACE.fullmatch(value):
        return None, [_plus_became_space(value, field)]
    return None, [_format_error(value, field)]


def _plus_became_space(value: str, field: str) -> FieldError:
    canonical = _canonical("+" + value.strip())
    fix = f"write it as {canonical}" if canonical else f"write it as + and digits, e.g. {EXAMPLE}"
    return _error(
        field,
        "invalid_phone_format",
        f"{field} {quote_input(value)} starts with a space where its + should be: in a form "
        "body a + stands for a space, so encode + as %2B (curl's --data-urlencode does it); "
        f"{fix}.",
    )


def is_valid_e164(value: str) -> bool:
    """True when `value` is strict E.164 and a valid number: what `normalize_phone` accepts."""
    return _STRICT.fullmatch(value) is not None and _canonical(value) == value


def _canonical(value: str) -> str | None:
    """The E.164 form of a valid `+…` number, or None when libphonenumber rejects it."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def quote_input(value: str, limit: int = 40) -> str:
    """`value` in double quotes, shortened and made safe to echo back in an error message.

    Control characters and unpaired surrogates are escaped: a lone surrogate cannot be encoded
    as UTF-8, and echoing one verbatim would break the JSON error response itself.
    """
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    out = []
    for char in shown:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF or (not char.isprintable() and char != " "):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _check_valid(value: str, field: str) -> tuple[str | None, list[FieldError]]:
    problem = _valid_number(value)
    if problem is None:
        return value, []
    return None, [_error(field, "invalid_phone_number", f"{field} {problem}")]


@functools.lru_cache(maxsize=65536)
def _valid_number(value: str) -> str | None:
    """(Cached: businesses write to the same customers again and again, and libphonenumber is
    the costliest step of a send.)

    None when libphonenumber accepts `value` as written, else the rest of a sentence saying
    why not (the caller puts the field name in front)."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return f"{value} does not start with a known country code; check the digits after +."
        return f"{value} is not a valid phone number; check the country code and the digits."
    if not phonenumbers.is_valid_number(parsed):
        return (
            f"{value} is not a valid phone number for country code +{parsed.country_code}; "
            "check the country code and the number of digits."
        )
    canonical = str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    if canonical != value:
        # libphonenumber quietly drops a national trunk prefix ("+44 0 20…" → "+44 20…"), but
        # WhatsApp would get the digits as written, so the input itself must be canonical.
        return (
            f"{value} includes a national prefix after the country code; write it as {canonical}."
        )
    return None


def _format_error(value: str, field: str) -> FieldError:
    shown = quote_input(value)
    if _PLUS_AND_DIGITS.fullmatch(value):
        # Only digits after the +, so the strict rule failed on length.
        return _error(field, "invalid_phone_format", _too_many_digits(field, shown, value))

    compact = _SEPARATORS.sub("", value.strip())
    had_separators = compact != value

    suggestion: str | None = None
    why: str | None = None
    if _PLUS_AND_DIGITS.fullmatch(compact):
        suggestion = compact
        why = "contains spaces or punctuation"
    elif _DIGITS_ONLY.fullmatch(compact):
        if compact.startswith("00"):
            # 00 is the international call prefix in most of the world: it stands for "+".
            suggestion = "+" + compact[2:]
            why = "starts with 00 instead of +"
        else:
            suggestion = "+" + compact
            why = "has no leading + and country code"
        if had_separators:
            why += " and contains spaces or punctuation"

    if suggestion is not None and why is not None:
        digits = len(suggestion) - 1
        if digits > E164_MAX_DIGITS:
            message = _too_many_digits(field, shown, suggestion)
        elif (canonical := _canonical(suggestion)) is not None:
            message = f"{field} {shown} {why}; write it as {canonical}."
        else:
            # Offering a correction that is itself wrong would only move the problem.
            message = (
                f"{field} {shown} {why}; write it as + followed by the country code and "
                f"number, digits only, e.g. {EXAMPLE}."
            )
        return _error(field, "invalid_phone_format", message)

    message = (
        f"{field} {shown} is not in international format; write it as + followed by the "
        f"country code and number, digits only, e.g. {EXAMPLE}."
    )
    if any(unicodedata.category(char) == "Nd" and not char.isascii() for char in value):
        message += " Use the ASCII digits 0-9."
    return _error(field, "invalid_phone_format", message)


def _too_many_digits(field: str, shown: str, plus_and_digits: str) -> str:
    return (
        f"{field} {shown} has {len(plus_and_digits) - 1} digits; international numbers have at "
        f"most {E164_MAX_DIGITS}. Write it as + followed by the country code and number, "
        f"e.g. {EXAMPLE}."
    )


def _not_a_string(value: object, field: str) -> FieldError:
    # A JSON number is a common slip (a spreadsheet column typed as numeric); show the string.
    # The bound also keeps str() away from huge integers, which Python refuses to convert.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**E164_MAX_DIGITS:
        canonical = _canonical(f"+{value}")
        if canonical is not None:
            return _error(
                field,
                "invalid_phone_format",
                f'{field} must be a string in international format; write it as "{canonical}".',
            )
    return _error(
        field,
        "invalid_phone_format",
        f"{field} must be a string in international format, e.g. {EXAMPLE}; "
        f"got {describe_type(value)}.",
    )


def describe_type(value: object) -> str:
    """The JSON name of a decoded value's type, with an article, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another type"


def _error(field: str, code: str, message: str) -> FieldError:
    return FieldError(field=field, code=code, message=message)
