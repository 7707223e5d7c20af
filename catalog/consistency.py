"""Checking the incrementally maintained derived quantities against a
recomputation from scratch (``hepcat derive --check``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from catalog.db import among
from catalog.derived import refresh_all
from catalog.errors import InvalidName
from catalog.fields import ami_fields, row_to_ami
from catalog.models import OUTPUT_INHERITS, Dataset, Skim
from catalog.nomenclature import name_columns
from catalog.provenance import link_datasets, link_tier0, task_parents

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


def check_derived(*, session: Session, batch: int = BATCH) -> list[Difference]:
    """Recompute every derived quantity, the columns each dataset's name
    determines (its project, number, data type...: searches rely on them)
    and the provenance edges the tasks give, and return the differences.

    Datasets are read *batch* at a time, and only the differences are
    kept, so memory does not grow with the catalogue: first the edges, then
    the name columns (with what skim outputs take from their parents), then
    the derived quantities, which may read the name columns of any dataset.

    The recomputed values are left in the session: the caller rolls back to
    only report, or commits to repair.
    """
    differences = _relink(session=session, batch=batch)
    differences += _recompute_name_columns(session=session, batch=batch)
    for datasets in _batches(session, batch):
        before = {d.id: (d.name, _derived_fields(d)) for d in datasets}
        refresh_all(session=session, ids=before)
        session.flush()
        for after in _reloaded(before, session):
            name, fields = before[after.id]
            recomputed = _derived_fields(after)
            differences += [
                Difference(name, field, value, recomputed[field])
                for field, value in fields.items()
                if field not in NOT_DERIVED and not _same(value, recomputed[field])
            ]
    return sorted(differences, key=lambda d: d.dataset)


def _batches(session: Session, size: int) -> Iterator[list[Dataset]]:
    """The datasets, *size* at a time in the order of their ids; each batch
    is let go (the session keeps only what is changed and not flushed) when
    the next is read.
    """
    ids = list(session.scalars(select(Dataset.id).order_by(Dataset.id)))
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        query = select(Dataset).where(among(Dataset.id, chunk))
        # As the database holds them, whatever the session held before.
        yield list(session.scalars(query.execution_options(populate_existing=True)))


def _reloaded(ids: Collection[int], session: Session) -> list[Dataset]:
    """The datasets *ids* as the database now holds them (one query)."""
    query = select(Dataset).where(among(Dataset.id, sorted(ids)))
    return list(session.scalars(query.execution_options(populate_existing=True)))


def _relink(*, session: Session, batch: int) -> list[Difference]:
    """Bring every task edge in line with the tasks (a task's input is the
    parent of its outputs, :func:`~catalog.provenance.link_datasets`) and
    every Tier-0 edge with the runs (:func:`~catalog.provenance.link_tier0`),
    and return a ``parents`` difference for each dataset whose parents
    through such edges changed: an edge missing or one too many. The task an
    edge records is bookkeeping, rewritten without being a difference.
    """
    before = task_parents(session=session)
    names: dict[int, str] = {}
    for datasets in _batches(session, batch):
        link_datasets(datasets, session=session)
        link_tier0(datasets, session=session)
        session.flush()
        names.update((d.id, d.name) for d in datasets)
    after = task_parents(session=session)
    differences = []
    for child in before.keys() | after.keys():
        held, given = before.get(child, set()), after.get(child, set())
        if held != given:
            stored, recomputed = (sorted(names[i] for i in s) for s in (held, given))
            differences.append(Difference(names[child], "parents", stored, recomputed))
    return differences


def _recompute_name_columns(*, session: Session, batch: int) -> list[Difference]:
    """Set the columns that each dataset has from its name
    (:func:`~catalog.datasets.name_columns`), and those a skim's output
    takes from its parent instead (:data:`~catalog.models.OUTPUT_INHERITS`);
    return those that differed. A name that does not follow the
    nomenclature (a user's) gives none.
    """
    differences: list[Difference] = []
    for datasets in _batches(session, batch):
        parents = _skim_parents([d.id for d in datasets], session=session)
        for dataset in datasets:
            expected = _expected_columns(dataset, parents, session=session)
            differences += _set_columns(dataset, expected)
        session.flush()
    return differences


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
