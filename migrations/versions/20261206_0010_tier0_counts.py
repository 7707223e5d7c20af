"""Tier-0's counts of a dataset, and reconciliation with any source

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A Tier-0 dataset keeps the counts Tier-0 gives (``tier0_n_files``,
``tier0_total_events``, ``tier0_total_size``) and is DONE only when its files
add up to them (catalog/tier0.py); ``tier0_state`` is indexed, since the
ingester looks for the few held READY at every run. A reconciliation row
says which source's counts differ (``source``: ``ddm`` for the rows there
are, or ``tier0``), and ``ddm_value`` becomes ``source_value``.

The datasets catalogued before have no Tier-0 counts: nothing to compare,
so they stay DONE until Tier-0 raises them READY again. The downgrade
removes the differences with Tier-0, which the older schema would show as
DDM's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNTS = ("tier0_n_files", "tier0_total_events", "tier0_total_size")


def upgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        for name in COUNTS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_dataset_tier0_state"), ["tier0_state"], unique=False
        )
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source", sa.String(length=16), nullable=False, server_default="ddm"
            )
        )
        batch_op.alter_column(
            "ddm_value",
            new_column_name="source_value",
            existing_type=sa.BigInteger(),
            existing_nullable=True,
        )


def downgrade() -> None:
    op.execute("DELETE FROM reconciliation WHERE source <> 'ddm'")
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.alter_column(
            "source_value",
            new_column_name="ddm_value",
            existing_type=sa.BigInteger(),
            existing_nullable=True,
        )
        batch_op.drop_column("source")
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_tier0_state"))
        for name in reversed(COUNTS):
            batch_op.drop_column(name)
