"""The entities of ``SearchQuery``: their models, the foreign entities they
reach and their AMI fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    func,
    literal,
    select,
)
from sqlalchemy.orm import aliased

from catalog.errors import InvalidInput
from catalog.fields import ami_fields
from catalog.models import (
    Container,
    ContainerMember,
    Dataset,
    DatasetKeyword,
    DataType,
    File,
    Hashtag,
    NomenclatureTemplate,
    ProductionStep,
    Project,
    SubDataType,
    SubProject,
)
from catalog.models.datasets import counted_file

# ---------------------------------------------------------------------------
# Entities


@dataclass(frozen=True)
class Link:
    """How an entity reaches a foreign entity: the foreign entity's name, its
    model and the join condition (an outer join keeps rows without a match).
    """

    entity: str
    model: type[Any]
    on: Callable[[], ColumnElement[bool]]
    outer: bool = True


@dataclass(frozen=True)
class Entity:
    """An entity of ``SearchQuery -entity``: its model and its links."""

    name: str
    model: type[Any]
    links: tuple[Link, ...] = ()


def _in_container() -> ColumnElement[Any]:
    """``inContainer``: the (first, by name) DDM container holding the dataset
    itself.
    """
    return (
        select(func.min(Container.name))
        .join(ContainerMember, ContainerMember.container_id == Container.id)
        .where(ContainerMember.child_name == Dataset.name)
        .scalar_subquery()
    )


# A condition on one value of a field: the value's expression to the condition.
ValueCondition = Callable[[ColumnElement[Any]], ColumnElement[bool]]


def _some_container(condition: ValueCondition) -> ColumnElement[bool]:
    """A DDM container holding the dataset, itself or through the containers
    it holds (as the container's totals count its datasets), has a name that
    meets *condition*.
    """
    # catalog.containers reads datasets through catalog.datasets, which
    # compiles its filters with this package: it is imported when used.
    from catalog.containers import members_of

    meeting = select(Container.id).where(condition(Container.__table__.c.name))
    return Dataset.name.in_(members_of(meeting))


def _named_container(name: str) -> ColumnElement[bool]:
    """The container *name* stands for, read as the container lookups read
    it (a Rucio DID, with or without the trailing ``/``).
    """
    from catalog.containers import named  # imported when used, as above

    return named(name)


def _cross_section_source() -> ColumnElement[Any]:
    """``crossSectionSource``: the name of the dataset the cross-section
    comes from (the column holds its id).
    """
    source = aliased(Dataset)
    return (
        select(source.name)
        .where(source.id == Dataset.cross_section_source_id)
        .scalar_subquery()
    )


def _hashtag_fullname() -> ColumnElement[Any]:
    """``fullname`` of a hashtag: ``SCOPE:name``."""
    return Hashtag.scope + literal(":", String) + Hashtag.name


def _dataset_files() -> ColumnElement[bool]:
    """``files.*`` of a dataset: the files it counts
    (:func:`~catalog.models.datasets.counted_file`);
    the ``files`` entity on its own lists every file.
    """
    return (File.dataset_id == Dataset.id) & counted_file()


def _owned_by_dataset(model: Any) -> tuple[Link, ...]:
    return (Link("dataset", Dataset, lambda: Dataset.id == model.dataset_id, False),)


ENTITIES = {
    entity.name.lower(): entity
    for entity in (
        Entity(
            "dataset",
            Dataset,
            (
                Link("files", File, _dataset_files),
                Link(
                    "dataset_keywords",
                    DatasetKeyword,
                    lambda: DatasetKeyword.dataset_id == Dataset.id,
                ),
                Link("HASHTAGS", Hashtag, lambda: Hashtag.dataset_id == Dataset.id),
            ),
        ),
        Entity("files", File, _owned_by_dataset(File)),
        Entity("dataset_keywords", DatasetKeyword, _owned_by_dataset(DatasetKeyword)),
        Entity("HASHTAGS", Hashtag, _owned_by_dataset(Hashtag)),
        Entity("projects", Project),
        Entity("subprojects", SubProject),
        Entity("data_type", DataType),
        Entity("subData_type", SubDataType),
        Entity("productionStep", ProductionStep),
        Entity("nomenclature", NomenclatureTemplate),
    )
}
"""The entities of ``SearchQuery``, by lower-case name."""

# Fields that are no column of their own (or that show another value than
# their column: a name for an id), by lower-case entity name.
COMPUTED: dict[str, dict[str, Callable[[], ColumnElement[Any]]]] = {
    "dataset": {
        "crossSectionSource": _cross_section_source,
        "inContainer": _in_container,
    },
    "hashtags": {"fullname": _hashtag_fullname},
}

# Fields whose values are upper-case codes: compared in upper case.
UPPER_CASE_FIELDS = frozenset({"amiStatus", "readStatus", "writeStatus"})
# Fields holding a comma-separated list, matched element by element.
LIST_FIELDS = frozenset({"period"})
# Fields with several values, shown by the first: a condition on one is true
# when one of its values meets it (the condition on that value, given).
MANY_VALUED_FIELDS: dict[str, Callable[[ValueCondition], ColumnElement[bool]]] = {
    "inContainer": _some_container
}
# Fields whose value names a thing that has several spellings: = and IN are
# true for the thing the value names (the condition on that thing, given).
NAMING_FIELDS: dict[str, Callable[[str], ColumnElement[bool]]] = {
    "inContainer": _named_container
}


def get_entity(name: str) -> Entity:
    """Return the entity called *name* (in any letter case).

    :raises InvalidInput: for an unknown entity; the message lists them.
    """
    entity = ENTITIES.get(name.lower())
    if entity is None:
        known = ", ".join(entity.name for entity in ENTITIES.values())
        raise InvalidInput(f"unknown entity {name!r}; the entities are {known}")
    return entity


def entity_fields(name: str) -> dict[str, ColumnElement[Any]]:
    """Every AMI field of the entity *name*: its columns, then computed fields.

    :raises InvalidInput: for an unknown entity.
    """
    entity = get_entity(name)
    computed = {key: make() for key, make in COMPUTED.get(name.lower(), {}).items()}
    return {**ami_fields(entity.model), **computed}


def entity_field(entity: str, name: str) -> tuple[str, ColumnElement[Any]]:
    """The AMI name and the expression of the field *name* (in any letter
    case) of the entity *entity*.

    :raises InvalidInput: for an unknown entity or field; the message
        suggests near names.
    """
    fields = entity_fields(entity)
    lowered = {key.lower(): key for key in fields}
    found = lowered.get(name.lower())
    if found is None:
        near = difflib.get_close_matches(name.lower(), list(lowered), n=3)
        hint = f"; did you mean {', '.join(lowered[n] for n in near)}?" if near else ""
        raise InvalidInput(f"unknown field {name!r} of {entity}{hint}")
    return found, fields[found]
