"""The recipient number rule: strict E.164, valid by libphonenumber, corrections shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wagate.domain.phone import is_valid_e164, normalize_phone, quote_input

VALID = [
    pytest.param("+14155552671", id="us"),
    pytest.param("+919876543210", id="india"),
    pytest.param("+447911123456", id="uk-mobile"),
    pytest.param("+390612345678", id="italy-keeps-leading-zero"),
    pytest.param("+5491123456789", id="argentina-mobile-9"),
]


@pytest.mark.parametrize("phone", VALID)
def test_valid_numbers_pass_unchanged(phone: str) -> None:
    assert normalize_phone(phone) == (phone, [])
    assert is_valid_e164(phone)


# (input, code, the whole message)
REJECTED = [
    pytest.param(None, "missing_field", "phone is required, e.g. +14155552671.", id="none"),
    pytest.param("", "missing_field", "phone is required, e.g. +14155552671.", id="empty"),
    pytest.param("   ", "missing_field", "phone is empty; send e.g. +14155552671.", id="blank"),
    pytest.param(
        "+1 (415) 555-2671",
        "invalid_phone_format",
        'phone "+1 (415) 555-2671" contains spaces or punctuation; write it as +14155552671.',
        id="spaces-parens-dash",
    ),
    pytest.param(
        "+91.98765.43210",
        "invalid_phone_format",
        'phone "+91.98765.43210" contains spaces or punctuation; write it as +919876543210.',
        id="dots",
    ),
    pytest.param(
        "+1\u2013415\u2013555\u20132671",
        "invalid_phone_format",
        'phone "+1\u2013415\u2013555\u20132671" contains spaces or punctuation; '
        "write it as +14155552671.",
        id="unicode-en-dashes",
    ),
    pytest.param(
        " +14155552671 ",
        "invalid_phone_format",
        'phone " +14155552671 " contains spaces or punctuation; write it as +14155552671.',
        id="surrounding-spaces",
    ),
    pytest.param(
        "14155552671",
        "invalid_phone_format",
        'phone "14155552671" has no leading + and country code; write it as +14155552671.',
        id="no-plus",
    ),
    pytest.param(
        "91 98765 43210",
        "invalid_phone_format",
        'phone "91 98765 43210" has no leading + and country code and contains spaces or '
        "punctuation; write it as +919876543210.",
        id="no-plus-and-spaces",
    ),
    pytest.param(
        "00919876543210",
        "invalid_phone_format",
        'phone "00919876543210" starts with 00 instead of +; write it as +919876543210.',
        id="double-zero-prefix",
    ),
    pytest.param(
        "+44 (0) 20 7183 8750",
        "invalid_phone_format",
        'phone "+44 (0) 20 7183 8750" contains spaces or punctuation; write it as +442071838750.',
        id="national-zero-in-parens-dropped-in-suggestion",
    ),
    pytest.param(
        "(415) 555-2671",
        "invalid_phone_format",
        'phone "(415) 555-2671" has no leading + and country code and contains spaces or '
        "punctuation; write it as + followed by the country code and number, digits only, "
        "e.g. +14155552671.",
        id="national-format-no-wrong-suggestion",
    ),
    pytest.param(
        "abc",
        "invalid_phone_format",
        'phone "abc" is not in international format; write it as + followed by the country '
        "code and number, digits only, e.g. +14155552671.",
        id="letters",
    ),
    pytest.param(
        "+",
        "invalid_phone_format",
        'phone "+" is not in international format; write it as + followed by the country '
        "code and number, digits only, e.g. +14155552671.",
        id="plus-only",
    ),
    pytest.param(
        "+1234567890123456",
        "invalid_phone_format",
        'phone "+1234567890123456" has 16 digits; international numbers have at most 15. '
        "Write it as + followed by the country code and number, e.g. +14155552671.",
        id="sixteen-digits",
    ),
    pytest.param(
        14155552671,
        "invalid_phone_format",
        'phone must be a string in international format; write it as "+14155552671".',
        id="json-number-with-suggestion",
    ),
    pytest.param(
        True,
        "invalid_phone_format",
        "phone must be a string in international format, e.g. +14155552671; got true/false.",
        id="bool",
    ),
    pytest.param(
        ["+14155552671"],
        "invalid_phone_format",
        "phone must be a string in international format, e.g. +14155552671; got an array.",
        id="array",
    ),
    pytest.param(
        "+1415555267",
        "invalid_phone_number",
        "phone +1415555267 is not a valid phone number for country code +1; check the country "
        "code and the number of digits.",
        id="too-short-for-country",
    ),
    pytest.param(
        "+9991234567",
        "invalid_phone_number",
        "phone +9991234567 does not start with a known country code; check the digits after +.",
        id="unknown-country-code",
    ),
    pytest.param(
        "+4402071838750",
        "invalid_phone_number",
        "phone +4402071838750 includes a national prefix after the country code; "
        "write it as +442071838750.",
        id="trunk-zero-after-country-code",
    ),
]


@pytest.mark.parametrize(("value", "code", "message"), REJECTED)
def test_rejected_numbers_say_how_to_fix(value: object, code: str, message: str) -> None:
    number, errors = normalize_phone(value)
    assert number is None
    assert [(e.field, e.code, e.message) for e in errors] == [("phone", code, message)]


def test_field_name_is_used_in_path_and_message() -> None:
    _, errors = normalize_phone("123", field="recipients[2].phone")
    assert errors[0].field == "recipients[2].phone"
    assert errors[0].message.startswith('recipients[2].phone "123"')


def test_non_ascii_digits_are_refused_with_a_hint() -> None:
    _, errors = normalize_phone("+\u0661\u0664\u0661\u0665")  # Arabic-Indic digits
    assert errors[0].code == "invalid_phone_format"
    assert errors[0].message.endswith("Use the ASCII digits 0-9.")


def test_huge_integer_does_not_crash() -> None:
    _, errors = normalize_phone(10**5000)
    assert errors[0].code == "invalid_phone_format"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("abc", '"abc"', id="plain"),
        pytest.param("a\tb", '"a\\u0009b"', id="control-char-escaped"),
        pytest.param("\ud800x", '"\\ud800x"', id="lone-surrogate-escaped"),
        pytest.param("x" * 50, '"' + "x" * 39 + '…"', id="truncated"),
    ],
)
def test_quote_input_is_safe_to_echo(value: str, shown: str) -> None:
    assert quote_input(value) == shown
    quote_input(value).encode("utf-8")  # never raises: safe inside a JSON response


@given(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.floats()))
def test_normalize_phone_never_raises_and_answers_one_way(value: object) -> None:
    number, errors = normalize_phone(value)
    assert (number is None) != (errors == [])
    if number is not None:
        assert number == value
    for error in errors:
        error.message.encode("utf-8")
