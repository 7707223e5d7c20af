"""What every ingester shares with the catalogue: quarantine for the rows a
mapper refuses, and the release of those read again without error; a keyset
stream's stop point; and the recomputation of stale derived quantities.
Reading the source's values is ``ingest.values``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from catalog.derived import refresh_stale, stale_count
from catalog.operations import (
    get_stop_point,
    quarantine,
    release_read,
    set_stop_point,
)
from ingest.keyset import Cursor, KeysetStream
from ingest.values import Mapped, map_rows
from taskserver.base import RunContext

T = TypeVar("T")

# Stale datasets recomputed per transaction, and at most per run.
STALE_BATCH = 2000
STALE_PER_RUN = 5000


def quarantine_refused(mapped: Mapped[T], source: str, *, session: Session) -> list[T]:
    """Put the rows *mapped* refused in quarantine under *source*; return the
    good ones.
    """
    for record, values, reason in mapped.refused:
        quarantine(source, record, values, reason, session=session)
    return mapped.good


def usable_rows(
    rows: Iterable[Any],
    mapper: Callable[[Mapping[str, Any]], T],
    key: str,
    source: str,
    *,
    session: Session,
) -> list[T]:
    """Map each source row with *mapper*; put the rows it refuses (with
    :class:`Unusable` or a hepcat error) in quarantine, under *source* and
    the row's *key* column.
    """
    return quarantine_refused(map_rows(rows, mapper, key), source, session=session)


class RecordsRead:
    """The records of *source* one pass of an ingester refused into
    quarantine and those it wrote, by key. At the end of the pass,
    :meth:`release` releases the records held in quarantine under a key it
    wrote and did not refuse: the source has corrected them
    (:func:`~catalog.operations.release_read`).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.written: set[str] = set()
        self.refused: set[str] = set()

    def usable(
        self,
        rows: Iterable[Any],
        mapper: Callable[[Mapping[str, Any]], T],
        key: str,
        *,
        session: Session,
    ) -> list[T]:
        """:func:`usable_rows` of *rows*, noting the keys of those refused."""
        mapped = map_rows(rows, mapper, key)
        self.refused.update(record for record, _, _ in mapped.refused)
        return quarantine_refused(mapped, self.source, session=session)

    def wrote(self, keys: Iterable[object]) -> None:
        """Note the keys of records the catalogue now holds as the source
        gives them (written, or found as written).
        """
        self.written.update(str(key) for key in keys if key is not None)

    def release(self, *, session: Session) -> int:
        """Release the records held under a key written and not refused in
        this pass; return how many.
        """
        keys = self.written - self.refused
        return release_read(self.source, keys, session=session)


def load_cursor(
    stream: str, keyset: KeysetStream, *, session: Session
) -> Cursor | None:
    """The stored stop point of *stream* as a cursor (None: from the start)."""
    point = get_stop_point(stream, session=session)
    if point.timestamp is None:
        return None
    stamp = point.timestamp.astimezone(dt.UTC).replace(tzinfo=None)
    key_type = keyset.table.c[keyset.key_column].type.python_type
    return Cursor(stamp, key_type(point.key or ""))


def save_stop_point(stream: str, cursor: Cursor, *, session: Session) -> None:
    """Store *cursor* as where *stream*'s next pass must start (in the
    transaction that writes the rows it covers).
    """
    stamp = cursor.timestamp.replace(tzinfo=dt.UTC)
    set_stop_point(stream, stamp, str(cursor.key), session=session)


def refresh_stale_datasets(context: RunContext, limit: int = STALE_PER_RUN) -> int:
    """Recompute the datasets marked stale, a transaction per batch, while the
    run has time and up to *limit* of them; one batch always, even past the
    deadline, so derived quantities keep close behind the data while a
    backlog takes every run's budget. Return how many are still stale.
    """
    done = 0
    while done < limit and not context.stop.is_set():
        if done and context.time_left() <= 0:
            break
        with context.Session.begin() as session:
            refreshed = refresh_stale(session=session, limit=STALE_BATCH)
        done += refreshed
        if refreshed < STALE_BATCH:
            break
    with context.Session() as session:
        return stale_count(session=session)
