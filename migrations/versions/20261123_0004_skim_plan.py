"""the skim lifecycle: request details, plan and progress of a skim

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import catalog.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LONG_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
COLUMNS = (
    ("collection_name", sa.String(length=255)),
    ("upload", LONG_BLOB),
    ("branches", sa.Text()),
    ("compression", sa.String(length=32)),
    ("target_size", sa.BigInteger()),
    ("plan_json", LONG_TEXT),
    ("output_dir", sa.String(length=1000)),
    ("n_units", sa.Integer()),
    ("units_done", sa.Integer()),
    ("failed_units", sa.Text()),
    ("worker", sa.String(length=128)),
    ("heartbeat", catalog.db.UTCDateTime()),
    ("started", catalog.db.UTCDateTime()),
    ("ended", catalog.db.UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("skim", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("skim", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
