from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.databases import fresh_database
from tests.support.harness import Harness, running_gateway

# No per-example time limit: hypothesis's default (200 ms) made a property test fail when the
# shared two-core machine was busy, and speed is measured by the benchmarks, not by tests.
settings.register_profile("wagate", deadline=None)
settings.load_profile("wagate")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(database_url, tmp_path / "data") as harness:
        yield harness
