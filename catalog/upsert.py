"""Idempotent bulk writes: insert rows, or update them when their natural key
is already there.

Every ingester writes through :func:`upsert`, so replaying a source gives the
same catalogue. PostgreSQL and SQLite use ``INSERT ... ON CONFLICT DO
UPDATE``, MariaDB and MySQL ``INSERT ... ON DUPLICATE KEY UPDATE``; other
dialects (Oracle) read the existing keys first and split the rows into an
``INSERT`` and an ``UPDATE`` executemany, inside the caller's transaction.
On PostgreSQL, a thousand rows or more are copied (``COPY``) into a
temporary table and upserted from there in one statement, which is faster
than any executemany.

Rows travel as tuples in the order of a column list: a row costs little more
than it does in a bare ``executemany``. Python-side column defaults
(``created``) are evaluated once per call, and so converted for the driver;
so is a column whose rows all hold one value object (a bite's rows share one
``modified`` time). The others are converted by the column type once per
distinct value object. Each row is then built for the driver in one step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from catalog.db import UTCDateTime, among, chunked

# PostgreSQL: from this many rows on, an upsert goes through COPY.
COPY_THRESHOLD = 1000
# SQLite and PostgreSQL: from this many rows on, the rows with new keys are
# told apart first and inserted plainly (on PostgreSQL, copied straight into
# the table when the bite goes through COPY).
SPLIT_THRESHOLD = 100
SPLIT = ("sqlite", "postgresql")
# The temporary table rows are copied into (dropped at the end of the call).
STAGE = "hepcat_stage"

Row = tuple[Any, ...]


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    update_columns: Sequence[str] | None = None,
    *,
    known: Collection[Any] | None = None,
    same: Mapping[str, Any] | None = None,
) -> None:
    """Insert *rows* into *table*, updating the rows whose *key* exists.

    Every row has the keys of the first.

    :param key: the columns of a unique constraint or the primary key.
    :param update_columns: the columns overwritten on conflict (default:
        every column given in the rows or in *same*, less the key).
    :param known: as for :func:`upsert_values`.
    :param same: as for :func:`upsert_values`.
    """
    if not rows:
        return
    columns = list(rows[0].keys())
    values = _getter(columns)
    tuples = [values(row) for row in rows]
    upsert_values(
        session, table, columns, tuples, key, update_columns, known=known, same=same
    )


class Changed(NamedTuple):
    """What :func:`differing` found: the rows to write, and the keys of all
    the rows given that the table holds (an upsert's ``known``).
    """

    rows: list[Mapping[str, Any]]
    known: set[Any]


def differing(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str
) -> Changed:
    """The *rows* that *table* does not hold as they are: their *key* is not
    there, or one of their values differs. Writing the others again (a
    source's overlap window reads rows again) would change nothing but
    their modified times, and make their dependants be recomputed.

    Every row has the keys of the first.
    """
    if not rows:
        return Changed([], set())
    columns = [table.c[name] for name in rows[0]]
    position = list(rows[0]).index(key)
    held: dict[Any, tuple[Any, ...]] = {}
    for chunk in chunked([row[key] for row in rows]):
        query = select(*columns).where(among(table.c[key], chunk))
        for found in session.execute(query):
            held[found[position]] = tuple(found)
    changed = [row for row in rows if tuple(row.values()) != held.get(row[key])]
    return Changed(changed, set(held))


def upsert_values(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Row],
    key: Sequence[str],
    update_columns: Sequence[str] | None = None,
    *,
    known: Collection[Any] | None = None,
    same: Mapping[str, Any] | None = None,
) -> None:
    """:func:`upsert` for rows given as tuples of the values of *columns*.

    :param known: the values of a one-column *key* that are in *table*
        already, when the caller has just looked them up (spares a lookup).
    :param same: values that every row has in further columns (a bite's
        modified time): converted once, and no row is copied to add them.
    """
    if not rows:
        return
    same = dict(same or {})
    written = [*columns, *same]
    updated = list(update_columns or [c for c in written if c not in key])
    given = Given(list(columns), rows, {**_defaults(table, written), **same})
    dialect = session.get_bind().dialect.name
    fresh: list[Row] = []
    if len(key) == 1 and len(rows) >= SPLIT_THRESHOLD and dialect in SPLIT:
        fresh, rows = _split_fresh(session, table, given, key[0], known)
    if dialect == "postgresql" and len(rows) + len(fresh) >= COPY_THRESHOLD:
        if rows:
            _upsert_by_copy(session, table, given.but(rows), key, updated)
        if fresh:
            _copy_fresh(session, table, given.but(fresh))
        return
    if rows:
        statement = _statement(dialect, table, key, updated)
        if statement is None:
            _upsert_generic(session, table, given.dicts(rows), key, updated)
        else:
            _execute_many(session, statement, given.but(rows))
    if fresh:  # after the updates, which may free values of unique columns
        _execute_many(session, table.insert(), given.but(fresh))


class Given(NamedTuple):
    """Rows as a caller gives them: tuples of the values of *columns*, and
    *same*, the values every row has in the columns that follow (defaults).
    """

    columns: list[str]
    rows: Sequence[Row]
    same: dict[str, Any]

    def but(self, rows: Sequence[Row]) -> Given:
        """The same columns and values, for *rows* instead."""
        return Given(self.columns, rows, self.same)

    def dicts(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """*rows* as dictionaries, with the values every row has."""
        return [
            {**dict(zip(self.columns, row, strict=True)), **self.same} for row in rows
        ]


def _split_fresh(
    session: Session,
    table: Table,
    given: Given,
    key: str,
    known: Collection[Any] | None,
) -> tuple[list[Row], list[Row]]:
    """SQLite: the rows whose *key* is not in *table* yet, to be written with
    a plain ``INSERT`` (twice as fast there as an upsert), and the others. Of
    several fresh rows with one key the last wins, as with an upsert.
    """
    position, rows = given.columns.index(key), given.rows
    if known is None:
        known = _present(session, table, key, list({row[position] for row in rows}))
    fresh = {row[position]: row for row in rows if row[position] not in known}
    return list(fresh.values()), [row for row in rows if row[position] in known]


def _present(session: Session, table: Table, key: str, values: list[Any]) -> set[Any]:
    """The *values* of the column *key* that are in *table*."""
    found: set[Any] = set()
    for chunk in chunked(values):
        query = select(table.c[key]).where(among(table.c[key], chunk))
        found.update(session.scalars(query))
    return found


def _getter(keys: Sequence[Any]) -> Any:
    """A function from a row to the tuple of its values at *keys*."""
    if len(keys) == 1:
        only = keys[0]
        return lambda row: (row[only],)
    return itemgetter(*keys)


def _defaults(table: Table, columns: Sequence[str]) -> dict[str, Any]:
    """The Python-side defaults of the columns of *table* that *columns*
    leave out, evaluated once.
    """
    return {
        column.name: _evaluated(column.default)
        for column in table.columns
        if column.name not in columns
        and column.default is not None
        and not column.primary_key
    }


def _evaluated(default: Any) -> Any:
    """The value of a Python-side column default, evaluated once."""
    return default.arg(None) if default.is_callable else default.arg


def _driver_rows(
    dialect: Any, names: Sequence[str], types: Sequence[Any], given: Given
) -> list[Row]:
    """The values of the columns *names* (of *types*) of the rows *given*,
    converted for the driver, one tuple per row.

    A column whose value is the same object in every row (or that the rows
    leave out) is converted once, and added with the row's other values in
    the single step that builds each tuple. Other columns with a conversion
    are converted afterwards, a column at a time.
    """
    columns, rows = given.columns, given.rows
    index = {name: i for i, name in enumerate(columns)}
    tail: list[Any] = []  # converted values added to every row
    picks: list[int] = []  # where each value comes from: a row, or the tail
    varying: list[tuple[int, _Converter]] = []
    for position, (name, kind) in enumerate(zip(names, types, strict=True)):
        convert = _converter(kind, dialect)
        if name in given.same or (convert and _same(rows, index[name])):
            value = given.same[name] if name in given.same else rows[0][index[name]]
            picks.append(len(columns) + len(tail))
            tail.append(convert(value) if convert else value)
            continue
        picks.append(index[name])
        if convert:
            varying.append((position, convert))
    built = _built(rows, picks, tuple(tail))
    if not varying or not built:
        return built
    values: list[Any] = list(zip(*built, strict=True))
    for position, convert in varying:
        values[position] = convert.many(values[position])
    return list(zip(*values, strict=True))


def _same(rows: Sequence[Row], index: int) -> bool:
    """Whether every row of *rows* holds one value object at *index*."""
    if not rows:
        return False
    first = rows[0][index]
    return all(row[index] is first for row in rows)


def _built(rows: Sequence[Row], picks: list[int], tail: Row) -> list[Row]:
    """Each row extended by *tail*, then its values at *picks*: one new tuple
    per row (none when the picks take a row as it is).
    """
    width = len(rows[0]) if rows else 0
    if picks == list(range(width)) and not tail:
        return list(rows)
    pick = _getter(picks)
    if picks == list(range(width + len(tail))):
        return [row + tail for row in rows]
    if tail:
        return [pick(row + tail) for row in rows]
    return [pick(row) for row in rows]


def _converter(kind: Any, dialect: Any) -> _Converter | None:
    """What converts values of the column type *kind* for the driver (None
    when the driver takes them as they are).
    """
    process = kind.bind_processor(dialect)
    if process is None:
        return None
    if isinstance(kind, UTCDateTime):
        return _UtcTimes(process, dialect.name)
    return _Converter(process, dialect.name)


class _Converter:
    """A column type's bind processor, applied once per distinct value object.

    On SQLite a time also becomes its text here, as the driver's adapter would
    write it, instead of once per row in the driver.
    """

    __slots__ = ("_process", "_text", "_last_in", "_last_out")

    def __init__(self, process: Any, dialect: str) -> None:
        self._process = process
        self._text = dialect == "sqlite"
        self._last_in: Any = _Converter
        self._last_out: Any = None

    def __call__(self, value: Any) -> Any:
        if value is None:
            return value
        if value is not self._last_in:
            out = self._process(value)
            if self._text and isinstance(out, dt.datetime):
                # Always six digits of a second, as SQLAlchemy writes a
                # time on SQLite: text compares as text there, and
                # "09:00:00" sorts before "09:00:00.000000".
                out = out.isoformat(" ", "microseconds")
            self._last_in, self._last_out = value, out
        return self._last_out

    def many(self, values: Iterable[Any]) -> Iterable[Any]:
        """The converted *values*, in order."""
        return map(self, values)


class _UtcTimes(_Converter):
    """A :class:`~catalog.db.UTCDateTime` column: a time in UTC (the usual
    case) becomes the same naive time as the type's processor makes (on
    SQLite, its text), in one expression; another zone goes through the
    type's processor (converted, or a naive time refused).
    """

    def many(self, values: Iterable[Any]) -> Iterable[Any]:
        utc, kind, slow = dt.UTC, dt.datetime, super().__call__
        if self._text:
            # The text of a time in UTC ends in "+00:00": the naive time's
            # is the rest of it (with six digits of a second, as above).
            return [
                v.isoformat(" ", "microseconds")[:-6]
                if v.__class__ is kind and v.tzinfo is utc
                else slow(v)
                for v in values
            ]
        return [
            v.replace(tzinfo=None)
            if v.__class__ is kind and v.tzinfo is utc
            else slow(v)
            for v in values
        ]


def _execute_many(session: Session, statement: Any, given: Given) -> None:
    """Execute *statement* once per row through the driver's executemany."""
    connection = session.connection()
    columns = given.columns + list(given.same)
    compiled = statement.compile(dialect=connection.dialect, column_keys=columns)
    positional = bool(compiled.positional)
    names = list(compiled.positiontup) if positional else list(compiled.binds)
    types = [compiled.binds[name].type for name in names]
    driver = _driver_rows(connection.dialect, names, types, given)
    if positional:
        parameters: list[Any] = driver
    else:
        parameters = [dict(zip(names, row, strict=True)) for row in driver]
    connection.exec_driver_sql(compiled.string, parameters)


def _upsert_by_copy(
    session: Session,
    table: Table,
    given: Given,
    key: Sequence[str],
    updated: Sequence[str],
) -> None:
    """PostgreSQL, many rows: ``COPY`` them into a temporary table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` from it.

    As with an executemany, the last of several rows with one key wins.
    """
    key_of = _getter([given.columns.index(k) for k in key])
    latest = list({key_of(row): row for row in given.rows}.values())
    listed = ", ".join(f'"{name}"' for name in [*given.columns, *given.same])
    conflict = ", ".join(f'"{k}"' for k in key)
    if updated:
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updated)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    _through_stage(
        session,
        table,
        given.but(latest),
        f'INSERT INTO "{table.name}" ({listed}) SELECT {listed} FROM "{STAGE}" '
        f"ON CONFLICT ({conflict}) {action}",
    )


def update_values(
    session: Session,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Row],
) -> None:
    """Set *columns* of the rows of *table* whose column *key* holds the first
    value of each of *rows* (tuples: that value, then those of *columns*).
    Columns with a Python-side update default (``lastModified``) move too.
    On PostgreSQL many rows are copied into a temporary table and updated
    with one ``UPDATE ... FROM``; elsewhere they go in one executemany.
    """
    if not rows:
        return
    moving = {
        c.name: _evaluated(c.onupdate)
        for c in table.columns
        if c.onupdate is not None and c.name not in columns
    }
    names = [key, *columns, *moving]
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        sets = ", ".join(f'"{c}" = s."{c}"' for c in names[1:])
        statement = (
            f'UPDATE "{table.name}" AS t SET {sets} FROM "{STAGE}" AS s '
            f'WHERE t."{key}" = s."{key}"'
        )
        _through_stage(session, table, Given([key, *columns], rows, moving), statement)
        return
    tail = tuple(moving.values())
    rows = [row + tail for row in rows] if tail else rows
    update_statement = (
        update(table)
        .where(table.c[key] == bindparam("key_"))
        .values({name: bindparam(f"new_{name}") for name in names[1:]})
    )
    parameters = [
        {
            "key_": row[0],
            **{f"new_{n}": v for n, v in zip(names[1:], row[1:], strict=True)},
        }
        for row in rows
    ]
    session.execute(update_statement, parameters)


def update_same(
    session: Session,
    table: Table,
    key: str,
    keys: Sequence[Any],
    values: Mapping[str, Any],
) -> None:
    """Set the columns of *values* to the same values in the rows of *table*
    whose column *key* is one of *keys*: one ``UPDATE ... WHERE key IN`` per
    chunk of keys, however many rows. Columns with a Python-side update
    default (``lastModified``) move too, as with :func:`update_values`.
    """
    moving = {
        c.name: _evaluated(c.onupdate)
        for c in table.columns
        if c.onupdate is not None and c.name not in values
    }
    for chunk in chunked(list(keys)):
        statement = update(table).where(among(table.c[key], chunk))
        session.execute(statement.values({**values, **moving}))


def _copy_fresh(session: Session, table: Table, given: Given) -> None:
    """PostgreSQL: ``COPY`` the rows *given*, whose keys are new, straight
    into *table*.
    """
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        _copy(cursor, connection.dialect, table, table.name, given)


def _copy(cursor: Any, dialect: Any, table: Table, into: str, given: Given) -> None:
    """``COPY`` the rows *given* (converted as columns of *table*) into the
    table *into*.
    """
    columns = [*given.columns, *given.same]
    types = [table.c[name].type for name in columns]
    driver = _driver_rows(dialect, columns, types, given)
    listed = ", ".join(f'"{name}"' for name in columns)
    with cursor.copy(f'COPY "{into}" ({listed}) FROM STDIN') as copy:
        for row in driver:
            copy.write_row(row)


def _through_stage(
    session: Session, table: Table, given: Given, statement: str
) -> None:
    """PostgreSQL: ``COPY`` the rows *given* into a temporary table shaped
    as those columns of *table*, run *statement* on it, drop it.
    """
    connection = session.connection()
    listed = ", ".join(f'"{name}"' for name in [*given.columns, *given.same])
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        cursor.execute(
            f'CREATE TEMPORARY TABLE "{STAGE}" ON COMMIT DROP AS '
            f'SELECT {listed} FROM "{table.name}" WITH NO DATA'
        )
        _copy(cursor, connection.dialect, table, STAGE, given)
        cursor.execute(statement)
        cursor.execute(f'DROP TABLE "{STAGE}"')


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
