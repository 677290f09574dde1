"""Small dialect helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Table
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


class BulkInsert:
    """`INSERT INTO table (columns) VALUES (…)` for many rows at once, for the hot paths.

    SQLAlchemy's executemany converts each value through the column's type with several layers
    of generic machinery per row; at a few hundred rows a second that cost more than SQLite's
    own work. Here each column's conversion (the same function SQLAlchemy would apply, taken
    from the column type for the connection's dialect) is looked up once, and the rows go to the
    driver as tuples. The statement text is built once per dialect.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], *, suffix: Mapping[str, str] | None = None
    ) -> None:
        """`suffix`, by dialect name, follows the VALUES (an ON CONFLICT clause, say)."""
        self.table = table
        self.columns = tuple(columns)
        self.suffix = dict(suffix or {})
        self._prepared: dict[str, tuple[str, tuple[Any, ...]]] = {}

    def _prepare(self, dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            preparer = dialect.identifier_preparer
            sql = "INSERT INTO {} ({}) VALUES ({})".format(
                preparer.format_table(self.table),
                ", ".join(preparer.quote(c) for c in self.columns),
                ", ".join(mark for _ in self.columns),
            )
            if dialect.name in self.suffix:
                sql += " " + self.suffix[dialect.name]
            processors = tuple(
                self.table.c[c].type._cached_bind_processor(dialect) for c in self.columns
            )
            prepared = self._prepared[dialect.name] = (sql, processors)
        return prepared

    def statement(
        self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """The SQL and the rows as the driver takes them (for `executemany`)."""
        sql, processors = self._prepare(dialect)
        columns = self.columns
        converting = [(i, process) for i, process in enumerate(processors) if process is not None]
        # The same time (a batch's `now`) is converted once, not once a row.
        times: dict[datetime, Any] = {}
        params = []
        for row in rows:
            values = [row[name] for name in columns]
            for i, process in converting:
                value = values[i]
                if type(value) is datetime:
                    converted = times.get(value)
                    if converted is None:
                        converted = times[value] = process(value)
                    values[i] = converted
                else:
                    values[i] = process(value)
            params.append(tuple(values))
        return sql, params

    async def execute(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        sql, params = self.statement(conn.dialect, rows)
        await conn.exec_driver_sql(sql, params)
