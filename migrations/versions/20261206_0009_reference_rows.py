"""reference rows: the nomenclature templates, and those datasets imply

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

From now on, writing a dataset adds the project, sub-project, data type, sub
data type and production step its name implies (catalog/reference.py). This
adds those of the datasets catalogued before, as that code does, and the
nomenclature templates: the layouts of the names catalog/nomenclature.py
accepts. The downgrade removes the templates only; the other rows are the
catalogue's data, and revision 0008 may hold them as well.

Plain SQL (CASE, SUBSTR, LENGTH, NOT EXISTS), so that it runs, and compiles
offline, the same on SQLite, PostgreSQL, MariaDB and Oracle.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (tag, template, name): the layouts of catalog/nomenclature.py, its field
# names in AMI's spelling; the name is what pyAMI shows as the description.
NOMENCLATURE = [
    (
        "mc",
        "project.datasetNumber.physicsShort.prodStep.dataType.version",
        "Monte Carlo, e.g. mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee."
        "deriv.DAOD_PHYS.e3601_s3126_r10724_p4164",
    ),
    (
        "data",
        "project.runNumber.streamName.prodStep.dataType.version",
        "real data, e.g. data15_13TeV.00284500.physics_Main.merge.AOD.f629_m1504",
    ),
    (
        "data",
        "project.runNumber.streamName.prodStep.dataType",
        "real data, RAW (no version), e.g. data15_13TeV.00284500.physics_Main.daq.RAW",
    ),
    (
        "user",
        "user.login.freeText",
        "a user's dataset in the scope user.<login>; the free text is one or "
        "more dot-separated fields, e.g. user.jdoe.Zee.skim1",
    ),
    (
        "group",
        "group.group.freeText",
        "a group's dataset in the scope group.<group>; the free text is one or "
        "more dot-separated fields, e.g. group.phys-higgs.Hgg.v2",
    ),
]

nomenclature = sa.table(
    "nomenclature",
    sa.column("tag", sa.String()),
    sa.column("template", sa.String()),
    sa.column("name", sa.String()),
    sa.column("read_status", sa.String()),
    sa.column("write_status", sa.String()),
)
dataset = sa.table(
    "dataset",
    sa.column("project_name", sa.String()),
    sa.column("production_step", sa.String()),
    sa.column("data_type", sa.String()),
)
VALID = sa.literal_column("'VALID'", sa.String())


def upgrade() -> None:
    op.bulk_insert(
        nomenclature,
        [
            {
                "tag": tag,
                "template": template,
                "name": name,
                "read_status": "VALID",
                "write_status": "VALID",
            }
            for tag, template, name in NOMENCLATURE
        ],
    )
    for table, implied in _implied().items():
        op.execute(_insert_absent(table, implied))


def downgrade() -> None:
    keys = [(tag, template) for tag, template, _ in NOMENCLATURE]
    op.execute(
        nomenclature.delete().where(
            sa.or_(
                *(
                    (nomenclature.c.tag == tag) & (nomenclature.c.template == template)
                    for tag, template in keys
                )
            )
        )
    )


def _implied() -> dict[sa.TableClause, sa.ColumnElement[str]]:
    """What the datasets' names imply, by reference table: the key, an
    expression of the dataset's columns, NULL where a name implies none.
    """
    name = dataset.c.project_name
    user, group = _starts(name, "user."), _starts(name, "group.")
    # A user or group dataset implies its project alone (a skim's output
    # takes its parent's data type, which the parent's name implies).
    data_type = sa.case((~(user | group), dataset.c.data_type))
    return {
        _reference("project", "description", "is_base_type"): sa.case(
            (user, sa.literal_column("'user'")),
            (group, sa.literal_column("'group'")),
            else_=name,
        ),
        # The energy follows mcNN_ or dataNN_: the digits are two.
        _reference("sub_project", "is_base_type"): sa.case(
            (_starts(name, "mc"), sa.func.substr(name, 6)),
            (_starts(name, "data"), sa.func.substr(name, 8)),
        ),
        _reference("data_type"): data_type,
        _reference("sub_data_type"): sa.case(
            (
                _starts(data_type, "DAOD_") & (sa.func.length(data_type) > 5),
                sa.func.substr(data_type, 6),
            )
        ),
        _reference("production_step", "tag"): sa.case(
            (~(user | group), dataset.c.production_step)
        ),
    }


def _project_description(tag: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """The description of the project *tag*, as catalog/reference.py words
    it: ``Monte Carlo, campaign mc16, 13TeV``, ``real data of 2015, 13TeV``,
    ``user datasets, in the scopes user.<login>``.
    """
    return sa.case(
        (
            _starts(tag, "mc"),
            _text("Monte Carlo, campaign ") + _part(tag, 1, 4) + ", " + _part(tag, 6),
        ),
        (
            _starts(tag, "data"),
            _text("real data of 20") + _part(tag, 5, 2) + ", " + _part(tag, 8),
        ),
        (tag == "user", _text("user datasets, in the scopes user.<login>")),
        (tag == "group", _text("group datasets, in the scopes group.<group>")),
    )


def _text(value: str) -> sa.ColumnElement[str]:
    """*value* as an SQL string literal (``+`` then concatenates)."""
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.String())


def _part(text: sa.ColumnElement[str], start: int, length: int | None = None) -> Any:
    """``SUBSTR(text, start[, length])``, a string."""
    bounds = (start,) if length is None else (start, length)
    return sa.func.substr(text, *bounds, type_=sa.String())


def _starts(text: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    """Whether *text* starts with *prefix*. Not LIKE: its ``%`` would be
    doubled in an offline script for MariaDB or PostgreSQL, and ``_`` is a
    wildcard.
    """
    return sa.func.substr(text, 1, len(prefix)) == prefix


def _reference(name: str, *more: str) -> sa.TableClause:
    """The reference table *name*: its key (``tag`` for projects, ``name``
    otherwise), *more* columns, and its statuses.
    """
    key = "tag" if "project" in name else "name"
    columns = [key, *more, "read_status", "write_status"]
    return sa.table(name, *(sa.column(column) for column in columns))


def _insert_absent(table: sa.TableClause, implied: sa.ColumnElement[str]) -> sa.Insert:
    """``INSERT INTO table SELECT`` the distinct values of *implied* that
    *table* lacks, with the columns' defaults (``VALID``, not a base type).
    A production step's tag is its name.
    """
    values = sa.select(implied.label("implied")).where(implied.is_not(None))
    found = values.distinct().subquery("implied_rows")
    value = found.c.implied
    filled = {
        "tag": value,
        "name": value,
        "description": _project_description(value),
        "is_base_type": sa.false(),
        "read_status": VALID,
        "write_status": VALID,
    }
    columns = [column.name for column in table.columns]
    there: sa.Select[Any] = sa.select(sa.literal_column("1")).select_from(table)
    keys = [table.c[column] == value for column in columns if column in ("tag", "name")]
    return table.insert().from_select(
        columns,
        sa.select(*(filled[column] for column in columns))
        .select_from(found)
        .where(~sa.exists(there.where(*keys))),
    )
