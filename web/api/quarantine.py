"""The quarantine: source records that could not be understood, and their
release by an admin once the source is fixed.
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.fields import whole_number
from catalog.models.users import ROLE_ADMIN
from catalog.operations import (
    check_source,
    list_quarantine_keyset,
    quarantine_sources,
    release_quarantined,
)
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_args, load_body, page_body
from web.app import catalog_session
from web.auth import acting_user, require_role


@api.get("/quarantine")
@documented(schemas.QuarantinePage, query=schemas.QuarantineArgs, errors=(400,))
def quarantine() -> ResponseReturnValue:
    """Quarantined source records, newest first, with the raw payload and
    the reason; for operators, who fix the source or hepcat and replay.
    """
    args = load_args(schemas.QuarantineArgs)
    with catalog_session() as session:
        found = quarantine_sources(session=session)
        check_source(args.get("source"), found=found)
        page = list_quarantine_keyset(
            session=session,
            source=args.get("source"),
            released=args.get("released"),
            cursor=args["cursor"],
            limit=args["limit"],
        )
        return page_body(page, schemas.QuarantinedRecord)


@api.post("/quarantine/<id>/release")
@documented(schemas.QuarantinedRecord, body=schemas.QuarantineReleaseInput)
@require_role(ROLE_ADMIN, action="releasing a record from quarantine")
def release(id: str) -> ResponseReturnValue:
    """Release a quarantined record once its source is fixed: the
    ingesters read it again (Tier-0 its held datasets, at its next run).
    Needs the role admin; a record released already is refused (400).
    """
    body = load_body(schemas.QuarantineReleaseInput)
    record_id = record_number(id)
    login = acting_user().login
    with catalog_session() as session:
        (entry,) = release_quarantined(
            [record_id], by=login, reason=body["reason"], session=session
        )
        return dumped(schemas.QuarantinedRecord, entry)


def record_number(text: str) -> int:
    """The id of a quarantined record, from a path.

    :raises InvalidInput: unless it is a whole number.
    """
    return whole_number(text, "id")
