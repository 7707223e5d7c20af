"""Ingestion from the SQL sources (ProdSys, Tier-0, COMA), end to end on
simulated sources: on SQLite, and on PostgreSQL and MariaDB (sources on the
same server as the catalogue).
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import written_apart
from sqlalchemy import delete, func, select, update

from catalog import derived
from catalog.consistency import check_derived
from catalog.datasets import get_dataset, get_provenance
from catalog.fields import row_to_ami
from catalog.models import (
    Dataset,
    File,
    Period,
    ProductionTask,
    ProvenanceEdge,
    Quarantine,
    Run,
    StopPoint,
)
from catalog.operations import quarantine, set_stop_point
from catalog.runs import list_periods
from ingest import schemas
from ingest.seed import seed_catalog
from ingest.simulate import naive
from ingest.world import DatasetSpec, build_world

# Columns that say when a row was written, not what the catalogue knows.
WHEN = {"lastModified", "created", "crossSectionSource", "trashDate"}


@pytest.fixture
def world():
    return build_world(seed=11, files_per_dataset=3)


def publish(sources, world):
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)


def catalogue(Session) -> dict[str, dict]:
    with Session() as session:
        return {
            d.name: {k: v for k, v in row_to_ami(d).items() if k not in WHEN}
            for d in session.scalars(select(Dataset))
        }


def test_an_ingested_world_equals_the_world_written_directly(
    Session, sources, world, ingest, tmp_path
):
    publish(sources, world)

    counts = ingest()

    assert catalogue(Session) == seeded(world, tmp_path)
    assert counts["tier0"] == sum(d.source == "tier0" for d in world.datasets)
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 0


def seeded(world, tmp_path) -> dict[str, dict]:
    """The catalogue of *world* written directly (:func:`seed_catalog`)."""
    return written_apart(
        tmp_path / "reference.sqlite",
        lambda session: seed_catalog(world, session=session),
        catalogue,
    )


def replay(Session, sources, ingest) -> dict[str, int]:
    """Ingest every source again from its start: no stop point, every
    Tier-0 dataset READY again. Return the records each ingester ingested.
    """
    with Session.begin() as session:
        session.execute(delete(StopPoint))
    with sources.tier0.engine.begin() as connection:
        connection.execute(update(schemas.t0_dataset).values(ami_flag="READY"))
    return ingest()


def test_replaying_the_sources_changes_nothing(Session, sources, world, ingest):
    publish(sources, world)
    ingest()
    first = catalogue(Session)

    replay(Session, sources, ingest)

    assert catalogue(Session) == first


def test_rows_read_again_leave_last_modified_alone(Session, sources, world, ingest):
    """The overlap window, or a replay, reads rows the catalogue holds
    already: a dataset whose values are the same keeps its lastModified, a
    file or a task its modified time.
    """
    publish(sources, world)
    ingest()
    before = _written_times(Session)

    replay(Session, sources, ingest)

    assert _written_times(Session) == before


def test_rows_read_again_make_nothing_stale(
    Session, sources, world, ingest, monkeypatch
):
    """Rows read again as the catalogue holds them change no derived value:
    no dataset is marked to be recomputed, nor is any edge added.
    """
    publish(sources, world)
    ingest()
    edges = _edges(Session)
    marked: list[int] = []
    raise_marks = derived._raise_marks

    def spy(ids, *, session):
        marked.extend(ids)
        raise_marks(ids, session=session)

    monkeypatch.setattr(derived, "_raise_marks", spy)

    again = replay(Session, sources, ingest)

    assert marked == []
    assert _edges(Session) == edges
    # Rows read again and not written are not counted as ingested: the
    # ingest rate an operator sees is the rate of change.
    assert again["prodsys"] == 0


def test_rows_written_for_a_later_stream_are_counted(
    Session, sources, world, ingest, tmp_path
):
    """A file read before its dataset, or a dataset before its task, has the
    missing rows read straight from the source and written with it; those
    rows count as ingested then, since their own stream later finds them
    unchanged and counts nothing.
    """
    publish(sources, world)
    future = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    with Session.begin() as session:
        # The passes of these two streams will read nothing.
        set_stop_point("prodsys.tasks", future, str(2**40), session=session)
        set_stop_point("prodsys.datasets", future, "~", session=session)

    first = ingest()["prodsys"]
    with Session.begin() as session:  # now they catch up
        session.execute(delete(StopPoint).where(StopPoint.name != "prodsys.files"))
    then = ingest()["prodsys"]

    # Every row counted once, whichever stream wrote it.
    produced = [d for d in world.datasets if d.source == "prodsys"]
    rows = len(world.tags) + len(world.tasks) + len(produced)
    assert first + then == rows + sum(len(d.files) for d in produced)
    assert first > then > 0
    assert catalogue(Session) == seeded(world, tmp_path)


def _written_times(Session) -> tuple[dict, dict, dict]:
    with Session() as session:
        datasets = session.execute(select(Dataset.name, Dataset.last_modified))
        files = session.execute(select(File.guid, File.modified))
        tasks = session.execute(select(ProductionTask.task_id, ProductionTask.modified))
        return dict(datasets.all()), dict(files.all()), dict(tasks.all())


def _edges(Session) -> set[tuple]:
    with Session() as session:
        query = select(
            ProvenanceEdge.parent_id, ProvenanceEdge.child_id, ProvenanceEdge.task_id
        )
        return set(session.execute(query).all())


def test_late_and_back_dated_rows_are_caught(Session, sources, world, ingest):
    late = world.datasets[0]
    early = [d for d in world.datasets if d is not late]
    rest = build_world(seed=11, files_per_dataset=3)
    rest.datasets = early
    sources.coma.add_world(world)
    sources.prodsys.add_world(rest)
    ingest()

    # A row committed now, with a timestamp a minute older than everything
    # the ingester has already read (within the two-minute safety lag).
    sources.prodsys.add_dataset(late, when=_minutes_ago(1))
    sources.prodsys.add_files(late, late.files, when=_minutes_ago(1))
    ingest()

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == late.name))
        assert dataset is not None
        assert dataset.n_files == len(late.files)


def test_unusable_rows_go_to_quarantine_and_the_rest_is_ingested(
    Session, sources, world, ingest
):
    spec = world.datasets[0]
    publish(sources, world)
    sources.prodsys.insert(
        schemas.t_production_file,
        [
            _bad_file(9001, spec, guid="not-a-guid"),
            _bad_file(9002, spec, lumiblocknr="7-3"),
            _bad_file(9003, spec, events=-5),
            _bad_file(9004, spec, dataset="mc16_13TeV.nonsense"),
        ],
    )
    sources.prodsys.insert(
        schemas.t_production_dataset,
        [
            {
                "name": "mc16_13TeV.12.bad",
                "taskid": 1,
                "type": "output",
                "timestamp": naive(dt.datetime.now(dt.UTC)),
            }
        ],
    )

    ingest()

    with Session() as session:
        reasons = session.scalars(select(Quarantine.reason)).all()
        assert len(reasons) == 5
        assert any("not a GUID" in r for r in reasons)
        assert any("ascending range" in r for r in reasons)
        assert any("events = -5 is negative" in r for r in reasons)
        assert any("not a valid name" in r for r in reasons)
        files = session.scalar(select(func.count()).select_from(File))
        assert files == sum(len(d.files) for d in world.datasets)


def test_rows_without_a_timestamp_are_ingested_all_the_same(
    Session, sources, world, ingest
):
    spec = world.datasets[0]
    publish(sources, world)
    ingest()

    sources.prodsys.insert(
        schemas.t_production_file, [_bad_file(9100, spec, timestamp=None)]
    )
    ingest()

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == spec.name))
        assert dataset.n_files == len(spec.files) + 1


def test_an_aborted_task_trashes_its_datasets(Session, sources, world, ingest):
    task = next(t for t in world.tasks if t.step_name == "recon")
    publish(sources, world)
    ingest()

    sources.prodsys.set_task_status(task.task_id, "aborted")
    ingest()

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == task.outputs[0]))
        assert dataset.ami_status == "TRASHED"
        assert dataset.trash_annotation == f"ProdSys task {task.task_id} is aborted"
        assert dataset.prodsys_status == "TASK FAILED"


def test_a_tier0_dataset_raised_ready_again_gets_its_new_files(
    Session, sources, world, ingest
):
    raw = next(d for d in world.datasets if d.name.endswith(".daq.RAW"))
    sources.tier0.add_dataset(raw, raw.files[:1])
    ingest()

    sources.tier0.add_files(raw, raw.files[1:])
    ingest()

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == raw.name))
        assert dataset.n_files == len(raw.files)
        assert dataset.prodsys_status == "ALL EVENTS AVAILABLE"
    with sources.tier0.engine.connect() as connection:
        flags = connection.execute(select(schemas.t0_dataset.c.ami_flag)).scalars()
        assert set(flags) == {"DONE"}


def test_tier0_rows_are_left_as_they_were_but_for_the_flag(
    Session, sources, world, ingest
):
    sources.tier0.add_world(world)
    with sources.tier0.engine.connect() as connection:
        before = connection.execute(select(schemas.t0_dataset)).all()

    ingest()

    with sources.tier0.engine.connect() as connection:
        after = connection.execute(select(schemas.t0_dataset)).all()
    assert without_flag(after) == without_flag(before)


def test_derive_check_finds_nothing_after_ingestion_and_a_corruption_after(
    Session, sources, world, ingest
):
    publish(sources, world)
    ingest()
    with Session() as session:
        clean = check_derived(session=session)
        session.rollback()
    with Session.begin() as session:
        first = Dataset.name == world.datasets[0].name
        session.execute(update(Dataset).where(first).values(n_files=99))

    with Session() as session:
        found = check_derived(session=session)
        session.rollback()

    assert clean == []
    assert [(d.dataset, d.field, d.stored) for d in found] == [
        (world.datasets[0].name, "nFiles", 99)
    ]


def test_derive_check_finds_a_project_its_name_does_not_give_and_fixes_it(
    Session, sources, world, ingest
):
    """Searches narrow by project (a name pattern is dropped for a project
    all of whose names match), so a wrong project is a wrong search result.
    """
    publish(sources, world)
    ingest()
    name = world.datasets[0].name
    with Session.begin() as session:
        wrong = update(Dataset).where(Dataset.name == name)
        session.execute(wrong.values(project_name="data99_hi", run_number=7))

    with Session() as session:
        found = check_derived(session=session)
        session.commit()
        fixed = check_derived(session=session)
        stored = session.scalar(select(Dataset).where(Dataset.name == name))

    assert sorted((d.dataset, d.field, d.stored) for d in found) == [
        (name, "projectName", "data99_hi"),
        (name, "runNumber", 7),
    ]
    assert fixed == []
    assert stored.project_name == name.split(".")[0]


def test_a_task_input_prodsys_corrects_is_the_only_parent_of_its_output(
    Session, sources, world, ingest, tmp_path
):
    """ProdSys corrects the input of a simulation task after it was ingested:
    the output loses its edge from the old input, gains one from the new,
    and it and everything below it take the new chain's cross-section, as
    if the corrected world had been ingested from the start.
    """
    task = next(t for t in world.tasks if t.step_name == "simul")
    evgen = [t for t in world.tasks if t.step_name == "evgen"]
    new_input = max(evgen, key=lambda t: t.outputs[0])
    # The old EVNT sorts first by name: a stale edge would win the tie.
    assert new_input.outputs[0] > task.input_dataset
    publish(sources, world)
    ingest()

    corrected = {"inputdataset": new_input.outputs[0], "parent_tid": new_input.task_id}
    table = schemas.t_production_task
    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.taskid == task.task_id)
            .values(**corrected, timestamp=naive(dt.datetime.now(dt.UTC)))
        )
    ingest()

    task.input_dataset, task.parent_task_id = new_input.outputs[0], new_input.task_id
    with Session() as session:
        output = get_dataset(task.outputs[0], session=session)
        edges = get_provenance(output, session=session).edges
        assert [p for p, c in edges if c == output.name] == [new_input.outputs[0]]
        assert output.cross_section_source.name == new_input.outputs[0]
    assert catalogue(Session) == seeded(world, tmp_path)


def test_a_task_input_corrected_to_an_unknown_dataset_unlinks_its_output(
    Session, sources, world, ingest, tmp_path
):
    """The corrected input is not catalogued (yet): the output has no parent
    and no cross-section, nor has anything below it.
    """
    task = next(t for t in world.tasks if t.step_name == "simul")
    unknown = "mc16_13TeV.999999.Unknown.evgen.EVNT.e9999"
    publish(sources, world)
    ingest()

    table = schemas.t_production_task
    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.taskid == task.task_id)
            .values(inputdataset=unknown, timestamp=naive(dt.datetime.now(dt.UTC)))
        )
    ingest()

    task.input_dataset = unknown
    with Session() as session:
        output = get_dataset(task.outputs[0], session=session)
        edges = get_provenance(output, session=session).edges
        assert [p for p, c in edges if c == output.name] == []
        assert output.cross_section is None
    assert catalogue(Session) == seeded(world, tmp_path)


def without_flag(rows) -> list[tuple]:
    flag = list(schemas.t0_dataset.c.keys()).index("ami_flag")
    return sorted(tuple(v for i, v in enumerate(r) if i != flag) for r in rows)


def _minutes_ago(minutes: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)


def _bad_file(fileid: int, spec: DatasetSpec, **changes) -> dict:
    row = {
        "fileid": fileid,
        "dataset": spec.name,
        "taskid": spec.task_id,
        "lfn": f"BAD.{fileid}.pool.root.1",
        "guid": f"00000000-0000-0000-0000-{fileid:012d}",
        "fsize": 1000,
        "checksum": "ad:00000001",
        "events": 10,
        "lumiblocknr": None,
        "cross_section": None,
        "gen_filt_eff": None,
        "status": "finished",
        "timestamp": naive(dt.datetime.now(dt.UTC)),
    }
    row.update(changes)
    return row


def _evnt(world) -> DatasetSpec:
    return next(d for d in world.datasets if ".evgen.EVNT." in d.name)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"guid": "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"},
            "guid = 'XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX' is not a GUID",
        ),
        ({"guid": "not-a-guid"}, "guid = 'not-a-guid' is not a GUID"),
        ({"cross_section": -1.5}, "cross_section = -1.5 is negative"),
        ({"gen_filt_eff": 0.0}, "gen_filt_eff = 0.0 is not in (0, 1]"),
        ({"gen_filt_eff": 1.5}, "gen_filt_eff = 1.5 is not in (0, 1]"),
    ],
)
def test_a_file_with_a_bad_value_is_quarantined_and_changes_nothing(
    Session, sources, world, ingest, tmp_path, changes, reason
):
    spec = _evnt(world)
    publish(sources, world)
    row = _bad_file(9200, spec, cross_section=1.0, gen_filt_eff=0.5)
    sources.prodsys.insert(schemas.t_production_file, [{**row, **changes}])

    ingest()

    with Session() as session:
        reasons = session.scalars(select(Quarantine.reason)).all()
    assert len(reasons) == 1
    assert reason in reasons[0]
    assert catalogue(Session) == seeded(world, tmp_path)


@pytest.mark.parametrize("timestamp", ["now", None])
def test_a_bad_row_read_again_is_quarantined_once(
    Session, sources, world, ingest, timestamp
):
    spec = world.datasets[0]
    publish(sources, world)
    when = naive(dt.datetime.now(dt.UTC)) if timestamp else None
    sources.prodsys.insert(
        schemas.t_production_file,
        [_bad_file(9300, spec, guid="not-a-guid", timestamp=when)],
    )

    ingest()
    ingest()  # the overlap window, read again
    replay(Session, sources, ingest)
    replay(Session, sources, ingest)

    with Session() as session:
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 1


def test_a_released_record_that_is_bad_again_is_quarantined_anew(
    Session, sources, world, ingest
):
    spec = world.datasets[0]
    publish(sources, world)
    sources.prodsys.insert(
        schemas.t_production_file, [_bad_file(9400, spec, events=-5)]
    )
    ingest()
    with Session.begin() as session:
        session.execute(update(Quarantine).values(released=True))

    replay(Session, sources, ingest)
    replay(Session, sources, ingest)

    with Session() as session:
        released = session.scalars(select(Quarantine.released)).all()
    assert sorted(released) == [False, True]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            ("file 9500", "status 'Done' unknown"),
            ("file 9500", "status 'DONE' unknown"),
        ),
        (("file 9500", "status 'x' unknown"), ("file 9500", "status 'x' unknown ")),
        (("mc16.Zee", "not a valid name"), ("mc16.ZEE", "not a valid name")),
    ],
)
def test_a_record_is_held_once_only_for_the_exact_key_and_reason(
    Session,  # noqa: N803
    first,
    second,
):
    # MariaDB's default collation compares these pairs as equal; the sources
    # (and hepcat) do not.
    def hold(key: str, reason: str) -> None:
        with Session.begin() as session:
            quarantine("prodsys", key, {"key": key}, reason, session=session)

    hold(*first)
    hold(*second)
    hold(*second)

    with Session() as session:
        held = session.execute(select(Quarantine.record_key, Quarantine.reason)).all()
    assert sorted(held) == sorted([first, second])


# -- COMA: a record corrected in the source is released on reading -------------


def coma_records(Session) -> list[Quarantine]:  # noqa: N803
    with Session() as session:
        query = select(Quarantine).where(Quarantine.source == "coma")
        return list(session.scalars(query))


def test_a_coma_row_corrected_releases_its_quarantine_record(
    Session, sources, world, ingest
):
    sources.coma.add_world(world)
    period = schemas.coma_period
    bad = {"project": "data15_13TeV", "period": "Z9", "level": 7}
    sources.coma.insert(period, [bad])
    ingest()
    with sources.coma.engine.begin() as connection:  # COMA corrects it
        connection.execute(
            update(period).where(period.c.period == "Z9").values(level=2)
        )

    ingest()

    [record] = coma_records(Session)
    assert (record.record_key, record.released) == ("Z9", True)
    assert record.reason.startswith("level = 7 is not 1, 2 or 3; released ")
    assert record.reason.endswith(" UTC: read again without error")
    with Session() as session:
        assert session.scalar(select(Period.level).where(Period.name == "Z9")) == 2


def test_a_coma_record_stays_held_while_a_row_under_its_key_is_refused(
    Session, sources, world, ingest
):
    # Runs and period-run links are both named by their run number: the run
    # read without error does not release the link refused under its number.
    sources.coma.add_world(world)
    run = world.runs[0].run_number
    link = {"project": None, "period": "A", "runnumber": run}
    sources.coma.insert(schemas.coma_period_run, [link])
    ingest()
    sources.coma.insert(
        schemas.coma_period, [{"project": "data15_13TeV", "period": "Z9", "level": 2}]
    )

    ingest()

    [record] = coma_records(Session)
    assert (record.record_key, record.released) == (str(run), False)
    assert record.reason == "project is missing"


# -- COMA: periods redefined, and links to an undefined period -----------------


def periods_of(Session, project: str = "data15_13TeV") -> dict[str, int]:  # noqa: N803
    """The periods of *project* as /periods and AMIListDataPeriods list them,
    with their number of runs.
    """
    with Session() as session:
        found = list_periods(project=project, session=session)
        return {summary.period.name: summary.n_runs for summary in found}


def dataset_periods(Session, run: int) -> set[str | None]:  # noqa: N803
    with Session() as session:
        query = select(Dataset.period).where(Dataset.run_number == run)
        return set(session.scalars(query))


def test_periods_coma_renamed_or_deleted_leave_the_catalogue(
    Session, sources, world, ingest
):
    publish(sources, world)
    ingest()
    before = dataset_periods(Session, 267073)
    period, link = schemas.coma_period, schemas.coma_period_run
    with sources.coma.engine.begin() as connection:
        for table in (period, link):
            connection.execute(
                update(table).where(table.c.period == "A1").values(period="A1a")
            )
            connection.execute(delete(table).where(table.c.period == "J6"))

    counts = ingest()

    listed = periods_of(Session)
    assert "A1" not in listed and "J6" not in listed
    assert listed["A1a"] == 1
    assert counts["coma"] == 2 + 1  # A1 and J6 gone, A1a new
    assert before and all("A1" in p.split(",") for p in before)
    assert dataset_periods(Session, 267073) == {
        ",".join(sorted("A1a" if x == "A1" else x for x in p.split(",")))
        for p in before
    }
    assert all("J6" not in (p or "") for p in dataset_periods(Session, 284500))
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()


@pytest.mark.parametrize("emptied", ["coma_period", "coma_period_run"])
def test_an_empty_coma_table_deletes_no_period_nor_its_runs(
    Session, sources, world, ingest, emptied
):
    """COMA being reloaded may give an empty table for a moment: the
    catalogue keeps its periods and their runs rather than deleting them all.
    """
    publish(sources, world)
    ingest()
    listed, before = periods_of(Session), dataset_periods(Session, 267073)
    with sources.coma.engine.begin() as connection:
        connection.execute(delete(getattr(schemas, emptied)))

    counts = ingest()

    assert counts["coma"] == 0
    assert periods_of(Session) == listed
    assert dataset_periods(Session, 267073) == before
    assert before and None not in before


def test_runs_come_while_coma_defines_no_period_yet(Session, sources, world, ingest):
    """A new deployment (or year) may have runs in COMA before any period."""
    sources.coma.add_world(world)
    with sources.coma.engine.begin() as connection:
        connection.execute(delete(schemas.coma_period_run))
        connection.execute(delete(schemas.coma_period))

    ingest()

    with Session() as session:
        runs = set(session.scalars(select(Run.run_number)))
    assert runs == {run.run_number for run in world.runs}
    assert periods_of(Session) == {}


def test_a_coma_link_to_an_undefined_period_is_quarantined_until_it_comes(
    Session, sources, world, ingest
):
    publish(sources, world)
    ingest()
    before = dataset_periods(Session, 267639)
    sources.coma.insert(
        schemas.coma_period_run,
        [{"project": "data15_13TeV", "period": "Z9", "runnumber": 267639}],
    )
    ingest()
    held = coma_records(Session)
    with Session() as session:
        in_between = check_derived(session=session)
        session.rollback()
    sources.coma.insert(
        schemas.coma_period, [{"project": "data15_13TeV", "period": "Z9", "level": 2}]
    )

    ingest()

    assert before and all(p and "Z9" not in p for p in before)
    assert [(r.record_key, r.released, r.reason) for r in held] == [
        (
            "267639",
            False,
            "period 'Z9' of project 'data15_13TeV' is unknown (it is not in "
            "coma_period): run 267639 is not put in it",
        )
    ]
    assert in_between == []
    assert periods_of(Session)["Z9"] == 1
    assert dataset_periods(Session, 267639) == {
        ",".join(sorted([*p.split(","), "Z9"])) for p in before
    }
    [record] = coma_records(Session)
    assert record.released
    assert record.reason.endswith(" UTC: read again without error")
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()


def test_a_coma_link_to_a_period_whose_row_is_refused_says_so(
    Session, sources, world, ingest
):
    sources.coma.add_world(world)
    sources.coma.insert(
        schemas.coma_period, [{"project": "data15_13TeV", "period": "Z9", "level": 7}]
    )
    sources.coma.insert(
        schemas.coma_period_run,
        [{"project": "data15_13TeV", "period": "Z9", "runnumber": 267639}],
    )

    ingest()

    reasons = {r.record_key: r.reason for r in coma_records(Session)}
    assert reasons == {
        "Z9": "level = 7 is not 1, 2 or 3",
        "267639": "period 'Z9' of project 'data15_13TeV' is unknown (its "
        "coma_period row is held in quarantine): run 267639 is not put in it",
    }


def test_a_refused_coma_period_row_keeps_the_period_it_was(
    Session, sources, world, ingest
):
    sources.coma.add_world(world)
    ingest()
    period = schemas.coma_period
    with sources.coma.engine.begin() as connection:
        connection.execute(
            update(period).where(period.c.period == "A1").values(level=7)
        )

    ingest()

    assert periods_of(Session)["A1"] == 1
    assert [r.record_key for r in coma_records(Session)] == ["A1"]
