"""Provenance edges: a task's input dataset is the parent of each of its
output datasets.

Datasets arrive in any order (an output before its input, a Tier-0 input after
the ProdSys output), so linking looks both ways: up through the dataset's
producing task, and down through the tasks that read it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Dataset, ProductionTask, ProvenanceEdge
from catalog.upsert import upsert


def link_datasets(datasets: Iterable[Dataset], *, session: Session) -> set[int]:
    """Create the missing edges around *datasets*; return the ids of the
    datasets that gained a parent (their derived values must be refreshed).
    """
    edges: set[tuple[int, int, int]] = set()
    for dataset in datasets:
        edges |= _upward(dataset, session=session)
        edges |= _downward(dataset, session=session)
    rows = [{"parent_id": p, "child_id": c, "task_id": t} for p, c, t in sorted(edges)]
    upsert(session, ProvenanceEdge.__table__, rows, ["parent_id", "child_id"])  # type: ignore[arg-type]
    return {child for _, child, _ in edges}


def _upward(dataset: Dataset, *, session: Session) -> set[tuple[int, int, int]]:
    if dataset.task_id is None:
        return set()
    task = session.get(ProductionTask, dataset.task_id)
    if task is None or not task.input_dataset:
        return set()
    parent = session.scalar(
        select(Dataset.id).where(Dataset.name == task.input_dataset)
    )
    if parent is None or parent == dataset.id:
        return set()
    return {(parent, dataset.id, task.task_id)}


def _downward(dataset: Dataset, *, session: Session) -> set[tuple[int, int, int]]:
    query = (
        select(Dataset.id, ProductionTask.task_id)
        .join(ProductionTask, Dataset.task_id == ProductionTask.task_id)
        .where(ProductionTask.input_dataset == dataset.name, Dataset.id != dataset.id)
    )
    return {(dataset.id, child, task) for child, task in session.execute(query)}


def descendants(ids: Iterable[int], *, session: Session) -> set[int]:
    """Every dataset below the datasets *ids* in the provenance graph."""
    found: set[int] = set()
    frontier = set(ids)
    while frontier:
        query = select(ProvenanceEdge.child_id).where(
            ProvenanceEdge.parent_id.in_(sorted(frontier))
        )
        children = set(session.scalars(query)) - found
        found |= children
        frontier = children
    return found
