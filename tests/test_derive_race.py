"""Derived quantities recomputed while another ingester changes their
inputs, on the servers where two connections write at the same time: the
stale queue (``refresh_stale``) or COMA's recompute of a run's datasets,
held between reading a dataset's inputs and writing its values, while DDM
reports a file lost and recomputes (``refresh_changed``, as DDM and Tier-0
do), committing or waiting meanwhile. The catalogue must end as ``derive
--check`` recomputes it, with nothing left stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_derive_batches import SERVERS, lock_waits
from test_derived import ZEE_DAOD

import catalog.derived as derived
from catalog.consistency import check_derived
from catalog.datasets import get_dataset
from catalog.derived import mark_changed, refresh_changed, refresh_stale, stale_count
from catalog.models import Dataset, File
from ingest import coma
from ingest.seed import seed_catalog
from ingest.world import build_world

WAIT = 30  # seconds: at most, for a step that should take milliseconds
GRACE = 3  # seconds for an ingester that waits for no lock to commit


WORLD = build_world(seed=7, files_per_dataset=4)
RUN = WORLD.runs[0].run_number
DATA_DAOD = f"data15_13TeV.{RUN:08d}.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
DATA_RAW = f"data15_13TeV.{RUN:08d}.physics_Main.daq.RAW"
LATE = "DAOD.late._000099.pool.root.1"


def pending(Session, name: str, *, lost: bool = False) -> int:  # noqa: N803
    """The world catalogued, and a finished file (:data:`LATE`) added to the
    dataset *name* (*lost*: its first file lost instead) and the dataset
    marked stale, not yet recomputed (as ProdSys leaves it for the queue);
    the dataset's id.
    """
    with Session.begin() as session:
        seed_catalog(WORLD, session=session)
    with Session.begin() as session:
        dataset = get_dataset(name, session=session)
        files = session.scalars(select(File).where(File.dataset_id == dataset.id))
        first = files.first()
        assert first is not None
        if lost:
            first.lost = True
        else:
            session.add(
                File(
                    dataset_id=dataset.id,
                    lfn=LATE,
                    guid="00000000-0000-0000-0000-000000000099",
                    status="finished",
                    size=first.size,
                    events=first.events,
                    lumi_blocks=first.lumi_blocks,
                )
            )
        mark_changed([dataset.id], session=session)
        return dataset.id


def lose(lfns: Sequence[str], dataset: str) -> Callable[[OrmSession], None]:
    """DDM reporting the files *lfns* lost, then recomputing what depends
    on the dataset *dataset* (as ``ingest.ddm._apply`` does).
    """

    def apply(session: OrmSession) -> None:
        session.execute(update(File).where(File.lfn.in_(lfns)).values(lost=True))
        changed = get_dataset(dataset, session=session).id
        refresh_changed([changed], session=session)

    return apply


class Paused:
    """Holds the recompute's thread between reading its datasets' inputs and
    writing their values (``_write_back``), until :meth:`go`.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        write_back = derived._write_back

        def paused(*args, **kwargs) -> None:
            if threading.current_thread() is self.thread:
                self.reached.set()
                assert self.released.wait(WAIT)
            write_back(*args, **kwargs)

        monkeypatch.setattr(derived, "_write_back", paused)

    def start(self, target: Callable[[], None]) -> threading.Thread:
        self.thread = threading.Thread(target=target)
        self.thread.start()
        assert self.reached.wait(WAIT), "the recompute did not reach its write"
        return self.thread

    def go(self) -> None:
        self.released.set()


def in_thread(
    Session: sessionmaker[OrmSession],  # noqa: N803
    work: Callable[[OrmSession], object],
    errors: list[BaseException],
) -> Callable[[], None]:
    def run() -> None:
        try:
            with Session.begin() as session:
                work(session)
        except BaseException as err:  # reported by the test's thread
            errors.append(err)

    return run


def waits_or_ends(thread: threading.Thread, engine) -> None:  # noqa: ANN001
    """Wait until *thread* has ended, is seen waiting for a row lock, or
    has had :data:`GRACE` seconds to end (MariaDB does not always list the
    wait of an insert for a locked row).
    """
    for _ in range(int(GRACE / 0.05)):
        if not thread.is_alive() or lock_waits(engine):
            return
        thread.join(0.05)


def raced(
    Session: sessionmaker[OrmSession],  # noqa: N803
    engine,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    recompute: Callable[[OrmSession], object],
    change: Callable[[OrmSession], object],
) -> list[str]:
    """Run *recompute* held before its write, *change* meanwhile (until it
    commits or waits), then let both end; return ``derive --check``'s
    differences, and check that nothing is left stale.
    """
    errors: list[BaseException] = []
    paused = Paused(monkeypatch)
    first = paused.start(in_thread(Session, recompute, errors))
    second = threading.Thread(target=in_thread(Session, change, errors))
    second.start()
    try:
        waits_or_ends(second, engine)
    finally:
        paused.go()
        first.join(WAIT)
        second.join(WAIT)
    assert not errors
    with Session() as session:
        differences = [str(d) for d in check_derived(session=session)]
        session.rollback()
        assert stale_count(session=session) == 0
    return differences


def counted(Session, dataset_id: int) -> tuple[int, int]:  # noqa: N803
    """The dataset's ``nFiles``, and the number of its files that count."""
    with Session() as session:
        stored = session.get(Dataset, dataset_id)
        assert stored is not None
        query = select(func.count()).where(
            File.dataset_id == dataset_id, File.status == "finished", ~File.lost
        )
        return stored.n_files, int(session.scalar(query) or 0)


@pytest.mark.parametrize("catalog_engine", SERVERS, indirect=True)
def test_a_file_lost_while_the_queue_recomputes_its_dataset_is_counted_out(
    Session,  # noqa: N803
    catalog_engine,
    monkeypatch,
):
    """The queue reads ZEE_DAOD's files, the new one among them; DDM then
    reports that file lost and recomputes the dataset (``nFiles`` as stored
    before the new file: nothing to write) and commits, all before the queue
    writes. Before, the queue then wrote the count with the lost file and
    cleared nothing, DDM having cleared the mark: ``derive --check``
    reported ``nFiles`` until a ``--fix``. Now DDM waits for the queue to
    commit and recomputes after it.
    """
    daod_id = pending(Session, ZEE_DAOD)

    differences = raced(
        Session,
        catalog_engine,
        monkeypatch,
        lambda session: refresh_stale(session=session),
        lose([LATE], ZEE_DAOD),
    )

    assert differences == []
    stored, files = counted(Session, daod_id)
    assert stored == files


@pytest.mark.parametrize("catalog_engine", SERVERS, indirect=True)
def test_raw_files_lost_while_the_queue_recomputes_a_derivation_count_in(
    Session,  # noqa: N803
    catalog_engine,
    monkeypatch,
):
    """The queue reads the lumi blocks of a real-data DAOD that lost a file
    and its RAW's; DDM reports every RAW file lost meanwhile, which
    recomputes the DAOD (none lost now) and commits first. The DAOD ends
    with no lost lumi blocks, as ``derive --check`` recomputes it (before:
    those the queue had read, its lost file's among them).
    """
    daod_id = pending(Session, DATA_DAOD, lost=True)
    raw_files = [f.lfn for f in WORLD.dataset(DATA_RAW).files]

    differences = raced(
        Session,
        catalog_engine,
        monkeypatch,
        lambda session: refresh_stale(session=session),
        lose(raw_files, DATA_RAW),
    )

    assert differences == []
    with Session() as session:
        daod = session.get(Dataset, daod_id)
        assert daod is not None
        assert (daod.n_lost_lumi_blocks, daod.lost_lumi_blocks) == (0, None)


@pytest.mark.parametrize("catalog_engine", SERVERS, indirect=True)
def test_a_file_lost_while_coma_recomputes_its_dataset_is_counted_out(
    Session,  # noqa: N803
    catalog_engine,
    monkeypatch,
):
    """COMA recomputes the datasets of a run whose periods changed, a
    real-data DAOD with a new file among them; DDM reports that file lost
    meanwhile and commits first. The DAOD ends without it, as ``derive
    --check`` counts (before: COMA, which held no mark, wrote the count with
    it).
    """
    daod_id = pending(Session, DATA_DAOD)

    differences = raced(
        Session,
        catalog_engine,
        monkeypatch,
        lambda session: coma._refresh_runs({RUN}, session),
        lose([LATE], DATA_DAOD),
    )

    assert differences == []
    stored, files = counted(Session, daod_id)
    assert stored == files
