"""Meta error codes → retry class, and the backoff schedule between attempts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wagate.domain.meta_errors import (
    MAX_BACKOFF_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    META_ERRORS,
    RetryClass,
    backoff_seconds,
    classify,
    lookup,
)

T, R, P = RetryClass.THROTTLED, RetryClass.TRANSIENT, RetryClass.PERMANENT

KNOWN = [
    # throttling (SPEC §4 names 130429, 131056, 80007 and 4)
    (4, T), (80007, T), (130429, T), (131056, T),
    # transient
    (1, R), (2, R), (131000, R), (131016, R), (131057, R), (133004, R),
    # permanent (SPEC §4 names 131026, 131047, 132000, 132001 and 100)
    (0, P), (3, P), (10, P), (33, P), (100, P), (190, P), (200, P), (368, P),
    (130472, P), (130497, P), (131005, P), (131008, P), (131009, P), (131021, P), (131026, P),
    (131030, P), (131031, P), (131037, P), (131042, P), (131045, P), (131047, P), (131048, P),
    (131049, P), (131050, P), (131051, P), (131052, P), (131053, P), (132000, P), (132001, P),
    (132005, P), (132007, P), (132012, P), (132015, P), (132016, P), (133000, P), (133005, P),
    (133006, P), (133008, P), (133009, P), (133010, P), (135000, P),
]  # fmt: skip


@pytest.mark.parametrize(("code", "expected"), KNOWN, ids=[str(c) for c, _ in KNOWN])
@pytest.mark.parametrize("status", [None, 400, 500], ids=["no-status", "400", "500"])
def test_known_codes_decide_whatever_the_http_status(
    code: int, expected: RetryClass, status: int | None
) -> None:
    assert classify(code, status) is expected


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        pytest.param(None, None, R, id="timeout-or-connection-error"),
        pytest.param(None, 500, R, id="no-code-500"),
        pytest.param(999_999, 502, R, id="unknown-502"),
        pytest.param(999_999, 503, R, id="unknown-503"),
        pytest.param(999_999, 408, R, id="unknown-408"),
        pytest.param(999_999, 429, T, id="unknown-429"),
        pytest.param(None, 429, T, id="no-code-429"),
        pytest.param(999_999, 400, P, id="unknown-400"),
        pytest.param(999_999, 404, P, id="unknown-404"),
        pytest.param(None, 401, P, id="no-code-401"),
        pytest.param(999_999, None, P, id="unknown-from-webhook"),
        pytest.param(250, 403, P, id="permission-range"),
    ],
)
def test_unknown_codes_fall_back_on_http_status(
    code: int | None, status: int | None, expected: RetryClass
) -> None:
    assert classify(code, status) is expected


def test_table_entries_are_complete() -> None:
    for code, info in META_ERRORS.items():
        assert info.code == code
        assert info.title and info.explanation.endswith(".") and info.action.endswith(".")
        assert info.retryable is (info.retry_class is not P)


def test_lookup() -> None:
    info = lookup(131026)
    assert info is not None and info.title == "Message undeliverable"
    assert lookup(None) is None
    assert lookup(424242) is None
    ranged = lookup(299)
    assert ranged is not None and ranged.code == 299 and ranged.retry_class is P


class FixedRng:
    """Always returns the given fraction of the range, to make jitter predictable."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (11, 900.0), (10_000, 900.0)],
    ids=["1", "2", "3", "10", "11-capped", "huge-capped"],
)
def test_transient_ceiling_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, R, 131000, None, FixedRng(1.0)) == expected


def test_full_jitter_can_go_to_zero_for_transient_but_not_for_throttled() -> None:
    assert backoff_seconds(5, R, None, None, FixedRng(0.0)) == 0.0
    assert backoff_seconds(5, T, 130429, None, FixedRng(0.0)) == 1.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 4.0), (2, 16.0), (3, 64.0), (4, 256.0), (5, 900.0), (50, 900.0)],
)
def test_pair_rate_limit_waits_four_to_the_attempt(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, T, 131056, None, FixedRng(0.5)) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(30.0, 30.0, id="longer-than-backoff-wins"),
        pytest.param(0.1, 0.5, id="shorter-than-backoff-ignored"),
        pytest.param(3600.0, 3600.0, id="beyond-the-cap-still-honoured"),
        pytest.param(10**9, MAX_RETRY_AFTER_SECONDS, id="absurd-value-bounded"),
        pytest.param(float("nan"), 0.5, id="nan-ignored"),
        pytest.param(float("inf"), 0.5, id="inf-ignored"),
        pytest.param(-5.0, 0.5, id="negative-ignored"),
    ],
)
def test_retry_after_is_a_floor(retry_after: float, expected: float) -> None:
    assert backoff_seconds(1, R, None, retry_after, FixedRng(0.5)) == pytest.approx(expected, 1e-9)


def test_retry_after_also_applies_to_throttling_and_pair_rate() -> None:
    assert backoff_seconds(1, T, 130429, 30.0, FixedRng(0.0)) == 30.0
    assert backoff_seconds(1, T, 131056, 30.0, FixedRng(0.0)) == 30.0
    assert backoff_seconds(3, T, 131056, 30.0, FixedRng(0.0)) == 64.0


def test_permanent_errors_have_no_backoff() -> None:
    with pytest.raises(ValueError, match="not retried"):
        backoff_seconds(1, P, 131026, None, random.Random(1))


@given(
    attempt=st.integers(min_value=-5, max_value=10**6),
    retry_class=st.sampled_from([T, R]),
    meta_code=st.sampled_from([None, 4, 131056, 131000, 999]),
    seed=st.integers(),
)
def test_backoff_is_always_within_bounds(
    attempt: int, retry_class: RetryClass, meta_code: int | None, seed: int
) -> None:
    delay = backoff_seconds(attempt, retry_class, meta_code, None, random.Random(seed))
    assert 0.0 <= delay <= MAX_BACKOFF_SECONDS
