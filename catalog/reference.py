"""The reference rows that dataset names imply: AMI's projects, sub-projects,
data types, sub data types and production steps
(:mod:`catalog.models.reference`).

A name such as
``mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164``
implies the project ``mc16_13TeV``, its sub-project ``13TeV`` (the energy),
the data type ``DAOD_PHYS``, its sub data type ``PHYS`` and the production
step ``deriv`` (whose tag is its name); the project is described as
``Monte Carlo, campaign mc16, 13TeV``. A user or group name
(``user.jdoe.my.skim``) implies the project ``user`` or ``group`` alone: its
scope ``user.jdoe`` is no project (docs/decisions.md).

Writing datasets (:func:`catalog.datasets.add_dataset` and
:func:`catalog.datasets.upsert_datasets`) adds the rows the catalogue lacks,
so that pyAMI's ``list_projects``, ``list_types``, ... find what the
catalogue's names use. Rows are only ever added: an operator may describe
them, or set their ``readStatus``, and they stay as written. The
nomenclature templates do not depend on the names; migration 0009 writes
them, and adds, in SQL, the rows that the datasets catalogued before it
imply: a change here needs a migration that does the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.db import among
from catalog.models import DataType, ProductionStep, Project, SubDataType, SubProject
from catalog.nomenclature import DatasetName, parse_dataset_name

PROJECT: Table = Project.__table__  # type: ignore[assignment]
SUB_PROJECT: Table = SubProject.__table__  # type: ignore[assignment]
DATA_TYPE: Table = DataType.__table__  # type: ignore[assignment]
SUB_DATA_TYPE: Table = SubDataType.__table__  # type: ignore[assignment]
PRODUCTION_STEP: Table = ProductionStep.__table__  # type: ignore[assignment]
#: The tables whose rows names imply, in the order they are written.
TABLES = (PROJECT, SUB_PROJECT, DATA_TYPE, SUB_DATA_TYPE, PRODUCTION_STEP)
#: The prefix of the data types that have a sub data type (``DAOD_PHYS``).
SUB_TYPED = "DAOD_"

Key = tuple[str, ...]
Row = dict[str, Any]


def add_references(names: Iterable[str], *, session: Session) -> None:
    """Add the reference rows that the dataset *names* imply and the
    catalogue does not hold: one query per table, and an insert into the
    tables that lack some. A row that another writer adds in the meantime
    is left as that writer wrote it.

    :raises InvalidName: for a name that does not follow the nomenclature
        (callers have parsed their names already, and only one name per
        project, step and type is parsed again).
    """
    for table, rows in implied_references(names).items():
        if rows:
            _add_absent(table, rows, session=session)


def implied_references(names: Iterable[str]) -> dict[Table, dict[Key, Row]]:
    """The reference rows that the dataset *names* imply, by table and
    primary key: their columns but the statuses, which take their defaults.

    :raises InvalidName: as for :func:`add_references`.
    """
    implied: dict[Table, dict[Key, Row]] = {table: {} for table in TABLES}
    for name in _one_per_reference(names):
        for table, row in _implied_rows(parse_dataset_name(name)):
            key = tuple(row[column.name] for column in table.primary_key)
            implied[table][key] = row
    return implied


def describe_project(name: DatasetName) -> str:
    """The description of the project of *name*: ``Monte Carlo, campaign
    mc16, 13TeV``, ``real data of 2015, 13TeV``, ``user datasets, in the
    scopes user.<login>``.
    """
    if name.kind == "mc":
        return f"Monte Carlo, campaign {name.project[:4]}, {name.energy}"
    if name.kind == "data":
        return f"real data of 20{name.year:02d}, {name.energy}"
    owner = "login" if name.project == "user" else "group"
    return f"{name.project} datasets, in the scopes {name.project}.<{owner}>"


def _one_per_reference(names: Iterable[str]) -> Iterable[str]:
    """One of the *names* for each first, fourth and fifth field (project,
    step and type): names alike in those imply the same rows. A bite of
    thousands of names has a few of them, and parsing costs more than this.
    """
    chosen: dict[tuple[str, ...], str] = {}
    for name in names:
        fields = name.split(".", 5)
        chosen.setdefault((fields[0], *fields[3:5]), name)
    return chosen.values()


def _implied_rows(name: DatasetName) -> Iterator[tuple[Table, Row]]:
    yield PROJECT, {"tag": name.project, "description": describe_project(name)}
    if name.energy:
        yield SUB_PROJECT, {"tag": name.energy}
    if name.data_type:
        yield DATA_TYPE, {"name": name.data_type}
        sub_type = name.data_type.removeprefix(SUB_TYPED)
        if sub_type and sub_type != name.data_type:
            yield SUB_DATA_TYPE, {"name": sub_type}
    if name.prod_step:
        yield PRODUCTION_STEP, {"name": name.prod_step, "tag": name.prod_step}


def _add_absent(table: Table, rows: dict[Key, Row], *, session: Session) -> None:
    """Insert into *table* those of *rows* (by primary key) it does not hold."""
    absent = set(rows) - _present(table, set(rows), session=session)
    if not absent:
        return
    # In key order, so that two writers adding the same rows lock them in
    # the same order, and neither waits for the other while holding a lock
    # the other wants.
    ordered = [rows[key] for key in sorted(absent)]
    statement = _insert_ignoring_duplicates(table, session.get_bind().dialect.name)
    if statement is None:
        _insert_one_by_one(table, ordered, session=session)
    else:
        session.execute(statement, ordered)


def _present(table: Table, keys: set[Key], *, session: Session) -> set[Key]:
    """The *keys* that *table* holds."""
    columns = list(table.primary_key.columns)
    firsts = sorted({key[0] for key in keys})
    query = select(*columns).where(among(columns[0], firsts))
    return {tuple(row) for row in session.execute(query)} & keys


def _insert_ignoring_duplicates(table: Table, dialect: str) -> Any:
    """An ``INSERT`` into *table* that skips a row whose key is there (None
    where the dialect has none: Oracle).
    """
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        return module.insert(table).on_conflict_do_nothing()
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        first = table.primary_key.columns[0].name
        # Setting the key to itself changes nothing; INSERT IGNORE would
        # also turn other errors, such as a value too long, into warnings.
        return statement.on_duplicate_key_update({first: statement.inserted[first]})
    return None


def _insert_one_by_one(table: Table, rows: list[Row], *, session: Session) -> None:
    """Insert *rows* into *table*, each in a savepoint of its own."""
    for row in rows:
        try:
            with session.begin_nested():
                session.execute(table.insert(), [row])
        except IntegrityError:
            # Another writer added this row since we looked. Its row says
            # what ours would, so there is nothing left to do.
            pass
