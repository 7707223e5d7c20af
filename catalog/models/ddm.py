"""What DDM (Rucio) tells the catalogue: replicas, the messages already
applied, and the differences between a source's counts (DDM's, Tier-0's)
and the catalogue's.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db import Base, BigId, ExactName, Short, UTCDateTime, utcnow


class Replica(Base):
    """A replica of a dataset at a storage element (RSE)."""

    __tablename__ = "replica"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_name: Mapped[str] = mapped_column(ExactName)
    rse: Mapped[str] = mapped_column(Short)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    rule_id: Mapped[str | None] = mapped_column(String(64))
    deleted_files: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (UniqueConstraint("dataset_name", "rse"),)


class DdmMessage(Base):
    """A DDM message already seen: delivery is at least once, so a message
    seen again is recognised by its id and skipped.

    The payload is kept: the DDM state of a dataset, container or replica is
    recomputed from every message about it (``catalog.ddm``), so a message
    about something the catalogue does not have yet takes effect when it
    arrives. *name* is the dataset or container the message is about (None
    while unknown); *child_name* the file or dataset inside it, if any.
    A quarantined message has no payload.
    """

    __tablename__ = "ddm_message"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(ExactName)
    child_name: Mapped[str | None] = mapped_column(ExactName)
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    received: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ignored: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("message_id"),
        Index(None, "name"),
        Index(None, "child_name"),
        Index(None, "event_type"),
    )


class Reconciliation(Base):
    """A difference between a source's counts of a dataset and the
    catalogue's: DDM's at a ``close`` (*source* ``ddm``), or Tier-0's for the
    files it says a dataset has (``tier0``).
    """

    __tablename__ = "reconciliation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(16), default="ddm", server_default="ddm")
    quantity: Mapped[str] = mapped_column(String(32))
    catalog_value: Mapped[int | None] = mapped_column(BigInteger)
    source_value: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    detected: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "dataset_id"), Index(None, "resolved"))
