"""The source systems' own schemas, exactly as SOURCES.md describes them.

hepcat does not own these tables: the ingesters read them as they are, and
the simulators create them as they are. Each source has its own
:class:`~sqlalchemy.MetaData`, so that one source database never receives
another's tables.

The simulated ProdSys tables index ``(timestamp, key)``, the keyset order the
ingester reads them in (many rows share a timestamp), as the real database's
administrators would.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    select,
    type_coerce,
)

PRODSYS = MetaData()

t_production_task = Table(
    "t_production_task",
    PRODSYS,
    Column("taskid", BigInteger, primary_key=True, autoincrement=False),
    Column("parent_tid", BigInteger),
    Column("taskname", String(256)),
    Column("project", String(32)),
    Column("step_name", String(32)),
    Column("status", String(16)),
    Column("ctag", String(16)),
    Column("inputdataset", String(256)),
    Column("phys_group", String(16)),
    Column("campaign", String(32)),
    Column("username", String(64)),
    Column("total_events", BigInteger),
    Column("submit_time", DateTime),
    Column("start_time", DateTime),
    Column("endtime", DateTime),
    Column("timestamp", DateTime),
    Index("ix_t_production_task_timestamp_key", "timestamp", "taskid"),
)

t_production_dataset = Table(
    "t_production_dataset",
    PRODSYS,
    Column("name", String(256), primary_key=True),
    Column("taskid", BigInteger, index=True),
    Column("type", String(16)),
    Column("status", String(16)),
    Column("events", BigInteger),
    Column("files", BigInteger),
    Column("timestamp", DateTime),
    Index("ix_t_production_dataset_timestamp_key", "timestamp", "name"),
)

t_production_file = Table(
    "t_production_file",
    PRODSYS,
    Column("fileid", BigInteger, primary_key=True, autoincrement=False),
    Column("dataset", String(256), index=True),
    Column("taskid", BigInteger, index=True),
    Column("lfn", String(256)),
    Column("guid", String(36)),
    Column("fsize", BigInteger),
    Column("checksum", String(16)),
    Column("events", BigInteger),
    Column("lumiblocknr", String(4000)),
    Column("cross_section", Double),
    Column("gen_filt_eff", Double),
    Column("status", String(16)),
    Column("timestamp", DateTime),
    Index("ix_t_production_file_timestamp_key", "timestamp", "fileid"),
)

t_config_tag = Table(
    "t_config_tag",
    PRODSYS,
    Column("tag", String(16), primary_key=True),
    Column("tag_type", String(8)),
    Column("transformation", String(64)),
    Column("release", String(64)),
    Column("parameters", Text),
    Column("description", String(1000)),
    Column("timestamp", DateTime),
    Index("ix_t_config_tag_timestamp_key", "timestamp", "tag"),
)

TIER0 = MetaData()

t0_dataset = Table(
    "t0_dataset",
    TIER0,
    Column("name", String(256), primary_key=True),
    Column("runnumber", Integer),
    Column("stream", String(64)),
    Column("project", String(32)),
    Column("datatype", String(32)),
    Column("nfiles", BigInteger),
    Column("nevents", BigInteger),
    Column("totalsize", BigInteger),
    Column("created", DateTime),
    Column("ami_flag", String(8), index=True),
)

t0_file = Table(
    "t0_file",
    TIER0,
    Column("dataset", String(256), index=True),
    Column("lfn", String(256), primary_key=True),
    Column("guid", String(36)),
    Column("fsize", BigInteger),
    Column("checksum", String(16)),
    Column("events", BigInteger),
    Column("lumiblocknr", String(4000)),
)

COMA = MetaData()

coma_run = Table(
    "coma_run",
    COMA,
    Column("runnumber", Integer, primary_key=True, autoincrement=False),
    Column("project", String(32)),
    Column("start_time", DateTime),
    Column("end_time", DateTime),
    Column("nlumiblocks", Integer),
    Column("stable_beams", Boolean),
)

coma_period = Table(
    "coma_period",
    COMA,
    Column("project", String(32), primary_key=True),
    Column("period", String(32), primary_key=True),
    Column("level", Integer),
    Column("description", String(1000)),
)

coma_period_run = Table(
    "coma_period_run",
    COMA,
    Column("project", String(32)),
    Column("period", String(32)),
    Column("runnumber", Integer),
)


def select_raw(table: Table, *, keep: str | None = None) -> Select[Any]:
    """``SELECT`` the columns of the source *table*, its times and flags as
    the source holds them, not converted by SQLAlchemy's types: a SQLite
    source holds text there, and SQLAlchemy failed on a time it could not
    parse ('yesterday', '2026-02-30'), stopping the whole read without
    naming the row, or took any text for true. The mappers check each value
    and refuse a bad one, naming it (:func:`ingest.values.moment`). Other
    databases give times and flags already typed. The column *keep* (the
    keyset's, which the cursor compares) stays typed.
    """
    columns = [
        type_coerce(column, String).label(column.name)
        if isinstance(column.type, DateTime | Boolean) and column.name != keep
        else column
        for column in table.c
    ]
    return select(*columns)
