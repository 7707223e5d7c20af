"""The AMI tags of each dataset's version, one row per tag and dataset

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

``dataset_ami_tag`` holds, for each dataset, the AMI tags of its version
(tag chain): ``e3601_s3126_r10724`` gives three rows. The datasets of a tag
are then a range of its primary key. They were found by reading every
dataset's version, a tag being a string inside it that no index serves: a
rare tag's page read a million versions (2 to 3 s on MariaDB), and so did
marking the datasets of a tag that changed.

The rows of the datasets catalogued before are written here, from their
versions, a batch of datasets at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.db
from catalog.nomenclature import tags_in_version

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BATCH = 10_000

DATASET = sa.table("dataset", sa.column("id"), sa.column("version"))
DATASET_AMI_TAG = sa.table("dataset_ami_tag", sa.column("tag"), sa.column("dataset_id"))


def upgrade() -> None:
    op.create_table(
        "dataset_ami_tag",
        sa.Column("tag", catalog.db.exact_text(16), nullable=False),
        sa.Column(
            "dataset_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_ami_tag_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "dataset_id", name=op.f("pk_dataset_ami_tag")),
    )
    op.create_index(
        "ix_dataset_ami_tag_dataset_id", "dataset_ami_tag", ["dataset_id"], unique=False
    )
    _fill()


def _fill() -> None:
    """Write the tags of every catalogued dataset's version."""
    connection = op.get_bind()
    last = 0
    while True:
        batch = connection.execute(
            sa.select(DATASET.c.id, DATASET.c.version)
            .where(DATASET.c.id > last, DATASET.c.version.is_not(None))
            .order_by(DATASET.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        rows = [
            {"tag": tag, "dataset_id": dataset_id}
            for dataset_id, version in batch
            for tag in tags_in_version(version)
        ]
        if rows:
            connection.execute(DATASET_AMI_TAG.insert(), rows)
        last = batch[-1][0]


def downgrade() -> None:
    # The table's indexes go with it (MariaDB refuses to drop the foreign
    # key's index alone).
    op.drop_table("dataset_ami_tag")
