"""Runs, data periods and the runs of each period, as COMA describes them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db import Base, BigId, Short, UTCDateTime, utcnow


class Run(Base):
    """A data-taking run."""

    __tablename__ = "run"

    run_number: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, info={"ami": "runNumber"}
    )
    project: Mapped[str] = mapped_column(Short, info={"ami": "projectName"})
    start_time: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, info={"ami": "startTime"}
    )
    end_time: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, info={"ami": "endTime"}
    )
    n_lumi_blocks: Mapped[int | None] = mapped_column(
        Integer, info={"ami": "nLumiBlocks"}
    )
    stable_beams: Mapped[bool | None] = mapped_column(
        Boolean, info={"ami": "stableBeams"}
    )
    modified: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (Index(None, "project"),)


class Period(Base):
    """A data period (``A``, ``B``, ``B1``, ...) of a project, at level 1–3."""

    __tablename__ = "period"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project: Mapped[str] = mapped_column(Short, info={"ami": "projectName"})
    name: Mapped[str] = mapped_column(String(32), info={"ami": "period"})
    level: Mapped[int] = mapped_column(Integer, info={"ami": "periodLevel"})
    description: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "description"}
    )
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    runs: Mapped[list[PeriodRun]] = relationship(
        back_populates="period", passive_deletes=True
    )

    __table_args__ = (UniqueConstraint("project", "name"), Index(None, "level"))


class PeriodRun(Base):
    """Run *run_number* belongs to *period*.

    The run is kept by number, without a foreign key: COMA may list a run in
    a period before the run itself is known.
    """

    __tablename__ = "period_run"

    period_id: Mapped[int] = mapped_column(
        ForeignKey("period.id", ondelete="CASCADE"), primary_key=True
    )
    run_number: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False
    )

    period: Mapped[Period] = relationship(back_populates="runs")

    __table_args__ = (Index(None, "run_number"),)
