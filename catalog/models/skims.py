"""TAG databases registered in the catalogue, and skim requests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Double, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db import Base, BigId, Name, Short, UTCDateTime, utcnow
from catalog.models.datasets import Dataset
from catalog.models.users import User

SKIM_STATES = (
    "defined",
    "selecting",
    "selected",
    "extracting",
    "registering",
    "done",
    "failed",
    "cancelled",
)


class TagDatabase(Base):
    """The event-level metadata (TAG) of a dataset: where it is stored, its
    schema, its event count and per-attribute distributions.
    """

    __tablename__ = "tag_database"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE")
    )
    store: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(String(1000))
    schema_json: Mapped[str | None] = mapped_column(Text)
    distributions_json: Mapped[str | None] = mapped_column(Text)
    n_events: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="building")
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    dataset: Mapped[Dataset] = relationship()

    __table_args__ = (Index(None, "dataset_id"),)


class Skim(Base):
    """A skim request: a selection on a dataset's TAG, and its lifecycle."""

    __tablename__ = "skim"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Name)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="SET NULL")
    )
    parent_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    output_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset.id", ondelete="SET NULL")
    )
    selection: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="defined")
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    n_events_in: Mapped[int | None] = mapped_column(BigInteger)
    n_selected: Mapped[int | None] = mapped_column(BigInteger)
    collection_path: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(Text)
    executor: Mapped[str | None] = mapped_column(Short)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    owner: Mapped[User | None] = relationship()
    parent: Mapped[Dataset] = relationship(foreign_keys=[parent_id])
    output: Mapped[Dataset | None] = relationship(foreign_keys=[output_id])

    __table_args__ = (Index(None, "state"), Index(None, "owner_id"))
