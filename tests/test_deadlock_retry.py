"""Two ingesters recomputing the same dataset at once on MariaDB: the one
that raised the dataset's stale mark first holds the dataset's row shared
(InnoDB's check of the mark's foreign key), the other then queues for that
row or that mark, and the first, writing the dataset's derived values,
waits for the other: InnoDB's error 1213, "Deadlock found", rolls the other
back. That victim must lose nothing: DDM keeps its messages, neither
acknowledged, quarantined nor dropped; Tier-0 leaves its dataset READY; and
the task server counts the deadlock transient and runs the ingester again
at once, no failed run.

The deadlock is made deterministic: the first transaction is held once it
raised its marks (before ``_refresh_marked``), until the other waits.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_derive_race import DATA_RAW, WORLD, in_thread, waits_or_ends
from test_derived import ZEE_AOD
from test_tier0_reconcile import flags

import catalog.derived as derived
from catalog.datasets import get_dataset
from catalog.ddm import APPLIED, DdmEvent
from catalog.derived import refresh_changed, stale_count
from catalog.models import File
from catalog.operations import quarantine_count
from ingest.ddm import DdmIngester, Frame, Interrupted
from ingest.seed import seed_catalog
from ingest.tier0 import Tier0Ingester
from taskserver.runs import OK, RunResult, execute, is_transient

WAIT = 30  # seconds: at most, for a step that should take milliseconds
DEADLOCK = 1213  # InnoDB's "Deadlock found when trying to get lock"

LATE_GUID = "00000000-0000-0000-0000-000000000099"

MARIADB = [pytest.param("mariadb", marks=pytest.mark.external_service)]


def files_of(Session: sessionmaker[OrmSession], name: str) -> list[str]:  # noqa: N803
    """The world catalogued; the LFNs of the dataset *name*'s files."""
    with Session.begin() as session:
        seed_catalog(WORLD, session=session)
    with Session() as session:
        dataset = get_dataset(name, session=session)
        query = select(File.lfn).where(File.dataset_id == dataset.id)
        return sorted(session.scalars(query.order_by(File.lfn)))


class HeldAfterMarking:
    """Holds the first transaction's thread once it has raised its marks,
    before it recomputes (and writes) the datasets, until :meth:`go`.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        refresh_marked = derived._refresh_marked

        def held(*args: Any, **kwargs: Any) -> int:
            if threading.current_thread() is self.thread:
                self.reached.set()
                assert self.released.wait(WAIT)
            return refresh_marked(*args, **kwargs)

        monkeypatch.setattr(derived, "_refresh_marked", held)

    def start(self, target: Callable[[], None]) -> threading.Thread:
        self.thread = threading.Thread(target=target)
        self.thread.start()
        assert self.reached.wait(WAIT), "the first transaction did not mark"
        return self.thread

    def go(self) -> None:
        self.released.set()


def deadlocked(
    Session: sessionmaker[OrmSession],  # noqa: N803
    engine: Any,
    monkeypatch: pytest.MonkeyPatch,
    first: Callable[[OrmSession], object],
    second: Callable[[], object],
) -> tuple[list[BaseException], list[BaseException]]:
    """Run *first* in a transaction held after marking, *second* meanwhile
    until it waits, then let both end; return the errors of each.
    """
    first_errors: list[BaseException] = []
    second_errors: list[BaseException] = []
    held = HeldAfterMarking(monkeypatch)
    one = held.start(in_thread(Session, first, first_errors))

    def run_second() -> None:
        try:
            second()
        except BaseException as err:  # reported by the test's thread
            second_errors.append(err)

    two = threading.Thread(target=run_second)
    two.start()
    try:
        waits_or_ends(two, engine)
    finally:
        held.go()
        one.join(WAIT)
        two.join(WAIT)
    return first_errors, second_errors


def lose_and_refresh(lfn: str, name: str) -> Callable[[OrmSession], None]:
    """DDM's work, as ``ingest.ddm._apply`` does it: the file *lfn* lost,
    then what depends on the dataset *name* recomputed.
    """

    def apply(session: OrmSession) -> None:
        session.execute(update(File).where(File.lfn == lfn).values(lost=True))
        refresh_changed([get_dataset(name, session=session).id], session=session)

    return apply


def lost_frame(lfn: str, name: str) -> Frame:
    """DDM's message that the file *lfn* of the dataset *name* is lost, as
    the listener queues it.
    """
    moment = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    payload = {"scope": name.split(".")[0], "name": lfn, "dataset_name": name}
    body = DdmEvent("lost", payload, moment).to_body()
    return Frame("ID:deadlock-1", "1", {}, body, 0)


def lost(Session: sessionmaker[OrmSession]) -> list[str]:  # noqa: N803
    with Session() as session:
        return sorted(session.scalars(select(File.lfn).where(File.lost.is_(True))))


def left_stale(Session: sessionmaker[OrmSession]) -> int:  # noqa: N803
    with Session() as session:
        return stale_count(session=session)


@pytest.mark.parametrize("catalog_engine", MARIADB, indirect=True)
def test_ddm_rolled_back_by_a_deadlock_keeps_its_message_for_a_retry(
    Session,  # noqa: N803
    catalog_engine,
    monkeypatch,
):
    """Another ingester (as DDM does) recomputes ZEE_AOD while DDM applies a file of it
    lost: InnoDB rolls DDM back. Its message is neither quarantined nor
    dropped nor acknowledged, but kept for the next run, and the error is
    one the task server tries again; the next run applies it.
    """
    lfns = files_of(Session, ZEE_AOD)
    ingester = DdmIngester("stomp://127.0.0.1:1")
    frame = lost_frame(lfns[1], ZEE_AOD)
    counts: Counter[str] = Counter()
    first, second = deadlocked(
        Session,
        catalog_engine,
        monkeypatch,
        lose_and_refresh(lfns[0], ZEE_AOD),
        lambda: ingester._apply([frame], Session, counts),
    )

    assert first == []
    [error] = second
    assert isinstance(error, Interrupted)
    assert isinstance(error.__cause__, OperationalError)
    assert getattr(error.__cause__.orig, "args", ())[:1] == (DEADLOCK,)
    assert is_transient(error)
    assert ingester._pending == [frame]
    assert counts == Counter()
    with Session() as session:
        assert quarantine_count(session=session) == 0
    assert lost(Session) == [lfns[0]]

    assert ingester._apply(ingester._pending, Session, counts) == 1
    assert counts == Counter({APPLIED: 1})
    assert lost(Session) == lfns[:2]
    assert left_stale(Session) == 0


@pytest.mark.parametrize("catalog_engine", MARIADB, indirect=True)
def test_tier0_rolled_back_by_a_deadlock_is_run_again_and_catalogues(
    Session,  # noqa: N803
    catalog_engine,
    sources,
    monkeypatch,
    caplog,
):
    """DDM recomputes the RAW dataset while Tier-0 brings it a new
    file: InnoDB rolls Tier-0 back, its dataset stays READY, and the task
    server runs it again at once (a warning, no failed run), which
    catalogues the file and flags the dataset DONE.
    """
    lfns = files_of(Session, DATA_RAW)
    spec = next(d for d in WORLD.datasets if d.name == DATA_RAW)
    late = replace(spec.files[0], lfn="RAW.late._000099.pool.root.1", guid=LATE_GUID)
    sources.tier0.add_dataset(spec, [*spec.files, late])
    results: list[RunResult] = []
    tier0 = Tier0Ingester(sources.tier0.engine)

    def run() -> None:
        stop = threading.Event()
        results.append(execute(tier0, Session=Session, owner="test", stop=stop))

    with caplog.at_level(logging.WARNING, logger="taskserver.runs"):
        first, second = deadlocked(
            Session,
            catalog_engine,
            monkeypatch,
            lose_and_refresh(lfns[0], DATA_RAW),
            run,
        )

    assert (first, second) == ([], [])
    [result] = results
    assert (result.outcome, result.attempts, result.error) == (OK, 2, None)
    assert result.items == 1
    assert "Deadlock found" in caplog.text
    with Session() as session:
        dataset = get_dataset(DATA_RAW, session=session)
        files = select(File.lfn).where(File.dataset_id == dataset.id)
        assert sorted(session.scalars(files)) == sorted([*lfns, late.lfn])
        assert dataset.tier0_state == "DONE"
    assert flags(sources) == {"DONE"}
    assert lost(Session) == [lfns[0]]
    assert left_stale(Session) == 0
