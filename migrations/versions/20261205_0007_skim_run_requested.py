"""a skim is defined first and run on request: skim.run_requested

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("skim", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_requested", catalog.db.UTCDateTime(), nullable=True)
        )
    # Until now a skim ran as soon as it was requested: the skims already
    # there keep going, as if their run had been asked for when they were.
    skim = sa.table(
        "skim",
        sa.column("created", catalog.db.UTCDateTime()),
        sa.column("run_requested", catalog.db.UTCDateTime()),
    )
    op.execute(skim.update().values(run_requested=skim.c.created))


def downgrade() -> None:
    with op.batch_alter_table("skim", schema=None) as batch_op:
        batch_op.drop_column("run_requested")
