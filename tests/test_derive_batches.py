"""``hepcat derive --check`` a batch at a time: each batch its own
transaction, its differences given as soon as it is done, a bounded number
of queries per batch, and the same differences as one batch of everything.
"""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import OperationalError
from statements import statements_of
from test_derived import ZEE_AOD, ZEE_DAOD, ZEE_EVNT

from catalog.consistency import check_derived, each_difference
from catalog.datasets import add_dataset, get_dataset
from catalog.derived import (
    refresh_all,
    refresh_changed,
    refresh_lost_lumi_blocks_batch,
)
from catalog.models import Dataset, File, ProvenanceEdge
from hepcat.cli import main
from ingest.seed import seed_catalog
from ingest.world import World, build_world

# The backends whose rows another connection can find locked.
SERVERS = [
    pytest.param(backend, marks=pytest.mark.external_service)
    for backend in ("postgresql", "mariadb")
]


@pytest.fixture
def world() -> World:
    return build_world(seed=7, files_per_dataset=4)


@pytest.fixture
def corrupted(Session, world):
    """The world in the catalogue with a wrong count on its first and last
    datasets (by id), a wrong data type on an EVNT dataset (its descendants'
    cross-section reads it) and a task edge gone; the names of the first
    and the last.
    """
    with Session.begin() as session:
        seed_catalog(world, session=session)
    with Session.begin() as session:
        first, last = (
            session.scalar(select(Dataset).order_by(order).limit(1))
            for order in (Dataset.id, Dataset.id.desc())
        )
        first.n_files += 1
        last.n_files += 1
        get_dataset(ZEE_EVNT, session=session).data_type = "EVGEN"
        aod = get_dataset(ZEE_AOD, session=session)
        session.execute(delete(ProvenanceEdge).where(ProvenanceEdge.child_id == aod.id))
        return first.name, last.name


def found(differences) -> list[tuple]:
    return sorted((d.dataset, d.field, d.stored, d.recomputed) for d in differences)


def test_batches_of_their_own_find_what_one_transaction_finds(Session, corrupted):
    """Rolled back batch by batch, the check still sees the repaired edges
    and name columns when it recomputes the derived quantities (the Zee
    datasets' cross-section is not reported): the same differences as the
    whole check in one transaction, and none of them written.
    """
    with Session() as session:
        whole = check_derived(session=session, batch=10_000)
        session.rollback()

    with Session() as session:
        batched = [
            d
            for checked in each_difference(session=session, batch=3, fix=False)
            for d in checked.differences
        ]
    with Session() as session:
        again = check_derived(session=session)
        session.rollback()

    assert found(batched) == found(whole)
    assert not {d.field for d in whole} & {"crossSection", "crossSectionSource"}
    assert found(again) == found(whole)


def test_fixed_batch_by_batch_the_catalogue_then_agrees(Session, corrupted):
    with Session() as session:
        fixed = [
            d
            for checked in each_difference(session=session, batch=3, fix=True)
            for d in checked.differences
        ]
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()

    first, last = corrupted
    assert {(first, "nFiles"), (last, "nFiles"), (ZEE_AOD, "parents")} <= {
        (d.dataset, d.field) for d in fixed
    }


def test_differences_are_given_as_each_batch_is_done(Session, corrupted):
    """The first dataset's difference comes with the first batch of derived
    quantities, long before the last dataset's."""
    first, last = corrupted
    seen: list[tuple[int, str]] = []
    with Session() as session:
        for index, checked in enumerate(
            each_difference(session=session, batch=2, fix=False)
        ):
            seen += [
                (index, d.dataset) for d in checked.differences if d.field == "nFiles"
            ]

    assert [name for _, name in seen] == [first, last]
    assert seen[0][0] < seen[1][0] - 10


@pytest.mark.parametrize("catalog_engine", SERVERS, indirect=True)
def test_a_batch_is_not_locked_once_it_is_done(Session, catalog_engine, corrupted):
    """While the check runs on, another transaction can lock (an ingest
    can write) a dataset of an earlier batch that the check found different
    and rewrote; the check locked it while it worked on its batch.
    """
    first, _ = corrupted
    with Session() as session:
        first_id = session.scalar(select(Dataset.id).where(Dataset.name == first))
    lock = text("SELECT id FROM dataset WHERE id = :id FOR UPDATE NOWAIT")
    outcomes = {}
    for fix in (False, None):  # None: the whole check in one transaction
        with Session() as session, statements_of(catalog_engine) as statements:
            checks = each_difference(session=session, batch=2, fix=fix)
            for checked in checks:
                if checked.step == "derived" and any(
                    d.dataset == first for d in checked.differences
                ):
                    outcomes[fix] = try_lock(catalog_engine, lock, first_id)
                    checks.close()
                    break

    assert outcomes == {False: [(first_id,)], None: "locked"}
    assert any("FROM dataset" in s and "FOR UPDATE" in s for s in statements)


def try_lock(engine, lock, dataset_id):
    """The rows *lock* locks in another connection, or ``locked``."""
    with engine.connect() as other:
        try:
            return other.execute(lock, {"id": dataset_id}).all()
        except OperationalError:
            return "locked"
        finally:
            other.rollback()


def test_lost_lumi_blocks_of_a_batch_take_two_queries(
    Session,  # noqa: N803
    catalog_engine,
    world,
):
    """Whatever the number of real-data datasets (one query or more each
    before), and with the values each dataset's own recomputation gives."""
    with Session.begin() as session:
        seed_catalog(world, session=session)
        session.execute(update(Dataset).values(n_lost_lumi_blocks=None))
    with Session() as session:
        datasets = session.scalars(select(Dataset).order_by(Dataset.id)).all()
        measured = [d for d in datasets if d.run_number is not None]
        assert len(measured) > 10
        with statements_of(catalog_engine) as statements:
            refresh_lost_lumi_blocks_batch(datasets, session=session)
        values = {d.name: (d.n_lost_lumi_blocks, d.lost_lumi_blocks) for d in datasets}
        session.rollback()

    with Session() as session:
        for dataset in session.scalars(select(Dataset)):
            refresh_lost_lumi_blocks_batch([dataset], session=session)
            assert values[dataset.name] == (
                dataset.n_lost_lumi_blocks,
                dataset.lost_lumi_blocks,
            )
        session.rollback()
    assert len(statements) == 2
    assert any(lost for lost, _ in values.values())


def test_a_batch_takes_as_many_queries_whatever_its_datasets(
    Session,  # noqa: N803
    catalog_engine,
    world,
):
    """Twenty real-data datasets more in the batch (their lost lumi blocks
    took two queries or more each) take no more queries."""
    with Session.begin() as session:
        seed_catalog(world, session=session)
    run = world.runs[0].run_number
    statements = []
    for more in (0, 20):
        with Session.begin() as session:
            for number in range(more):
                name = f"data15_13TeV.{run:08d}.physics_Main.deriv.DAOD_X{number}.r1_p2"
                add_dataset(name, "prodsys", session=session)
            session.flush()
            refresh_all(session=session)  # nothing to write: only reads
        with Session() as session, statements_of(catalog_engine) as executed:
            checked = list(each_difference(session=session, batch=10_000, fix=False))
        assert len(checked) == 3  # a batch per step
        statements.append(len(executed))

    assert statements[1] == statements[0]


def lock_waits(engine) -> int:
    """How many statements wait for a row lock on the database of *engine*."""
    query = {
        "postgresql": "SELECT count(*) FROM pg_locks WHERE NOT granted",
        "mysql": "SELECT count(*) FROM information_schema.innodb_lock_waits",
    }[engine.dialect.name]
    with engine.connect() as connection:
        return int(connection.scalar(text(query)))


@pytest.mark.parametrize("catalog_engine", SERVERS, indirect=True)
def test_a_dataset_an_ingest_is_writing_is_checked_once_it_committed(
    Session,  # noqa: N803
    catalog_engine,
    world,
):
    """An ingest adds a file to a dataset whose count was wrong, and writes
    its count; ``derive --fix`` waits for it to commit, then finds the
    count right and leaves it so (before, it read the files without the new
    one and, once the ingest committed, wrote the count they gave).
    """
    with Session.begin() as session:
        seed_catalog(world, session=session)
        daod = get_dataset(ZEE_DAOD, session=session)
        daod.n_files = 99
        daod_id = daod.id
        template = session.scalars(
            select(File).where(File.dataset_id == daod_id)
        ).first()
        columns = {c: getattr(template, c) for c in ("size", "events", "lumi_blocks")}
    ingest = Session()
    ingest.add(
        File(
            dataset_id=daod_id,
            lfn="DAOD.late._000099.pool.root.1",
            guid="00000000-0000-0000-0000-000000000099",
            status="finished",
            **columns,
        )
    )
    ingest.flush()
    refresh_changed([daod_id], session=ingest)
    found: list = []
    check = threading.Thread(target=lambda: found.extend(fix_everything(Session)))
    check.start()
    try:
        for _ in range(600):  # the check waits for the ingest's lock
            if lock_waits(catalog_engine):
                break
            check.join(0.05)
        assert check.is_alive(), "the check did not wait for the ingest"
    finally:
        ingest.commit()
        ingest.close()
        check.join()

    with Session() as session:
        stored = session.get(Dataset, daod_id).n_files
        files = session.scalar(
            select(func.count()).where(
                File.dataset_id == daod_id, File.status == "finished"
            )
        )
    assert stored == files
    assert not [d for d in found if d.dataset == ZEE_DAOD and d.field == "nFiles"]


def fix_everything(Session) -> list:  # noqa: N803
    with Session() as session:
        return [
            d
            for checked in each_difference(session=session, batch=10_000, fix=True)
            for d in checked.differences
        ]


def test_the_command_prints_each_difference_when_its_batch_is_done(
    Session,  # noqa: N803
    catalog_engine,
    corrupted,
    monkeypatch,
    tmp_path,
):
    """``hepcat derive --check`` prints the first dataset's difference
    before it checks the last batch, and reports them all as before."""
    import hepcat.cli.ingesting as command
    from catalog import consistency

    events: list[tuple[str, str]] = []
    each = consistency.each_difference

    def small_batches(**options):
        for checked in each(**{**options, "batch": 2}):
            events.append(("batch", checked.step))
            yield checked

    def echo(message="", **options) -> None:
        events.append(("printed", str(message)))

    monkeypatch.setattr(consistency, "each_difference", small_batches)
    monkeypatch.setattr(command.click, "echo", echo)
    url = catalog_engine.url.render_as_string(False)
    with Session() as session:
        expected = [str(d) for d in check_derived(session=session)]
        session.rollback()

    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "derive", "--check"],
        env={"HEPCAT_DATABASE_URL": url},
    )

    first, _ = corrupted
    printed = [message for kind, message in events if kind == "printed"]
    assert result.exit_code == 1, result.output
    assert sorted(printed[:-1]) == sorted(expected)
    assert printed[-1] == f"{len(expected)} differences found"
    at = events.index(("printed", next(m for m in printed if m.startswith(first))))
    assert ("batch", "derived") in events[at + 1 :]
