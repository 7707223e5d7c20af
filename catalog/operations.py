"""The catalogue's own bookkeeping for ingestion: stop points and quarantine.

Both are written in the caller's transaction, so a stop point commits
together with the rows it covers, and a quarantined record together with the
progress past it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.models import Quarantine, StopPoint

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
    """Keep a source record that could not be understood, with the reason."""
    text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    entry = Quarantine(
        source=source,
        record_key=(record_key or "")[:255] or None,
        payload=_clip(text, MAX_PAYLOAD),
        reason=_clip(reason, 4000),
    )
    session.add(entry)
    return entry


def _clip(text: str, size: int) -> str:
    """*text* cut to at most *size* bytes of UTF-8, on a character boundary."""
    return text.encode()[:size].decode(errors="ignore")


def quarantine_count(*, session: Session, source: str | None = None) -> int:
    """How many records are in quarantine (of *source*, when given)."""
    query = select(func.count()).select_from(Quarantine)
    if source is not None:
        query = query.where(Quarantine.source == source)
    return session.scalar(query) or 0
