"""The catalogue's own bookkeeping: quarantined source records, ingestion
stop points, task-server leases and the record of every task run.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db import Base, BigId, Name, Short, UTCDateTime, utcnow


class Quarantine(Base):
    """A source record that could not be understood, kept with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str | None] = mapped_column(Name)
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index(None, "source", "created"),)


class StopPoint(Base):
    """How far an ingester has read its source: a timestamp and a key.

    It is committed in the same transaction as the rows it covers.
    """

    __tablename__ = "stop_point"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    key: Mapped[str | None] = mapped_column(String(255))
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )


class TaskLease(Base):
    """Which task-server instance runs a task, until when."""

    __tablename__ = "task_lease"

    task_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(Short)
    expires: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TaskRun(Base):
    """One run of a task: when, how much it did, what was left, how it ended."""

    __tablename__ = "task_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(Short)
    started: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    items: Mapped[int] = mapped_column(BigInteger, default=0)
    backlog: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index(None, "task_name", "started"),)
