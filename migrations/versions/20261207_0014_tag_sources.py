"""One TAG a dataset, and the files each TAG was made from

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

``tag_database.dataset_id`` becomes unique: two processes registering a
dataset's first TAG at once made two records, and readers then found either.
Of such twins the newest (highest id) stays.

``tag_database.source_files``, ``source_events`` and ``source_size`` hold
the number, events and bytes of the dataset's files a TAG was made from, as
the catalogue counted them then. The tags task rebuilds a TAG when they
differ from the dataset's ``nFiles``, ``totalEvents`` and ``totalSize``
(it compared the number of files only, so a file replaced by another went
unseen). A TAG catalogued before gets the totals of the files its schema
lists, as the catalogue counts them now.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD_INDEX = "ix_tag_database_dataset_id"
UNIQUE = "uq_tag_database_dataset_id"
SOURCES = ("source_files", "source_events", "source_size")

TAG = sa.table(
    "tag_database",
    sa.column("id"),
    sa.column("dataset_id"),
    sa.column("schema_json"),
    *(sa.column(name) for name in SOURCES),
)
TAG_EVENT = sa.table("tag_event", sa.column("tag_database_id"))
FILE = sa.table(
    "file",
    sa.column("dataset_id"),
    sa.column("guid"),
    sa.column("events"),
    sa.column("size"),
)


def upgrade() -> None:
    with op.batch_alter_table("tag_database", schema=None) as batch_op:
        for name in SOURCES:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
    _drop_twins()
    # The unique index first: on MariaDB the foreign key needs an index on
    # dataset_id at every moment.
    op.create_index(UNIQUE, "tag_database", ["dataset_id"], unique=True)
    op.drop_index(OLD_INDEX, table_name="tag_database")
    _fill_sources()


def _drop_twins() -> None:
    """Delete every TAG record but the newest of each dataset."""
    connection = op.get_bind()
    newest = (
        sa.select(TAG.c.dataset_id, sa.func.max(TAG.c.id).label("id"))
        .group_by(TAG.c.dataset_id)
        .having(sa.func.count() > 1)
    )
    for dataset_id, keep in connection.execute(newest).all():
        older = sa.select(TAG.c.id).where(
            TAG.c.dataset_id == dataset_id, TAG.c.id != keep
        )
        ids = list(connection.scalars(older))
        connection.execute(
            TAG_EVENT.delete().where(TAG_EVENT.c.tag_database_id.in_(ids))
        )
        connection.execute(TAG.delete().where(TAG.c.id.in_(ids)))


def _fill_sources() -> None:
    """Set each TAG's totals from the files its schema lists."""
    connection = op.get_bind()
    tags = connection.execute(sa.select(TAG.c.id, TAG.c.dataset_id, TAG.c.schema_json))
    for tag_id, dataset_id, schema in tags.all():
        listed = {f["guid"] for f in json.loads(schema or "{}").get("files", ())}
        files = sa.select(FILE.c.guid, FILE.c.events, FILE.c.size).where(
            FILE.c.dataset_id == dataset_id
        )
        found = [
            (events or 0, size or 0)
            for guid, events, size in connection.execute(files)
            if guid in listed
        ]
        connection.execute(
            TAG.update()
            .where(TAG.c.id == tag_id)
            .values(
                source_files=len(found),
                source_events=sum(events for events, _ in found),
                source_size=sum(size for _, size in found),
            )
        )


def downgrade() -> None:
    op.create_index(OLD_INDEX, "tag_database", ["dataset_id"], unique=False)
    op.drop_index(UNIQUE, table_name="tag_database")
    with op.batch_alter_table("tag_database", schema=None) as batch_op:
        for name in reversed(SOURCES):
            batch_op.drop_column(name)
