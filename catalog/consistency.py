"""Checking the incrementally maintained derived quantities against a
recomputation from scratch (``hepcat derive --check``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, aliased

from catalog.db import among
from catalog.derived import DATASET, NotRecomputed, refresh_all
from catalog.errors import InvalidName
from catalog.fields import ami_fields, row_to_ami
from catalog.models import OUTPUT_INHERITS, Dataset, Skim
from catalog.nomenclature import name_columns
from catalog.provenance import EDGE, LINKED_KINDS, Pair, link_datasets, link_tier0
from catalog.upsert import upsert

# Bookkeeping that a recomputation rewrites without it being a difference.
NOT_DERIVED = frozenset({"lastModified", "created"})
# Datasets read at once.
BATCH = 2000
# The AMI name of each dataset column that has one.
AMI_NAMES = {str(column.key): name for name, column in ami_fields(Dataset).items()}


@dataclass(frozen=True)
class Difference:
    """A derived value that differs from its recomputation."""

    dataset: str
    field: str
    stored: Any
    recomputed: Any

    def __str__(self) -> str:
        return (
            f"{self.dataset}: {self.field} is {self.stored!r}, "
            f"recomputed {self.recomputed!r}"
        )


@dataclass(frozen=True)
class Unrecomputable(Difference):
    """A dataset whose derived values could not be recomputed: *recomputed*
    says why (they are left as *stored*).
    """

    def __str__(self) -> str:
        return f"{self.dataset}: derived values not recomputed: {self.recomputed}"


class Checked(NamedTuple):
    """One batch of :func:`each_difference`: which *step* (``parents``,
    ``names`` or ``derived``), how many datasets it read, and the
    differences it found.
    """

    step: str
    datasets: int
    differences: list[Difference]


def check_derived(*, session: Session, batch: int = BATCH) -> list[Difference]:
    """Every difference :func:`each_difference` finds, sorted by dataset, in
    the caller's transaction: the recomputed values are left in the
    session, and the caller rolls back to only report, or commits to repair.
    """
    found = each_difference(session=session, batch=batch)
    differences = [d for checked in found for d in checked.differences]
    return sorted(differences, key=lambda d: d.dataset)


def each_difference(
    *, session: Session, batch: int = BATCH, fix: bool | None = None
) -> Iterator[Checked]:
    """Recompute every derived quantity, the columns each dataset's name
    determines (its project, number, data type...: searches rely on them)
    and the provenance edges the tasks give, and yield the differences of
    each batch of datasets as soon as it is done.

    Datasets are read *batch* at a time, and only the differences are
    kept, so memory does not grow with the catalogue: first the edges, then
    the name columns (with what skim outputs take from their parents), then
    the derived quantities, which may read the name columns of any dataset.

    :param fix: ``None``: everything happens in the caller's transaction.
        ``True``: each batch is committed (repaired) before its differences
        are yielded, ``False``: rolled back (only reported); its rows are
        locked for that batch only (:meth:`_Batches.each`). Rolled back, the
        repairs of the edges and name columns are made again in each batch
        of derived quantities, which read them.
    """
    batches = _Batches(session, batch, fix)
    yield from _relink(batches)
    yield from _recompute_name_columns(batches)
    yield from _rederive(batches)


def _rederive(batches: _Batches) -> Iterator[Checked]:
    """Recompute the derived quantities of each batch
    (:func:`~catalog.derived.refresh_all`) and yield those that differed,
    and the datasets that could not be recomputed (:class:`Unrecomputable`).
    """
    session = batches.session
    for datasets in batches.each():
        before = {d.id: (d.name, _derived_fields(d)) for d in datasets}
        failed: list[NotRecomputed] = []
        refresh_all(session=session, ids=before, failed=failed)
        session.flush()
        differences: list[Difference] = [
            Unrecomputable(f.name, "derived", None, f.error) for f in failed
        ]
        for after in _reloaded(before, session):
            name, fields = before[after.id]
            recomputed = _derived_fields(after)
            differences += [
                Difference(name, field, value, recomputed[field])
                for field, value in fields.items()
                if field not in NOT_DERIVED and not _same(value, recomputed[field])
            ]
        yield batches.end(Checked("derived", len(before), differences))


class _Batches:
    """The datasets read *size* at a time, each batch in a transaction of
    its own (see :func:`each_difference` for *fix*), and the repairs of the
    edges and name columns to make again in each batch when rolled back.
    """

    def __init__(self, session: Session, size: int, fix: bool | None) -> None:
        self.session, self.size, self.fix = session, size, fix
        self.columns: dict[int, dict[str, Any]] = {}
        self.edges_lost: set[tuple[int, int, str]] = set()
        self.edges_given: dict[Pair, tuple[int | None, str]] = {}

    def each(self) -> Iterator[list[Dataset]]:
        """The datasets in the order of their ids, each batch locked first
        (``SELECT ... FOR UPDATE``, as an ingester's write locks them: a
        dataset an ingest is writing is read once it has committed, and
        is not written meanwhile; first, so that MariaDB's snapshot of the
        batch's transaction begins after the lock), then read as the
        database holds them.
        """
        last = None
        while True:
            query = select(Dataset.id).order_by(Dataset.id).limit(self.size)
            if last is not None:
                query = query.where(Dataset.id > last)
            ids = list(self.session.scalars(query.with_for_update()))
            if not ids:
                return
            last = ids[-1]
            self._repeat_repairs()
            batch = select(Dataset).where(among(Dataset.id, ids)).order_by(Dataset.id)
            fresh = batch.execution_options(populate_existing=True)
            yield list(self.session.scalars(fresh))

    def end(self, checked: Checked) -> Checked:
        """End the batch's transaction (commit, roll back, or neither) and
        let go of its datasets.
        """
        if self.fix is None:
            return checked
        if self.fix:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.expunge_all()
        return checked

    def repaired(
        self,
        columns: dict[int, dict[str, Any]],
        before: dict[Pair, tuple[int | None, str]],
        after: dict[Pair, tuple[int | None, str]],
    ) -> None:
        """Remember a batch's repairs, to be made again (rolled back only)."""
        if self.fix is not False:
            return
        for dataset_id, values in columns.items():
            self.columns.setdefault(dataset_id, {}).update(values)
        self.edges_lost |= {
            (p, c, k) for (p, c), (_, k) in before.items() if (p, c) not in after
        }
        self.edges_given |= {
            pair: v for pair, v in after.items() if before.get(pair) != v
        }

    def _repeat_repairs(self) -> None:
        """Make the repairs remembered again in this batch's transaction."""
        session = self.session
        for dataset_id, values in self.columns.items():
            session.execute(
                update(DATASET).where(DATASET.c.id == dataset_id).values(values)
            )
        for parent, child, kind in sorted(self.edges_lost):
            session.execute(
                delete(EDGE).where(
                    EDGE.c.parent_id == parent,
                    EDGE.c.child_id == child,
                    EDGE.c.kind == kind,
                )
            )
        rows = [
            {"parent_id": p, "child_id": c, "task_id": t, "kind": k}
            for (p, c), (t, k) in sorted(self.edges_given.items())
        ]
        if rows:
            upsert(session, EDGE, rows, ["parent_id", "child_id"])


def _reloaded(ids: Collection[int], session: Session) -> list[Dataset]:
    """The datasets *ids* as the database now holds them (one query)."""
    query = select(Dataset).where(among(Dataset.id, sorted(ids)))
    return list(session.scalars(query.execution_options(populate_existing=True)))


def _relink(batches: _Batches) -> Iterator[Checked]:
    """Bring every task edge in line with the tasks (a task's input is the
    parent of its outputs, :func:`~catalog.provenance.link_datasets`) and
    every Tier-0 edge with the runs (:func:`~catalog.provenance.link_tier0`),
    and yield a ``parents`` difference for each dataset whose parents
    through such edges changed: an edge missing or one too many. The task an
    edge records is bookkeeping, rewritten without being a difference.

    Each batch links only the edges into its datasets, so that their
    parents before are those the catalogue held.
    """
    session = batches.session
    for datasets in batches.each():
        ids = [d.id for d in datasets]
        before = _linked_edges(ids, session=session)
        link_datasets(datasets, session=session, only_into=True)
        link_tier0(datasets, session=session, only_into=True)
        session.flush()
        after = _linked_edges(ids, session=session)
        batches.repaired({}, before, after)
        differences = _parents_differences(datasets, before, after, session=session)
        yield batches.end(Checked("parents", len(datasets), differences))


def _linked_edges(
    ids: Sequence[int], *, session: Session
) -> dict[Pair, tuple[int | None, str]]:
    """The edges into the datasets *ids* of the kinds linking makes: their
    task and kind, by (parent, child).
    """
    columns = (EDGE.c.parent_id, EDGE.c.child_id, EDGE.c.task_id, EDGE.c.kind)
    query = select(*columns).where(
        among(EDGE.c.child_id, ids), EDGE.c.kind.in_(LINKED_KINDS)
    )
    return {(p, c): (t, k) for p, c, t, k in session.execute(query)}


def _parents_differences(
    datasets: Sequence[Dataset],
    before: Collection[Pair],
    after: Collection[Pair],
    *,
    session: Session,
) -> list[Difference]:
    """A ``parents`` difference for each of *datasets* whose parents differ
    between the edges *before* and *after*, parents by name.
    """
    held: dict[int, set[int]] = {}
    given: dict[int, set[int]] = {}
    for edges, parents in ((before, held), (after, given)):
        for parent, child in edges:
            parents.setdefault(child, set()).add(parent)
    changed = [d for d in datasets if held.get(d.id, set()) != given.get(d.id, set())]
    if not changed:
        return []
    ids = set().union(
        *(held.get(d.id, set()) | given.get(d.id, set()) for d in changed)
    )
    query = select(Dataset.id, Dataset.name).where(among(Dataset.id, sorted(ids)))
    names = {id_: name for id_, name in session.execute(query)}
    return [
        Difference(
            d.name,
            "parents",
            sorted(names[i] for i in held.get(d.id, set())),
            sorted(names[i] for i in given.get(d.id, set())),
        )
        for d in changed
    ]


def _recompute_name_columns(batches: _Batches) -> Iterator[Checked]:
    """Set the columns that each dataset has from its name
    (:func:`~catalog.datasets.name_columns`), and those a skim's output
    takes from its parent instead (:data:`~catalog.models.OUTPUT_INHERITS`);
    yield those that differed. A name that does not follow the
    nomenclature (a user's) gives none.
    """
    session = batches.session
    for datasets in batches.each():
        parents = _skim_parents([d.id for d in datasets], session=session)
        differences: list[Difference] = []
        repairs: dict[int, dict[str, Any]] = {}
        for dataset in datasets:
            expected = _expected_columns(dataset, parents, session=session)
            found = _set_columns(dataset, expected)
            if found:
                repairs[dataset.id] = expected
            differences += found
        session.flush()
        batches.repaired(repairs, {}, {})
        yield batches.end(Checked("names", len(datasets), differences))


def _expected_columns(
    dataset: Dataset, parents: dict[int, Dataset], *, session: Session
) -> dict[str, Any]:
    """The name columns *dataset* should hold: its name's, and for a skim's
    output (its parent in *parents*) the parent's own expected ones, however
    many skims deep; never the columns a parent holds, which may be wrong.
    """
    try:
        columns = name_columns(dataset.name)
    except InvalidName:
        columns = {}
    parent = parents.get(dataset.id)
    if parent is not None:
        above = _skim_parents([parent.id], session=session)
        expected = _expected_columns(parent, above, session=session)
        columns |= {c: expected.get(c, getattr(parent, c)) for c in OUTPUT_INHERITS}
    return columns


def _skim_parents(ids: Sequence[int], *, session: Session) -> dict[int, Dataset]:
    """The parent datasets of those of *ids* that are a skim's output."""
    parent = aliased(Dataset)
    query = (
        select(Skim.output_id, parent)
        .join(parent, parent.id == Skim.parent_id)
        .where(among(Skim.output_id, sorted(ids)))
    )
    found = session.execute(query)
    return {output: source for output, source in found if output is not None}


def _set_columns(dataset: Dataset, values: dict[str, Any]) -> list[Difference]:
    """Set the *values* of *dataset*'s columns (by column name); return a
    difference, by AMI field, for each that was not so.
    """
    differences = []
    for column, value in values.items():
        held = getattr(dataset, column)
        if held != value:
            differences.append(Difference(dataset.name, AMI_NAMES[column], held, value))
            setattr(dataset, column, value)
    return differences


def _derived_fields(dataset: Dataset) -> dict[str, Any]:
    """The AMI fields of *dataset*, and the flag that says a tag of its
    version is not catalogued (no AMI field, but a wrong one would leave
    its configuration stale when the tag arrives).
    """
    return {**row_to_ami(dataset), "tagsPending": dataset.tags_pending}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)
