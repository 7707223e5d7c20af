"""The catalogue's own bookkeeping for ingestion: stop points, quarantine and
the record of the task server's runs.

Stop points and quarantined records are written in the caller's transaction,
so a stop point commits together with the rows it covers, and a quarantined
record together with the progress past it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.visitors import InternalTraversal

from catalog.datasets import Page, check_paging
from catalog.db import among, chunked, utcnow
from catalog.errors import AlreadyReleased, QuarantineNotFound, UnknownSource
from catalog.keyset import DEFAULT_LIMIT, Keyset, KeysetPage, SortKey, keyset_page
from catalog.models import Quarantine, StopPoint, TaskLease, TaskRun

# Bytes kept of a quarantined record: MariaDB's TEXT holds 65,535 bytes.
MAX_PAYLOAD = 60_000


def get_stop_point(name: str, *, session: Session) -> StopPoint:
    """Return the stop point *name*, created empty when it is new."""
    point = session.get(StopPoint, name)
    if point is None:
        point = StopPoint(name=name, timestamp=None, key=None)
        session.add(point)
    return point


def set_stop_point(
    name: str, timestamp: dt.datetime | None, key: str | None, *, session: Session
) -> None:
    """Move the stop point *name* to (*timestamp*, *key*)."""
    point = get_stop_point(name, session=session)
    point.timestamp = timestamp
    point.key = key


def quarantine(
    source: str, record_key: str | None, payload: Any, reason: str, *, session: Session
) -> Quarantine:
    """Keep a source record that could not be understood, with the reason,
    and return it. A record already held (not released) for the same reason
    is returned as it is: the overlap window, and rows without a timestamp,
    are read again every pass.
    """
    key, why = (record_key or "")[:255] or None, _clip(reason, 4000)
    held = _held(source, key, why, session=session)
    if held is not None:
        return held
    text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    entry = Quarantine(
        source=source, record_key=key, payload=_clip(text, MAX_PAYLOAD), reason=why
    )
    session.add(entry)
    return entry


def release_read(
    source: str,
    record_keys: Iterable[str],
    *,
    session: Session,
    about: Callable[[Quarantine], bool] | None = None,
) -> int:
    """Release the records of *source* held in quarantine under any of
    *record_keys*: the source has since given each of those records again,
    and it was read and written without error (corrected at the source, say).
    Each is released as an operator would release it, and its reason ends
    with when and why (``...; released automatically on 2026-12-06 10:00 UTC:
    read again without error``). Return how many were released.

    The caller names only the records it has just written, and none it
    refused in the same pass: a source may name two kinds of record by one
    key (COMA's runs and period-run links by their run number), and one
    refused keeps the key's records held.

    :param about: when given, only the records under those keys for which
        it is true are released: those about the rows read (a key may hold
        records of other rows, which reading these did not correct).
    """
    wanted = {key[:255] for key in record_keys if key}
    if not wanted:
        return 0
    note = _release_note("automatically", "read again without error")
    released = 0
    for keys in chunked(sorted(wanted)):
        query = select(Quarantine).where(
            Quarantine.source == source,
            Quarantine.released.is_not(True),
            among(Quarantine.record_key, keys),
        )
        # Locked, as an operator's release locks them: of two releases at
        # once, the second waits and then finds the record released.
        query = query.with_for_update().execution_options(populate_existing=True)
        # Compared again in Python: MariaDB's collation takes keys that
        # differ in case or trailing spaces for one (see _held).
        for entry in session.scalars(query):
            if entry.record_key in wanted and (about is None or about(entry)):
                _release(entry, note)
                released += 1
    return released


# Characters of an operator's reason kept in a released record's reason.
MAX_RELEASE_REASON = 1000


def release_quarantined(
    record_ids: Sequence[int],
    *,
    by: str,
    reason: str | None = None,
    session: Session,
) -> list[Quarantine]:
    """Release the quarantined records *record_ids*, as an operator does
    once the source (or hepcat) is fixed; return them, in the order given.
    Each record's reason ends with who released it, when and why (``...;
    released by ada on 2026-12-06 10:00 UTC: GUID fixed in Tier-0``).

    A released record is what the ingesters watch for: Tier-0 reads its held
    datasets again at its next run (``quarantine_count(released=True)``).
    Either every record is released or none.

    :raises QuarantineNotFound: for an id no record has.
    :raises AlreadyReleased: for a record released already.
    """
    entries = []
    for record_id in dict.fromkeys(record_ids):
        # An id past the column's 64 bits is no record's, and no query's.
        # Locked and read afresh: a release at the same time (an ingester's,
        # another operator's) waits, or has released it already.
        entry = (
            session.get(
                Quarantine, record_id, with_for_update=True, populate_existing=True
            )
            if 0 < record_id < 2**63
            else None
        )
        if entry is None:
            raise QuarantineNotFound(record_id)
        if entry.released:
            raise AlreadyReleased(record_id, entry.record_key)
        entries.append(entry)
    why = " ".join((reason or "").split())[:MAX_RELEASE_REASON] or None
    note = _release_note(f"by {by}", why)
    for entry in entries:
        _release(entry, note)
    return entries


def _release_note(how: str, why: str | None) -> str:
    """The end of a released record's reason: how, when and why."""
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    return f"; released {how} on {when}" + (f": {why}" if why else "")


def _release(entry: Quarantine, note: str) -> None:
    entry.released = True
    entry.reason += note


def _held(
    source: str, record_key: str | None, reason: str, *, session: Session
) -> Quarantine | None:
    """The record of *source* held in quarantine, not released, as
    *record_key* for *reason* (None: there is none).

    The database finds the candidates, and Python compares their key and
    reason: MariaDB's collations take two texts that differ only in case or
    in trailing spaces for one, and the sources do not.
    """
    key = (
        Quarantine.record_key.is_(None)
        if record_key is None
        else Quarantine.record_key == record_key
    )
    query = select(Quarantine).where(
        Quarantine.source == source,
        key,
        Quarantine.released.is_not(True),
        Quarantine.reason == reason,
    )
    exact = (record_key, reason)
    held = session.scalars(query)
    return next((e for e in held if (e.record_key, e.reason) == exact), None)


def _clip(text: str, size: int) -> str:
    """*text* cut to at most *size* bytes of UTF-8, on a character boundary."""
    return text.encode()[:size].decode(errors="ignore")


def quarantine_count(
    *,
    session: Session,
    source: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    released: bool | None = None,
) -> int:
    """How many records are in quarantine (of *source*, when given; put
    there from *since* and up to *until*, when given; released by an
    operator or not, when *released* is given).
    """
    query = select(func.count()).select_from(Quarantine)
    query = query.where(*_kept_between(since, until))
    if source is not None:
        query = query.where(Quarantine.source == source)
    if released is not None:
        query = query.where(Quarantine.released.is_(released))
    return session.scalar(query) or 0


def _kept_between(
    since: dt.datetime | None, until: dt.datetime | None
) -> list[ColumnElement[bool]]:
    """The conditions on when a quarantined record was kept."""
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(Quarantine.created >= since)
    if until is not None:
        conditions.append(Quarantine.created <= until)
    return conditions


# --- reading: the quarantine and the task server's records ---------------------


#: The sources whose records go to quarantine: the ingesters.
SOURCES = ("coma", "ddm", "prodsys", "tier0")


def check_source(
    source: str | None, *, known: Iterable[str] = SOURCES, found: Iterable[str] = ()
) -> None:
    """Refuse a filter on *source* unless it is one of *known* or has
    records (*found*): an unknown name would list nothing, as if all were
    well.

    :raises UnknownSource: naming the sources.
    """
    names = {*known, *found}
    if source is not None and source not in names:
        raise UnknownSource(source, names)


def list_quarantine(
    *,
    session: Session,
    source: str | None = None,
    released: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Return a page of quarantined records (of *source*, when given;
    released or still held, when *released* is given), newest first.

    :raises InvalidInput: for an unusable page.
    """
    check_paging(offset, limit)
    conditions = [Quarantine.source == source] if source else []
    if released is not None:
        conditions.append(Quarantine.released.is_(released))
    total = session.scalar(
        select(func.count()).select_from(Quarantine).where(*conditions)
    )
    query = select(Quarantine).where(*conditions)
    query = query.order_by(Quarantine.created.desc(), Quarantine.id.desc())
    rows = session.scalars(query.offset(offset).limit(limit)).all()
    return Page(rows, total or 0, offset, limit)


QUARANTINE_KEYSET = Keyset(
    [SortKey(Quarantine.__table__.c.created, descending=True)],
    Quarantine.__table__.c.id,
    "-created",
)


def list_quarantine_keyset(
    *,
    session: Session,
    source: str | None = None,
    released: bool | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> KeysetPage:
    """Return the page of quarantined records (of *source*, when given;
    released or still held, when *released* is given), newest first, that
    follows *cursor* (the first page without one).

    :raises InvalidInput: for a bad cursor or page size.
    """
    conditions = [Quarantine.source == source] if source else []
    if released is not None:
        conditions.append(Quarantine.released.is_(released))
    statement = select(Quarantine).where(*conditions)
    return keyset_page(
        statement, QUARANTINE_KEYSET, session=session, cursor=cursor, limit=limit
    )


def quarantine_sources(
    *,
    session: Session,
    since: dt.datetime | None = None,
    released: bool | None = None,
) -> dict[str, int]:
    """How many records each source has in quarantine (put there from
    *since*, when given; released or still held, when *released* is given),
    by source name.
    """
    query = select(Quarantine.source, func.count()).where(*_kept_between(since, None))
    if released is not None:
        query = query.where(Quarantine.released.is_(released))
    query = query.group_by(Quarantine.source)
    return {source: int(count) for source, count in sorted(session.execute(query))}


#: Runs of a task read for the pauses between them.
PAUSES_READ = 20


@dataclass(frozen=True)
class TaskStatus:
    """A task of the task server: who holds its lease, its last runs, and
    the pauses between its recent runs.
    """

    name: str
    lease: TaskLease | None
    runs: list[TaskRun]  # newest first
    #: From the end of each of its recent runs to the start of the next.
    pauses: list[dt.timedelta] = field(default_factory=list)

    @property
    def last(self) -> TaskRun | None:
        return self.runs[0] if self.runs else None

    @property
    def backlog(self) -> int | None:
        """What the last finished run reported was left to do (None: unknown)."""
        finished = [run for run in self.runs if run.ended is not None]
        return finished[0].backlog if finished else None

    @property
    def usual_pause(self) -> dt.timedelta | None:
        """The longest of its recent pauses between runs (None: it ran once).

        A task server runs a task again at once while it reports a backlog,
        and after its interval otherwise: the longest pause is that interval.
        """
        return max(self.pauses, default=None)

    @property
    def last_seen(self) -> dt.datetime | None:
        """When its newest run ended, or started if it has not ended."""
        return max((run.ended or run.started for run in self.runs), default=None)


def task_statuses(*, session: Session, runs_per_task: int = 5) -> list[TaskStatus]:
    """Every task that holds a lease or has run, by name, with its last
    *runs_per_task* runs and the pauses between its last :data:`PAUSES_READ`.
    """
    leases = {lease.task_name: lease for lease in session.scalars(select(TaskLease))}
    names = set(leases) | set(session.scalars(select(TaskRun.task_name).distinct()))
    statuses = []
    for name in sorted(names):
        query = select(TaskRun).where(TaskRun.task_name == name)
        query = query.order_by(TaskRun.started.desc(), TaskRun.id.desc())
        runs = list(session.scalars(query.limit(runs_per_task)))
        pauses = task_pauses(name, session=session)
        statuses.append(TaskStatus(name, leases.get(name), runs, pauses))
    return statuses


def task_pauses(
    name: str, *, session: Session, runs: int = PAUSES_READ
) -> list[dt.timedelta]:
    """The pauses between the last *runs* runs of task *name*, newest first:
    from the end of each run to the start of the next (none for a run that
    did not end; none shorter than zero).
    """
    query = select(TaskRun.started, TaskRun.ended).where(TaskRun.task_name == name)
    query = query.order_by(TaskRun.started.desc(), TaskRun.id.desc()).limit(runs)
    times = session.execute(query).all()
    return [
        max(newer.started - older.ended, dt.timedelta(0))
        for newer, older in zip(times, times[1:], strict=False)
        if older.ended is not None
    ]


def ingest_rates(
    since: dt.datetime, *, session: Session
) -> dict[str, dict[dt.datetime, int]]:
    """The items each task handled per minute since *since*: by task name,
    the sum of the items of the runs that ended in each minute (UTC).

    The database adds them up, by task and minute: two days of runs are
    hundreds of thousands of rows, and a few thousand sums.
    """
    minute = EpochMinutes(TaskRun.ended)
    query = (
        select(TaskRun.task_name, minute, func.sum(TaskRun.items))
        .where(TaskRun.started >= since, TaskRun.ended.is_not(None))
        .group_by(TaskRun.task_name, minute)
    )
    rates: dict[str, dict[dt.datetime, int]] = {}
    for name, minutes, items in session.execute(query):
        start = EPOCH + dt.timedelta(minutes=int(minutes))
        rates.setdefault(name, {})[start] = int(items or 0)
    return rates


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EpochMinutes(ColumnElement[int]):
    """The whole minutes from 1970-01-01 (UTC) to a point in time: the
    minute it falls in, as a number that SQL can group by. Each database
    counts them its own way, none of them through the session's time zone
    (times are stored as naive UTC, :class:`catalog.db.UTCDateTime`).
    """

    inherit_cache = True
    _traverse_internals = [("moment", InternalTraversal.dp_clauseelement)]
    type = BigInteger()

    def __init__(self, moment: ColumnElement[Any] | InstrumentedAttribute[Any]) -> None:
        self.moment = moment


@compiles(EpochMinutes, "sqlite")
def _sqlite_minutes(element: EpochMinutes, compiler: Any, **kw: Any) -> str:
    # Stored as text, 'YYYY-MM-DD HH:MM:SS.ffffff', read as UTC by '%s'; cut
    # to the minute first, as SQLite rounds a time to the millisecond
    # (12:03:59.9999 would count as 12:04).
    moment = compiler.process(element.moment, **kw)
    return f"(CAST(strftime('%s', substr({moment}, 1, 16)) AS INTEGER) / 60)"


@compiles(EpochMinutes, "postgresql")
def _postgresql_minutes(element: EpochMinutes, compiler: Any, **kw: Any) -> str:
    # A timestamp without time zone: its epoch is taken as UTC.
    moment = compiler.process(element.moment, **kw)
    return f"CAST(floor(extract(epoch FROM {moment}) / 60) AS BIGINT)"


@compiles(EpochMinutes, "oracle")
def _oracle_minutes(element: EpochMinutes, compiler: Any, **kw: Any) -> str:
    # DATE arithmetic counts days, a NUMBER in which a minute is no exact
    # fraction (12:04 could be 723.999... minutes): whole seconds first (the
    # DATE drops the fraction of a second), then whole minutes.
    moment = compiler.process(element.moment, **kw)
    seconds = f"ROUND((CAST({moment} AS DATE) - DATE '1970-01-01') * 86400)"
    return f"FLOOR({seconds} / 60)"


@compiles(EpochMinutes)
def _minutes_between(element: EpochMinutes, compiler: Any, **kw: Any) -> str:
    # MariaDB and MySQL: UNIX_TIMESTAMP() would read the session's time zone.
    moment = compiler.process(element.moment, **kw)
    return f"TIMESTAMPDIFF(MINUTE, '1970-01-01 00:00:00', {moment})"
