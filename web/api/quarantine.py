"""The quarantine: source records that could not be understood."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.operations import list_quarantine_keyset
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import load_args, page_body
from web.app import catalog_session


@api.get("/quarantine")
@documented(schemas.QuarantinePage, query=schemas.QuarantineArgs, errors=(400,))
def quarantine() -> ResponseReturnValue:
    """Quarantined source records, newest first, with the raw payload and
    the reason; for operators, who fix the source or hepcat and replay.
    """
    args = load_args(schemas.QuarantineArgs)
    with catalog_session() as session:
        page = list_quarantine_keyset(
            session=session,
            source=args.get("source"),
            cursor=args["cursor"],
            limit=args["limit"],
        )
        return page_body(page, schemas.QuarantinedRecord)
