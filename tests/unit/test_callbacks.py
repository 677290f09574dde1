"""Callbacks as pure rules: the signature (ours, the public helper's and the README's verifier
agree), the retry schedule, the callback URL rule and the event bodies."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.callback_receiver import readme_verifier
from wagate.callbacks import verify_signature
from wagate.domain.callbacks import (
    RetryPolicy,
    StatusError,
    callback_url_problem,
    inbound_event,
    inbound_kind,
    next_attempt_at,
    sign,
    signature_problem,
    status_event,
)
from wagate.domain.models import InboundMessage, Status
from wagate.metrics import Metrics

SECRET = "whsec_test-secret"
BODY = json.dumps({"id": "evt_1", "type": "message.status", "data": {"status": "read"}}).encode()
T = 1_764_064_800  # 2025-11-25T10:00:00Z


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # The SPEC's definition, computed independently.
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def _header(mutate: str) -> str | None:
    good = sign(SECRET, BODY, T)
    digest = good.split("v1=")[1]
    return {
        "good": good,
        "none": None,
        "blank": "  ",
        "no t": f"v1={digest}",
        "no v1": f"t={T}",
        "t not a number": f"t=abc,v1={digest}",
        "two t": f"t={T},t={T},v1={digest}",
        "no equals": f"t={T},v1{digest}",
        "other secret": sign("another-secret", BODY, T),
        "other body": sign(SECRET, BODY + b" ", T),
        "other time": f"t={T + 1},v1={digest}",
        "second v1 matches": f"t={T},v1={'0' * 64},v1={digest}",
        "upper-case hex": f"t={T},v1={digest.upper()}",
        "spaces": f"t={T}, v1={digest}",
        "unknown scheme kept aside": f"t={T},v0=abc,v1={digest}",
    }[mutate]


@pytest.mark.parametrize(
    ("mutate", "now", "problem"),
    [
        ("good", T, None),
        ("good", T + 300, None),
        ("good", T - 300, None),  # a receiver's clock a little behind
        ("good", T + 301, "stale"),  # a replay, five minutes on
        ("good", T - 301, "stale"),
        ("none", T, "missing"),
        ("blank", T, "missing"),
        ("no t", T, "malformed"),
        ("no v1", T, "malformed"),
        ("t not a number", T, "malformed"),
        ("two t", T, "malformed"),
        ("no equals", T, "malformed"),
        ("other secret", T, "mismatch"),
        ("other body", T, "mismatch"),
        ("other time", T, "mismatch"),
        ("second v1 matches", T, None),
        ("upper-case hex", T, None),
        ("spaces", T, None),
        ("unknown scheme kept aside", T, None),
    ],
)
def test_signature_checks(mutate: str, now: int, problem: str | None) -> None:
    header = _header(mutate)
    assert signature_problem(SECRET, BODY, header, now=now) == problem
    assert verify_signature(SECRET, BODY, header, now=now) is (problem is None)
    # The README's few-line verifier agrees, but for two headers wagate never sends: it takes
    # the first of two `t`, and does not accept upper-case hex.
    if mutate not in ("two t", "upper-case hex"):
        assert readme_verifier()(SECRET, BODY, header, now=now) is (problem is None)


def test_tolerance_is_the_receivers_choice() -> None:
    header = sign(SECRET, BODY, T)
    assert verify_signature(SECRET, BODY, header, now=T + 30, tolerance=10) is False
    assert verify_signature(SECRET, BODY, header, now=T + 30, tolerance=60) is True
    assert readme_verifier()(SECRET, BODY, header, tolerance=10, now=T + 30) is False


# --------------------------------------------------------------------------- retries

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
POLICY = RetryPolicy()


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (5, 240, 480), (8, 1800, 3600), (30, 1800, 3600)],
)
def test_backoff_doubles_with_jitter_up_to_an_hour(attempts: int, low: float, high: float) -> None:
    waits = set()
    for seed in range(50):
        at = next_attempt_at(
            POLICY, created_at=START, now=START, attempts=attempts, rng=random.Random(seed)
        )
        assert at is not None
        wait = (at - START).total_seconds()
        assert low <= wait <= high
        waits.add(round(wait, 3))
    assert len(waits) > 40  # jitter: lanes that failed together do not retry together


def test_a_receiver_that_never_answers_is_retried_for_over_24_hours_then_given_up() -> None:
    rng = random.Random(7)
    now, attempts, times = START, 1, [START]
    while True:
        at = next_attempt_at(POLICY, created_at=START, now=now, attempts=attempts, rng=rng)
        if at is None:
            break
        now, attempts = at, attempts + 1
        times.append(at)
    assert times[1] - times[0] <= timedelta(minutes=1)  # the first retry within a minute
    assert times[-1] == START + timedelta(hours=25)  # the last try right at the deadline
    assert max(b - a for a, b in itertools.pairwise(times)) <= timedelta(hours=1)
    assert 25 <= len(times) <= 50  # about one an hour after the first hour


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(hours=24, minutes=59, seconds=59), START + timedelta(hours=25)),
        (timedelta(hours=25), None),
        (timedelta(days=3), None),  # a replayed dead letter: one more attempt only
    ],
)
def test_retries_stop_at_the_deadline(age: timedelta, expected: datetime | None) -> None:
    at = next_attempt_at(
        POLICY, created_at=START, now=START + age, attempts=20, rng=random.Random()
    )
    assert at == expected


def test_the_policy_is_configurable_for_quick_dead_letters() -> None:
    quick = RetryPolicy(base=0.2, max_delay=0.5, give_up_after=1.0)
    at = next_attempt_at(quick, created_at=START, now=START, attempts=1, rng=random.Random(1))
    assert at is not None and at - START <= timedelta(seconds=0.2)
    late = START + timedelta(seconds=1)
    assert (
        next_attempt_at(quick, created_at=START, now=late, attempts=4, rng=random.Random()) is None
    )


# --------------------------------------------------------------------------- the URL


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/wagate/events", True),
        ("http://127.0.0.1:8080/hook?token=abc", True),
        ("https://user:pass@example.com/hook", True),
        ("HTTPS://EXAMPLE.COM/", True),
        ("ftp://example.com/hook", "url_not_allowed"),
        ("example.com/hook", False),
        ("https:///no-host", False),
        ("https://example.com/hook#part", False),
        (" https://example.com/hook", False),
        ("https://exa mple.com/hook", False),
        ("https://example.com:99999/hook", False),
        ("https://example.com/" + "a" * 2000, False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_callback_url_rule(url: Any, ok: bool | str) -> None:
    problem = callback_url_problem(url)
    assert (problem is None) is (ok is True)
    if problem is not None:
        code = ok if isinstance(ok, str) else "invalid_callback_url"
        assert problem.code == code and problem.field == "url"
        assert problem.message


# --------------------------------------------------------------------------- event bodies


def test_status_event_shape() -> None:
    error = StatusError("undeliverable", 131026, "Message undeliverable", "Unable to deliver.")
    failed = status_event(
        event_id="evt_1",
        created_at=START,
        message_id="msg_1",
        phone="+919876543210",
        status=Status.FAILED,
        occurred_at=START - timedelta(seconds=3),
        wamid="wamid.X",
        error=error,
        metadata={"order": "4521"},
    )
    assert failed == {
        "id": "evt_1",
        "type": "message.status",
        "created_at": "2026-11-25T10:00:00Z",
        "data": {
            "message_id": "msg_1",
            "phone": "+919876543210",
            "status": "failed",
            "timestamp": "2026-11-25T09:59:57Z",
            "wamid": "wamid.X",
            "error": {
                "code": "undeliverable",
                "meta_code": 131026,
                "title": "Message undeliverable",
                "details": "Unable to deliver.",
            },
            "metadata": {"order": "4521"},
        },
    }
    read = status_event(
        event_id="evt_2",
        created_at=START,
        message_id="msg_1",
        phone="+919876543210",
        status=Status.READ,
        occurred_at=START,
        wamid="wamid.X",
        error=error,  # only a failed status carries one
        metadata={},
    )
    assert read["data"]["error"] is None and read["data"]["status"] == "read"


@pytest.mark.parametrize(
    ("meta_kind", "kind"),
    [
        ("text", "text"),
        # One name in the callback and the conversation API (issue 15.7): a tap on the
        # business's reply button stays button_reply, a template quick reply is button.
        ("button_reply", "button_reply"),
        ("button", "button"),
        ("list_reply", "list_reply"),
        ("image", "image"),
        ("reaction", "reaction"),
    ],
)
def test_inbound_kinds(meta_kind: str, kind: str) -> None:
    assert inbound_kind(meta_kind) == kind


def test_inbound_event_shape() -> None:
    tap = InboundMessage(
        phone_number_id="1001",
        wa_id="919876543210",
        wamid="wamid.IN",
        timestamp=START,
        kind="button_reply",
        text="Yes",
        button_id="yes",
        context_wamid="wamid.OURS",
        profile_name="Asha",
    )
    event = inbound_event(
        event_id="evt_3", created_at=START, channel_id="ch_1", message=tap, reply_to="msg_1"
    )
    assert event == {
        "id": "evt_3",
        "type": "message.inbound",
        "created_at": "2026-11-25T10:00:00Z",
        "data": {
            "phone": "+919876543210",
            "wamid": "wamid.IN",
            "kind": "button_reply",
            "text": "Yes",
            "content": None,
            "button_id": "yes",
            "button_payload": None,
            "reply_to": "msg_1",
            "profile_name": "Asha",
            "channel_id": "ch_1",
            "reacts_to": None,
            "timestamp": "2026-11-25T10:00:00Z",
        },
    }


def test_callback_metrics() -> None:
    m = Metrics()
    m.record_callback("delivered")
    m.record_callback("delivered")
    m.record_callback("retried")
    m.record_callback("failed")
    m.record_callback("bogus")  # type: ignore[arg-type]
    m.set_callback_queue_depth(7)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(m.registry).decode())
        for s in f.samples
    }
    assert samples[("wagate_callbacks_total", (("outcome", "delivered"),))] == 2
    assert samples[("wagate_callbacks_total", (("outcome", "retried"),))] == 1
    assert samples[("wagate_callbacks_total", (("outcome", "failed"),))] == 1
    assert samples[("wagate_callbacks_total", (("outcome", "other"),))] == 1
    assert samples[("wagate_callback_queue_depth", ())] == 7
