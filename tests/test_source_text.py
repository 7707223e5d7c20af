"""Times and flags that a SQLite source holds as text SQLAlchemy cannot
read as its types ('yesterday', '2026-02-30', 'maybe'): each such row is
quarantined, naming the value, and the others are ingested; a keyset
timestamp the calendar lacks stops its table, naming the row. Before, one
such value stopped the whole ingester, run after run, with a bare
``ValueError``, or was taken for true. The catalogue runs on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from catalog.models import ProductionTask, Quarantine, Run
from ingest import schemas
from ingest.coma import ComaIngester
from ingest.keyset import UnorderedTimestamp
from ingest.prodsys import ProdSysIngester
from ingest.simulate import ComaSource, ProdSysSource, naive
from taskserver.base import RunContext
from taskserver.runner import run_until_drained

TASK = 20_000_001
WHEN = naive(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))


def task(offset: int) -> dict[str, Any]:
    return {
        "taskid": TASK + offset,
        "parent_tid": TASK + offset,
        "taskname": f"mc16_13TeV.99900{offset}.Audit_Zee.evgen.e3601",
        "project": "mc16_13TeV",
        "step_name": "evgen",
        "status": "done",
        "ctag": "e3601",
        "total_events": 20,
        "timestamp": WHEN,
    }


def reasons(Session: Any) -> dict[str, str]:  # noqa: N803
    with Session() as session:
        return {q.record_key: q.reason for q in session.scalars(select(Quarantine))}


def written(source: Any, statement: str, **values: Any) -> None:
    with source.engine.begin() as connection:
        connection.execute(text(statement), values)


@pytest.fixture
def prodsys(tmp_path: Path) -> Any:
    source = ProdSysSource(f"sqlite:///{tmp_path / 'prodsys.sqlite'}").create()
    source.insert(schemas.t_production_task, [task(n) for n in range(3)])
    yield source
    source.engine.dispose()


def test_a_task_time_that_is_no_time_is_quarantined_and_the_rest_ingested(
    Session: Any,  # noqa: N803
    prodsys: Any,
) -> None:
    update = "UPDATE t_production_task SET {} = :value WHERE taskid = :taskid"
    written(prodsys, update.format("submit_time"), value="yesterday", taskid=TASK)
    written(prodsys, update.format("endtime"), value="2026-02-30", taskid=TASK + 1)

    run_until_drained([ProdSysIngester(prodsys.engine)], Session, max_seconds=60)

    assert reasons(Session) == {
        str(TASK): "submit_time = 'yesterday' is not a time",
        str(TASK + 1): "endtime = '2026-02-30' is not a time",
    }
    with Session() as session:
        assert session.scalars(select(ProductionTask.task_id)).all() == [TASK + 2]


def test_a_keyset_time_the_calendar_lacks_stops_the_table_naming_the_row(
    Session: Any,  # noqa: N803
    prodsys: Any,
) -> None:
    stamp = "2026-02-30 10:00:00.000000"
    update = "UPDATE t_production_task SET timestamp = :stamp WHERE taskid = :taskid"
    written(prodsys, update, stamp=stamp, taskid=TASK + 2)
    ingester = ProdSysIngester(prodsys.engine)

    try:
        with pytest.raises(UnorderedTimestamp) as stopped:
            ingester.run(RunContext(Session, 1e18))
    finally:
        ingester.close()

    assert str(stopped.value).startswith(
        f"t_production_task: the row taskid = {TASK + 2} has timestamp {stamp!r}, "
        "not a time in text of the form 'YYYY-MM-DD HH:MM:SS.ffffff'"
    )


def test_a_coma_flag_or_time_that_is_text_is_quarantined(
    Session: Any,  # noqa: N803
    tmp_path: Path,
) -> None:
    source = ComaSource(f"sqlite:///{tmp_path / 'coma.sqlite'}").create()
    runs = [
        {
            "runnumber": 284500 + n,
            "project": "data15_13TeV",
            "start_time": WHEN,
            "end_time": WHEN,
            "nlumiblocks": 100,
            "stable_beams": True,
        }
        for n in range(3)
    ]
    source.insert(schemas.coma_run, runs)
    update = "UPDATE coma_run SET {} = :value WHERE runnumber = :run"
    written(source, update.format("stable_beams"), value="maybe", run=284500)
    written(source, update.format("end_time"), value="ongoing", run=284501)

    try:
        run_until_drained([ComaIngester(source.engine)], Session, max_seconds=60)
    finally:
        source.engine.dispose()

    assert reasons(Session) == {
        "284500": "stable_beams = 'maybe' is not a boolean",
        "284501": "end_time = 'ongoing' is not a time",
    }
    with Session() as session:
        assert session.scalars(select(Run.run_number)).all() == [284502]
