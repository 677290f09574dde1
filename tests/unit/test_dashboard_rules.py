"""The dashboard's pure rules: sign-in blocks, form checks, date ranges, failure explanations,
and the chat bubbles every message becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wagate.dashboard import views
from wagate.dashboard.explain import explain_failure
from wagate.dashboard.rules import (
    MAX_BLOCK,
    block_after,
    buttons_from_lines,
    check_channel_form,
    day_range,
    email_problem,
    id_at,
    lenient_phone,
    mask_secret,
    password_problem,
    wait_words,
)
from wagate.dashboard.web import safe_next
from wagate.ids import new_id


@pytest.mark.parametrize(
    ("failures", "block"),
    [
        (0, None),
        (4, None),
        (5, timedelta(seconds=30)),
        (6, timedelta(seconds=60)),
        (7, timedelta(seconds=120)),
        (9, timedelta(seconds=480)),
        (10, MAX_BLOCK),
        (10_000, MAX_BLOCK),
    ],
)
def test_block_after(failures: int, block: timedelta | None) -> None:
    assert block_after(failures) == block


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (30, "30 seconds"),
        (89, "89 seconds"),
        (120, "2 minutes"),
        (900, "15 minutes"),
    ],
)
def test_wait_words(seconds: float, words: str) -> None:
    assert wait_words(seconds) == words


@pytest.mark.parametrize(
    ("email", "ok"),
    [("ops@example.com", True), ("admin@localhost", True), ("", False), ("no-at", False),
     ("two@@example.com", False), ("sp ace@example.com", False), ("a@" + "b" * 330, False)],
)  # fmt: skip
def test_email_problem(email: str, ok: bool) -> None:
    assert (email_problem(email) is None) is ok


@pytest.mark.parametrize(
    ("password", "ok"), [("short", False), ("ten chars!", True), ("x" * 2000, False)]
)
def test_password_problem(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok


@pytest.mark.parametrize(
    ("typed", "phone"),
    [
        ("+14155552671", "+14155552671"),
        ("+1 415-555-2671", "+14155552671"),
        ("(415) 555 2671", None),  # no country code
        ("14155552671", "+14155552671"),
        ("+44 7911 123456", "+447911123456"),
        ("12", None),
        ("call me", None),
    ],
)
def test_lenient_phone(typed: str, phone: str | None) -> None:
    found, errors = lenient_phone(typed)
    assert found == phone
    assert bool(errors) is (phone is None)


def test_day_range_covers_whole_days_in_utc() -> None:
    since, until, errors = day_range("2026-11-01", "2026-11-02")
    assert errors == []
    assert since == datetime(2026, 11, 1, tzinfo=UTC)
    assert until == datetime(2026, 11, 3, tzinfo=UTC)
    assert day_range("", "") == (None, None, [])


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [("yesterday", "", "from"), ("", "2026-13-01", "to"), ("2026-11-05", "2026-11-01", "to")],
)
def test_day_range_errors(start: str, end: str, field: str) -> None:
    _, _, errors = day_range(start, end)
    assert [e.field for e in errors] == [field]


def test_id_at_bounds_ids_made_at_that_time() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    made = new_id("msg")
    after = datetime.now(UTC) + timedelta(milliseconds=5)
    assert id_at("msg", before) <= made < id_at("msg", after)


GOOD_CHANNEL = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "+1 555 078 3881",
    "access_token": "EAAG-token",
    "app_secret": "secret",
    "verify_token": "my-verify",
    "graph_url": "https://graph.facebook.com/",
    "mps": "250",
}


def test_channel_form_accepts_meta_values() -> None:
    form, errors = check_channel_form(GOOD_CHANNEL, new=True)
    assert errors == [] and form is not None
    assert form.display_phone_number == "15550783881"
    assert form.graph_url == "https://graph.facebook.com"
    assert form.mps == 250


@pytest.mark.parametrize(
    ("changes", "new", "fields"),
    [
        ({"phone_number_id": ""}, True, ["phone_number_id"]),
        ({"waba_id": "12a"}, True, ["waba_id"]),
        ({"display_phone_number": "call me"}, True, ["display_phone_number"]),
        ({"access_token": "", "app_secret": " "}, True, ["access_token", "app_secret"]),
        ({"access_token": "", "app_secret": ""}, False, []),  # an edit keeps the stored ones
        ({"verify_token": "has space"}, True, ["verify_token"]),
        ({"graph_url": "ftp://x"}, True, ["graph_url"]),
        ({"mps": "0"}, True, ["mps"]),
        ({"mps": "1001"}, True, ["mps"]),
        ({"mps": "fast"}, True, ["mps"]),
    ],
)
def test_channel_form_problems(changes: dict[str, str], new: bool, fields: list[str]) -> None:
    form, errors = check_channel_form(GOOD_CHANNEL | changes, new=new)
    assert [e.field for e in errors] == fields
    assert (form is None) is bool(fields)
    if form is not None and not new:
        assert form.access_token is None and form.app_secret is None


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("short", "••••••••"), ("EAAG-secret-access-token", "••••••••oken")],
)
def test_mask_secret(secret: str, shown: str) -> None:
    assert mask_secret(secret) == shown


@pytest.mark.parametrize(
    ("text", "buttons"),
    [
        ("", None),
        (
            "Yes\n\nNo thanks\n",
            [{"id": "yes", "title": "Yes"}, {"id": "no-thanks", "title": "No thanks"}],
        ),
        ("track-1 | Track it", [{"id": "track-1", "title": "Track it"}]),
        ("!!!", [{"id": "button", "title": "!!!"}]),
    ],
)
def test_buttons_from_lines(text: str, buttons: list[dict[str, str]] | None) -> None:
    assert buttons_from_lines(text) == buttons


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/messages?status=failed", "/messages?status=failed"),
        ("https://evil.example", "/messages"),
        ("//evil.example", "/messages"),
        ("/\\evil.example", "/messages"),
        ("/ok\r\nSet-Cookie: x", "/messages"),
        (None, "/messages"),
    ],
)
def test_safe_next(target: Any, safe: str) -> None:
    assert safe_next(target) == safe


@pytest.mark.parametrize(
    ("error", "headline", "action"),
    [
        (None, None, None),
        ({"code": "undeliverable", "meta_code": 131026}, "Message undeliverable", None),
        ({"code": "outside_service_window", "meta_code": None}, "Customer service window closed",
         "Send an approved template"),
        ({"code": "retries_exhausted", "meta_code": 130429}, "Gave up after many attempts", None),
        ({"code": "meta_error", "meta_code": 999999, "title": "Odd"},
         "The message could not be sent", "Read Meta's words"),
    ],
)  # fmt: skip
def test_explain_failure(
    error: dict[str, Any] | None, headline: str | None, action: str | None
) -> None:
    found = explain_failure(error)
    if headline is None:
        assert found is None
        return
    assert found is not None and found.headline == headline
    assert found.explanation and found.action
    if action:
        assert found.action.startswith(action)


def test_bubbles_from_each_origin() -> None:
    sent = views.from_api_message(
        {"id": "msg_1", "type": "interactive", "message": "Pick", "header": "H", "footer": "F",
         "buttons": [{"id": "a", "title": "A"}], "status": "read",
         "created_at": "2026-01-01T00:00:00Z", "wamid": "w1"}
    )  # fmt: skip
    assert (sent.mine, sent.body, sent.header, sent.status, sent.link) == (
        True, "Pick", "H", "read", "/messages/msg_1",
    )  # fmt: skip
    tapped = views.from_thread({"direction": "inbound", "kind": "button_reply", "text": "A"})
    assert (tapped.mine, tapped.note, tapped.body) == (False, "Tapped a button", "A")
    image = views.from_inbound({"kind": "image", "text": "a caption"})
    assert image.note == "Sent an image"
    # On the sandbox phone the customer's own messages are "mine", and only the business's
    # buttons can be tapped.
    mine = views.from_sandbox(
        {"direction": "inbound", "type": "text", "text": "hi", "timestamp": 1}
    )
    theirs = views.from_sandbox(
        {"direction": "outbound", "type": "interactive", "text": "Pick",
         "buttons": [{"id": "a", "title": "A"}], "status": "delivered", "timestamp": 2,
         "wamid": "w2"}
    )  # fmt: skip
    assert (mine.mine, mine.buttons, theirs.mine) == (True, [], False)
    assert theirs.buttons == [{"id": "a", "title": "A", "tap": "button_id"}]


def test_sandbox_template_buttons_tap_only_quick_replies() -> None:
    record = {
        "direction": "outbound",
        "type": "template",
        "text": "[template t]",
        "template": {"name": "t", "language": "en_US"},
        "wamid": "w3",
        "timestamp": 3,
    }
    sent = {"body": "Hi Asha", "header": "Order #1", "footer": None,
            "buttons": [{"id": "track", "title": "Track"},
                        {"id": "https://shop.example/1", "title": "View"},
                        {"id": "+14155552671", "title": "Call us"}]}  # fmt: skip
    bubble = views.from_sandbox(record, sent)
    assert (bubble.note, bubble.body, bubble.header) == (
        "Template t (en_US)",
        "Hi Asha",
        "Order #1",
    )
    assert [b["tap"] for b in bubble.buttons] == ["payload", "", ""]
    unknown = views.from_sandbox(record)
    assert unknown.body == "[template t]" and unknown.buttons == []
