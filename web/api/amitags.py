"""AMI configuration tags."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.amitags import get_ami_tag
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped
from web.app import catalog_session


@api.get("/amitags/<tag>")
@documented(schemas.AmiTag)
def amitag(tag: str) -> ResponseReturnValue:
    """One AMI tag (e3601, r10724, ...): its type letter and number, the
    transformation, the release and the transformation's parameters.
    """
    with catalog_session() as session:
        return dumped(schemas.AmiTag, get_ami_tag(tag, session=session))
