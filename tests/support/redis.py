"""The Redis URL for tests, or a skip (a failure in CI, where Redis tests may not skip)."""

from __future__ import annotations

import os

import pytest

REDIS_ENV = "WAGATE_TEST_REDIS_URL"


def redis_url_or_skip() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_ENV} must be set in CI; Redis tests may not skip")
        pytest.skip(f"Redis tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/15)")
    return url
