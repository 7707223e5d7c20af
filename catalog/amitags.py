"""AMI configuration tags (``e3601``, ``r10724``, ``p4164``, ...) and the
datasets made with them.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from catalog.datasets import Page, check_paging
from catalog.errors import AmiTagNotFound
from catalog.keyset import DEFAULT_LIMIT, Keyset, KeysetPage, SortKey, keyset_page
from catalog.models import AmiTag, Dataset
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


def datasets_with_tag(
    tag: str, *, session: Session, offset: int = 0, limit: int = 50
) -> Page:
    """Return a page of the datasets whose version (tag chain) holds *tag*,
    by name.

    :raises InvalidInput: for an unusable page.
    """
    check_paging(offset, limit)
    version = Dataset.version
    uses = or_(
        version == tag,
        version.startswith(f"{tag}_", autoescape=True),
        version.endswith(f"_{tag}", autoescape=True),
        version.contains(f"_{tag}_", autoescape=True),
    )
    total = session.scalar(select(func.count()).select_from(Dataset).where(uses))
    query = select(Dataset).where(uses).order_by(Dataset.name)
    rows = session.scalars(query.offset(offset).limit(limit)).all()
    return Page(rows, total or 0, offset, limit)
