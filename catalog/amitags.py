"""AMI configuration tags (``e3601``, ``r10724``, ``p4164``, ...) and the
datasets made with them.

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import difflib
import json

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from catalog.datasets import Page, check_paging
from catalog.errors import AmiTagNotFound
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


def list_ami_tags(*, session: Session, tag_type: str | None = None) -> list[AmiTag]:
    """Return the AMI tags (of one type letter, when given), by type and number."""
    query = select(AmiTag).order_by(AmiTag.tag_type, AmiTag.tag_number)
    if tag_type:
        query = query.where(AmiTag.tag_type == tag_type)
    return list(session.scalars(query))


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
