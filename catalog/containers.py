"""DDM containers: a container's name resolved to its datasets and their
totals.

DDM's ``create_cnt``, ``register_cnt``, ``erase_cnt`` and ``detach`` messages
keep the ``container`` and ``container_member`` rows (:mod:`catalog.ddm`);
this module reads them. Datasets and containers share Rucio's one namespace
of names, so wherever a dataset's name is taken a container's may be given
too (:func:`dataset_or_container`); a dataset of the same name wins.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.datasets import get_dataset
from catalog.db import among, chunked
from catalog.errors import ContainerNotFound, DatasetNotFound
from catalog.models import Container, ContainerMember, Dataset

CONTAINER = "CONTAINER"
"""A container's type in Rucio (``childtype``), and its ``dataType`` on the
AMI endpoint and in the JSON API.
"""


@dataclass(frozen=True)
class ContainerInfo:
    """A DDM container as the catalogue knows it.

    :param scope: its Rucio scope, as DDM gave it.
    :param created: the time of the first message that made it known.
    :param erased: when DDM erased it; None while it is not.
    :param members: the names of the datasets in it, and in the containers
        it holds, by name: all that DDM put there, catalogued or not.
    :param catalogued: those of *members* the catalogue has, by name; the
        totals add up theirs.
    """

    name: str
    scope: str | None
    created: dt.datetime | None
    erased: dt.datetime | None
    members: list[str]
    catalogued: list[Dataset]

    @property
    def n_datasets(self) -> int:
        """The number of datasets in it (``nDatasets``)."""
        return len(self.members)

    @property
    def n_files(self) -> int:
        """The sum of its catalogued datasets' ``nFiles``."""
        return sum(dataset.n_files or 0 for dataset in self.catalogued)

    @property
    def total_events(self) -> int:
        """The sum of its catalogued datasets' ``totalEvents``."""
        return sum(dataset.total_events or 0 for dataset in self.catalogued)

    @property
    def total_size(self) -> int:
        """The sum of its catalogued datasets' ``totalSize``, in bytes."""
        return sum(dataset.total_size or 0 for dataset in self.catalogued)

    @property
    def prodsys_statuses(self) -> list[str]:
        """The distinct ``prodsysStatus`` of its catalogued datasets, sorted."""
        return sorted({d.prodsys_status for d in self.catalogued if d.prodsys_status})

    @property
    def ami_statuses(self) -> list[str]:
        """The distinct ``amiStatus`` of its catalogued datasets, sorted."""
        return sorted({d.ami_status for d in self.catalogued if d.ami_status})

    @property
    def not_catalogued(self) -> list[str]:
        """The datasets DDM put in it that the catalogue does not have yet."""
        known = {dataset.name for dataset in self.catalogued}
        return [name for name in self.members if name not in known]


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
        close = similar_container_names(name, session=session)
        raise ContainerNotFound(name, suggestions=close)
    return found


def find_container(name: str, *, session: Session) -> ContainerInfo | None:
    """Return the DDM container called *name*, or None.

    As for a dataset, *name* may be a Rucio DID (``scope:name``), which also
    asks for the scope. A trailing ``/`` (the container mark of ATLAS names)
    may be given or left out, whichever way DDM spelt the name: the name as
    given wins when DDM knows both.
    """
    container = _container(name, session=session)
    if container is None:
        return None
    members = _member_names(container, session=session)
    return ContainerInfo(
        container.name,
        container.scope,
        container.created,
        container.erased,
        members,
        _datasets(members, session=session),
    )


def _container(name: str, *, session: Session) -> Container | None:
    scope, colon, rest = name.partition(":")
    if not colon:
        rest = name
    bare = rest.rstrip("/")
    if not bare:
        return None
    spellings = list(dict.fromkeys([rest, bare, bare + "/"]))
    query = select(Container).where(Container.name.in_(spellings))
    if colon:
        query = query.where(Container.scope == scope)
    # MariaDB compares names blind to case: keep the exact spellings only.
    found = {container.name: container for container in session.scalars(query)}
    return next((found[s] for s in spellings if s in found), None)


def _member_names(container: Container, *, session: Session) -> list[str]:
    """The datasets in *container* and in the containers it holds, however
    deep (Rucio lets containers nest); each container is read once, so a
    loop of containers ends.
    """
    seen, frontier = {container.id}, [container.id]
    names: set[str] = set()
    while frontier:
        query = select(ContainerMember.child_name, ContainerMember.child_type).where(
            ContainerMember.container_id.in_(frontier)
        )
        nested: set[str] = set()
        for child, kind in session.execute(query):
            (nested if kind == CONTAINER else names).add(child)
        frontier = _unseen_containers(nested, seen, session=session)
    return sorted(names)


def _unseen_containers(
    names: set[str], seen: set[int], *, session: Session
) -> list[int]:
    """The ids of the containers called *names* that are not in *seen*,
    added to it. A container DDM has not announced yet is not there.
    """
    if not names:
        return []
    query = select(Container.id, Container.name).where(
        among(Container.name, sorted(names))
    )
    found = [id_ for id_, name in session.execute(query) if name in names]
    fresh = sorted(set(found) - seen)
    seen.update(fresh)
    return fresh


def _datasets(names: Sequence[str], *, session: Session) -> list[Dataset]:
    """The catalogued datasets among *names*, by name."""
    wanted = set(names)
    found: list[Dataset] = []
    for chunk in chunked(names):
        query = select(Dataset).where(among(Dataset.name, chunk))
        found.extend(d for d in session.scalars(query) if d.name in wanted)
    return sorted(found, key=lambda dataset: dataset.name)


def similar_container_names(name: str, *, session: Session, n: int = 3) -> list[str]:
    """Return up to *n* container names close to *name* (its scope and
    trailing ``/`` aside); candidates share its first two fields.
    """
    bare = name.rpartition(":")[2].rstrip("/")
    prefix = ".".join(bare.split(".")[:2])
    query = select(Container.name).where(
        Container.name.startswith(prefix, autoescape=True)
    )
    candidates = session.scalars(query.limit(2000)).all()
    return difflib.get_close_matches(bare, candidates, n=n, cutoff=0.8)
