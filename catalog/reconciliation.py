"""Differences between a source's counts of a dataset and the catalogue's:
DDM's at a ``close`` (:mod:`catalog.ddm`), Tier-0's for the files a dataset
has (:mod:`catalog.tier0`). A difference stands, one row per quantity, until
the counts agree again; then it is resolved, and kept. Functions here never
commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from catalog.datasets import Page, check_paging
from catalog.db import among, chunked, utcnow
from catalog.models import Dataset, Reconciliation

# How each source is named in a difference's note.
SOURCE_NAMES = {"ddm": "DDM", "tier0": "Tier-0"}

# A quantity's differences: {quantity: (the catalogue's count, the source's)}.
Differences = Mapping[str, tuple[int | None, int | None]]


def reconcile(
    source: str, differences: Mapping[int, Differences], *, session: Session
) -> None:
    """Bring the standing differences of *source* in line with
    *differences* (by dataset id, every dataset compared): one row per
    quantity that differs, its values updated; those that agree again
    resolved.
    """
    standing = _standing(source, sorted(differences), session=session)
    for dataset_id, found in differences.items():
        rows = standing.get(dataset_id, {})
        for quantity, row in rows.items():
            if quantity not in found:
                row.resolved = utcnow()
        for quantity, values in found.items():
            row = rows.get(quantity) or Reconciliation(
                dataset_id=dataset_id, source=source, quantity=quantity
            )
            _set_values(row, values)
            session.add(row)


def _set_values(row: Reconciliation, values: tuple[int | None, int | None]) -> None:
    row.catalog_value, row.source_value = values
    name = SOURCE_NAMES.get(row.source, row.source)
    row.note = (
        f"{name} counts {row.quantity} = {row.source_value}, "
        f"the catalogue {row.catalog_value}"
    )


def _standing(
    source: str, ids: Sequence[int], *, session: Session
) -> dict[int, dict[str, Reconciliation]]:
    """The standing differences of *source* for the datasets *ids*, by
    dataset id and quantity.
    """
    found: dict[int, dict[str, Reconciliation]] = {}
    for chunk in chunked(list(ids)):
        query = select(Reconciliation).where(
            Reconciliation.source == source,
            among(Reconciliation.dataset_id, chunk),
            Reconciliation.resolved.is_(None),
        )
        for row in session.scalars(query):
            found.setdefault(row.dataset_id, {})[row.quantity] = row
    return found


def open_reconciliations(
    *, session: Session, source: str | None = None
) -> list[Reconciliation]:
    """The differences that still stand (of *source*, when given), oldest
    first.
    """
    query = select(Reconciliation).where(
        Reconciliation.resolved.is_(None), *_of_source(source)
    )
    return list(session.scalars(query.order_by(Reconciliation.detected)))


def reconciliations_of(
    dataset: Dataset, *, session: Session, source: str | None = None
) -> list[Reconciliation]:
    """Every difference found between a source's counts (*source*'s, when
    given) of *dataset* and the catalogue's, the standing ones first, then
    the newest.
    """
    query = select(Reconciliation).where(
        Reconciliation.dataset_id == dataset.id, *_of_source(source)
    )
    order = (Reconciliation.resolved.is_not(None), Reconciliation.detected.desc())
    return list(session.scalars(query.order_by(*order, Reconciliation.id)))


def list_reconciliations(
    *,
    session: Session,
    resolved: bool = False,
    source: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Return a page of ``(Reconciliation, dataset name)``: the differences
    that still stand (with *resolved*, every one; of *source*, when given),
    oldest first.

    :raises InvalidInput: for an unusable page.
    """
    check_paging(offset, limit)
    conditions: list[ColumnElement[bool]] = []
    if not resolved:
        conditions.append(Reconciliation.resolved.is_(None))
    conditions += _of_source(source)
    count = select(func.count()).select_from(Reconciliation).where(*conditions)
    query = (
        select(Reconciliation, Dataset.name)
        .join(Dataset, Dataset.id == Reconciliation.dataset_id)
        .where(*conditions)
        .order_by(Reconciliation.detected, Reconciliation.id)
    )
    rows = [tuple(row) for row in session.execute(query.offset(offset).limit(limit))]
    return Page(rows, session.scalar(count) or 0, offset, limit)


def reconciliation_sources(*, session: Session) -> dict[str, int]:
    """How many differences of each source still stand, by source name."""
    query = (
        select(Reconciliation.source, func.count())
        .where(Reconciliation.resolved.is_(None))
        .group_by(Reconciliation.source)
    )
    return {source: int(count) for source, count in sorted(session.execute(query))}


def _of_source(source: str | None) -> list[ColumnElement[bool]]:
    return [Reconciliation.source == source] if source else []
