"""the events of TAG databases (tag_event)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_event",
        sa.Column(
            "tag_database_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("file_guid", sa.String(length=36), nullable=False),
        sa.Column("entry", sa.BigInteger(), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("event_number", sa.BigInteger(), nullable=False),
        sa.Column("lumi_block", sa.Integer(), nullable=False),
        sa.Column("n_jets", sa.Integer(), nullable=False),
        sa.Column("n_electrons", sa.Integer(), nullable=False),
        sa.Column("n_muons", sa.Integer(), nullable=False),
        sa.Column("jet_pt1", sa.Double(), nullable=False),
        sa.Column("jet_pt2", sa.Double(), nullable=False),
        sa.Column("el_pt1", sa.Double(), nullable=False),
        sa.Column("mu_pt1", sa.Double(), nullable=False),
        sa.Column("met", sa.Double(), nullable=False),
        sa.Column("trigger_bits", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tag_database_id"],
            ["tag_database.id"],
            name=op.f("fk_tag_event_tag_database_id_tag_database"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag_database_id", "seq", name=op.f("pk_tag_event")),
    )
    with op.batch_alter_table("tag_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tag_event_tag_database_id_run_number_event_number"),
            ["tag_database_id", "run_number", "event_number"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tag_event", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_tag_event_tag_database_id_run_number_event_number")
        )
    op.drop_table("tag_event")
