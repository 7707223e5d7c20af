"""TAG databases registered in the catalogue, and skim requests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
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

#: The columns a skim's output dataset takes from its parent, whose events
#: it holds a subset of: the same kind of data of the same sample, found by
#: the same searches (a user dataset's name alone gives none of them). Not
#: the run number: the output joins none of the run's periods, and the lumi
#: blocks it lacks are not lost.
OUTPUT_INHERITS = (
    "dataset_number",
    "physics_short",
    "stream_name",
    "data_type",
    "version",
)


def inherit_columns(output: Dataset, parent: Dataset) -> None:
    """Give a skim's *output* the :data:`OUTPUT_INHERITS` columns of its
    *parent*.
    """
    for column in OUTPUT_INHERITS:
        setattr(output, column, getattr(parent, column))


# MariaDB's TEXT and BLOB stop at 64 kB; a plan or an upload may be larger.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


TAG_OF_DATASET = "uq_tag_database_dataset_id"


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
    # The number, events and bytes of the dataset's files the TAG was made
    # from, as the catalogue counted them then: the TAG is out of step when
    # they no longer equal the dataset's nFiles, totalEvents and totalSize.
    source_files: Mapped[int | None] = mapped_column(BigInteger)
    source_events: Mapped[int | None] = mapped_column(BigInteger)
    source_size: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="building")
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    dataset: Mapped[Dataset] = relationship()

    # One TAG a dataset: two processes registering its first TAG at once
    # cannot both insert one.
    __table_args__ = (Index(TAG_OF_DATASET, "dataset_id", unique=True),)


def _tag(name: str, dtype: str, doc: str, unit: str = "") -> dict[str, str]:
    # The unit is that of the event files' branches (docs/skims.md); the
    # surfaces show it beside the values and on the distribution's axis.
    return {"tag": name, "dtype": dtype, "doc": doc, "unit": unit}


class TagEvent(Base):
    """One event of a TAG database: the file and entry it lives at, and its
    attributes. The columns with ``info["tag"]`` are the TAG schema: the
    attribute name a selection uses, its numpy type in the columnar store,
    and what it means. *seq* is the row's place in the columnar store.
    """

    __tablename__ = "tag_event"

    tag_database_id: Mapped[int] = mapped_column(
        ForeignKey("tag_database.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    file_guid: Mapped[str] = mapped_column(String(36))
    entry: Mapped[int] = mapped_column(BigInteger)
    run_number: Mapped[int] = mapped_column(
        Integer, info=_tag("RunNumber", "int32", "run number")
    )
    event_number: Mapped[int] = mapped_column(
        BigInteger, info=_tag("EventNumber", "int64", "event number in the run")
    )
    lumi_block: Mapped[int] = mapped_column(
        Integer, info=_tag("LumiBlock", "int32", "luminosity block")
    )
    n_jets: Mapped[int] = mapped_column(
        Integer, info=_tag("nJets", "int32", "number of jets")
    )
    n_electrons: Mapped[int] = mapped_column(
        Integer, info=_tag("nElectrons", "int32", "number of electrons")
    )
    n_muons: Mapped[int] = mapped_column(
        Integer, info=_tag("nMuons", "int32", "number of muons")
    )
    jet_pt1: Mapped[float] = mapped_column(
        Double, info=_tag("jet_pt1", "float32", "leading jet pT (0 if none)", "GeV")
    )
    jet_pt2: Mapped[float] = mapped_column(
        Double, info=_tag("jet_pt2", "float32", "second jet pT (0 if none)", "GeV")
    )
    el_pt1: Mapped[float] = mapped_column(
        Double, info=_tag("el_pt1", "float32", "leading electron pT (0 if none)", "GeV")
    )
    mu_pt1: Mapped[float] = mapped_column(
        Double, info=_tag("mu_pt1", "float32", "leading muon pT (0 if none)", "GeV")
    )
    met: Mapped[float] = mapped_column(
        Double, info=_tag("MET", "float32", "missing transverse momentum", "GeV")
    )
    trigger_bits: Mapped[int] = mapped_column(
        BigInteger, info=_tag("triggerBits", "int64", "fired triggers, one bit each")
    )

    __table_args__ = (Index(None, "tag_database_id", "run_number", "event_number"),)


#: The largest target size of a skim's output file, in bytes: the bound of
#: every surface, well within the 64-bit column that keeps it.
MAX_TARGET_SIZE = 2**62


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
    # What was asked besides the selection (migration 0004): an uploaded
    # collection (its file name, and its bytes until the task stores it), the
    # output branches (JSON list), compression and target file size.
    collection_name: Mapped[str | None] = mapped_column(Name)
    upload: Mapped[bytes | None] = mapped_column(LongBlob)
    branches: Mapped[str | None] = mapped_column(Text)
    compression: Mapped[str | None] = mapped_column(String(32))
    target_size: Mapped[int | None] = mapped_column(BigInteger)
    # When its owner asked for it to run (migration 0007): a skim is first
    # defined, and the task takes it only once a run is requested.
    run_requested: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # How far the work is: the extraction plan (kept so that a restart or a
    # retry writes the same files), where the outputs go, units done and
    # failed (JSON: unit number to error), the task instance working on it
    # and when it last said so, and when the work started and ended.
    plan_json: Mapped[str | None] = mapped_column(LongText)
    output_dir: Mapped[str | None] = mapped_column(String(1000))
    n_units: Mapped[int | None] = mapped_column(Integer)
    units_done: Mapped[int | None] = mapped_column(Integer)
    failed_units: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    owner: Mapped[User | None] = relationship()
    parent: Mapped[Dataset] = relationship(foreign_keys=[parent_id])
    output: Mapped[Dataset | None] = relationship(foreign_keys=[output_id])

    __table_args__ = (Index(None, "state"), Index(None, "owner_id"))
