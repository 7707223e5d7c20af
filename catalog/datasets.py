"""Finding datasets, their files and their provenance.

Functions here take the session keyword-only and never commit: the edge (a
request, a task, a command) owns the transaction.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, extract, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from catalog.db import among, chunked, utcnow
from catalog.errors import DatasetNotFound, FileNotFound, InvalidInput
from catalog.fields import ami_fields, field_column, typed_value
from catalog.keyset import (
    DEFAULT_LIMIT,
    Keyset,
    KeysetPage,
    SortKey,
    encode_cursor,
    keyset_page,
    nulls_last,
    unique_key,
)
from catalog.models import Dataset, DatasetAmiTag, File, ProvenanceEdge
from catalog.models.datasets import (
    SOURCE_PRODSYS,
    SOURCE_SKIM,
    SOURCE_TIER0,
    SOURCE_USER,
    counted_file,
)
from catalog.mql import entity_field, filter_condition
from catalog.mql.narrowing import ProjectFinder
from catalog.nomenclature import name_columns, tags_in_version
from catalog.reference import add_references
from catalog.upsert import differing, upsert

MAX_PAGE_SIZE = 1000


def get_dataset(name: str, *, session: Session) -> Dataset:
    """Return the dataset called *name*, or named by the Rucio DID *name*
    (``scope:name``, as Rucio's tools print it) when the scope is its own.

    :raises DatasetNotFound: if there is none; the error suggests close names.
    """
    _, colon, bare = name.partition(":")
    found = split_did(name)[1]
    dataset = session.scalar(select(Dataset).where(Dataset.name == found))
    if dataset is None:
        close = similar_names(bare if colon else name, session=session)
        raise DatasetNotFound(name, suggestions=close)
    return dataset


def split_did(did: str) -> tuple[str | None, str]:
    """The scope and name of the Rucio DID *did* (``mc16_13TeV:mc16_13TeV.361106...``,
    ``user.jdoe:user.jdoe.my.skim``, a container's with its trailing ``/``),
    or (None, *did*) when *did* has no scope or one that is not the name's
    own (:func:`did_scope`). Datasets and containers are looked up by it.
    """
    scope, colon, name = did.partition(":")
    if colon and did_scope(name.rstrip("/")) == scope:
        return scope, name
    return None, did


def did_scope(name: str) -> str:
    """The Rucio scope that ATLAS names imply: the first field, or the first
    two of user and group names (``user.jdoe``), as the nomenclature reads
    them (valid names or not).
    """
    fields = name.split(".")
    return ".".join(fields[:2]) if fields[0] in ("user", "group") else fields[0]


def add_dataset(name: str, source: str, *, session: Session, **fields: Any) -> Dataset:
    """Add the dataset *name* to the catalogue, its name parts filled in from
    the nomenclature and *fields* (attribute names of :class:`Dataset`) set,
    with the project, types and step its name implies
    (:func:`~catalog.reference.add_references`).

    :raises InvalidName: when *name* does not follow the nomenclature.
    """
    columns = name_columns(name)
    add_references([name], session=session)
    dataset = Dataset(**columns, source=source, **fields)
    session.add(dataset)
    tags = tags_in_version(dataset.version)
    session.add_all(DatasetAmiTag(tag=tag, dataset=dataset) for tag in tags)
    return dataset


class Upserted(NamedTuple):
    """What :func:`upsert_datasets` did: the ids of the rows' datasets by
    name, and the names of those it wrote (new, or holding a value the
    catalogue had not).
    """

    ids: dict[str, int]
    written: set[str]


def upsert_datasets(
    rows: Sequence[Mapping[str, Any]],
    *,
    session: Session,
    known: Mapping[str, int] | None = None,
) -> Upserted:
    """Insert or update datasets by name (rows of :func:`name_columns` plus
    other columns, all rows with the same keys). A catalogued dataset whose
    row holds the values it has already is not written again: its
    ``lastModified`` stays. The new datasets' names add their references
    (:func:`~catalog.reference.add_references`).

    :param known: the ids of the datasets in the catalogue among *rows*, when
        the caller has just looked them up (spares two lookups).
    """
    if not rows:
        return Upserted({}, set())
    names = [row["name"] for row in rows]
    if known is None:
        known = dataset_ids(names, session=session)
    fresh = [row for row in rows if row["name"] not in known]
    catalogued = [row for row in rows if row["name"] in known]
    # A catalogued dataset added its references when it was new (or, before
    # hepcat did so, migration 0009 added them).
    add_references([row["name"] for row in fresh], session=session)
    table = Dataset.__table__
    written = fresh + differing(session, table, catalogued, "name").rows  # type: ignore[arg-type]
    if written:
        stamp = {"last_modified": utcnow()}
        upsert(session, table, written, ["name"], known=known, same=stamp)  # type: ignore[arg-type]
    names_written = {row["name"] for row in written}
    if not fresh:
        return Upserted({name: known[name] for name in names}, names_written)
    ids = dataset_ids(names, session=session)
    _add_ami_tags(
        [(ids[row["name"]], row.get("version")) for row in fresh], session=session
    )
    return Upserted(ids, names_written)


def _add_ami_tags(
    versions: Sequence[tuple[int, str | None]], *, session: Session
) -> None:
    """Record the AMI tags of the new datasets' versions (ids and versions),
    those a dataset has already left as they are (another process may have
    catalogued it meanwhile).
    """
    rows = [
        {"tag": tag, "dataset_id": dataset_id}
        for dataset_id, version in versions
        for tag in tags_in_version(version)
    ]
    upsert(session, DatasetAmiTag.__table__, rows, ["tag", "dataset_id"])  # type: ignore[arg-type]


#: The sources each of which is the authority for its own datasets: no
#: other may write one (a dataset DDM spoke of first is ProdSys's or
#: Tier-0's to take).
OWNING_SOURCES = frozenset({SOURCE_PRODSYS, SOURCE_TIER0, SOURCE_SKIM, SOURCE_USER})


def owned_elsewhere(
    names: Sequence[str], source: str, *, session: Session
) -> dict[str, str]:
    """The datasets among *names* that another of :data:`OWNING_SOURCES`
    than *source* holds, with that source.
    """
    found: dict[str, str] = {}
    others = sorted(OWNING_SOURCES - {source})
    for chunk in chunked(sorted(set(names))):
        query = select(Dataset.name, Dataset.source).where(
            among(Dataset.name, chunk), Dataset.source.in_(others)
        )
        found.update({name: owner for name, owner in session.execute(query)})
    return found


def one_source(name: str, owner: str) -> str:
    """Why a source's row of dataset *name*, which *owner* holds, is refused."""
    return (
        f"dataset {name!r} is catalogued from {owner}: a dataset has one "
        "source, and another source's row of it is held"
    )


def dataset_ids(names: Sequence[str], *, session: Session) -> dict[str, int]:
    """The ids of the datasets among *names* that are in the catalogue."""
    found: dict[str, int] = {}
    for chunk in chunked(names):
        query = select(Dataset.name, Dataset.id).where(among(Dataset.name, chunk))
        found.update({name: id_ for name, id_ in session.execute(query)})
    return found


def similar_names(
    name: str,
    *,
    session: Session,
    n: int = 3,
    column: InstrumentedAttribute[str] = Dataset.name,
) -> list[str]:
    """Return up to *n* dataset names close to *name*; or, with *column*
    ``Container.name``, container names.

    Candidates share the name's first two fields (project and dataset or run
    number), letter case included, which keeps the comparison small in a
    large catalogue: they are read as a range of the names' index (a LIKE
    is none on PostgreSQL, unless the database's collation is C).
    """
    prefix = ".".join(name.split(".")[:2])
    query = select(column).where(*_prefix_range(column, prefix))
    candidates = session.scalars(query.limit(2000)).all()
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.8)


def _prefix_range(column: Any, prefix: str) -> list[ColumnElement[bool]]:
    """The values of *column* that start with *prefix*: from the prefix to
    the first string past all that start with it (the names compare by
    code point: catalog.db.exact_text), the LIKE keeping only the prefixed
    where a collation would not.
    """
    conditions = [column.startswith(prefix, autoescape=True), column >= prefix]
    stem = prefix.rstrip(chr(0x10FFFF))
    if stem:
        last = ord(stem[-1]) + 1
        last = 0xE000 if 0xD800 <= last < 0xE000 else last  # no surrogates
        conditions.append(column < stem[:-1] + chr(last))
    return conditions


# The dataset search counts its matches up to this many ("more than
# 10,000"), and pages by offset at most this deep: a deeper page would make
# the database step over every match before it; the next page of any page
# follows a cursor instead (search_datasets).
MAX_COUNTED = 10_000
MAX_OFFSET = 10_000


@dataclass(frozen=True)
class Page:
    """One page of a list: the rows, the total count, where it starts.

    Unless *counted*, *total* is a lower bound: there are more than
    ``total - 1`` (a search counts only so far, :data:`MAX_COUNTED`), and
    *more* says whether another page follows, as where the page was read
    after a cursor (its *offset* then only says where it is).
    *next_cursor* is the cursor of the last row, where another page
    follows and the order is a keyset's.
    """

    rows: Sequence[Any]
    total: int
    offset: int
    limit: int
    counted: bool = True
    more: bool | None = None
    next_cursor: str | None = None

    @property
    def has_next(self) -> bool:
        if self.more is not None:
            return self.more
        return self.offset + len(self.rows) < self.total


@dataclass(frozen=True)
class DatasetQuery:
    """A dataset search, as a physicist states it.

    :param pattern: a name pattern; ``%`` matches any run of characters and
        ``_`` one character, as in AMI. Without ``%`` the name must contain it.
        A Rucio DID pattern (``scope:name``) also asks for the scope, and a
        trailing ``/`` (pyAMI's way) is dropped.
    :param filters: AMI field name to value, each as MQL's ``field LIKE
        'value'`` when the value holds ``%`` (text fields), else ``field =
        'value'`` (:func:`catalog.mql.filter_condition`); an empty value
        filters nothing.
    :param sort: AMI field names; a leading ``-`` sorts descending. NULLs
        come last in either direction, on every database.
    :param offset: rows skipped (default 0).
    :param limit: rows per page (default 50, at most 1000).
    """

    pattern: str | None = None
    filters: Mapping[str, str] | None = None
    sort: Sequence[str] = ("logicalDatasetName",)
    offset: int = 0
    limit: int = 50


def search_datasets(
    query: DatasetQuery, *, session: Session, after: str | None = None
) -> Page:
    """Return the page of datasets matching *query*: at ``query.offset``, or
    the page that follows the cursor *after* (the ``next_cursor`` of the
    page before), whose ``query.offset`` then only says where it is.

    Every page costs about what the first one does, over a million
    datasets: the matches are counted up to :data:`MAX_COUNTED` by a
    LIMITed subquery, never all of them; an offset is
    refused past :data:`MAX_OFFSET`; a page at an offset reads a nullable
    leading field's values, then its NULLs, each as an index range
    (:func:`_read_bands`); and a page after a cursor is a range of an index
    (:mod:`catalog.keyset`). A page gives the cursor of its next
    where the order is a keyset's (columns of the dataset, not a computed
    field nor ``crossSectionSource``, sorted by name here).

    :raises InvalidInput: for an unknown field, an unusable page size, an
        offset past :data:`MAX_OFFSET` or a bad cursor.
    """
    check_paging(query.offset, query.limit)
    order = _ordering(query.sort)
    keyset = _search_keyset(query.sort)
    conditions = _conditions(query, session=session)
    statement = select(Dataset).where(*conditions)
    following = None
    if after is None:
        _check_search_offset(query.offset)
        bands = _search_bands(keyset, order)
        wanted = query.limit + 1
        read = _read_bands(conditions, bands, query.offset, wanted, session=session)
        rows, more = read[: query.limit], len(read) > query.limit
        if more and keyset is not None:
            following = encode_cursor(keyset.key_of(rows[-1]), keyset)
    else:
        if keyset is None:
            raise InvalidInput(
                f"a search sorted by {','.join(query.sort)} pages by offset "
                "only: drop the after argument"
            )
        page = keyset_page(
            statement, keyset, session=session, cursor=after, limit=query.limit
        )
        rows, following = page.rows, page.next_cursor
        more = following is not None
    total = _count_up_to(conditions, MAX_COUNTED + 1, session=session)
    return Page(
        rows, total, query.offset, query.limit, total <= MAX_COUNTED, more, following
    )


def _search_bands(
    keyset: Keyset | None, order: list[Any]
) -> list[tuple[list[Any], list[Any]]]:
    """The parts of a search's order read in turn, each its conditions and
    ORDER BY: those of the *keyset* (:meth:`~catalog.keyset.Keyset.bands`)
    where it splits the order, as for a nullable leading column (its values,
    then its NULLs); else the whole of *order*, the search's ORDER BY.
    """
    bands = keyset.bands(None) if keyset is not None else []
    if len(bands) < 2:
        return [([], order)]
    return [([condition], band_order) for condition, band_order in bands]


def _read_bands(
    conditions: Sequence[ColumnElement[bool]],
    bands: Sequence[tuple[list[Any], list[Any]]],
    offset: int,
    wanted: int,
    *,
    session: Session,
) -> Sequence[Dataset]:
    """Up to *wanted* datasets that hold *conditions*, from *offset* on in
    the order of the *bands* (:func:`_search_bands`) read in turn.

    A leading column's values, then its NULLs, are each a range of its
    index; one ORDER BY of both (NULLs last) is not, where the index would
    give the NULLs first (read backwards on PostgreSQL) or where the
    database sorts by an ``IS NULL`` key first (MariaDB): there the whole
    table was sorted for a first page. A band the offset passes whole is
    counted up to the offset (:data:`MAX_OFFSET` at most), not read.
    """
    rows: list[Dataset] = []
    for band, order in bands:
        if len(rows) == wanted:
            break
        statement = select(Dataset).where(*conditions, *band).order_by(*order)
        statement = statement.offset(offset).limit(wanted - len(rows))
        found = session.scalars(statement).all()
        if found:
            offset = 0
        elif offset:
            offset -= _count_up_to([*conditions, *band], offset, session=session)
        rows.extend(found)
    return rows


def _check_search_offset(offset: int) -> None:
    """:raises InvalidInput: for an offset past :data:`MAX_OFFSET`."""
    if offset > MAX_OFFSET:
        raise InvalidInput(
            f"offset must be at most {MAX_OFFSET:,} on a search, got {offset:,}: "
            "narrow the search (a pattern or a filter), sort the other way, "
            "or follow the next links, which go on from the last dataset shown"
        )


def _count_up_to(
    conditions: Sequence[ColumnElement[bool]], enough: int, *, session: Session
) -> int:
    """The number of datasets that hold *conditions*, counted up to
    *enough*: the subquery stops there, so that a search matching most of
    the catalogue costs no more than a narrow one.
    """
    matches = select(Dataset.id).where(*conditions).limit(enough).subquery()
    return session.scalar(select(func.count()).select_from(matches)) or 0


def _search_keyset(sort: Sequence[str]) -> Keyset | None:
    """The keyset of the search order *sort*, or None where a field is
    sorted otherwise than by its column (a computed field;
    ``crossSectionSource`` by name): those pages follow by offset only.
    """
    try:
        keyset = dataset_keyset(sort)
    except InvalidInput:
        return None
    fields = [entity_field("dataset", key.lstrip("-+"))[1] for key in sort]
    same = all(k.column is f for k, f in zip(keyset.keys, fields, strict=True))
    return keyset if same else None


def check_paging(offset: int, limit: int) -> None:
    """:raises InvalidInput: for a negative *offset* or a *limit* out of range."""
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")


def _conditions(query: DatasetQuery, *, session: Session) -> list[ColumnElement[bool]]:
    """The conditions of *query*; empty values (blanks) ask for nothing."""
    conditions: list[ColumnElement[bool]] = []
    if query.pattern and query.pattern.strip():
        conditions.append(_name_matches(query.pattern.strip(), session=session))
    for name, value in (query.filters or {}).items():
        if value.strip():
            conditions.append(filter_condition("dataset", name, value.strip()))
    return conditions


def _name_matches(pattern: str, *, session: Session) -> ColumnElement[bool]:
    """The names matching *pattern* (``%`` wildcards; without one, the names
    holding it), ignoring case as MQL's ``like`` does, written with the
    projects the pattern can reach (:mod:`catalog.mql.narrowing`) so that an
    index finds them. A Rucio DID pattern (``scope:name``) also asks for
    the scope; a trailing ``/`` is dropped, as pyAMI does.
    """
    scope, colon, pattern = pattern.rstrip("/").rpartition(":")
    pattern = pattern if "%" in pattern else f"%{pattern}%"
    name_column = field_column(Dataset, "logicalDatasetName")
    matches: ColumnElement[bool] = Dataset.name.ilike(typed_value(name_column, pattern))
    reach = ProjectFinder(session).reachable(pattern)
    matches = matches if reach is None else reach.condition(matches)
    if not colon:
        return matches
    return and_(filter_condition("dataset", "scope", scope), matches)


def _ordering(sort: Sequence[str]) -> list[Any]:
    """The ORDER BY of the AMI fields *sort* (a leading ``-``: descending), a
    field as MQL orders it (``crossSectionSource`` by name), NULLs last in
    either direction as on the JSON API (:func:`~catalog.keyset.nulls_last`),
    ties broken by id in the direction of the last field, as the JSON API's
    keyset does (:attr:`~catalog.keyset.Keyset.ordering`): not after a
    unique field (the name), where an index on it alone serves the order.
    """
    order = []
    descending = False
    for key in sort:
        _, expression = entity_field("dataset", key.lstrip("-+"))
        descending = key.startswith("-")
        order.append(nulls_last(expression, descending=descending))
        if unique_key(expression):
            return order
    return [*order, Dataset.id.desc() if descending else Dataset.id.asc()]


def search_datasets_keyset(
    query: DatasetQuery, *, session: Session, cursor: str | None = None
) -> KeysetPage:
    """Return the page of datasets matching *query* that follows *cursor*
    (from the previous page; the first page without one), in the order of
    ``query.sort`` with NULLs last; ``query.offset`` is not used.

    :raises InvalidInput: for an unknown field, a bad cursor or page size.
    """
    statement = select(Dataset).where(*_conditions(query, session=session))
    statement = statement.options(selectinload(Dataset.cross_section_source))
    keyset = dataset_keyset(query.sort)
    return keyset_page(
        statement, keyset, session=session, cursor=cursor, limit=query.limit
    )


def dataset_keyset(sort: Sequence[str]) -> Keyset:
    """The keyset order of datasets sorted by the AMI fields *sort* (a
    leading ``-`` sorts descending), ties broken by id.

    A key is a column of the dataset: ``crossSectionSource`` sorts by the
    source's id there (which groups the datasets of one source), not by its
    name as a search page and MQL do.

    :raises InvalidInput: for an unknown field, or one that is no column.
    """
    keys = [SortKey(_key_column(key.lstrip("-+")), key.startswith("-")) for key in sort]
    name = ",".join(f"{'-' if k.descending else ''}{k.column.key}" for k in keys)
    return Keyset(keys, Dataset.__table__.c.id, name)


def _key_column(name: str) -> Any:
    """The column of the AMI field *name* of a dataset, for a keyset.

    :raises InvalidInput: for an unknown field, or one that is no column.
    """
    field, _ = entity_field("dataset", name)
    column = ami_fields(Dataset).get(field)
    if column is None:
        raise InvalidInput(
            f"{field} cannot sort pages that follow by cursor (it is no column "
            "of a dataset); the search page and MQL sort by it"
        )
    return column


@dataclass(frozen=True)
class CatalogTotals:
    """How much the catalogue holds: datasets, and the sums of their
    ``nFiles``, ``totalEvents`` and ``totalSize``.
    """

    datasets: int
    files: int
    events: int
    size: int


def catalog_totals(*, session: Session) -> CatalogTotals:
    """Return the number of datasets and the sums of their counts."""
    sums = select(
        func.count(Dataset.id),
        func.sum(Dataset.n_files),
        func.sum(Dataset.total_events),
        func.sum(Dataset.total_size),
    )
    return CatalogTotals(*(int(value or 0) for value in session.execute(sums).one()))


def list_files(
    dataset: Dataset, *, session: Session, offset: int = 0, limit: int = 50
) -> Page:
    """Return a page of the files of *dataset* (all statuses), by LFN."""
    check_paging(offset, limit)
    where = File.dataset_id == dataset.id
    total = session.scalar(select(func.count()).select_from(File).where(where)) or 0
    statement = select(File).where(where).order_by(File.lfn)
    rows = session.scalars(statement.offset(offset).limit(limit)).all()
    return Page(rows, total, offset, limit)


def counted_files(ids: Sequence[int]) -> ColumnElement[bool]:
    """The condition selecting the files that count for the datasets *ids*
    (in a query joined with ``dataset``): ProdSys files with status
    ``finished``, every Tier-0 file, less the files DDM reported lost.
    """
    return among(File.dataset_id, ids) & counted_file()


def file_totals(
    condition: ColumnElement[bool], *, session: Session
) -> dict[int, tuple[int, int, int]]:
    """The number, events and bytes of the files that *condition* selects
    (in a query joined with ``dataset``), by dataset id.
    """
    query = (
        select(
            File.dataset_id,
            func.count(File.id),
            func.sum(File.events),
            func.sum(File.size),
        )
        .join(Dataset, Dataset.id == File.dataset_id)
        .where(condition)
        .group_by(File.dataset_id)
    )
    return {
        dataset_id: (int(n or 0), int(events or 0), int(size or 0))
        for dataset_id, n, events, size in session.execute(query)
    }


# Files by LFN, which is unique: the LFN is the whole key (no id to break
# ties), so that a page is one range of the (dataset_id, lfn) index.
FILE_KEYSET = Keyset([], File.__table__.c.lfn, "lfn")


def list_files_keyset(
    dataset: Dataset,
    *,
    session: Session,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    counted: bool = False,
    offset: int = 0,
) -> KeysetPage:
    """Return the page of the files of *dataset* (all statuses), by LFN,
    that follows *cursor* (the first page without one).

    A page is one range of the ``(dataset_id, lfn)`` index, however far it
    is into the dataset, and nothing is counted: a long listing (the JSON
    API's, ``AMIListFiles``) reads its pages in time proportional to them.

    :param counted: only the files that count (:func:`counted_files`).
    :param offset: files skipped before the page (``AMIListFiles -limit``
        starts its first page so; the pages after it follow a cursor).
    :raises InvalidInput: for a bad cursor or page size.
    """
    statement = select(File).where(File.dataset_id == dataset.id)
    if counted:
        # The dataset's one row (by primary key), for its source.
        joined = statement.join(Dataset, Dataset.id == File.dataset_id)
        statement = joined.where(counted_files([dataset.id]))
    return keyset_page(
        statement.offset(offset or None),
        FILE_KEYSET,
        session=session,
        cursor=cursor,
        limit=limit,
    )


def get_file(
    *, session: Session, guid: str | None = None, lfn: str | None = None
) -> File:
    """Return the file with *guid* (in any letter case) or *lfn*.

    :raises FileNotFound: if there is none.
    :raises InvalidInput: unless exactly one of *guid* and *lfn* is given.
    """
    if (guid is None) == (lfn is None):
        raise InvalidInput("give either a GUID or an LFN to find a file")
    condition: ColumnElement[bool]
    if guid is not None:
        spellings = sorted({guid, guid.upper(), guid.lower()})
        condition = File.guid.in_(spellings)
    else:
        condition = File.lfn == lfn
    found = session.scalar(select(File).where(condition))
    if found is None:
        raise FileNotFound(guid or lfn or "", by="GUID" if guid else "LFN")
    return found


@dataclass(frozen=True)
class ProvenanceNode:
    """A dataset in a provenance graph: ancestors at 1, 2, ..., the dataset
    itself at 0, descendants at -1, -2, ...
    """

    dataset: Dataset
    distance: int


ANCESTORS, DESCENDANTS = "ancestors", "descendants"
# The datasets a provenance graph holds unless asked for fewer or more: a
# dataset of thousands of descendants made a graph of tens of megabytes.
PROVENANCE_LIMIT = 1000
MAX_PROVENANCE_LIMIT = 10_000


class LeftOut(NamedTuple):
    """How many datasets of *data_type* (None: none recorded) a capped graph
    leaves out in *direction* (:data:`ANCESTORS` or :data:`DESCENDANTS`).
    """

    direction: str
    data_type: str | None
    n_datasets: int


@dataclass(frozen=True)
class Provenance:
    """A dataset's graph: its nodes, the edges between them, and what a cap
    on depth or size left out, by direction and data type.
    """

    nodes: list[ProvenanceNode]
    edges: list[tuple[str, str]]  # (parent name, child name)
    left_out: tuple[LeftOut, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.left_out

    def n_left_out(self, direction: str) -> int:
        return sum(r.n_datasets for r in self.left_out if r.direction == direction)


def get_provenance(
    dataset: Dataset,
    *,
    session: Session,
    depth: int | None = None,
    limit: int = PROVENANCE_LIMIT,
) -> Provenance:
    """Return the ancestors and descendants of *dataset*, with the edges:
    those at most *depth* steps away (None: any), the nearest first, at most
    *limit* datasets in all, *dataset* included. What that leaves out is
    counted in SQL, never loaded: a dataset may have tens of thousands of
    descendants.

    :raises InvalidInput: for a *depth* below 0 or a *limit* out of
        1..:data:`MAX_PROVENANCE_LIMIT`.
    """
    _check_caps(depth, limit)
    walk = _Walk(dataset.id, limit)
    while walk.ahead() and walk.room() and (depth is None or walk.distance < depth):
        walk.step(session=session)
    shown = list(walk.distances)
    statement = select(Dataset).where(among(Dataset.id, shown))
    loaded = {found.id: found for found in session.scalars(statement)}
    nodes = [ProvenanceNode(loaded[i], d) for i, d in walk.distances.items()]
    ordered = sorted(nodes, key=lambda n: (-n.distance, n.dataset.name))
    named = sorted((loaded[p].name, loaded[c].name) for p, c in walk.edges)
    left_out = [
        row
        for upward in walk.ahead()
        for row in _left_out(upward, walk.distances, session=session)
    ]
    return Provenance(ordered, named, tuple(left_out))


def _check_caps(depth: int | None, limit: int) -> None:
    if depth is not None and depth < 0:
        raise InvalidInput(f"provenance depth must be 0 or more, got {depth}")
    if not 1 <= limit <= MAX_PROVENANCE_LIMIT:
        raise InvalidInput(
            f"provenance limit must be 1 to {MAX_PROVENANCE_LIMIT:,} datasets, "
            f"got {limit}"
        )


class _Walk:
    """A breadth-first walk up and down from one dataset, a level of each
    direction at a time, by ids and names: it takes at most *limit* datasets,
    sharing a level that does not fit between the two directions (by name
    within one).
    """

    def __init__(self, start: int, limit: int) -> None:
        self.distances = {start: 0}
        self.edges: set[tuple[int, int]] = set()
        self.limit = limit
        self.distance = 0
        # Where each direction (True: upward) goes on from: when the walk
        # stops, a direction with somewhere to go may have left datasets out.
        self.frontiers = {True: [start], False: [start]}

    def ahead(self) -> list[bool]:
        return [upward for upward, ids in self.frontiers.items() if ids]

    def room(self) -> int:
        return self.limit - len(self.distances)

    def step(self, *, session: Session) -> None:
        self.distance += 1
        found = {
            up: _neighbours(self.frontiers[up], upward=up, session=session)
            for up in self.ahead()
        }
        new = {up: self._unseen(up, rows) for up, rows in found.items()}
        shares = _shares({up: len(ids) for up, ids in new.items()}, self.room())
        for up, ids in new.items():
            taken = ids[: shares[up]]
            distance = self.distance if up else -self.distance
            self.distances.update((i, distance) for i in taken)
            # A direction cut short keeps somewhere to go (see frontiers).
            if taken or len(taken) == len(ids):
                self.frontiers[up] = taken
        self.edges.update(
            (p, c)
            for rows in found.values()
            for p, c, _ in rows
            if p in self.distances and c in self.distances
        )

    def _unseen(self, upward: bool, rows: list[tuple[int, int, str]]) -> list[int]:
        """The ids of *rows*' other ends that the walk has not seen, by name."""
        others = {(name, p if upward else c) for p, c, name in rows}
        return [i for _, i in sorted(others) if i not in self.distances]


def _shares(wanted: dict[bool, int], room: int) -> dict[bool, int]:
    """How many of the *wanted* new datasets of each direction fit in *room*:
    all when they do, else half each, what one needs less going to the other.
    """
    up, down = wanted.get(True, 0), wanted.get(False, 0)
    if up + down <= room:
        return {True: up, False: down}
    up_share = min(up, max(room // 2, room - down))
    return {True: up_share, False: min(down, room - up_share)}


def _neighbours(
    ids: list[int], *, upward: bool, session: Session
) -> list[tuple[int, int, str]]:
    """The edges (parent id, child id) to the parents (*upward*) or children
    of the datasets *ids*, each with the name of the dataset at its other end.
    """
    # Ids and names, one query a level: the datasets a graph shows are loaded
    # once, in one query, and those it leaves out never are.
    near = ProvenanceEdge.child_id if upward else ProvenanceEdge.parent_id
    far = ProvenanceEdge.parent_id if upward else ProvenanceEdge.child_id
    statement = (
        select(ProvenanceEdge.parent_id, ProvenanceEdge.child_id, Dataset.name)
        .join(Dataset, Dataset.id == far)
        .where(among(near, ids))
    )
    return [(p, c, name) for p, c, name in session.execute(statement)]


def _left_out(
    upward: bool, shown: dict[int, int], *, session: Session
) -> list[LeftOut]:
    """The datasets above (*upward*) or below the dataset at distance 0 of
    *shown* (ids → distances) that are not shown, counted by data type.

    They are found by ids, a level a query from the shown datasets of that
    side, and counted by the database: never loaded. (A recursive query did
    it in one statement, but PostgreSQL planned it with a scan of every
    dataset, which grows with the catalogue, not with the graph.)
    """
    near = ProvenanceEdge.child_id if upward else ProvenanceEdge.parent_id
    far = ProvenanceEdge.parent_id if upward else ProvenanceEdge.child_id
    seen = set(shown)
    frontier = [i for i, d in shown.items() if d == 0 or (d > 0) == upward]
    beyond: list[int] = []
    while frontier:
        found = {
            other
            for ids in chunked(frontier)
            for other in session.scalars(select(far).where(among(near, ids)))
        }
        frontier = sorted(found - seen)
        seen.update(frontier)
        beyond.extend(frontier)
    counts: dict[str | None, int] = {}
    for ids in chunked(beyond):
        query = select(Dataset.data_type, func.count()).where(among(Dataset.id, ids))
        for kind, n in session.execute(query.group_by(Dataset.data_type)):
            counts[kind] = counts.get(kind, 0) + n
    direction = ANCESTORS if upward else DESCENDANTS
    rows = [LeftOut(direction, kind, n) for kind, n in counts.items()]
    return sorted(rows, key=lambda row: (-row.n_datasets, row.data_type or ""))


def datasets_per_month(*, session: Session) -> list[tuple[int, int, int]]:
    """How many datasets the catalogue registered each month: ``(year, month,
    count)`` by ``created`` (UTC), oldest first; months without any are left out.
    """
    year = extract("year", Dataset.created)
    month = extract("month", Dataset.created)
    query = select(year, month, func.count()).group_by(year, month)
    counts = [(int(y), int(m), int(n)) for y, m, n in session.execute(query)]
    return sorted(counts)
