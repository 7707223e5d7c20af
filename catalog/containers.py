"""DDM containers: a container's name resolved to its datasets and their
totals.

DDM's ``create_cnt``, ``register_cnt``, ``erase_cnt`` and ``detach`` messages
keep the ``container`` and ``container_member`` rows (:mod:`catalog.ddm`);
this module reads them. Datasets and containers share Rucio's one namespace
of names, so wherever a dataset's name is taken a container's may be given
too (:func:`dataset_or_container`); a dataset of the same name wins.

A period container may hold tens of thousands of datasets: their names are
read, but their totals and statuses are added up in SQL, and the datasets
themselves are read a page at a time (:func:`member_page`).

A container's name is read once, by :func:`named`, and its datasets are
found once, by :func:`members_of`: the lookups here and MQL's
``inContainer`` (:mod:`catalog.mql`), which the search pages and the JSON
API filter with, take the same names and find the same datasets.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, case, false, func, select
from sqlalchemy.orm import Session, aliased

from catalog.datasets import Page, check_paging, get_dataset, similar_names, split_did
from catalog.db import among, chunked
from catalog.errors import ContainerNotFound, DatasetNotFound
from catalog.models import Container, ContainerMember, Dataset

CONTAINER = "CONTAINER"
"""A container's type in Rucio (``childtype``), and its ``dataType`` on the
AMI endpoint and in the JSON API.
"""

#: The dataset names an answer lists at most (the JSON API's ``datasets`` and
#: ``notCatalogued``); ``nDatasets`` counts them all.
LISTED = 1000


@dataclass(frozen=True)
class ContainerInfo:
    """A DDM container as the catalogue knows it.

    :param scope: its Rucio scope, as DDM gave it.
    :param created: the time of the first message that made it known.
    :param erased: when DDM erased it; None while it is not.
    :param members: the names of the datasets in it, and in the containers
        it holds, by name: all that DDM put there, catalogued or not.
    :param catalogued: the names of those of *members* the catalogue has.
    :param n_files: the sum of its catalogued datasets' ``nFiles``.
    :param total_events: the sum of their ``totalEvents``.
    :param total_size: the sum of their ``totalSize``, in bytes.
    :param prodsys_statuses: their distinct ``prodsysStatus``, sorted.
    :param ami_statuses: their distinct ``amiStatus``, sorted.
    """

    name: str
    scope: str | None
    created: dt.datetime | None
    erased: dt.datetime | None
    members: list[str]
    catalogued: frozenset[str]
    n_files: int
    total_events: int
    total_size: int
    prodsys_statuses: list[str]
    ami_statuses: list[str]

    @property
    def n_datasets(self) -> int:
        """The number of datasets in it (``nDatasets``)."""
        return len(self.members)

    @property
    def not_catalogued(self) -> list[str]:
        """The datasets DDM put in it that the catalogue does not have yet."""
        return [name for name in self.members if name not in self.catalogued]

    @property
    def listed(self) -> list[str]:
        """The first :data:`LISTED` of :attr:`members`."""
        return self.members[:LISTED]

    @property
    def listed_not_catalogued(self) -> list[str]:
        """The first :data:`LISTED` of :attr:`not_catalogued`."""
        return self.not_catalogued[:LISTED]


def dataset_or_container(name: str, *, session: Session) -> Dataset | ContainerInfo:
    """Return the dataset called *name* (:func:`~catalog.datasets.get_dataset`),
    or else the DDM container of that name (:func:`find_container`).

    :raises DatasetNotFound: when it names neither; the error suggests close
        dataset names, as it does where only datasets are looked for.
    """
    try:
        return get_dataset(name, session=session)
    except DatasetNotFound:
        found = find_container(name, session=session)
        if found is None:
            raise
        return found


def get_container(name: str, *, session: Session) -> ContainerInfo:
    """Return the DDM container called *name* (see :func:`find_container`).

    :raises ContainerNotFound: if there is none; the error suggests close names.
    """
    found = find_container(name, session=session)
    if found is None:
        bare = split_did(name)[1].rstrip("/")
        close = similar_names(bare, session=session, column=Container.name)
        raise ContainerNotFound(name, suggestions=close)
    return found


def find_container(name: str, *, session: Session) -> ContainerInfo | None:
    """Return the DDM container called *name*, or None.

    As for a dataset, *name* may be a Rucio DID (``scope:name``, read by
    :func:`~catalog.datasets.split_did`), which also asks for the scope. A
    trailing ``/`` (the container mark of ATLAS names) may be given or left
    out, whichever way DDM spelt the name: the name as given wins when DDM
    knows both.
    """
    container = _container(name, session=session)
    if container is None:
        return None
    members = _member_names(container, session=session)
    totals = _Totals()
    for chunk in chunked(members):
        totals.add(chunk, session=session)
    return ContainerInfo(
        container.name,
        container.scope,
        container.created,
        container.erased,
        members,
        frozenset(totals.catalogued),
        totals.n_files,
        totals.total_events,
        totals.total_size,
        sorted(totals.prodsys_statuses),
        sorted(totals.ami_statuses),
    )


def member_page(
    container: ContainerInfo, *, session: Session, offset: int = 0, limit: int = 50
) -> tuple[Page, list[Dataset]]:
    """A page of *container*'s members (their names, by name), and the
    catalogued datasets among them, by name.

    :raises InvalidInput: for a negative *offset* or a *limit* out of range.
    """
    check_paging(offset, limit)
    names = container.members[offset : offset + limit]
    page = Page(names, container.n_datasets, offset, limit)
    if not names:
        return page, []
    query = select(Dataset).where(among(Dataset.name, names)).order_by(Dataset.name)
    return page, list(session.scalars(query))


def _container(name: str, *, session: Session) -> Container | None:
    return session.scalars(select(Container).where(named(name))).first()


def named(name: str) -> ColumnElement[bool]:
    """The condition that a ``container`` row is the container *name* stands
    for, read as :func:`find_container` reads it: a Rucio DID asks for the
    scope too, and the trailing ``/`` may be given or left out, the name as
    given first. False when *name* names nothing (``/``).
    """
    scope, rest = split_did(name)
    bare = rest.rstrip("/")
    if not bare:
        return false()
    spellings = list(dict.fromkeys([rest, bare, bare + "/"]))
    other = aliased(Container)
    query = select(other.id).where(other.name.in_(spellings))
    if scope is not None:
        query = query.where(other.scope == scope)
    first = case(
        {spelling: i for i, spelling in enumerate(spellings)}, value=other.name
    )
    return Container.id == query.order_by(first).limit(1).scalar_subquery()


def members_of(containers: Select[int]) -> Select[str]:
    """The names of the datasets in the containers whose ids *containers*
    selects and in the containers they hold, however deep (Rucio lets
    containers nest): a recursive query, in which each container is reached
    once, so that a loop of containers ends. A name may come more than once.
    """
    reached = containers.cte(recursive=True)
    holds = and_(
        ContainerMember.child_type == CONTAINER,
        ContainerMember.child_name == Container.name,
    )
    held = (
        select(Container.id)
        .join(ContainerMember, holds)
        .where(ContainerMember.container_id == reached.c.id)
    )
    reached = reached.union(held)
    return select(ContainerMember.child_name).where(
        ContainerMember.container_id.in_(select(reached.c.id)),
        ContainerMember.child_type != CONTAINER,
    )


class _Totals:
    """The sums and statuses of a container's catalogued datasets, added up
    in SQL a chunk of member names at a time.
    """

    def __init__(self) -> None:
        self.catalogued: set[str] = set()
        self.n_files = self.total_events = self.total_size = 0
        self.prodsys_statuses: set[str] = set()
        self.ami_statuses: set[str] = set()

    def add(self, names: Sequence[str], *, session: Session) -> None:
        """Add the catalogued datasets among *names*."""
        members = among(Dataset.name, names)
        self.catalogued.update(session.scalars(select(Dataset.name).where(members)))
        statuses = (Dataset.prodsys_status, Dataset.ami_status)
        query = select(
            *statuses,
            func.sum(func.coalesce(Dataset.n_files, 0)),
            func.sum(func.coalesce(Dataset.total_events, 0)),
            func.sum(func.coalesce(Dataset.total_size, 0)),
        ).where(members)
        for prodsys, ami, files, events, size in session.execute(
            query.group_by(*statuses)
        ):
            # SUM is numeric on PostgreSQL and MariaDB (a Decimal).
            self.n_files += int(files or 0)
            self.total_events += int(events or 0)
            self.total_size += int(size or 0)
            self.prodsys_statuses.update([prodsys] if prodsys else [])
            self.ami_statuses.update([ami] if ami else [])


def _member_names(container: Container, *, session: Session) -> list[str]:
    """The datasets in *container* and in the containers it holds
    (:func:`members_of`), by name.
    """
    itself = select(Container.id).where(Container.id == container.id)
    return sorted(set(session.scalars(members_of(itself))))
