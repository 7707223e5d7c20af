"""Tag chains: the AMI tags a dataset's ``version`` holds
(``e3601_s3126_r10724_p4164`` holds ``e3601``, ``s3126``, ``r10724`` and
``p4164``), kept in ``version_tag`` (:class:`~catalog.models.VersionTag`).

A new or changed AMI tag changes the configuration of the datasets whose
chain holds it (:func:`catalog.derived.mark_tagged`). Finding them by
comparing the tags with every dataset's version costs a scan of the
datasets per tag: on a catalogue of a million datasets, half a second for
one tag and four minutes for a thousand, inside an ingestion bite. The
table answers through two indexes instead.

Writing datasets (:func:`catalog.datasets.add_dataset` and
:func:`catalog.datasets.upsert_datasets`) adds the rows of their versions;
migration 0011 added those of the datasets catalogued before it, and
``hepcat derive --check`` reports (``--fix`` adds) any missing. Rows are
only added: a version never changes, being part of its datasets' names.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Select, Table, select
from sqlalchemy.orm import Session

from catalog.db import among
from catalog.models import Dataset, VersionTag
from catalog.reference import add_absent

__all__ = ["add_chains", "chain_tags", "datasets_holding", "missing_chains"]

VERSION_TAG: Table = VersionTag.__table__  # type: ignore[assignment]
DATASET: Table = Dataset.__table__  # type: ignore[assignment]
#: The longest tag the catalogue keys (``ami_tag.tag``).
TAG_LENGTH = VERSION_TAG.c.tag.type.length  # type: ignore[attr-defined]


def chain_tags(version: str) -> list[str]:
    """The parts of *version* between underscores that can be AMI tags: the
    tags it holds, whether the catalogue has them yet or not.
    """
    return [part for part in version.split("_") if 0 < len(part) <= TAG_LENGTH]


def add_chains(versions: Iterable[str | None], *, session: Session) -> None:
    """Add the rows of *versions* (None for a dataset without) that the
    catalogue lacks.
    """
    given = {version for version in versions if version}
    rows: dict[tuple[str, ...], dict[str, Any]] = {
        (version, tag): {"version": version, "tag": tag}
        for version in given
        for tag in chain_tags(version)
    }
    if rows:
        add_absent(VERSION_TAG, rows, session=session)


def datasets_holding(tags: Collection[str]) -> Select[Any]:
    """The ids of the datasets whose version holds one of *tags*."""
    tagged = among(VERSION_TAG.c.tag, sorted(tags))
    versions = select(VERSION_TAG.c.version).where(tagged)
    return select(DATASET.c.id).where(DATASET.c.version.in_(versions))


def missing_chains(*, session: Session) -> dict[str, list[str]]:
    """The versions of catalogued datasets whose tags the table lacks, with
    the tags missing (:mod:`catalog.consistency`).
    """
    versions = session.scalars(select(DATASET.c.version).distinct()).all()
    held: dict[str, set[str]] = {}
    rows = session.execute(select(VERSION_TAG.c.version, VERSION_TAG.c.tag))
    for version, tag in rows:
        held.setdefault(version, set()).add(tag)
    missing = {}
    for version in versions:
        if version:
            lacking = [t for t in chain_tags(version) if t not in held.get(version, ())]
            if lacking:
                missing[version] = lacking
    return missing
