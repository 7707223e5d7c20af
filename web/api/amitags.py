"""AMI configuration tags."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.amitags import get_ami_tag, list_ami_tags_keyset
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_args, page_body
from web.app import catalog_session


@api.get("/amitags")
@documented(schemas.AmiTagPage, query=schemas.AmiTagArgs, errors=(400,))
def amitags() -> ResponseReturnValue:
    """AMI tags by type letter and number (``e3601`` before ``e3602``)."""
    args = load_args(schemas.AmiTagArgs)
    with catalog_session() as session:
        page = list_ami_tags_keyset(
            session=session,
            tag_type=args.get("type"),
            cursor=args["cursor"],
            limit=args["limit"],
        )
        return page_body(page, schemas.AmiTag)


@api.get("/amitags/<tag>")
@documented(schemas.AmiTag)
def amitag(tag: str) -> ResponseReturnValue:
    """One AMI tag (e3601, r10724, ...): its type letter and number, the
    transformation, the release and the transformation's parameters.
    """
    with catalog_session() as session:
        return dumped(schemas.AmiTag, get_ami_tag(tag, session=session))
