"""Times of a SQLite catalogue written in one text form

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

SQLite has no time type: a time is text, compared as text. SQLAlchemy
writes ``YYYY-MM-DD HH:MM:SS.ffffff``, but the bulk upserts
(``catalog.upsert``) wrote a time on a whole second without its fraction,
``YYYY-MM-DD HH:MM:SS``, which sorts before the same time written by
SQLAlchemy: a comparison with a bound time (``-createdSince``, a keyset
cursor on a run's start) missed the rows of that very second. The upserts
now write the fraction always; this revision gives the times written
before it theirs. PostgreSQL, MariaDB and Oracle have a time type: nothing
to do there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: The length of ``YYYY-MM-DD HH:MM:SS``.
WHOLE_SECOND = 19


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            if isinstance(column["type"], sa.DateTime):
                name = bind.dialect.identifier_preparer.quote(column["name"])
                quoted = bind.dialect.identifier_preparer.quote(table)
                op.execute(
                    f"UPDATE {quoted} SET {name} = {name} || '.000000' "
                    f"WHERE length({name}) = {WHOLE_SECOND}"
                )


def downgrade() -> None:
    # The longer text is as good a time for the code before this revision.
    pass
