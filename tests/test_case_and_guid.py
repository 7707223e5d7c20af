"""Two faults of an operator's audit, on SQLite, PostgreSQL and MariaDB.

Names that differ only in letter case are two names (MariaDB's default
collation took them for one: a crash loop of the ProdSys ingester, or a file
overwritten by another). A GUID names one file: a row giving it to another
file, another source's dataset or another task's dataset is quarantined,
and a file ProdSys moves between datasets of one task still moves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from statistics import fmean

import pytest
from sqlalchemy import select, text, update

from catalog.models import Dataset, File, Quarantine
from catalog.mql import compile_search
from ingest import schemas
from ingest.world import DatasetSpec, FileSpec, build_world

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
ZMUMU = "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.evgen.EVNT.e3601"
ZEE_LOUD = ZEE.replace("_Zee.", "_ZEE.")
NEW_GUID = "0A0B0C0D-0000-4000-8000-000000000001"


@pytest.fixture
def world():
    return build_world(seed=11, files_per_dataset=3)


@pytest.fixture
def ingested(sources, world, ingest):
    """The world published in the three sources and ingested."""
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)
    ingest()
    return world


def spec(world, name: str) -> DatasetSpec:
    return next(d for d in world.datasets if d.name == name)


def dataset(Session, name: str) -> Dataset:  # noqa: N803
    with Session() as session:
        found = session.scalar(select(Dataset).where(Dataset.name == name))
        assert found is not None, name
        return found


def file_of(Session, guid: str) -> tuple[str, str, int, int, float | None]:  # noqa: N803
    """The file with *guid*: its LFN, its dataset's name, size, events and
    cross-section.
    """
    with Session() as session:
        query = (
            select(Dataset.name, File)
            .join(Dataset, Dataset.id == File.dataset_id)
            .where(File.guid == guid)
        )
        name, found = session.execute(query).one()
        return found.lfn, name, found.size, found.events, found.cross_section


def reasons(Session) -> list[str]:  # noqa: N803
    with Session() as session:
        return list(session.scalars(select(Quarantine.reason)))


def mql_names(Session, where: str) -> set[str]:  # noqa: N803
    mql = f"SELECT logicalDatasetName WHERE {where}"
    with Session() as session:
        search = compile_search("dataset", mql, show_archived=True, session=session)
        return {row[0] for row in session.execute(search.statement)}


def case_sensitive_names(sources) -> None:
    """Make the simulated ProdSys tell dataset names apart by case, as
    ProdSys (Oracle) does; a simulator on MariaDB would not, by default.
    """
    engine = sources.prodsys.engine
    if engine.dialect.name not in ("mysql", "mariadb"):
        return
    with engine.begin() as connection:
        connection.execute(
            text(
                "ALTER TABLE t_production_dataset "
                "MODIFY name VARCHAR(256) COLLATE utf8mb4_bin NOT NULL"
            )
        )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- 1. names that differ only in case ----------------------------------------


def test_a_dataset_named_as_another_but_for_case_is_a_dataset_of_its_own(
    Session,  # noqa: N803
    sources,
    ingested,
    ingest,
):
    zee = spec(ingested, ZEE)
    task = next(t for t in ingested.tasks if t.task_id == zee.task_id)
    loud_file = replace(zee.files[0], lfn="EVNT.77777777._000001.pool.root.1")
    loud_file = replace(loud_file, guid=NEW_GUID, cross_section=1.673)
    loud = replace(zee, name=ZEE_LOUD, task_id=99000001, files=[loud_file])
    case_sensitive_names(sources)
    sources.prodsys.add_task(
        replace(
            task,
            task_id=loud.task_id,
            parent_task_id=loud.task_id,
            name=task.name.replace("_Zee.", "_ZEE."),
            outputs=[ZEE_LOUD],
        )
    )
    sources.prodsys.add_dataset(loud)
    sources.prodsys.add_files(loud, loud.files)
    before = dataset(Session, ZEE)

    ingest()  # raised DrainFailed (KeyError) on MariaDB

    after = dataset(Session, ZEE)
    assert after.n_files == before.n_files
    assert after.cross_section == before.cross_section
    assert after.task_id == zee.task_id
    assert dataset(Session, ZEE_LOUD).n_files == 1
    assert file_of(Session, NEW_GUID)[1] == ZEE_LOUD
    assert reasons(Session) == []
    # A name pattern still ignores case, on every database; = does not.
    assert mql_names(Session, "logicalDatasetName LIKE '%_zee.evgen.%'") == {
        ZEE,
        ZEE_LOUD,
    }
    assert mql_names(Session, f"logicalDatasetName = '{ZEE_LOUD}'") == {ZEE_LOUD}


def test_an_lfn_differing_only_in_case_is_another_file(
    Session,  # noqa: N803
    sources,
    ingested,
    ingest,
):
    zee, zmumu = spec(ingested, ZEE), spec(ingested, ZMUMU)
    first = zee.files[0]
    quiet = replace(
        first,
        lfn=first.lfn.lower(),
        guid=NEW_GUID,
        size=first.size + 1,
        events=first.events + 1,
        cross_section=1.673,
    )
    sources.prodsys.add_files(zmumu, [quiet])
    before = dataset(Session, ZEE)

    ingest()

    held = (first.lfn, ZEE, first.size, first.events, first.cross_section)
    assert file_of(Session, first.guid) == held
    assert file_of(Session, NEW_GUID)[:2] == (first.lfn.lower(), ZMUMU)
    assert dataset(Session, ZEE).cross_section == before.cross_section
    assert dataset(Session, ZMUMU).n_files == len(zmumu.files) + 1
    assert reasons(Session) == []


# --- 2. a GUID claimed by two files -----------------------------------------------


def _zee_cross_section(world) -> float:
    return fmean(f.cross_section for f in spec(world, ZEE).files)


@pytest.mark.parametrize("apart", [True, False], ids=["later", "same-pass"])
def test_a_guid_given_to_another_file_is_quarantined_not_moved(
    Session,  # noqa: N803
    sources,
    world,
    ingest,
    apart,
):
    zee, zmumu = spec(world, ZEE), spec(world, ZMUMU)
    first = zee.files[0]
    rogue = replace(first, lfn="EVNT.99999999._000001.pool.root.1", cross_section=9.0)
    sources.coma.add_world(world)
    sources.prodsys.add_world(world)
    if apart:
        ingest()
    sources.prodsys.add_files(zmumu, [rogue])

    ingest()
    ingest()  # read again: held once, nothing moves

    assert file_of(Session, first.guid)[:2] == (first.lfn, ZEE)
    assert dataset(Session, ZEE).n_files == len(zee.files)
    kept = dataset(Session, ZEE)
    assert kept.cross_section == pytest.approx(_zee_cross_section(world))
    moved_into = dataset(Session, ZMUMU)
    assert moved_into.n_files == len(zmumu.files)
    assert moved_into.cross_section == pytest.approx(
        fmean(f.cross_section for f in zmumu.files)
    )
    [reason] = reasons(Session)
    assert f"GUID {first.guid} already belongs to {first.lfn!r} in {ZEE!r}" in reason
    assert "EVNT.99999999._000001.pool.root.1" in reason


@pytest.mark.parametrize("same_lfn", [True, False], ids=["same-lfn", "other-lfn"])
def test_a_tier0_file_with_a_prodsys_guid_is_quarantined_and_its_dataset_held(
    Session,  # noqa: N803
    sources,
    ingested,
    ingest,
    same_lfn,
):
    zee = spec(ingested, ZEE)
    raw = next(d for d in ingested.datasets if d.name.endswith(".daq.RAW"))
    first = zee.files[0]
    lfn = first.lfn if same_lfn else f"{raw.name}._lb0999._0001.1"
    intruder = FileSpec(lfn=lfn, guid=first.guid, size=10, checksum="ad:1", events=5)
    sources.tier0.add_files(raw, [intruder])

    ingest()
    sources.prodsys.add_files(zee, [first])  # ProdSys gives the file again
    ingest()

    assert file_of(Session, first.guid)[:2] == (first.lfn, ZEE)
    assert dataset(Session, ZEE).n_files == len(zee.files)
    held = dataset(Session, raw.name)
    assert (held.n_files, held.tier0_state) == (len(raw.files), "READY")
    table = schemas.t0_dataset
    with sources.tier0.engine.connect() as connection:
        flag = connection.scalar(
            select(table.c.ami_flag).where(table.c.name == raw.name)
        )
    assert flag == "READY"  # as the catalogue says: a file short
    [reason] = reasons(Session)
    assert f"GUID {first.guid} already belongs to {first.lfn!r} in {ZEE!r}" in reason
    if same_lfn:
        assert "a file never moves between sources" in reason


def _move(sources, guid: str, to: str) -> None:
    """ProdSys corrects the dataset of the file *guid* to *to*."""
    table = schemas.t_production_file
    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.guid == guid)
            .values(dataset=to, timestamp=now())
        )


def test_a_file_prodsys_moves_between_datasets_of_its_task_moves(
    Session,  # noqa: N803
    sources,
    ingested,
    ingest,
):
    zee = spec(ingested, ZEE)
    other = replace(zee, name=ZEE.replace(".EVNT.", ".TXT."), files=[])
    sources.prodsys.add_dataset(other)
    first = zee.files[0]
    _move(sources, first.guid, other.name)

    ingest()

    assert file_of(Session, first.guid)[:2] == (first.lfn, other.name)
    assert dataset(Session, ZEE).n_files == len(zee.files) - 1
    assert dataset(Session, other.name).n_files == 1
    assert reasons(Session) == []


def test_a_file_moved_to_another_tasks_dataset_is_quarantined(
    Session,  # noqa: N803
    sources,
    ingested,
    ingest,
):
    first = spec(ingested, ZEE).files[0]
    _move(sources, first.guid, ZMUMU)

    ingest()

    assert file_of(Session, first.guid)[:2] == (first.lfn, ZEE)
    assert dataset(Session, ZMUMU).n_files == len(spec(ingested, ZMUMU).files)
    [reason] = reasons(Session)
    assert f"moves it to {ZMUMU!r}, of another task" in reason
