"""Datasets, their files, the ProdSys tasks that made them, AMI tags,
provenance edges, containers, keywords and hashtags.

Each column that AMI shows carries its AMI field name in ``info["ami"]``;
the AMI endpoint, the API and the MQL compiler read the names from there.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db import (
    Base,
    BigId,
    ExactName,
    ExactShort,
    Short,
    UTCDateTime,
    exact_text,
    utcnow,
)

# Where a dataset came from.
SOURCE_PRODSYS = "prodsys"
SOURCE_TIER0 = "tier0"
SOURCE_DDM = "ddm"
SOURCE_SKIM = "skim"
SOURCE_USER = "user"

AMI_VALID = "VALID"
AMI_TRASHED = "TRASHED"


class ProductionTask(Base):
    """A ProdSys task, as the catalogue last read it."""

    __tablename__ = "production_task"

    task_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info={"ami": "taskId"}
    )
    parent_task_id: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "parentTaskId"}
    )
    name: Mapped[str] = mapped_column(ExactName, info={"ami": "taskName"})
    project: Mapped[str | None] = mapped_column(Short, info={"ami": "projectName"})
    step_name: Mapped[str | None] = mapped_column(String(32), info={"ami": "stepName"})
    status: Mapped[str] = mapped_column(String(16), info={"ami": "taskStatus"})
    ctag: Mapped[str | None] = mapped_column(String(16), info={"ami": "amiTag"})
    input_dataset: Mapped[str | None] = mapped_column(
        ExactName, info={"ami": "inputDataset"}
    )
    phys_group: Mapped[str | None] = mapped_column(
        String(16), info={"ami": "physicsGroup"}
    )
    campaign: Mapped[str | None] = mapped_column(String(32), info={"ami": "campaign"})
    username: Mapped[str | None] = mapped_column(Short, info={"ami": "requestedBy"})
    total_events: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "totalEventsRequested"}
    )
    submit_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    start_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    source_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    modified: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        Index(None, "status"),
        Index(None, "input_dataset"),
    )


class Dataset(Base):
    """A dataset: a named set of files, with its AMI fields and derived
    quantities (``nFiles``, ``totalEvents``, ``crossSection``, ...).
    """

    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(ExactName, info={"ami": "logicalDatasetName"})
    scope: Mapped[str] = mapped_column(ExactShort, info={"ami": "scope"})
    source: Mapped[str] = mapped_column(String(16), info={"ami": "source"})

    # The parts of the name (nomenclature).
    project_name: Mapped[str] = mapped_column(Short, info={"ami": "projectName"})
    dataset_number: Mapped[int | None] = mapped_column(
        Integer, info={"ami": "datasetNumber"}
    )
    run_number: Mapped[int | None] = mapped_column(Integer, info={"ami": "runNumber"})
    physics_short: Mapped[str | None] = mapped_column(
        String(200), info={"ami": "physicsShort"}
    )
    stream_name: Mapped[str | None] = mapped_column(Short, info={"ami": "streamName"})
    production_step: Mapped[str | None] = mapped_column(
        String(32), info={"ami": "productionStep"}
    )
    data_type: Mapped[str | None] = mapped_column(Short, info={"ami": "dataType"})
    version: Mapped[str | None] = mapped_column(String(200), info={"ami": "version"})

    # Production.
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("production_task.task_id"), info={"ami": "prodsysIdentifier"}
    )
    prodsys_status: Mapped[str | None] = mapped_column(
        String(32), info={"ami": "prodsysStatus"}
    )
    completion: Mapped[float | None] = mapped_column(Double, info={"ami": "completion"})
    requested_by: Mapped[str | None] = mapped_column(Short, info={"ami": "requestedBy"})
    physicist_responsible: Mapped[str | None] = mapped_column(
        Short, info={"ami": "physicistResponsible"}
    )
    physics_comment: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "physicsComment"}
    )

    # Status.
    ami_status: Mapped[str] = mapped_column(
        String(16), default=AMI_VALID, info={"ami": "amiStatus"}
    )
    trash_annotation: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "trashAnnotation"}
    )
    trash_date: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, info={"ami": "trashDate"}
    )
    trash_trigger: Mapped[str | None] = mapped_column(
        String(64), info={"ami": "trashTrigger"}
    )

    # Counts, derived from the dataset's files.
    n_files: Mapped[int] = mapped_column(BigInteger, default=0, info={"ami": "nFiles"})
    total_events: Mapped[int] = mapped_column(
        BigInteger, default=0, info={"ami": "totalEvents"}
    )
    total_size: Mapped[int] = mapped_column(
        BigInteger, default=0, info={"ami": "totalSize"}
    )

    # Physics, derived down the provenance chain from the EVNT ancestor.
    cross_section: Mapped[float | None] = mapped_column(
        Double, info={"ami": "crossSection"}
    )
    cross_section_min: Mapped[float | None] = mapped_column(
        Double, info={"ami": "crossSectionMin"}
    )
    cross_section_max: Mapped[float | None] = mapped_column(
        Double, info={"ami": "crossSectionMax"}
    )
    gen_filt_eff: Mapped[float | None] = mapped_column(
        Double, info={"ami": "genFiltEff"}
    )
    cross_section_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset.id", ondelete="SET NULL"),
        info={"ami": "crossSectionSource"},
    )
    ecm_energy: Mapped[float | None] = mapped_column(Double, info={"ami": "ecmEnergy"})
    beam_type: Mapped[str | None] = mapped_column(String(32), info={"ami": "beamType"})
    generator_name: Mapped[str | None] = mapped_column(
        String(200), info={"ami": "generatorName"}
    )
    generator_tune: Mapped[str | None] = mapped_column(
        Short, info={"ami": "generatorTune"}
    )
    pdf: Mapped[str | None] = mapped_column(Short, info={"ami": "PDF"})

    # Configuration.
    atlas_release: Mapped[str | None] = mapped_column(
        Short, info={"ami": "AtlasRelease"}
    )
    transformation_package: Mapped[str | None] = mapped_column(
        Short, info={"ami": "TransformationPackage"}
    )
    geometry_version: Mapped[str | None] = mapped_column(
        Short, info={"ami": "geometryVersion"}
    )
    conditions_tag: Mapped[str | None] = mapped_column(
        Short, info={"ami": "conditionsTag"}
    )
    job_config: Mapped[str | None] = mapped_column(
        String(255), info={"ami": "jobConfig"}
    )
    trigger_config: Mapped[str | None] = mapped_column(
        Short, info={"ami": "triggerConfig"}
    )
    # Whether the configuration was derived with a tag of the version not
    # catalogued yet: a new AMI tag is looked for in these datasets' versions
    # only (catalog.derived.mark_tagged). Not a field of AMI's.
    tags_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    # Real data.
    period: Mapped[str | None] = mapped_column(String(255), info={"ami": "period"})
    n_lost_lumi_blocks: Mapped[int | None] = mapped_column(
        Integer, info={"ami": "nLostLumiBlocks"}
    )
    lost_lumi_blocks: Mapped[str | None] = mapped_column(
        Text, info={"ami": "lostLumiBlocks"}
    )
    # Tier-0: the flag hepcat leaves in Tier-0 (DONE when the files held add
    # up to Tier-0's counts, READY while they fall short), and those counts.
    tier0_state: Mapped[str | None] = mapped_column(
        String(8), info={"ami": "tier0State"}
    )
    tier0_n_files: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "tier0NFiles"}
    )
    tier0_total_events: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "tier0TotalEvents"}
    )
    tier0_total_size: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "tier0TotalSize"}
    )

    # DDM.
    ddm_open: Mapped[bool | None] = mapped_column(Boolean, info={"ami": "ddmOpen"})
    ddm_n_files: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "ddmNFiles"}
    )
    ddm_total_events: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "ddmTotalEvents"}
    )
    ddm_total_size: Mapped[int | None] = mapped_column(
        BigInteger, info={"ami": "ddmTotalSize"}
    )
    ddm_consistent: Mapped[bool | None] = mapped_column(
        Boolean, info={"ami": "ddmConsistent"}
    )
    ddm_incomplete: Mapped[bool] = mapped_column(
        Boolean, default=False, info={"ami": "ddmIncomplete"}
    )
    ddm_erased: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, info={"ami": "ddmErased"}
    )

    created: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, info={"ami": "created"}
    )
    last_modified: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, info={"ami": "lastModified"}
    )

    files: Mapped[list[File]] = relationship(
        back_populates="dataset", passive_deletes=True
    )
    task: Mapped[ProductionTask | None] = relationship()
    cross_section_source: Mapped[Dataset | None] = relationship(remote_side=[id])

    __table_args__ = (
        UniqueConstraint("name"),
        Index(None, "data_type"),
        Index(None, "project_name", "data_type"),
        # A project's names in order: MQL name patterns (catalog.mql.narrowing).
        Index(None, "project_name", "name"),
        Index(None, "dataset_number"),
        Index(None, "run_number"),
        Index(None, "period"),
        Index(None, "ami_status"),
        Index(None, "prodsys_status"),
        # The few Tier-0 datasets held READY (ingest.tier0), every run.
        Index(None, "tier0_state"),
        Index(None, "last_modified"),
        Index(None, "task_id"),
        # Sorts of the dataset lists (catalog.keyset): a page is an index range.
        Index(None, "total_events"),
        Index(None, "created"),
        # Few datasets wait for a tag: only they are indexed where the
        # database can index a part of a table.
        Index(
            None,
            "tags_pending",
            postgresql_where=text("tags_pending"),
            sqlite_where=text("tags_pending = 1"),
        ),
    )

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"


class DatasetStale(Base):
    """A dataset whose derived quantities wait to be recomputed.

    The mark is raised by one in the transaction that changes rows a derived
    quantity depends on, and the row goes when the quantities are recomputed,
    only if no change came in the meantime (see catalog.derived). It is a
    narrow table of its own rather than a column of ``dataset``: marking
    thousands of datasets per ingest bite would otherwise rewrite their wide
    rows and every index on them.
    """

    __tablename__ = "dataset_stale"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    mark: Mapped[int] = mapped_column(Integer, default=1)


class File(Base):
    """A file of a dataset, identified by its GUID."""

    __tablename__ = "file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE")
    )
    lfn: Mapped[str] = mapped_column(ExactName, info={"ami": "LFN"})
    guid: Mapped[str] = mapped_column(String(36), info={"ami": "fileGUID"})
    size: Mapped[int | None] = mapped_column(BigInteger, info={"ami": "fileSize"})
    checksum: Mapped[str | None] = mapped_column(String(16), info={"ami": "checksum"})
    events: Mapped[int | None] = mapped_column(BigInteger, info={"ami": "events"})
    status: Mapped[str] = mapped_column(String(16), info={"ami": "status"})
    lost: Mapped[bool] = mapped_column(Boolean, default=False, info={"ami": "lost"})
    lumi_blocks: Mapped[str | None] = mapped_column(Text, info={"ami": "lumiBlocks"})
    cross_section: Mapped[float | None] = mapped_column(
        Double, info={"ami": "crossSection"}
    )
    gen_filt_eff: Mapped[float | None] = mapped_column(
        Double, info={"ami": "genFiltEff"}
    )
    input_file: Mapped[str | None] = mapped_column(ExactName, info={"ami": "inputFile"})
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    dataset: Mapped[Dataset] = relationship(back_populates="files")
    lumi_ranges: Mapped[list[FileLumiRange]] = relationship(
        back_populates="file", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("guid"),
        UniqueConstraint("lfn"),
        Index(None, "dataset_id", "lfn"),
    )


def counted_file() -> ColumnElement[bool]:
    """Whether a file (in a query joined with ``dataset``) is one of the
    files of its dataset, those ``nFiles`` counts (DESIGN.md, "Files of a
    dataset"): a ProdSys file with status ``finished`` or a Tier-0 file,
    that DDM did not report lost.
    """
    finished = (Dataset.source == SOURCE_TIER0) | (File.status == "finished")
    return File.lost.is_(False) & finished


class FileLumiRange(Base):
    """A contiguous range of lumi blocks present in a file (real data)."""

    __tablename__ = "file_lumi_range"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    first: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)

    file: Mapped[File] = relationship(back_populates="lumi_ranges")


class AmiTag(Base):
    """A configuration tag (``e3601``, ``r10724``, ``f629``, ...)."""

    __tablename__ = "ami_tag"

    tag: Mapped[str] = mapped_column(exact_text(16), primary_key=True)
    tag_type: Mapped[str] = mapped_column(String(8), info={"ami": "tagType"})
    tag_number: Mapped[int] = mapped_column(Integer, info={"ami": "tagNumber"})
    transformation: Mapped[str | None] = mapped_column(
        Short, info={"ami": "transformation"}
    )
    release: Mapped[str | None] = mapped_column(Short, info={"ami": "SWReleaseCache"})
    parameters: Mapped[str | None] = mapped_column(Text, info={"ami": "parameters"})
    description: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "description"}
    )
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index(None, "tag_type", "tag_number"),)


class DatasetAmiTag(Base):
    """An AMI tag in the version (tag chain) of a dataset: one row per tag
    and dataset, written when the dataset is catalogued (its version comes
    from its name and never changes). The datasets of a tag are a range of
    the primary key, where the version is a string the tag sits inside of,
    which no index serves. The tag need not be catalogued (yet).
    """

    __tablename__ = "dataset_ami_tag"

    tag: Mapped[str] = mapped_column(exact_text(16), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )

    dataset: Mapped[Dataset] = relationship()

    __table_args__ = (Index(None, "dataset_id"),)


class ProvenanceEdge(Base):
    """*parent* was the input of the task that produced *child*."""

    __tablename__ = "provenance_edge"

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="production")

    parent: Mapped[Dataset] = relationship(foreign_keys=[parent_id])
    child: Mapped[Dataset] = relationship(foreign_keys=[child_id])

    __table_args__ = (Index(None, "child_id"),)


class Container(Base):
    """A DDM container: a named set of datasets."""

    __tablename__ = "container"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(ExactName)
    scope: Mapped[str] = mapped_column(ExactShort)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    members: Mapped[list[ContainerMember]] = relationship(
        back_populates="container", passive_deletes=True
    )

    __table_args__ = (UniqueConstraint("name"),)


class ContainerMember(Base):
    """Dataset *child_name* is in *container* (DDM ``register_cnt``).

    The child is kept by name: DDM may register a dataset the catalogue has
    not ingested yet.
    """

    __tablename__ = "container_member"

    container_id: Mapped[int] = mapped_column(
        ForeignKey("container.id", ondelete="CASCADE"), primary_key=True
    )
    child_name: Mapped[str] = mapped_column(ExactName, primary_key=True)
    child_type: Mapped[str] = mapped_column(String(16), default="DATASET")
    added: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    container: Mapped[Container] = relationship(back_populates="members")

    __table_args__ = (Index(None, "child_name"),)


class DatasetKeyword(Base):
    """A keyword attached to a dataset (AMI entity ``dataset_keywords``)."""

    __tablename__ = "dataset_keyword"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    keyword: Mapped[str] = mapped_column(
        Short, primary_key=True, info={"ami": "keyword"}
    )

    __table_args__ = (Index(None, "keyword"),)


class Hashtag(Base):
    """A hashtag a physicist attached to a dataset (AMI entity ``HASHTAGS``)."""

    __tablename__ = "hashtag"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(
        String(32), primary_key=True, info={"ami": "scope"}
    )
    name: Mapped[str] = mapped_column(Short, primary_key=True, info={"ami": "name"})
    comment: Mapped[str | None] = mapped_column(String(1000), info={"ami": "comment"})
    author: Mapped[str | None] = mapped_column(Short, info={"ami": "author"})
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index(None, "scope", "name"),)
