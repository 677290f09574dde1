"""The dashboard's pure rules: sign-in slowing, and checking what people type into its forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from wagate.domain.errors import FieldError
from wagate.domain.phone import normalize_phone

FREE_FAILURES = 5
"""Failed sign-ins in a row allowed before an email is blocked for a while."""
FIRST_BLOCK = timedelta(seconds=30)
MAX_BLOCK = timedelta(minutes=15)
FAILED_SIGN_IN_SECONDS = 0.5
"""Every failed sign-in answers after at least this long, known email or not."""

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
DEFAULT_GRAPH_URL = "https://graph.facebook.com"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_DIGITS = re.compile(r"[0-9]{1,64}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


def block_after(failures: int) -> timedelta | None:
    """How long an email is blocked after `failures` failed sign-ins in a row: nothing for the
    first few, then 30 s, doubling with each further failure, at most 15 minutes."""
    if failures < FREE_FAILURES:
        return None
    doublings = min(failures - FREE_FAILURES, 10)
    block: timedelta = FIRST_BLOCK * (2**doublings)
    return min(block, MAX_BLOCK)


def wait_words(seconds: float) -> str:
    """'45 seconds', '3 minutes': how long until a block ends, for people."""
    whole = max(1, round(seconds))
    if whole < 90:
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = round(whole / 60)
    return f"{minutes} minutes"


def email_problem(email: str) -> str | None:
    email = email.strip()
    if not email:
        return "Enter an email address."
    if len(email) > 320 or not _EMAIL.fullmatch(email):
        return f"{email[:60]!r} is not an email address (name@example.com)."
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    return None


def lenient_phone(value: str, field: str = "phone") -> tuple[str | None, list[FieldError]]:
    """A phone number as people type it ("+1 415-555-2671", "14155552671") in E.164, or the
    API's error for it. The API itself stays strict; a search box need not be."""
    compact = _PHONE_SEPARATORS.sub("", value)
    if compact.isdigit():
        compact = "+" + compact
    return normalize_phone(compact, field)


def phone_digits(phone: str) -> str:
    """The number without its "+", as it appears in dashboard URLs."""
    return phone.lstrip("+")


def day_range(start: str, end: str) -> tuple[datetime | None, datetime | None, list[FieldError]]:
    """The UTC instants bounding the days `start`..`end` (YYYY-MM-DD, either may be empty):
    from the start of `start` to the end of `end`."""
    errors: list[FieldError] = []
    since = until = None
    for name, text in (("from", start), ("to", end)):
        text = text.strip()
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            errors.append(FieldError(name, "invalid_date", f"{text[:20]!r} is not a date."))
            continue
        instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if name == "from":
            since = instant
        else:
            until = instant + timedelta(days=1)
    if since is not None and until is not None and until <= since:
        errors.append(FieldError("to", "invalid_date", "The end date is before the start date."))
    return since, until, errors


def id_at(prefix: str, instant: datetime) -> str:
    """The smallest id `wagate.ids.new_id(prefix)` could make at `instant`: ids start with
    their creation time, so a date range is an id range (and uses the id index)."""
    millis = int(instant.timestamp() * 1000)
    return f"{prefix}_{max(millis, 0):012x}{0:010x}"


@dataclass(frozen=True, slots=True)
class ChannelForm:
    """A channel's settings as typed into the add or edit form (secrets None when left blank)."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str | None
    access_token: str | None
    app_secret: str | None
    verify_token: str
    graph_url: str
    mps: int


def check_channel_form(
    form: dict[str, Any], *, new: bool
) -> tuple[ChannelForm | None, list[FieldError]]:
    """Every problem with a channel form at once. On an edit (`new=False`), a blank access
    token or app secret keeps the stored one: they are write-only."""
    errors: list[FieldError] = []

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    for name, label in (("phone_number_id", "Phone number id"), ("waba_id", "WABA id")):
        value = text(name)
        if not value:
            errors.append(FieldError(name, "missing_field", f"{label} is required."))
        elif not _DIGITS.fullmatch(value):
            errors.append(
                FieldError(name, "invalid_field", f"{label} is digits only, as Meta shows it.")
            )
    display = text("display_phone_number").lstrip("+").replace(" ", "") or None
    if display is not None and not (display.isdigit() and len(display) <= 20):
        errors.append(
            FieldError("display_phone_number", "invalid_field", "Digits only, e.g. 15550783881.")
        )
    secrets: dict[str, str | None] = {}
    for name, label in (("access_token", "Access token"), ("app_secret", "App secret")):
        raw = form.get(name)
        value = raw.strip() if isinstance(raw, str) else ""
        secrets[name] = value or None
        if new and not value:
            errors.append(FieldError(name, "missing_field", f"{label} is required."))
    verify_token = text("verify_token")
    if not verify_token:
        errors.append(FieldError("verify_token", "missing_field", "Choose a verify token."))
    elif len(verify_token) > 200 or any(c.isspace() for c in verify_token):
        errors.append(
            FieldError("verify_token", "invalid_field", "At most 200 characters, no spaces.")
        )
    graph_url = text("graph_url") or DEFAULT_GRAPH_URL
    if not graph_url.startswith(("http://", "https://")) or len(graph_url) > 500:
        errors.append(
            FieldError("graph_url", "invalid_field", "Starts with https:// (or http://).")
        )
    mps_text = text("mps") or "80"
    mps = int(mps_text) if mps_text.isdigit() else 0
    if not 1 <= mps <= 1000:
        errors.append(
            FieldError("mps", "invalid_field", "Messages per second: a whole number, 1 to 1000.")
        )
    if errors:
        return None, errors
    return (
        ChannelForm(
            phone_number_id=text("phone_number_id"),
            waba_id=text("waba_id"),
            display_phone_number=display,
            access_token=secrets["access_token"],
            app_secret=secrets["app_secret"],
            verify_token=verify_token,
            graph_url=graph_url.rstrip("/"),
            mps=mps,
        ),
        [],
    )


def mask_secret(value: str) -> str:
    """A write-only secret as shown: that it is set, and its last four characters."""
    if len(value) <= 8:
        return "•" * 8
    return "•" * 8 + value[-4:]


def buttons_from_lines(text: str) -> list[dict[str, str]] | None:
    """Quick-reply buttons typed one per line ("Yes" or "yes-id | Yes"); None when empty."""
    buttons = []
    for line in text.splitlines():
        if not line.strip():
            continue
        button_id, bar, title = line.partition("|")
        if bar:
            buttons.append({"id": button_id.strip(), "title": title.strip()})
        else:
            title = line.strip()
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "button"
            buttons.append({"id": slug, "title": title})
    return buttons or None
