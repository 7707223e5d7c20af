"""an index on dataset (project_name, name) for MQL name patterns

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A project's names in name order: MQL adds the project that a name
    # pattern implies (catalog.mql.narrowing), and this index then serves
    # "ORDER BY name LIMIT n" within the project. Plain columns, so the same
    # on SQLite, PostgreSQL and MariaDB.
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dataset_project_name_name", ["project_name", "name"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_index("ix_dataset_project_name_name")
