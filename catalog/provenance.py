"""Provenance edges: a task's input dataset is the parent of each of its
output datasets.

Datasets arrive in any order (an output before its input, a Tier-0 input after
the ProdSys output), so linking looks both ways: up through the dataset's
producing task, and down through the tasks that read it.

Tier-0 has no ProdSys task: it reconstructs and merges a run's RAW dataset,
so the RAW dataset of a run and stream is the parent of each other Tier-0
dataset of that run and stream (:func:`link_tier0`, edges of kind
``tier0``), and a real-data chain reads RAW → merge.AOD → DAOD.

Tasks change too: ProdSys may correct a task's input. So the task edges into a
dataset linked are exactly those its producing task gives now, and the others
are removed, as a replay of the sources from scratch would never make them.
Edges of another kind (a skim output's, ``skim``) are not this rule's, and
are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session, aliased

from catalog.db import among, chunked
from catalog.models import Dataset, ProductionTask, ProvenanceEdge
from catalog.models.datasets import SOURCE_TIER0
from catalog.upsert import upsert

# Datasets linked per pair of queries (each a join over their producing tasks).
LINK_CHUNK = 5000
# The kind of the edges a task's input and outputs give (the model's default).
TASK_EDGE = "production"
# The kind of the edges from a run's RAW dataset to the other Tier-0 datasets.
TIER0_EDGE = "tier0"
# The edges these rules make, which derive --check recomputes.
LINKED_KINDS = (TASK_EDGE, TIER0_EDGE)

Edge = tuple[int, int, int]  # parent id, child id, task id
Pair = tuple[int, int]  # parent id, child id
EDGE: Table = ProvenanceEdge.__table__  # type: ignore[assignment]


def link_datasets(
    datasets: Iterable[Dataset], *, session: Session, only_into: bool = False
) -> set[int]:
    """Bring the task edges around *datasets* in line with the tasks: create
    the missing ones, and remove those into *datasets* that their producing
    task no longer gives (ProdSys corrected its input). Return the ids of the
    datasets whose parents changed, gained or lost: their derived values,
    and their descendants', must be refreshed. Edges already right are left
    as they are, and change nobody's parents.

    :param only_into: only the edges into *datasets* (``derive --check``,
        which links every dataset, a batch at a time, and compares each
        batch's parents before and after).
    """
    datasets = list(datasets)
    edges: set[Edge] = set()
    for chunk in chunked(datasets, LINK_CHUNK):
        edges |= _upward(chunk, session=session)
        if not only_into:
            edges |= _downward(chunk, session=session)
    edges = {(p, c, t) for p, c, t in edges if p != c}
    linked = {d.id for d in datasets}
    held = _held(linked | {c for _, c, _ in edges}, session=session)
    given = {(p, c) for p, c, _ in edges}
    lost = {
        pair
        for pair, (_, kind) in held.items()
        if kind == TASK_EDGE and pair[1] in linked and pair not in given
    }
    _unlink(lost, session=session)
    # An edge held with another task (the dataset moved to a task with the
    # same input) has its task rewritten; its ends are the same.
    tasks = {pair: task for pair, (task, _) in held.items()}
    edges = {(p, c, t) for p, c, t in edges if tasks.get((p, c)) != t}
    rows = [{"parent_id": p, "child_id": c, "task_id": t} for p, c, t in sorted(edges)]
    upsert(session, EDGE, rows, ["parent_id", "child_id"])
    gained = {child for parent, child, _ in edges if (parent, child) not in held}
    return gained | {child for _, child in lost}


def _held(
    children: set[int], *, session: Session
) -> dict[Pair, tuple[int | None, str]]:
    """The edges the catalogue holds into *children*: their task and kind."""
    held: dict[Pair, tuple[int | None, str]] = {}
    columns = (EDGE.c.parent_id, EDGE.c.child_id, EDGE.c.task_id, EDGE.c.kind)
    for chunk in chunked(sorted(children)):
        query = select(*columns).where(among(EDGE.c.child_id, chunk))
        held |= {(p, c): (t, kind) for p, c, t, kind in session.execute(query)}
    return held


def _unlink(pairs: set[Pair], *, kind: str = TASK_EDGE, session: Session) -> None:
    """Remove the edges *pairs* (parent id, child id) of *kind*."""
    if not pairs:
        return
    statement = delete(EDGE).where(
        EDGE.c.parent_id == bindparam("parent"),
        EDGE.c.child_id == bindparam("child"),
        EDGE.c.kind == kind,
    )
    rows = [{"parent": p, "child": c} for p, c in sorted(pairs)]
    session.execute(statement, rows)


def link_tier0(
    datasets: Iterable[Dataset], *, session: Session, only_into: bool = False
) -> set[int]:
    """Bring the Tier-0 edges around the Tier-0 *datasets* in line with
    their runs: the RAW dataset of each run and stream is the parent of the
    other Tier-0 datasets of that run and stream. Return the ids of the
    datasets whose parents changed.

    :param only_into: only the edges into *datasets* (see
        :func:`link_datasets`).
    """
    datasets = list(datasets)
    keys = {_run_key(d) for d in datasets if d.source == SOURCE_TIER0}
    if not keys:
        return set()
    runs = sorted({run for _, run, _ in keys})
    columns = (Dataset.project_name, Dataset.run_number, Dataset.stream_name)
    raws: dict[tuple[Any, ...], int] = {}
    others: list[tuple[tuple[Any, ...], int]] = []
    found: list[Any] = []
    for chunk in chunked(runs):
        query = select(Dataset.id, *columns, Dataset.data_type).where(
            Dataset.source == SOURCE_TIER0, among(Dataset.run_number, chunk)
        )
        found += session.execute(query).all()
    for id_, project, run, stream, data_type in sorted(found):
        key = (project, run, stream)
        if key not in keys:
            continue
        if data_type == "RAW":
            raws.setdefault(key, id_)
        else:
            others.append((key, id_))
    if only_into:
        mine = {d.id for d in datasets}
        others = [(key, id_) for key, id_ in others if id_ in mine]
    given = {(raws[key], id_) for key, id_ in others if key in raws}
    children = {id_ for _, id_ in others}
    held = _held(children, session=session)
    lost = {
        pair
        for pair, (_, kind) in held.items()
        if kind == TIER0_EDGE and pair not in given
    }
    _unlink(lost, kind=TIER0_EDGE, session=session)
    new = sorted(given - set(held))
    rows = [{"parent_id": p, "child_id": c, "kind": TIER0_EDGE} for p, c in new]
    upsert(session, EDGE, rows, ["parent_id", "child_id"])
    return {child for _, child in new} | {child for _, child in lost}


def _run_key(dataset: Dataset) -> tuple[Any, ...]:
    return dataset.project_name, dataset.run_number, dataset.stream_name


def task_parents(*, session: Session) -> dict[int, set[int]]:
    """The parents of every dataset through the edges :func:`link_datasets`
    and :func:`link_tier0` make, by child id; a dataset without one is absent.
    """
    query = select(EDGE.c.child_id, EDGE.c.parent_id).where(
        EDGE.c.kind.in_(LINKED_KINDS)
    )
    parents: dict[int, set[int]] = {}
    for child, parent in session.execute(query):
        parents.setdefault(child, set()).add(parent)
    return parents


def _upward(datasets: Sequence[Dataset], *, session: Session) -> set[Edge]:
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


def _downward(datasets: Sequence[Dataset], *, session: Session) -> set[Edge]:
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
