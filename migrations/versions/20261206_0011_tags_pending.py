"""The datasets whose configuration waits for an AMI tag

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

``dataset.tags_pending`` is true when a tag of the dataset's version is not
catalogued: a new tag is then looked for in these datasets' versions only
(catalog.derived.mark_tagged), where it compared every version before. It
is indexed where true only, on the databases that can (PostgreSQL, SQLite).

The datasets catalogued before get the flag their version and the tags
catalogued now give: a version is read as its parts between ``_`` (a tag
chain's tags).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEX = "ix_dataset_tags_pending"
# Datasets flagged in one statement.
CHUNK = 5000


def upgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "tags_pending", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_index(
        INDEX,
        "dataset",
        ["tags_pending"],
        unique=False,
        postgresql_where=sa.text("tags_pending"),
        sqlite_where=sa.text("tags_pending = 1"),
    )
    _flag_existing()


def _flag_existing() -> None:
    """Flag the datasets waiting for a tag, by id: ``version`` has no index,
    so a statement by versions would read the whole table each time.
    """
    connection = op.get_bind()
    dataset = sa.table(
        "dataset", sa.column("id"), sa.column("version"), sa.column("tags_pending")
    )
    tag = sa.table("ami_tag", sa.column("tag"))
    known = set(connection.scalars(sa.select(tag.c.tag)))
    query = sa.select(dataset.c.id, dataset.c.version).where(
        dataset.c.version.is_not(None)
    )
    waiting = [
        id_
        for id_, version in connection.execute(query)
        if version and not known.issuperset(version.split("_"))
    ]
    for start in range(0, len(waiting), CHUNK):
        chunk = waiting[start : start + CHUNK]
        connection.execute(
            dataset.update()
            .where(dataset.c.id.in_(chunk))
            .values(tags_pending=sa.true())
        )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="dataset")
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_column("tags_pending")
