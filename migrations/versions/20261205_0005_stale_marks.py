"""stale marks in a narrow table of their own instead of a dataset column

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Marking datasets stale rewrote their wide rows and every index on them; the
marks now live in ``dataset_stale``. Marks already raised are carried over
both ways.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_stale",
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("mark", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_stale_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_dataset_stale")),
    )
    op.execute(
        "INSERT INTO dataset_stale (dataset_id, mark) "
        "SELECT id, stale FROM dataset WHERE stale > 0"
    )
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_stale"))
        batch_op.drop_column("stale")


def downgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stale", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(batch_op.f("ix_dataset_stale"), ["stale"], unique=False)
    op.execute(
        "UPDATE dataset SET stale = (SELECT mark FROM dataset_stale "
        "WHERE dataset_stale.dataset_id = dataset.id) "
        "WHERE id IN (SELECT dataset_id FROM dataset_stale)"
    )
    op.drop_table("dataset_stale")
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.alter_column("stale", server_default=None)
