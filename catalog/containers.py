"""DDM containers: a container's name resolved to its datasets and their
totals.

DDM's ``create_cnt``, ``register_cnt``, ``erase_cnt`` and ``detach`` messages
keep the ``container`` and ``container_member`` rows (:mod:`catalog.ddm`);
this module reads them. Datasets and containers share Rucio's one namespace
of names, so wherever a dataset's name is taken a container's may be given
too (:func:`dataset_or_container`); a dataset of the same name wins.

A period container may hold a hundred thousand datasets: their names are
never read into Python to be sent back. Its counts and totals are one
aggregate query over the join of its members (:func:`members_of`) with
``dataset``, and its names are read a page at a time, by name
(:func:`member_names`, :func:`member_page`).

A container's name is read once, by :func:`named`, and its datasets are
found once, by :func:`members_of`: the lookups here and MQL's
``inContainer`` (:mod:`catalog.mql`), which the search pages and the JSON
API filter with, take the same names and find the same datasets.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, false, func, select
from sqlalchemy.orm import Session, aliased

from catalog.datasets import Page, check_paging, get_dataset, similar_names, split_did
from catalog.db import among
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
    """A DDM container as the catalogue knows it, counted in SQL.

    :param id: its ``container`` row's id.
    :param scope: its Rucio scope, as DDM gave it.
    :param created: the time of the first message that made it known.
    :param erased: when DDM erased it; None while it is not.
    :param n_datasets: the datasets in it, and in the containers it holds,
        each once: all that DDM put there, catalogued or not (``nDatasets``).
    :param n_catalogued: those of them the catalogue has.
    :param n_files: the sum of its catalogued datasets' ``nFiles``.
    :param total_events: the sum of their ``totalEvents``.
    :param total_size: the sum of their ``totalSize``, in bytes.
    :param prodsys_statuses: their distinct ``prodsysStatus``, sorted.
    :param ami_statuses: their distinct ``amiStatus``, sorted.
    :param listed: the first :data:`LISTED` names of its datasets, by name
        (read by :func:`get_container`, for the JSON API; else empty).
    :param listed_not_catalogued: the first :data:`LISTED` of those the
        catalogue lacks, by name (as *listed*).
    """

    id: int
    name: str
    scope: str | None
    created: dt.datetime | None
    erased: dt.datetime | None
    n_datasets: int
    n_catalogued: int
    n_files: int
    total_events: int
    total_size: int
    prodsys_statuses: list[str]
    ami_statuses: list[str]
    listed: list[str] = field(default_factory=list)
    listed_not_catalogued: list[str] = field(default_factory=list)

    @property
    def n_not_catalogued(self) -> int:
        """The datasets DDM put in it that the catalogue does not have yet."""
        return self.n_datasets - self.n_catalogued


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
    """Return the DDM container called *name* (see :func:`find_container`),
    with the first :data:`LISTED` names of its datasets and of those the
    catalogue lacks (``datasets`` and ``notCatalogued`` in the JSON API).

    :raises ContainerNotFound: if there is none; the error suggests close names.
    """
    found = find_container(name, session=session)
    if found is None:
        bare = split_did(name)[1].rstrip("/")
        close = similar_names(bare, session=session, column=Container.name)
        raise ContainerNotFound(name, suggestions=close)
    listed = member_names(found, session=session, limit=LISTED)
    # The anti-join with ``dataset`` is read only when its answer is not
    # known already: none missing (the usual case), or all of them.
    missing = listed if found.n_catalogued == 0 else []
    if 0 < found.n_catalogued < found.n_datasets:
        missing = member_names(
            found, session=session, limit=LISTED, not_catalogued=True
        )
    return replace(found, listed=listed, listed_not_catalogued=missing)


def find_container(name: str, *, session: Session) -> ContainerInfo | None:
    """Return the DDM container called *name*, or None.

    As for a dataset, *name* may be a Rucio DID (``scope:name``, read by
    :func:`~catalog.datasets.split_did`), which also asks for the scope. A
    trailing ``/`` (the container mark of ATLAS names) may be given or left
    out, whichever way DDM spelt the name: the name as given wins when DDM
    knows both.

    Its counts and totals take one query (:func:`_totals`), whatever the
    number of its datasets.
    """
    container = _container(name, session=session)
    if container is None:
        return None
    return ContainerInfo(
        container.id,
        container.name,
        container.scope,
        container.created,
        container.erased,
        **_totals(container.id, session=session),
    )


def member_page(
    container: ContainerInfo, *, session: Session, offset: int = 0, limit: int = 50
) -> tuple[Page, list[Dataset]]:
    """A page of *container*'s members (their names, by name), and the
    catalogued datasets among them, by name.

    :raises InvalidInput: for a negative *offset* or a *limit* out of range.
    """
    check_paging(offset, limit)
    names = member_names(container, session=session, offset=offset, limit=limit)
    page = Page(names, container.n_datasets, offset, limit)
    if not names:
        return page, []
    query = select(Dataset).where(among(Dataset.name, names)).order_by(Dataset.name)
    return page, list(session.scalars(query))


def member_names(
    container: ContainerInfo,
    *,
    session: Session,
    offset: int = 0,
    limit: int = LISTED,
    not_catalogued: bool = False,
) -> list[str]:
    """The names of *container*'s datasets (:func:`members_of`, each once),
    by name, from *offset*, at most *limit*: read in SQL, a page at a time.

    :param not_catalogued: only those the catalogue lacks.
    """
    names = _distinct_members(container.id)
    query = select(names.c.child_name)
    if not_catalogued:
        held = select(Dataset.id).where(Dataset.name == names.c.child_name)
        query = query.where(~held.exists())
    query = query.order_by(names.c.child_name).offset(offset).limit(limit)
    return list(session.scalars(query))


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


def _distinct_members(container_id: int) -> Subquery:
    """The names of the datasets in the container *container_id* and in the
    containers it holds (:func:`members_of`), each once.
    """
    itself = select(Container.id).where(Container.id == container_id)
    return members_of(itself).distinct().subquery("member")


def _totals(container_id: int, *, session: Session) -> dict[str, Any]:
    """The counts, sums and statuses of the datasets of the container
    *container_id*, as :class:`ContainerInfo` names them: one aggregate query
    over its distinct members joined with ``dataset`` (left: a name the
    catalogue lacks counts in ``n_datasets`` only).
    """
    names = _distinct_members(container_id)
    statuses = (Dataset.prodsys_status, Dataset.ami_status)
    query = (
        select(
            *statuses,
            func.count(),
            func.count(Dataset.id),
            func.sum(func.coalesce(Dataset.n_files, 0)),
            func.sum(func.coalesce(Dataset.total_events, 0)),
            func.sum(func.coalesce(Dataset.total_size, 0)),
        )
        .select_from(names)
        .outerjoin(Dataset, Dataset.name == names.c.child_name)
        .group_by(*statuses)
    )
    found = {"n_datasets": 0, "n_catalogued": 0, "n_files": 0}
    found.update(total_events=0, total_size=0)
    prodsys: set[str] = set()
    ami: set[str] = set()
    for prodsys_status, ami_status, *counts in session.execute(query):
        # SUM is numeric on PostgreSQL and MariaDB (a Decimal).
        for key, value in zip(found, counts, strict=True):
            found[key] += int(value or 0)
        prodsys.update([prodsys_status] if prodsys_status else [])
        ami.update([ami_status] if ami_status else [])
    return {**found, "prodsys_statuses": sorted(prodsys), "ami_statuses": sorted(ami)}


def check_container(name: str | None, *, session: Session) -> None:
    """Refuse an ``inContainer`` filter that names no DDM container: it would
    find nothing, as if the container were empty (as an unknown ``dataset``
    of the skims is refused). A pattern (``%``) is a search, and may match
    no container; blanks filter nothing, as the search strips values.

    :raises ContainerNotFound: suggesting close names, as the container
        lookup does.
    """
    name = (name or "").strip()
    if not name or "%" in name:
        return
    if session.scalar(select(Container.id).where(named(name))) is None:
        get_container(name, session=session)  # raises, with the suggestions
