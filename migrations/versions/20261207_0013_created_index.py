"""an index on dataset (created) for lists sorted by creation time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

``created`` is a sort of the dataset lists (the search page, the JSON API,
AMI), newest first most often, and had no index: each page, the first
included, sorted the whole table (about a second for a million datasets).
An ascending index serves either direction (read backwards for the newest
first). The column is written once, when the dataset is catalogued, so the
index costs nothing on the updates that ingesting makes.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.create_index("ix_dataset_created", ["created"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_index("ix_dataset_created")
