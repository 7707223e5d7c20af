"""Provenance edges: a task's input dataset is the parent of each of its
output datasets.

Datasets arrive in any order (an output before its input, a Tier-0 input after
the ProdSys output), so linking looks both ways: up through the dataset's
producing task, and down through the tasks that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from catalog.db import among, chunked
from catalog.models import Dataset, ProductionTask, ProvenanceEdge
from catalog.upsert import upsert

# Datasets linked per pair of queries (each a join over their producing tasks).
LINK_CHUNK = 5000


def link_datasets(datasets: Iterable[Dataset], *, session: Session) -> set[int]:
    """Create the missing edges around *datasets*; return the ids of the
    datasets that gained a parent (their derived values must be refreshed).
    Edges already there are left as they are, and gain nobody a parent.
    """
    datasets = list(datasets)
    edges: set[tuple[int, int, int]] = set()
    for chunk in chunked(datasets, LINK_CHUNK):
        edges |= _upward(chunk, session=session) | _downward(chunk, session=session)
    edges = {(p, c, t) for p, c, t in edges if p != c}
    held = _held(edges, session=session)
    edges = {(p, c, t) for p, c, t in edges if (p, c, t) not in held}
    rows = [{"parent_id": p, "child_id": c, "task_id": t} for p, c, t in sorted(edges)]
    upsert(session, ProvenanceEdge.__table__, rows, ["parent_id", "child_id"])  # type: ignore[arg-type]
    pairs = {(p, c) for p, c, _ in held}
    return {child for parent, child, _ in edges if (parent, child) not in pairs}


def _held(
    edges: set[tuple[int, int, int]], *, session: Session
) -> set[tuple[int, int, int]]:
    """The edges the catalogue holds into the children of *edges*."""
    children = sorted({child for _, child, _ in edges})
    held: set[tuple[int, int, int]] = set()
    table = ProvenanceEdge.__table__
    for chunk in chunked(children):
        query = select(table.c.parent_id, table.c.child_id, table.c.task_id).where(
            among(table.c.child_id, chunk)
        )
        held |= {(p, c, t) for p, c, t in session.execute(query)}
    return held


def _upward(
    datasets: Sequence[Dataset], *, session: Session
) -> set[tuple[int, int, int]]:
    """Edges from the input of each dataset's producing task."""
    parent = aliased(Dataset)
    ids = [d.id for d in datasets if d.task_id is not None]
    query = (
        select(parent.id, Dataset.id, ProductionTask.task_id)
        .join(ProductionTask, Dataset.task_id == ProductionTask.task_id)
        .join(parent, parent.name == ProductionTask.input_dataset)
        .where(among(Dataset.id, ids))
    )
    return {(p, c, t) for p, c, t in session.execute(query)} if ids else set()


def _downward(
    datasets: Sequence[Dataset], *, session: Session
) -> set[tuple[int, int, int]]:
    """Edges to the outputs of the tasks that read these datasets."""
    by_name: dict[str | None, int] = {d.name: d.id for d in datasets}
    query = (
        select(ProductionTask.input_dataset, Dataset.id, ProductionTask.task_id)
        .join(ProductionTask, Dataset.task_id == ProductionTask.task_id)
        .where(among(ProductionTask.input_dataset, list(by_name)))
    )
    return {
        (by_name[name], child, task) for name, child, task in session.execute(query)
    }


def descendants(ids: Iterable[int], *, session: Session) -> set[int]:
    """Every dataset below the datasets *ids* in the provenance graph."""
    found: set[int] = set()
    frontier = set(ids)
    while frontier:
        query = select(ProvenanceEdge.child_id).where(
            among(ProvenanceEdge.parent_id, sorted(frontier))
        )
        children = set(session.scalars(query)) - found
        found |= children
        frontier = children
    return found
