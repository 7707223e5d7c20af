"""DDM containers: one container, its datasets and their totals."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.containers import get_container
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped
from web.app import catalog_session


@api.get("/containers/<container>")
@documented(schemas.Container)
def container(container: str) -> ResponseReturnValue:
    """One DDM container: the names of its datasets (those of the containers
    it holds too), their number, the sums of their nFiles, totalEvents and
    totalSize, and their distinct prodsysStatus and amiStatus.

    `container` may be a Rucio DID (`scope:name`); a container DDM named
    with the trailing `/` of ATLAS container names is found without it.
    """
    with catalog_session() as session:
        return dumped(schemas.Container, get_container(container, session=session))
