"""Checking the incrementally maintained derived quantities against a
recomputation from scratch (``hepcat derive --check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from catalog.derived import refresh_all
from catalog.errors import InvalidName
from catalog.fields import row_to_ami
from catalog.models import Dataset, Skim, inherit_columns
from catalog.nomenclature import name_columns
from catalog.provenance import link_datasets, link_tier0, task_parents

# Bookkeeping that a recomputation rewrites without it being a difference.
NOT_DERIVED = frozenset({"lastModified", "created"})


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


def check_derived(*, session: Session) -> list[Difference]:
    """Recompute every derived quantity, the columns each dataset's name
    determines (its project, number, data type...: searches rely on them)
    and the provenance edges the tasks give, and return the differences.

    The recomputed values are left in the session: the caller rolls back to
    only report, or commits to repair.
    """
    datasets = session.scalars(select(Dataset)).all()
    before = {d.name: _derived_fields(d) for d in datasets}
    # Edges first: cross-sections are recomputed down the right chains.
    edges = _relink(datasets, session=session)
    _recompute_name_columns(datasets)
    _inherit_skim_columns(session)
    refresh_all(session=session)
    session.flush()
    after = _snapshot(session)
    columns = [
        Difference(name, field, value, after[name][field])
        for name, fields in sorted(before.items())
        for field, value in fields.items()
        if field not in NOT_DERIVED and not _same(value, after[name][field])
    ]
    return sorted(columns + edges, key=lambda d: d.dataset)


def _relink(datasets: Sequence[Dataset], *, session: Session) -> list[Difference]:
    """Bring every task edge in line with the tasks (a task's input is the
    parent of its outputs, :func:`~catalog.provenance.link_datasets`) and
    every Tier-0 edge with the runs (:func:`~catalog.provenance.link_tier0`),
    and return a ``parents`` difference for each dataset whose parents
    through such edges changed: an edge missing or one too many. The task an
    edge records is bookkeeping, rewritten without being a difference.
    """
    before = task_parents(session=session)
    link_datasets(datasets, session=session)
    link_tier0(datasets, session=session)
    after = task_parents(session=session)
    names = {d.id: d.name for d in datasets}
    differences = []
    for child in before.keys() | after.keys():
        held, given = before.get(child, set()), after.get(child, set())
        if held != given:
            stored, recomputed = (sorted(names[i] for i in s) for s in (held, given))
            differences.append(Difference(names[child], "parents", stored, recomputed))
    return differences


def _recompute_name_columns(datasets: Sequence[Dataset]) -> None:
    """Set the columns that each of *datasets* has from its name
    (:func:`~catalog.datasets.name_columns`). A name that does not follow the
    nomenclature (hepcat writes none) is left as it is.
    """
    for dataset in datasets:
        try:
            columns = name_columns(dataset.name)
        except InvalidName:
            continue
        for name, value in columns.items():
            if getattr(dataset, name) != value:
                setattr(dataset, name, value)


def _inherit_skim_columns(session: Session) -> None:
    """Set the columns each skim's output takes from its parent
    (:data:`~catalog.models.OUTPUT_INHERITS`), the parent's own recomputed
    first.
    """
    parent = aliased(Dataset)
    query = (
        select(Dataset, parent)
        .join(Skim, Skim.output_id == Dataset.id)
        .join(parent, parent.id == Skim.parent_id)
    )
    for output, source in session.execute(query):
        inherit_columns(output, source)


def _snapshot(session: Session) -> dict[str, dict[str, Any]]:
    return {d.name: _derived_fields(d) for d in session.scalars(select(Dataset))}


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
