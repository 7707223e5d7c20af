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

    The rows go in one executemany, which SQLAlchemy batches into multi-row
    statements ("insertmanyvalues").

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
        session.execute(statement, list(rows))


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
