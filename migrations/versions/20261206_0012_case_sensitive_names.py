"""Names compared letter case included on MariaDB

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

ATLAS and Rucio tell names apart by letter case: ``..._Zee...`` and
``..._ZEE...`` are two datasets, ``EVNT.0001...`` and ``evnt.0001...`` two
files. MariaDB's default collation (``utf8mb4_general_ci``) ignores case, so
there the unique indexes took such names for one, and an upsert of one
overwrote the other (or the ProdSys ingester failed on every bite). The
name-like columns (``catalog.db.exact_text``) get the binary collation
``utf8mb4_bin`` on MariaDB. SQLite and PostgreSQL compare text exactly
already: there this migration does nothing.

The downgrade gives the columns back their table's default collation. It
refuses, before altering any table (MariaDB's DDL is not transactional), a
catalogue that holds two names differing only in case under a unique key:
such names cannot be told apart again without removing one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLLATION = "utf8mb4_bin"

# The columns compared exactly: table -> (column, VARCHAR length, nullable).
COLUMNS: dict[str, list[tuple[str, int, bool]]] = {
    "production_task": [("name", 255, False), ("input_dataset", 255, True)],
    "dataset": [("name", 255, False), ("scope", 64, False)],
    "file": [("lfn", 255, False), ("input_file", 255, True)],
    "ami_tag": [("tag", 16, False)],
    "container": [("name", 255, False), ("scope", 64, False)],
    "container_member": [("child_name", 255, False)],
    "replica": [("dataset_name", 255, False)],
    "ddm_message": [("name", 255, True), ("child_name", 255, True)],
}


def upgrade() -> None:
    _alter(f" COLLATE {COLLATION}")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        twins = _case_twins(op.get_bind())
        if twins:
            raise RuntimeError(
                "cannot give names back a collation blind to case: these differ "
                f"only in case under a unique key: {'; '.join(twins)}; remove "
                "one of each first"
            )
    # Without a collation, a column takes its table's default again.
    _alter("")


def _case_twins(connection: sa.Connection) -> list[str]:
    """The first names differing only in case under each unique key (primary
    key, unique constraint or index) holding a column of :data:`COLUMNS`.
    """
    inspector = sa.inspect(connection)
    found = []
    for table, columns in COLUMNS.items():
        exact = {name for name, _, _ in columns}
        keys: list[list[str]] = [
            c["column_names"] for c in inspector.get_unique_constraints(table)
        ]
        for index in inspector.get_indexes(table):
            if index["unique"]:
                keys.append([str(c) for c in index["column_names"]])
        keys.append(inspector.get_pk_constraint(table)["constrained_columns"])
        for key in keys:
            if exact.isdisjoint(key):
                continue
            grouped = ", ".join(
                f"LOWER(`{c}`)" if c in exact else f"`{c}`" for c in key
            )
            statement = (
                f"SELECT {grouped} FROM `{table}` GROUP BY {grouped} "
                "HAVING COUNT(*) > 1 LIMIT 1"
            )
            twin = connection.execute(sa.text(statement)).first()
            if twin is not None:
                found.append(f"{table} ({', '.join(key)}) {tuple(twin)!r}")
    return found


def _alter(collate: str) -> None:
    """MariaDB: one ``ALTER TABLE`` per table (one rebuild of it), each of
    its columns of :data:`COLUMNS` declared with *collate*.
    """
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(
            f"MODIFY `{name}` VARCHAR({length}){collate}"
            f"{' NULL' if nullable else ' NOT NULL'}"
            for name, length, nullable in columns
        )
        op.execute(f"ALTER TABLE `{table}` {changes}")
