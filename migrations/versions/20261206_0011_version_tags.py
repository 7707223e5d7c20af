"""version_tag: the AMI tags each tag chain holds, and dataset.version indexed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A new or changed AMI tag marks the datasets whose version holds it
(catalog/chains.py). They were found by comparing the tags with every
dataset's version; the table and the index find them through two lookups.

The upgrade adds the rows of the versions catalogued before it, in batches,
splitting each version as catalog.chains.chain_tags does. An offline SQL
script (``alembic upgrade --sql``) cannot read the versions: it creates the
table and the indexes only, and ``hepcat derive --check --fix`` adds the
rows afterwards (it reports the versions whose rows are missing).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: The longest tag the catalogue keys (ami_tag.tag).
TAG_LENGTH = 16
#: Versions read and written at once.
BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "version_tag",
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("tag", sa.String(length=TAG_LENGTH), nullable=False),
        sa.PrimaryKeyConstraint("version", "tag", name=op.f("pk_version_tag")),
    )
    with op.batch_alter_table("version_tag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_version_tag_tag"), ["tag"], unique=False)
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_version"), ["version"], unique=False
        )
    if not context.is_offline_mode():
        _add_catalogued_versions()


def downgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_version"))
    op.drop_table("version_tag")


def _add_catalogued_versions() -> None:
    connection = op.get_bind()
    dataset = sa.table("dataset", sa.column("version", sa.String))
    version_tag = sa.table("version_tag", sa.column("version"), sa.column("tag"))
    query = sa.select(dataset.c.version).where(dataset.c.version.is_not(None))
    versions = connection.execute(query.distinct()).scalars().all()
    for start in range(0, len(versions), BATCH):
        rows = [
            {"version": version, "tag": tag}
            for version in versions[start : start + BATCH]
            for tag in dict.fromkeys(version.split("_"))
            if 0 < len(tag) <= TAG_LENGTH
        ]
        if rows:
            connection.execute(version_tag.insert(), rows)
