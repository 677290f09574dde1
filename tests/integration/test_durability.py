"""SQLite's durability settings: a 202 survives power loss unless the operator says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from wagate.store.db import make_async_engine


@pytest.mark.parametrize(
    ("setting", "expected"), [("FULL", 2), ("NORMAL", 1)], ids=["default-full", "normal"]
)
async def test_sqlite_runs_in_wal_mode_with_the_chosen_sync(
    tmp_path: Path, setting: str, expected: int
) -> None:
    engine = make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", synchronous=setting)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == expected
    finally:
        await engine.dispose()


def test_the_default_setting_is_full() -> None:
    from wagate.config import Settings

    assert Settings.model_fields["sqlite_synchronous"].default == "FULL"


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WAGATE_SQLITE_SYNCHRONOUS"):
        make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", synchronous="SOMETIMES")
