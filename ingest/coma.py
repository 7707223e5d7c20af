"""The COMA ingester: runs, data periods and the runs of each period.

COMA's tables are small (thousands of runs), so each run of the task
compares the whole of them with the catalogue and writes only what changed:
its items are the runs and periods written, new or changed, and the
periods deleted; a period whose list of runs changed counts as changed.
When a period gains or loses a run, the ``period`` of that run's datasets
is refreshed.

COMA has no timestamps and says nothing of what it deleted, so each run
reads it whole and the catalogue follows it: a period COMA no longer has
(deleted, or renamed: the new name is a new period) leaves the catalogue
with its runs, and the ``period`` of those runs' datasets is refreshed. A
period whose row is still there but refused into quarantine stays as the
catalogue last had it. A period-run link to a period COMA does not define
(for that project) is refused into quarantine, and the datasets of its run
do not get that period.

A COMA record held in quarantine that a later run reads and writes without
error (COMA corrected it, or defined the missing period) is released
(:class:`ingest.base.RecordsRead`).
Runs and period-run links are both named by their run number, and periods by
their name alone, so a record stays held while any row under its key is
refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from catalog.db import utcnow
from catalog.derived import refresh_marking
from catalog.models import Dataset, Period, PeriodRun, Run
from catalog.operations import quarantine
from catalog.upsert import differing, upsert
from ingest import schemas
from ingest.base import RecordsRead
from ingest.values import Unusable, integer, moment, text
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

# An empty table of COMA's (being reloaded, say) deletes nothing: it would
# delete every period, or every period's runs, of the catalogue.
EMPTY = "COMA gives no row of %s: the catalogue's %s are left as they are"

SOURCE = "coma"


class ComaIngester(Task):
    """Keeps runs and periods in step with COMA."""

    name = "coma"
    priority = 4
    interval = 30.0
    budget = 5.0

    def __init__(self, source: Engine) -> None:
        self.source = source
        # What COMA held at the last run: nothing is written while it stays.
        self._snapshot: tuple[Any, ...] | None = None

    def close(self) -> None:
        """Close the source's pooled connections (the engine stays usable)."""
        self.source.dispose()

    def run(self, context: RunContext) -> RunOutcome:
        with self.source.connect() as connection:
            tables = (schemas.coma_run, schemas.coma_period, schemas.coma_period_run)
            runs, periods, links = (
                [r._mapping for r in connection.execute(schemas.select_raw(table))]
                for table in tables
            )
        snapshot = _snapshot(runs, periods, links)
        if self._snapshot == snapshot:
            return RunOutcome(0, 0, "unchanged")
        records = RecordsRead(SOURCE)
        with context.Session.begin() as session:
            changed = _write_runs(runs, records, session)
            periods_changed = _write_periods(periods, records, session)
            periods_changed |= _write_links(links, periods, records, session)
            records.release(session=session)
        self._snapshot = snapshot
        changed += len(periods_changed)
        read = f"{len(runs)} runs and {len(periods)} periods read"
        return RunOutcome(changed, 0, f"{read}, {changed} written")


def _snapshot(*tables: list[Any]) -> tuple[Any, ...]:
    return tuple(tuple(tuple(row.values()) for row in table) for table in tables)


def _run_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_number": integer(row, "runnumber"),
        "project": text(row, "project", length=64),
        "start_time": moment(row, "start_time"),
        "end_time": moment(row, "end_time"),
        "n_lumi_blocks": integer(row, "nlumiblocks", required=False),
        "stable_beams": _flag(row.get("stable_beams")),
    }


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    raise Unusable(f"stable_beams = {value!r} is not a boolean")


def _period_row(row: Mapping[str, Any]) -> dict[str, Any]:
    level = integer(row, "level")
    if level not in (1, 2, 3):
        raise Unusable(f"level = {level} is not 1, 2 or 3")
    return {
        "project": text(row, "project", length=64),
        "name": text(row, "period", length=32),
        "level": level,
        "description": text(row, "description", required=False, length=1000),
    }


def _link_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "project": text(row, "project", length=64),
        "period": text(row, "period", length=32),
        "run_number": integer(row, "runnumber"),
    }


def _write_runs(rows: list[Any], records: RecordsRead, session: Session) -> int:
    """Write the runs that are new or differ from the catalogue's, with the
    time as their modified time; return how many.
    """
    good = records.usable(rows, _run_row, "runnumber", session=session)
    records.wrote(row["run_number"] for row in good)
    table = Run.__table__
    changed, known = differing(session, table, good, "run_number")  # type: ignore[arg-type]
    if changed:
        # An upsert's update fires no onupdate: the time is given.
        stamp = {"modified": utcnow()}
        upsert(session, table, changed, ["run_number"], known=known, same=stamp)  # type: ignore[arg-type]
    return len(changed)


def _write_periods(
    rows: list[Any], records: RecordsRead, session: Session
) -> set[tuple[str, str]]:
    """Write the periods that are new or differ from the catalogue's; return
    their (project, name).
    """
    good = records.usable(rows, _period_row, "period", session=session)
    records.wrote(row["name"] for row in good)
    dropped = set()
    if rows:
        dropped = _drop_periods(rows, session)
    else:
        _keep("coma_period", "periods")
    # A period's natural key has two columns, and differing() compares rows
    # on one: the id, for the periods the catalogue holds already.
    ids = _period_ids(session)
    held = [{"id": ids[_key(row)], **row} for row in good if _key(row) in ids]
    changed = differing(session, Period.__table__, held, "id").rows  # type: ignore[arg-type]
    written = [row for row in good if _key(row) not in ids]
    written += [{k: v for k, v in row.items() if k != "id"} for row in changed]
    upsert(session, Period.__table__, written, ["project", "name"])  # type: ignore[arg-type]
    return {_key(row) for row in written} | dropped


def _drop_periods(rows: list[Any], session: Session) -> set[tuple[str, str]]:
    """Delete the periods of the catalogue that COMA no longer has among
    its *rows* (read or refused), with their runs, and refresh the datasets
    of those runs; return their (project, name).
    """
    in_coma = _period_keys(rows)
    gone = {key: id_ for key, id_ in _period_ids(session).items() if key not in in_coma}
    if not gone:
        return set()
    ids = sorted(gone.values())
    of_periods = select(PeriodRun.run_number).where(PeriodRun.period_id.in_(ids))
    runs = set(session.scalars(of_periods))
    session.execute(delete(PeriodRun).where(PeriodRun.period_id.in_(ids)))
    session.execute(delete(Period).where(Period.id.in_(ids)))
    logger.info("Periods no longer in COMA deleted: %s", sorted(gone))
    _refresh_runs(runs, session)
    return set(gone)


def _keep(table: str, what: str) -> None:
    """Say that COMA's *table* is empty and the catalogue's *what* are kept
    (once: an unchanged COMA is not read twice).
    """
    logger.warning(EMPTY, table, what)


def _period_keys(rows: list[Any]) -> set[tuple[str | None, str | None]]:
    """The (project, name) of the COMA period *rows*, read or refused."""
    return {(_stripped(row, "project"), _stripped(row, "period")) for row in rows}


def _stripped(row: Mapping[str, Any], column: str) -> str | None:
    """The value of *column* as the catalogue keeps it (stripped text)."""
    value = row.get(column)
    return None if value is None else str(value).strip()


def _refresh_runs(runs: set[int], session: Session) -> None:
    """Refresh the derived quantities (``period``) of the datasets of *runs*."""
    if runs:
        of_runs = select(Dataset.id).where(Dataset.run_number.in_(sorted(runs)))
        refresh_marking(session.scalars(of_runs), session=session)


def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    return row["project"], row["name"]


def _period_ids(session: Session) -> dict[tuple[str, str], int]:
    query = select(Period.project, Period.name, Period.id)
    return {(project, name): id_ for project, name, id_ in session.execute(query)}


def _write_links(
    rows: list[Any], periods: list[Any], records: RecordsRead, session: Session
) -> set[tuple[str, str]]:
    """Make the catalogue's period-run map equal COMA's, but for the links to
    a period the catalogue does not hold (refused into quarantine: see
    :func:`_refuse_undefined`); refresh the datasets of every run that joined
    or left a period. Return the (project, name) of the periods whose runs
    changed.
    """
    if not rows:
        _keep("coma_period_run", "periods' runs")
        return set()
    good = records.usable(rows, _link_row, "runnumber", session=session)
    ids = _period_ids(session)
    in_coma = _period_keys(periods)
    for link in good:
        if _link_key(link) not in ids:
            _refuse_undefined(link, _link_key(link) in in_coma, records, session)
    wanted = {(ids[_link_key(g)], g["run_number"]) for g in good if _link_key(g) in ids}
    records.wrote(run for _, run in wanted)  # a link to no period is not written
    links = select(PeriodRun.period_id, PeriodRun.run_number)
    have = {(period_id, run) for period_id, run in session.execute(links)}
    for period_id, run in have - wanted:
        session.execute(
            delete(PeriodRun).where(
                PeriodRun.period_id == period_id, PeriodRun.run_number == run
            )
        )
    rows_to_add = [{"period_id": p, "run_number": r} for p, r in sorted(wanted - have)]
    upsert(session, PeriodRun.__table__, rows_to_add, ["period_id", "run_number"])  # type: ignore[arg-type]
    _refresh_runs({run for _, run in wanted ^ have}, session)
    moved = {period_id for period_id, _ in wanted ^ have}
    return {key for key, period_id in ids.items() if period_id in moved}


def _link_key(link: Mapping[str, Any]) -> tuple[str, str]:
    return link["project"], link["period"]


def _refuse_undefined(
    link: Mapping[str, Any], refused: bool, records: RecordsRead, session: Session
) -> None:
    """Put a period-run *link* to a period the catalogue does not hold in
    quarantine, under its run number: a period COMA does not define, or
    whose row was *refused* into quarantine. It stays held until the period
    is written; the link is then written too, and released.
    """
    project, period, run = link["project"], link["period"], link["run_number"]
    why = (
        "its coma_period row is held in quarantine"
        if refused
        else "it is not in coma_period"
    )
    reason = (
        f"period {period!r} of project {project!r} is unknown ({why}): "
        f"run {run} is not put in it"
    )
    payload = {"project": project, "period": period, "runnumber": run}
    quarantine(SOURCE, str(run), payload, reason, session=session)
    records.refused.add(str(run))
