"""Idempotent bulk writes: insert rows, or update them when their natural key
is already there.

Every ingester writes through :func:`upsert`, so replaying a source gives the
same catalogue. PostgreSQL and SQLite use ``INSERT ... ON CONFLICT DO
UPDATE``, MariaDB and MySQL ``INSERT ... ON DUPLICATE KEY UPDATE``; other
dialects (Oracle) read the existing keys first and split the rows into an
``INSERT`` and an ``UPDATE`` executemany, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    update_columns: Sequence[str] | None = None,
) -> None:
    """Insert *rows* into *table*, updating the rows whose *key* exists.

    The rows go in one executemany of the statement compiled once: each
    column's values are converted for the driver by the column type once per
    distinct value object, and Python-side column defaults (``created``) are
    evaluated once for the whole call, so a row costs little more than it
    does in a bare ``executemany``.

    :param key: the columns of a unique constraint or the primary key.
    :param update_columns: the columns overwritten on conflict (default:
        every column given in the rows, less the key).
    """
    if not rows:
        return
    columns = list(rows[0].keys())
    updated = list(update_columns or [c for c in columns if c not in key])
    statement = _statement(session.get_bind().dialect.name, table, key, updated)
    if statement is None:
        _upsert_generic(session, table, rows, key, updated)
    else:
        _execute_many(session, statement, rows)


def _execute_many(
    session: Session, statement: Any, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Execute *statement* once per row through the driver's executemany."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    positional = bool(compiled.positional)
    names = list(compiled.positiontup) if positional else list(compiled.binds)
    defaults = _defaults(statement.table, compiled, rows[0])
    processed = [
        (index, _Converter(process))
        for index, name in enumerate(names)
        if (process := compiled.binds[name].type.bind_processor(dialect))
    ]
    values = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    parameters: list[Any] = []
    for row in rows:
        driver = list(values({**defaults, **row} if defaults else row))
        for index, convert in processed:
            driver[index] = convert(driver[index])
        parameters.append(
            tuple(driver) if positional else dict(zip(names, driver, strict=True))
        )
    connection.exec_driver_sql(compiled.string, parameters)


def _defaults(table: Table, compiled: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """The Python-side defaults of the columns the rows leave out, evaluated
    once.
    """
    values = {}
    for name in compiled.binds:
        if name in row or name not in table.c or table.c[name].default is None:
            continue
        default = table.c[name].default
        values[name] = default.arg(None) if default.is_callable else default.arg
    return values


class _Converter:
    """A column type's bind processor, applied once per distinct value object
    (every row of a bite shares one ``modified`` time).
    """

    __slots__ = ("_process", "_last_in", "_last_out")

    def __init__(self, process: Any) -> None:
        self._process = process
        self._last_in: Any = _Converter
        self._last_out: Any = None

    def __call__(self, value: Any) -> Any:
        if value is None:
            return value
        if value is not self._last_in:
            self._last_in, self._last_out = value, self._process(value)
        return self._last_out


def _statement(
    dialect: str, table: Table, key: Sequence[str], updated: Sequence[str]
) -> Any:
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table)
        if not updated:
            return statement.on_conflict_do_nothing(index_elements=key)
        excluded = {c: statement.excluded[c] for c in updated}
        return statement.on_conflict_do_update(index_elements=key, set_=excluded)
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        names = updated or list(key[:1])
        return statement.on_duplicate_key_update(
            {c: statement.inserted[c] for c in names}
        )
    return None


def _upsert_generic(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    updated: Sequence[str],
) -> None:
    key_columns = [table.c[k] for k in key]
    wanted = [tuple(row[k] for k in key) for row in rows]
    query = select(*key_columns).where(tuple_(*key_columns).in_(wanted))
    existing = {tuple(found) for found in session.execute(query)}
    fresh = [row for row in rows if tuple(row[k] for k in key) not in existing]
    stale = [row for row in rows if tuple(row[k] for k in key) in existing]
    if fresh:
        session.execute(table.insert(), fresh)
    if stale and updated:
        where = [table.c[k] == bindparam(f"key_{k}") for k in key]
        statement = (
            update(table)
            .where(*where)
            .values({c: bindparam(f"new_{c}") for c in updated})
        )
        parameters = [
            {**{f"key_{k}": r[k] for k in key}, **{f"new_{c}": r[c] for c in updated}}
            for r in stale
        ]
        session.execute(statement, parameters)
