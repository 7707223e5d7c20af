"""AMI configuration tags (``e3601``, ``r10724``, ``p4164``, ...) and the
datasets made with them.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from catalog.datasets import Page, check_paging
from catalog.db import among
from catalog.errors import AmiTagNotFound
from catalog.keyset import DEFAULT_LIMIT, Keyset, KeysetPage, SortKey, keyset_page
from catalog.models import AmiTag, Dataset, DatasetAmiTag
from catalog.nomenclature import parse_tag


def get_ami_tag(tag: str, *, session: Session) -> AmiTag:
    """Return the AMI tag *tag*.

    :raises InvalidName: when *tag* is not a tag (a letter and a number).
    :raises AmiTagNotFound: when the catalogue does not have it; the error
        suggests close tags.
    """
    parse_tag(tag)
    found = session.get(AmiTag, tag)
    if found is None:
        known = session.scalars(select(AmiTag.tag).where(AmiTag.tag_type == tag[0]))
        near = difflib.get_close_matches(tag, list(known), n=3, cutoff=0.6)
        raise AmiTagNotFound(tag, suggestions=near)
    return found


#: AMI tags by type letter and number (``e3601`` before ``e3602``, ``p``
#: before ``r``), the tag itself breaking ties.
AMI_TAG_KEYSET = Keyset(
    [SortKey(AmiTag.__table__.c.tag_type), SortKey(AmiTag.__table__.c.tag_number)],
    AmiTag.__table__.c.tag,
    "type,number",
)


def list_ami_tags(*, session: Session, tag_type: str | None = None) -> list[AmiTag]:
    """Return the AMI tags (of one type letter, when given), by type and number."""
    query = _ami_tags(tag_type).order_by(*AMI_TAG_KEYSET.order_by())
    return list(session.scalars(query))


def list_ami_tags_keyset(
    *,
    session: Session,
    tag_type: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> KeysetPage:
    """Return the page of AMI tags, by type and number, that follows *cursor*
    (the first page without one); *tag_type* as for :func:`list_ami_tags`.

    :raises InvalidInput: for a bad cursor or page size.
    """
    statement = _ami_tags(tag_type)
    return keyset_page(
        statement, AMI_TAG_KEYSET, session=session, cursor=cursor, limit=limit
    )


def _ami_tags(tag_type: str | None) -> Select[Any]:
    query = select(AmiTag)
    return query.where(AmiTag.tag_type == tag_type) if tag_type else query


def tag_parameters(tag: AmiTag) -> dict[str, str]:
    """The transformation parameters of *tag*, by name (empty when it has
    none, or when they are not a JSON object).
    """
    try:
        parameters = json.loads(tag.parameters or "{}")
    except ValueError:
        return {}
    if not isinstance(parameters, dict):
        return {}
    return {str(name): str(value) for name, value in sorted(parameters.items())}


#: Datasets of a tag counted at most (past the page shown): a tag of a big
#: campaign is in hundreds of thousands of names, and its page says "more
#: than 1,000" rather than counting them all.
MAX_COUNTED = 1000


def datasets_with_tag(
    tag: str, *, session: Session, offset: int = 0, limit: int = 50
) -> Page:
    """Return a page of the datasets whose version (tag chain) holds *tag*,
    by name, counted up to :data:`MAX_COUNTED` (or to the end of the page).

    The datasets of a tag are a range of ``dataset_ami_tag``'s key: their
    ids are read up to the count. When the range ends first, the page is
    read by name among those ids; only a tag of more datasets is paged
    through the names in order, where its datasets are frequent enough to
    be met soon.

    :raises InvalidInput: for an unusable page.
    """
    check_paging(offset, limit)
    tagged = select(DatasetAmiTag.dataset_id).where(DatasetAmiTag.tag == tag)
    enough = max(MAX_COUNTED, offset + limit) + 1
    ids = session.scalars(tagged.limit(enough)).all()
    counted = len(ids) < enough
    if counted and offset >= len(ids):
        return Page([], len(ids), offset, limit)
    query = select(Dataset).where(
        among(Dataset.id, ids) if counted else Dataset.id.in_(tagged)
    )
    if not counted and offset:
        query = _sorted_after_reading(query)
    query = query.order_by(Dataset.name).offset(offset).limit(limit)
    rows = session.scalars(query).all()
    return Page(rows, len(ids), offset, limit, counted=counted)


# MariaDB's index on the names, in their order (the naming convention's).
NAME_INDEX = "uq_dataset_name"


def _sorted_after_reading(query: Select[Any]) -> Select[Any]:
    """*query* told, on MariaDB, to read the table and then sort what it
    keeps, rather than walk the names in order: past the first page, the
    walk may visit most of the names (and read each one's row, in no order)
    before it reaches the page. PostgreSQL weighs the two on its own.
    """
    hint = f"IGNORE INDEX FOR ORDER BY ({NAME_INDEX})"
    return query.with_hint(Dataset, hint, "mysql").with_hint(Dataset, hint, "mariadb")
