"""Applying DDM (Rucio) events to the catalogue.

DDM publishes its events in the format of Rucio's hermes daemon (SOURCES.md).
Delivery is at least once and out of order, so an event is never applied "on
top of" the catalogue. Every message is kept in ``ddm_message`` with its
payload, and the DDM state of a dataset, a container or a replica is
recomputed from *all* the messages about it:

- a message seen again (same message id) is skipped, and the same event
  published twice (two ids) says nothing new;
- an event about a dataset, container or file that the catalogue does not
  have yet waits in ``ddm_message`` and takes effect when it arrives:
  :func:`refresh_ddm_batch` runs in every dataset refresh, and
  :func:`mark_lost_files` whenever files are written;
- what a later event can undo (open and close, attach and detach) is decided
  by the events' ``created_at``, not by the order they arrive in; an
  ``erase`` always wins, since Rucio never reuses a name.

A message that cannot be understood goes to quarantine; an unknown event type
is kept, marked ignored, and counted. Functions here never commit.
:func:`apply_messages` returns the datasets whose derived values may have
changed, for the caller to refresh: this module sits below
:mod:`catalog.derived`, which calls :func:`refresh_ddm_batch`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.orm import Session

from catalog.db import among, chunked, utcnow
from catalog.fields import parse_whole
from catalog.models import (
    Container,
    ContainerMember,
    Dataset,
    DdmMessage,
    File,
    Replica,
    TaskRun,
)
from catalog.operations import quarantine
from catalog.reconciliation import reconcile

SOURCE = "ddm"

# What became of a message.
APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"
QUARANTINED = "quarantined"
DROPPED = "dropped"  # could not even be quarantined (logged instead)

# The event type recorded for a message that could not be read.
UNREADABLE = "(unreadable)"

DATASET_EVENTS = frozenset({"create_dts", "open", "close", "erase", "incomplete"})
REPLICA_EVENTS = frozenset({"datasetlock_ok", "deletion-done"})
# What the replicas of a dataset follow from: an erase leaves none complete.
REPLICA_FACTS = REPLICA_EVENTS | {"erase"}
MEMBERSHIP_EVENTS = frozenset({"register_cnt", "erase_cnt", "detach"})
# Events about a file (their name is an LFN), not a dataset or a container.
FILE_EVENTS = frozenset({"lost", "deletion-done"})
EVENT_TYPES = (
    DATASET_EVENTS | REPLICA_EVENTS | MEMBERSHIP_EVENTS | {"create_cnt", "lost"}
)
OPENING = ("create_dts", "open", "close")

# AMI name, the catalogue's count, DDM's count.
QUANTITIES = (
    ("nFiles", "n_files", "ddm_n_files"),
    ("totalEvents", "total_events", "ddm_total_events"),
    ("totalSize", "total_size", "ddm_total_size"),
)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
MAX_PAYLOAD = 60_000  # bytes of text: a TEXT column holds 64 kB on MariaDB
MAX_COUNT = 2**63 - 1
CHUNK = 1000
# Lost-file reports read whole rather than looked up file by file.
FEW_LOST = 10_000


class UnreadableMessage(ValueError):
    """A DDM message that cannot be understood; the message says why."""


@dataclass(frozen=True)
class DdmEvent:
    """One event, as Rucio's hermes daemon publishes it."""

    event_type: str
    payload: Mapping[str, Any]
    created_at: dt.datetime

    def to_body(self) -> str:
        """The message body, in hermes' JSON format."""
        created = self.created_at.astimezone(dt.UTC).strftime(TIME_FORMAT)
        document = {
            "event_type": self.event_type,
            "payload": dict(self.payload),
            "created_at": created,
        }
        return json.dumps(document, default=str)


@dataclass(frozen=True)
class Fields:
    """The payload fields of an event that the catalogue uses."""

    scope: str
    name: str
    child_name: str | None = None
    child_type: str | None = None
    dataset_name: str | None = None
    rse: str | None = None
    rule_id: str | None = None
    length: int | None = None
    size: int | None = None
    events: int | None = None


# --- reading messages ----------------------------------------------------


def read_fields(event_type: str, payload: Mapping[str, Any]) -> Fields:
    """The fields that *event_type* needs from *payload*.

    :raises UnreadableMessage: when one is missing or has the wrong type.
    """
    scope, name = _text(payload, "scope", length=64), _text(payload, "name")
    if event_type not in FILE_EVENTS:  # a dataset or a container
        _check_scope(scope, name)
    if event_type in MEMBERSHIP_EVENTS:
        _text(payload, "childscope", "child_scope", length=64)
        child_type = _optional_text(payload, "childtype", "child_type", length=16)
        return Fields(
            scope,
            name,
            child_name=_text(payload, "childname", "child_name"),
            child_type=(child_type or "DATASET").upper(),
        )
    if event_type == "close":
        length, size = _count(payload, "length"), _count(payload, "bytes")
        events = _count(payload, "events", required=False)
        return Fields(scope, name, length=length, size=size, events=events)
    if event_type == "lost":
        return Fields(scope, name, dataset_name=_optional_text(payload, "dataset_name"))
    if event_type == "datasetlock_ok":
        rse, rule = _rse(payload), _optional_text(payload, "rule_id", length=64)
        return Fields(scope, name, rse=rse, rule_id=rule)
    if event_type == "deletion-done":
        size = _count(payload, "bytes", required=False)
        dataset = _optional_text(payload, "dataset_name", "datasetname")
        return Fields(scope, name, rse=_rse(payload), size=size, dataset_name=dataset)
    return Fields(scope, name)


def _document(body: str | bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, TypeError) as err:
        raise UnreadableMessage(f"the body is not JSON: {err}") from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise UnreadableMessage(f"the body is a JSON {kind}, not an object")
    return document


def _event_type(document: Mapping[str, Any]) -> str:
    value = document.get("event_type")
    if not isinstance(value, str) or not value.strip():
        raise UnreadableMessage(f"event_type = {value!r} is not an event type")
    return value.strip().lower()


def _event(event_type: str, document: Mapping[str, Any]) -> DdmEvent:
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise UnreadableMessage(f"payload = {payload!r} is not a JSON object")
    return DdmEvent(event_type, payload, _moment(document.get("created_at")))


def _moment(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise UnreadableMessage(f"created_at = {value!r} is not a time")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UnreadableMessage(f"created_at = {value!r} is not a time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _optional_text(
    payload: Mapping[str, Any], *keys: str, length: int = 255
) -> str | None:
    """The first of *keys* that *payload* holds, as stripped text."""
    for key in keys:
        value = payload.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise UnreadableMessage(f"payload field {key} = {value!r} is not text")
        if any(ord(char) < 32 for char in value):
            raise UnreadableMessage(
                f"payload field {key} = {value!r} holds control characters"
            )
        if len(value.strip()) > length:
            raise UnreadableMessage(
                f"payload field {key} is longer than {length} characters"
            )
        return value.strip()
    return None


def _text(payload: Mapping[str, Any], *keys: str, length: int = 255) -> str:
    value = _optional_text(payload, *keys, length=length)
    if value is None:
        raise UnreadableMessage(f"payload field {' or '.join(keys)} is missing")
    return value


def _rse(payload: Mapping[str, Any]) -> str:
    # RSE names are upper case in Rucio; MariaDB would compare them blind to
    # case anyway.
    return _text(payload, "rse", length=64).upper()


def _count(
    payload: Mapping[str, Any], key: str, *, required: bool = True
) -> int | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise UnreadableMessage(f"payload field {key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnreadableMessage(f"payload field {key} = {value!r} is not a count")
    number = parse_whole(value) if isinstance(value, str) else value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or not 0 <= number <= MAX_COUNT:
        raise UnreadableMessage(f"payload field {key} = {value!r} is not a count")
    return number


# --- applying messages ---------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_messages` did: what became of each message, in
    order, and the datasets whose derived values the caller must refresh.
    """

    statuses: list[str]
    datasets: set[int]


def apply_messages(
    messages: Sequence[tuple[str, str | bytes]], *, session: Session
) -> Applied:
    """Apply DDM messages, given as (broker message id, body), once each.

    A message already seen is skipped; an unknown event type is recorded as
    ignored; a message that cannot be understood goes to quarantine. None of
    them raises. The new messages are recorded first; then each dataset,
    container, file and replica they speak of is brought up to date, once,
    from every message about it.
    """
    keys = [message_key(message_id) for message_id, _ in messages]
    seen = _seen(keys, session=session)
    batch = _Batch()
    for key, (_, body) in zip(keys, messages, strict=True):
        if key in seen:
            batch.statuses.append(DUPLICATE)
            continue
        seen.add(key)
        batch.read(key, body, session=session)
    batch.name_deletions(session=session)
    if batch.rows:
        session.execute(insert(DdmMessage), batch.rows)
    return Applied(batch.statuses, batch.take_effect(session=session))


def record_unreadable(
    message_id: str, body: str | bytes, reason: str, *, session: Session
) -> None:
    """Quarantine the message *body* with *reason*, and remember its id so
    that a redelivery is not quarantined again.
    """
    key = message_key(message_id)
    quarantine(SOURCE, key, _as_text(body), reason, session=session)
    if not _seen([key], session=session):
        session.execute(insert(DdmMessage), [_row(key, UNREADABLE)])


def message_key(message_id: str) -> str:
    """*message_id* as stored: itself, or its digest when it is too long."""
    if 0 < len(message_id) <= 255:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()


def _seen(keys: Sequence[str], *, session: Session) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(keys))):
        query = select(DdmMessage.message_id).where(DdmMessage.message_id.in_(chunk))
        found.update(session.scalars(query))
    return found


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _as_text(body: str | bytes) -> str:
    """*body* as quarantine can keep it: no NUL (PostgreSQL text cannot hold
    one), at most ``MAX_PAYLOAD`` bytes (MariaDB's TEXT holds 64 kB).
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.replace("\x00", "\\x00")
    data = text.encode()
    if len(data) <= MAX_PAYLOAD:
        return text
    return data[:MAX_PAYLOAD].decode("utf-8", "ignore") + " ... (truncated)"


def _row(key: str, event_type: str, **values: Any) -> dict[str, Any]:
    """A ``ddm_message`` row; every row of one INSERT has the same keys."""
    row = {
        "message_id": key,
        "event_type": event_type,
        "name": None,
        "child_name": None,
        "created_at": None,
        "received": utcnow(),
        "ignored": False,
        "payload": None,
    }
    row.update(values)
    return row


class _Batch:
    """The messages of one :func:`apply_messages`, read and not yet applied."""

    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.events: list[tuple[DdmEvent, Fields, dict[str, Any]]] = []

    def read(self, key: str, body: str | bytes, *, session: Session) -> None:
        try:
            document = _document(body)
            event_type = _event_type(document)
            if event_type not in EVENT_TYPES:
                self._ignore(key, event_type, document)
                return
            event = _event(event_type, document)
            fields = read_fields(event_type, event.payload)
            payload = _dump(event.payload)
        except UnreadableMessage as err:
            quarantine(SOURCE, key, _as_text(body), str(err), session=session)
            self.rows.append(_row(key, UNREADABLE))
            self.statuses.append(QUARANTINED)
            return
        name, child = _subject(event_type, fields)
        row = _row(
            key,
            event_type,
            name=name,
            child_name=child,
            created_at=event.created_at,
            payload=payload,
        )
        self.rows.append(row)
        self.events.append((event, fields, row))
        self.statuses.append(APPLIED)

    def _ignore(self, key: str, event_type: str, document: Mapping[str, Any]) -> None:
        payload = document.get("payload")
        name = payload.get("name") if isinstance(payload, dict) else None
        name = name[:255] if isinstance(name, str) else None
        self.rows.append(_row(key, event_type[:32], name=name, ignored=True))
        self.statuses.append(IGNORED)

    def name_deletions(self, *, session: Session) -> None:
        """Give a ``deletion-done`` without a dataset the dataset of its file,
        when the catalogue has the file (otherwise :func:`refresh_ddm_batch` does,
        when the file arrives).
        """
        rows = [
            row
            for event, _, row in self.events
            if event.event_type == "deletion-done" and row["name"] is None
        ]
        owners = _datasets_of_files([row["child_name"] for row in rows], session)
        for row in rows:
            row["name"] = owners.get(row["child_name"])

    def take_effect(self, *, session: Session) -> set[int]:
        """Bring what the messages speak of up to date; return the datasets
        to refresh.
        """
        kinds: dict[str, list[tuple[Fields, dict[str, Any]]]] = {}
        for event, fields, row in self.events:
            kinds.setdefault(event.event_type, []).append((fields, row))

        def names(*wanted: str) -> set[str]:
            return {f.name for kind in wanted for f, _ in kinds.get(kind, [])}

        created = [
            (f.name, f.scope, row["created_at"])
            for kind in ("create_cnt", "register_cnt")
            for f, row in kinds.get(kind, [])
        ]
        _ensure_containers(created, session=session)
        _sync_container_erases(names("create_cnt", "erase"), session=session)
        members = {
            (f.name, f.child_name)
            for kind in MEMBERSHIP_EVENTS
            for f, _ in kinds.get(kind, [])
            if f.child_name is not None
        }
        _sync_memberships(members, session=session)
        replicas = {
            row["name"]
            for kind in REPLICA_FACTS
            for _, row in kinds.get(kind, [])
            if row["name"] is not None
        }
        _sync_replicas(replicas, session=session)
        reports = [(f.scope, f.name, f.dataset_name) for f, _ in kinds.get("lost", [])]
        lost = _lose_files(reports, session=session)
        return lost | _dataset_ids(names(*DATASET_EVENTS), session=session)


def _check_scope(scope: str, name: str) -> None:
    """:raises UnreadableMessage: when the dataset or container *name* is not
    one of *scope*: a Rucio identifier is scope and name, and an ATLAS name
    starts with its scope (``user.bob:mc16_13TeV...`` is no dataset of ours,
    and must not erase or close ``mc16_13TeV:mc16_13TeV...``).
    """
    if name != scope and not name.startswith(scope + "."):
        raise UnreadableMessage(
            f"the name {name!r} is not one of scope {scope!r}: a dataset's or a "
            "container's name starts with its scope"
        )


def _subject(event_type: str, fields: Fields) -> tuple[str | None, str | None]:
    """The row's (name, child name): the dataset or container a message is
    about, and the file or dataset inside it.
    """
    if event_type in FILE_EVENTS:
        return fields.dataset_name, fields.name
    return fields.name, fields.child_name


def _dump(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    if len(text) > MAX_PAYLOAD:
        raise UnreadableMessage(f"the payload is over {MAX_PAYLOAD} characters")
    return text


def _datasets_of_files(lfns: Sequence[str], session: Session) -> dict[str, str]:
    owners: dict[str, str] = {}
    for chunk in _chunks(sorted(set(lfns))):
        query = (
            select(File.lfn, Dataset.name)
            .join(Dataset, File.dataset_id == Dataset.id)
            .where(File.lfn.in_(chunk))
        )
        owners.update({lfn: name for lfn, name in session.execute(query)})
    return owners


def _dataset_ids(names: set[str], *, session: Session) -> set[int]:
    ids: set[int] = set()
    for chunk in _chunks(sorted(names)):
        ids.update(session.scalars(select(Dataset.id).where(Dataset.name.in_(chunk))))
    return ids


def _lose_files(
    reports: Sequence[tuple[str, str, str | None]], *, session: Session
) -> set[int]:
    """Mark lost the catalogue's files that the *reports* (scope, LFN, and
    dataset name when given) speak of: a file of a dataset of that scope,
    and of that dataset when one is named (another scope's file of the same
    name is another file); return their datasets.
    """
    wanted: dict[str, list[tuple[str, str | None]]] = {}
    for scope, lfn, dataset in reports:
        wanted.setdefault(lfn, []).append((scope, dataset))
    ids: set[int] = set()
    for chunk in _chunks(sorted(wanted)):
        query = (
            select(File, Dataset.scope, Dataset.name)
            .join(Dataset, File.dataset_id == Dataset.id)
            .where(File.lfn.in_(chunk))
        )
        for file, scope, dataset in session.execute(query):
            if any(
                scope == said and named in (None, dataset)
                for said, named in wanted[file.lfn]
            ):
                file.lost = True
                ids.add(file.dataset_id)
    return ids


def mark_lost_files(lfns: Iterable[str], *, session: Session) -> int:
    """Mark lost the files among *lfns* that DDM has reported lost (files
    written after their ``lost`` message); return how many.
    """
    marked = 0
    reported = _lost_reports(session=session)
    for chunk in chunked(list(dict.fromkeys(lfns))):
        if reported is not None:
            lost = sorted(reported.intersection(chunk))
        else:
            query = select(DdmMessage.child_name).where(
                DdmMessage.event_type == "lost", among(DdmMessage.child_name, chunk)
            )
            lost = sorted({name for name in session.scalars(query) if name})
        if lost:
            statement = update(File).where(among(File.lfn, lost), File.lost.is_(False))
            session.execute(statement.values(lost=True))
            marked += len(lost)
    return marked


def _lost_reports(*, session: Session) -> set[str] | None:
    """The files DDM has reported lost, when they are few (they usually
    are): one indexed query instead of one lookup per file; None when many.
    """
    query = (
        select(DdmMessage.child_name)
        .where(DdmMessage.event_type == "lost")
        .limit(FEW_LOST + 1)
    )
    rows = session.scalars(query).all()
    if len(rows) > FEW_LOST:
        return None
    return {name for name in rows if name}


# --- the facts remembered ----------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    """An applied message, as the recomputations read it back."""

    name: str | None
    child_name: str | None
    created_at: dt.datetime
    event_type: str
    payload: str
    fields: Fields

    @property
    def order(self) -> tuple[dt.datetime, str, str]:
        # Ties in created_at are broken by content, never by arrival.
        return (self.created_at, self.event_type, self.payload)


def _facts(session: Session, *conditions: ColumnElement[bool]) -> list[_Fact]:
    """The applied messages that meet *conditions*, oldest first."""
    query = select(
        DdmMessage.name,
        DdmMessage.child_name,
        DdmMessage.created_at,
        DdmMessage.event_type,
        DdmMessage.payload,
    ).where(DdmMessage.ignored.is_(False), DdmMessage.payload.is_not(None), *conditions)
    facts = []
    for name, child, created_at, event_type, payload in session.execute(query):
        if created_at is None or payload is None:
            continue
        fields = read_fields(event_type, json.loads(payload))
        facts.append(_Fact(name, child, created_at, event_type, payload, fields))
    return sorted(facts, key=lambda fact: fact.order)


def _grouped(facts: list[_Fact]) -> dict[str | None, list[_Fact]]:
    groups: dict[str | None, list[_Fact]] = {}
    for fact in facts:
        groups.setdefault(fact.name, []).append(fact)
    return groups


# --- datasets --------------------------------------------------------------


def refresh_ddm_batch(datasets: Sequence[Dataset], *, session: Session) -> None:
    """Set the DDM fields of *datasets* (``ddmOpen``, DDM's counts,
    ``ddmConsistent``, ``ddmIncomplete``, ``ddmErased``) and their replicas
    from every message about them, with a few queries for the whole batch.

    Call it after the counts (a ``close`` is compared with the files there
    are now) and before the status (an ``erase`` trashes the dataset). Fields
    no message speaks of are left as they are.
    """
    for chunk in _chunks(list(datasets)):
        _claim_deletions(chunk, session=session)
        kinds = sorted(DATASET_EVENTS | REPLICA_EVENTS)
        names = [dataset.name for dataset in chunk]
        facts = _grouped(
            _facts(
                session, DdmMessage.name.in_(names), DdmMessage.event_type.in_(kinds)
            )
        )
        closed = {d.id for d in chunk if _kinds(facts.get(d.name), {"close"})}
        differences: dict[int, dict[str, tuple[int, int]]] = {}
        for dataset in chunk:
            state = _kinds(facts.get(dataset.name), DATASET_EVENTS)
            if state:
                _set_state(dataset, state)
            if dataset.id in closed:
                differences[dataset.id] = _consistency(dataset)
        reconcile(SOURCE, differences, session=session)
        _refresh_replicas(facts, session=session)


def spoken_of(names: Sequence[str], *, session: Session) -> set[str]:
    """The datasets among *names* that an applied message speaks of."""
    found: set[str] = set()
    for chunk in _chunks(list(names)):
        query = select(DdmMessage.name).where(
            among(DdmMessage.name, chunk), DdmMessage.ignored.is_(False)
        )
        found.update(name for name in session.scalars(query.distinct()) if name)
    return found


def _refresh_replicas(
    facts: dict[str | None, list[_Fact]], *, session: Session
) -> None:
    """Set the replicas of the datasets in *facts* (by name) that have any."""
    held = {name: _kinds(group, REPLICA_FACTS) for name, group in facts.items()}
    held = {name: group for name, group in held.items() if name and group}
    if not held:
        return
    names = sorted(name for name in held if name)
    query = select(Replica).where(Replica.dataset_name.in_(names))
    existing = {(row.dataset_name, row.rse): row for row in session.scalars(query)}
    for name in names:
        _set_replicas(name, _replica_states(held[name]), existing, session)


def _kinds(facts: list[_Fact] | None, kinds: Iterable[str]) -> list[_Fact]:
    wanted = set(kinds)
    return [fact for fact in facts or [] if fact.event_type in wanted]


def _claim_deletions(datasets: Sequence[Dataset], *, session: Session) -> None:
    """Give the ``deletion-done`` messages of files that arrived after them
    the name of the file's dataset.
    """
    # Unclaimed messages are few (files usually arrive before their replicas
    # are deleted): find them first, then only their files.
    unclaimed = session.scalars(
        select(DdmMessage).where(
            DdmMessage.event_type == "deletion-done", DdmMessage.name.is_(None)
        )
    ).all()
    if not unclaimed:
        return
    names = {dataset.id: dataset.name for dataset in datasets}
    lfns = sorted({row.child_name for row in unclaimed if row.child_name})
    query = select(File.lfn, File.dataset_id).where(
        File.lfn.in_(lfns), File.dataset_id.in_(sorted(names))
    )
    owner = {lfn: names[dataset_id] for lfn, dataset_id in session.execute(query)}
    for row in unclaimed:
        if row.child_name in owner:
            row.name = owner[row.child_name]


def _set_state(dataset: Dataset, facts: list[_Fact]) -> None:
    opening = [fact for fact in facts if fact.event_type in OPENING]
    if opening:
        dataset.ddm_open = opening[-1].event_type != "close"
    closes = [fact.fields for fact in facts if fact.event_type == "close"]
    if closes:
        dataset.ddm_n_files = closes[-1].length
        dataset.ddm_total_events = closes[-1].events
        dataset.ddm_total_size = closes[-1].size
    erases = [fact.created_at for fact in facts if fact.event_type == "erase"]
    if erases:
        dataset.ddm_erased = erases[0]
    if any(fact.event_type == "incomplete" for fact in facts):
        dataset.ddm_incomplete = True


def _consistency(dataset: Dataset) -> dict[str, tuple[int, int]]:
    """Compare DDM's counts at the last ``close`` with the catalogue's; return
    the differences, as {quantity: (catalogue, DDM)}. While the dataset is
    open again, there is nothing to compare.
    """
    differences: dict[str, tuple[int, int]] = {}
    if dataset.ddm_open:
        dataset.ddm_consistent = None
        return differences
    for quantity, ours, theirs in QUANTITIES:
        expected, found = getattr(dataset, theirs), getattr(dataset, ours)
        if expected is not None and expected != found:
            differences[quantity] = (found, expected)
    dataset.ddm_consistent = not differences
    return differences


# --- replicas --------------------------------------------------------------


@dataclass
class _ReplicaState:
    complete: bool = False
    rule_id: str | None = None
    deleted: dict[str, int] = field(default_factory=dict)


def _sync_replicas(names: set[str], *, session: Session) -> None:
    """Set the replicas of the datasets *names* from their ``datasetlock_ok``
    and ``deletion-done`` messages (a file deleted twice counts once).
    """
    for chunk in _chunks(sorted(names)):
        facts = _facts(
            session,
            DdmMessage.name.in_(chunk),
            DdmMessage.event_type.in_(sorted(REPLICA_FACTS)),
        )
        _refresh_replicas(_grouped(facts), session=session)


def _replica_states(facts: list[_Fact]) -> dict[str, _ReplicaState]:
    """The replica at each storage element, from its *facts* (oldest first).
    A replica is complete from a ``datasetlock_ok`` (all its files there)
    until a ``deletion-done`` of one of its files: one whose files were
    deleted is no complete replica, until DDM locks it again. A dataset DDM
    erased has no complete replica, whatever came after: Rucio never
    reuses a name, and deletions may follow the erase or never come.
    """
    states: dict[str, _ReplicaState] = {}
    erased = any(fact.event_type == "erase" for fact in facts)
    for fact in facts:
        if fact.fields.rse is None:
            continue
        state = states.setdefault(fact.fields.rse, _ReplicaState())
        state.complete = fact.event_type == "datasetlock_ok"
        if state.complete:
            state.rule_id = fact.fields.rule_id or state.rule_id
        else:
            size = max(fact.fields.size or 0, state.deleted.get(fact.fields.name, 0))
            state.deleted[fact.fields.name] = size
    for state in states.values():
        state.complete = state.complete and not erased
    return states


def _set_replicas(
    name: str,
    states: dict[str, _ReplicaState],
    existing: dict[tuple[str, str], Replica],
    session: Session,
) -> None:
    for rse, state in sorted(states.items()):
        row = existing.get((name, rse))
        if row is None:
            row = existing[(name, rse)] = Replica(dataset_name=name, rse=rse)
            session.add(row)
        row.complete = state.complete
        row.rule_id = state.rule_id
        row.deleted_files = len(state.deleted)
        row.deleted_bytes = sum(state.deleted.values())


# --- containers ------------------------------------------------------------


def _containers(names: Iterable[str], *, session: Session) -> dict[str, Container]:
    found: dict[str, Container] = {}
    for chunk in _chunks(sorted(set(names))):
        query = select(Container).where(Container.name.in_(chunk))
        found.update(
            {container.name: container for container in session.scalars(query)}
        )
    return found


def _ensure_containers(
    created: list[tuple[str, str, dt.datetime]], *, session: Session
) -> None:
    """Make sure the containers exist that a ``create_cnt`` or a
    ``register_cnt`` names, created at the earliest of those events.
    """
    if not created:
        return
    earliest: dict[str, tuple[dt.datetime, str]] = {}
    for name, scope, when in created:
        if name not in earliest or when < earliest[name][0]:
            earliest[name] = (when, scope)
    existing = _containers(earliest, session=session)
    for name, (when, scope) in sorted(earliest.items()):
        container = existing.get(name)
        if container is None:
            session.add(Container(name=name, scope=scope, created=when))
        elif when < container.created:
            container.created = when
    session.flush()


def _sync_container_erases(names: set[str], *, session: Session) -> None:
    """Mark erased the containers among *names* that DDM erased."""
    containers = _containers(names, session=session)
    for chunk in _chunks(sorted(containers)):
        conditions = (DdmMessage.name.in_(chunk), DdmMessage.event_type == "erase")
        for name, group in _grouped(_facts(session, *conditions)).items():
            if name in containers:
                containers[name].erased = group[0].created_at


def _sync_memberships(members: set[tuple[str, str]], *, session: Session) -> None:
    """Put each (container, child) of *members* in its container or take it
    out, as the latest of its ``register_cnt``, ``erase_cnt`` and ``detach``
    messages says. A container the catalogue does not have yet keeps its
    messages until its ``create_cnt`` or ``register_cnt`` arrives.
    """
    children: dict[str, set[str]] = {}
    for container_name, child in members:
        children.setdefault(container_name, set()).add(child)
    containers = _containers(children, session=session)
    for name, container in sorted(containers.items()):
        for chunk in _chunks(sorted(children[name])):
            _sync_children(container, chunk, session=session)


def _sync_children(
    container: Container, children: Sequence[str], *, session: Session
) -> None:
    facts = _facts(
        session,
        DdmMessage.name == container.name,
        DdmMessage.child_name.in_(children),
        DdmMessage.event_type.in_(sorted(MEMBERSHIP_EVENTS)),
    )
    latest = {fact.child_name: fact for fact in facts}  # oldest first
    query = select(ContainerMember).where(
        ContainerMember.container_id == container.id,
        ContainerMember.child_name.in_(children),
    )
    members = {member.child_name: member for member in session.scalars(query)}
    for child, fact in sorted(latest.items(), key=lambda item: str(item[0])):
        member = members.get(child or "")
        if fact.event_type != "register_cnt" or child is None:
            if member is not None:
                session.delete(member)
            continue
        if member is None:
            member = ContainerMember(container_id=container.id, child_name=child)
            session.add(member)
        member.child_type = fact.fields.child_type or "DATASET"
        member.added = fact.created_at


# --- reading the DDM state --------------------------------------------------


def containers_of(name: str, *, session: Session) -> list[str]:
    """The names of the containers that hold dataset *name* (``inContainer``)."""
    query = (
        select(Container.name)
        .join(ContainerMember, ContainerMember.container_id == Container.id)
        .where(ContainerMember.child_name == name)
        .order_by(Container.name)
    )
    return list(session.scalars(query))


def replicas_of(name: str, *, session: Session) -> list[Replica]:
    """The replicas of dataset *name*, by storage element."""
    query = select(Replica).where(Replica.dataset_name == name)
    return list(session.scalars(query.order_by(Replica.rse)))


@dataclass(frozen=True)
class DdmSummary:
    """What DDM says of a dataset, in brief: its state (``erased``,
    ``incomplete``, ``open``, ``closed`` or ``unknown`` before any message),
    its complete replicas (not those files were deleted from since DDM
    locked them), its files reported lost, and whether its counts at the
    last ``close`` agree with the catalogue's.
    """

    state: str
    replicas: int
    lost_files: int
    consistent: bool | None

    def __str__(self) -> str:
        parts = [f"DDM {self.state}"]
        if self.consistent is False:
            parts.append("counts differ")
        if self.replicas:
            parts.append(f"{self.replicas} replica{'s' if self.replicas > 1 else ''}")
        if self.lost_files:
            plural = "s" if self.lost_files > 1 else ""
            parts.append(f"{self.lost_files} lost file{plural}")
        return ", ".join(parts)


def ddm_state(dataset: Dataset) -> str:
    """The DDM state of *dataset*: ``erased`` wins over ``incomplete``, which
    wins over ``open`` or ``closed``; ``unknown`` before any message.
    """
    if dataset.ddm_erased is not None:
        return "erased"
    if dataset.ddm_incomplete:
        return "incomplete"
    if dataset.ddm_open is None:
        return "unknown"
    return "open" if dataset.ddm_open else "closed"


def ddm_summaries(
    datasets: Sequence[Dataset], *, session: Session
) -> dict[int, DdmSummary]:
    """A :class:`DdmSummary` of each of *datasets*, by dataset id."""
    names = [dataset.name for dataset in datasets]
    replicas = select(Replica.dataset_name, func.count()).where(
        Replica.dataset_name.in_(names), Replica.complete.is_(True)
    )
    complete = {
        name: n for name, n in session.execute(replicas.group_by(Replica.dataset_name))
    }
    lost = select(File.dataset_id, func.count()).where(
        File.dataset_id.in_([dataset.id for dataset in datasets]), File.lost.is_(True)
    )
    lost_files = {id_: n for id_, n in session.execute(lost.group_by(File.dataset_id))}
    return {
        dataset.id: DdmSummary(
            ddm_state(dataset),
            int(complete.get(dataset.name, 0)),
            int(lost_files.get(dataset.id, 0)),
            dataset.ddm_consistent,
        )
        for dataset in datasets
    }


@dataclass(frozen=True)
class DdmStatistics:
    """How many DDM messages were applied, ignored and quarantined."""

    applied: int
    ignored: int
    quarantined: int

    @property
    def messages(self) -> int:
        return self.applied + self.ignored + self.quarantined


def ddm_statistics(*, session: Session) -> DdmStatistics:
    """Count the DDM messages seen, by what became of them."""
    query = select(
        DdmMessage.ignored, DdmMessage.payload.is_(None), func.count()
    ).group_by(DdmMessage.ignored, DdmMessage.payload.is_(None))
    counts = {APPLIED: 0, IGNORED: 0, QUARANTINED: 0}
    for ignored, unreadable, count in session.execute(query):
        status = IGNORED if ignored else QUARANTINED if unreadable else APPLIED
        counts[status] += int(count)
    return DdmStatistics(counts[APPLIED], counts[IGNORED], counts[QUARANTINED])


def ingested_before(*, session: Session) -> bool:
    """Whether the catalogue has DDM state from before its DDM client id was
    stored: a ``ddm_message`` row, or a run of the DDM task that did not
    fail (a subscription on a quiet destination leaves no message). Versions
    of hepcat before the ``ddm_client_id`` setting subscribed as ``hepcat``.
    """
    # The task server records the DDM ingester's runs under this source's name.
    messages = select(DdmMessage.message_id).limit(1)
    runs = select(TaskRun.id).where(
        TaskRun.task_name == SOURCE, TaskRun.outcome == "ok"
    )
    return any(session.scalar(query) is not None for query in (messages, runs.limit(1)))
