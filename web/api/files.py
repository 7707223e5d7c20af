"""Files, found by GUID or by LFN."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.datasets import get_file
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_args
from web.app import catalog_session


@api.get("/files")
@documented(schemas.File, query=schemas.FileLookupArgs)
def file_by_lfn() -> ResponseReturnValue:
    """The file with the LFN given as `lfn`, with its dataset."""
    args = load_args(schemas.FileLookupArgs)
    with catalog_session() as session:
        return dumped(schemas.File, get_file(lfn=args["lfn"], session=session))


@api.get("/files/<guid>")
@documented(schemas.File)
def file_by_guid(guid: str) -> ResponseReturnValue:
    """The file with this GUID (in any letter case), with its dataset."""
    with catalog_session() as session:
        return dumped(schemas.File, get_file(guid=guid, session=session))
