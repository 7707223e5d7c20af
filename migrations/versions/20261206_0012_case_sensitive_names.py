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
fails, with MariaDB's "Duplicate entry" error, on a catalogue that holds two
names differing only in case under a unique key: such names cannot be told
apart again without removing one.
"""

from __future__ import annotations

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
    # Without a collation, a column takes its table's default again.
    _alter("")


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
