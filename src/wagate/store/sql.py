"""Small dialect helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Table
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


def marks(dialect: Dialect, count: int) -> str:
    """`count` positional parameter marks for the driver's SQL (`?` or `%s`), comma-separated."""
    return ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * count)


def to_driver(dialect: Dialect, column: ColumnElement[Any]) -> Callable[[Any], Any]:
    """What SQLAlchemy would turn a value of `column` into for this dialect's driver."""
    process = column.type._cached_bind_processor(dialect)
    return process if process is not None else _same


def from_driver(dialect: Dialect, column: ColumnElement[Any]) -> Callable[[Any], Any]:
    """What SQLAlchemy would turn a value of `column` read from this dialect's driver into."""
    process = column.type._cached_result_processor(dialect, None)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


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
        self._prepared: dict[str, _Prepared] = {}

    def _prepare(self, dialect: Dialect) -> _Prepared:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            preparer = dialect.identifier_preparer
            head = "INSERT INTO {} ({}) VALUES ".format(
                preparer.format_table(self.table),
                ", ".join(preparer.quote(c) for c in self.columns),
            )
            row = "(" + marks(dialect, len(self.columns)) + ")"
            tail = " " + self.suffix[dialect.name] if dialect.name in self.suffix else ""
            processors = tuple(
                self.table.c[c].type._cached_bind_processor(dialect) for c in self.columns
            )
            prepared = _Prepared(head + row + tail, head, row, tail, processors)
            self._prepared[dialect.name] = prepared
        return prepared

    def statement(
        self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """The SQL and the rows as the driver takes them (for `executemany`)."""
        prepared = self._prepare(dialect)
        return prepared.sql, self._values(prepared, rows)

    def _values(
        self, prepared: _Prepared, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        processors = prepared.processors
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
        return params

    async def execute(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        sql, params = self.statement(conn.dialect, rows)
        await conn.exec_driver_sql(sql, params)

    async def returning(
        self,
        conn: AsyncConnection,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str],
        *,
        chunk: int = 500,
    ) -> list[tuple[Any, ...]]:
        """Insert `rows`, `chunk` to a statement (one multi-row VALUES each, as SQLAlchemy's
        own "insertmanyvalues" does, without its per-row machinery), and return `columns` of
        each row inserted: with an ON CONFLICT ... DO NOTHING suffix, of the new ones only.
        The returned values are as the driver gives them (use it for plain text columns)."""
        if not rows:
            return []
        prepared = self._prepare(conn.dialect)
        params = self._values(prepared, rows)
        preparer = conn.dialect.identifier_preparer
        back = " RETURNING " + ", ".join(preparer.quote(c) for c in columns)
        found: list[tuple[Any, ...]] = []
        for i in range(0, len(params), chunk):
            part = params[i : i + chunk]
            text = prepared.head + ", ".join([prepared.row] * len(part)) + prepared.tail + back
            result = await conn.exec_driver_sql(text, tuple(v for row in part for v in row))
            found += [tuple(r) for r in result]
        return found


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A `BulkInsert`'s statement for one dialect (`sql`: one row, for `executemany`; or `head`,
    one or more `row`, then `tail`), and each column's conversion."""

    sql: str
    head: str
    row: str
    tail: str
    processors: tuple[Any, ...]
