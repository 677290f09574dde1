"""Small dialect helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_ignore(
    conn: AsyncConnection, table: Table, row: Mapping[str, Any], conflict: Sequence[str]
) -> bool:
    """Insert a row unless it would break the unique key `conflict`; returns whether it was new.
    Used wherever Meta may tell us the same thing twice. (RETURNING, because drivers disagree on
    an INSERT's rowcount: psycopg reports -1.)"""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c[conflict[0]])
    )
    result = await conn.execute(statement)
    return result.first() is not None
