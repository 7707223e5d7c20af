"""Skims: requesting one (a physicist, with a token), running it, listing
and reading them, cancelling and retrying them (their owner or an admin), and
downloading their event collection as ROOT or CSV, and their output
files.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from flask import url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from catalog.datasets import get_dataset
from catalog.keyset import Keyset, KeysetPage, SortKey, keyset_page
from catalog.models import Skim
from catalog.models.users import ROLE_PHYSICIST
from skimengine.skims import (
    cancel_skim,
    get_skim,
    output_files,
    owned_by,
    request_skim,
    retry_skim,
    run_skim,
)
from web.api import api, schemas
from web.api.openapi import CSV_FILE, ROOT_FILE, documented
from web.api.paging import dumped, load_args, load_body, page_body
from web.app import catalog_session
from web.auth import require_role
from web.skims import (
    acting_in,
    collection_download,
    output_download,
    skim_number,
)

# Newest first; the id alone is a total order.
SKIM_KEYSET = Keyset(
    [SortKey(Skim.__table__.c.id, descending=True)], Skim.__table__.c.id, "-id"
)


@api.post("/skims")
@documented(schemas.Skim, status=201, body=schemas.SkimInput)
@require_role(ROLE_PHYSICIST, action="requesting a skim")
def create_skim() -> ResponseReturnValue:
    """Request a skim of a dataset: the events that pass ``select``, or those
    of an uploaded event ``collection`` (ROOT or CSV, base64), copied into a
    dataset of the requester's scope. Needs the role physicist.

    The skim starts ``defined``; with ``run`` (the default) its run is
    requested at once and the task server takes it through its states;
    with ``run: false`` it waits for ``POST /skims/{id}/run``.
    """
    body = load_body(schemas.SkimInput)
    upload = body["collection"]
    with catalog_session() as session:
        skim = request_skim(
            body["logicalDatasetName"],
            body["select"],
            body["name"],
            owner=acting_in(session),
            session=session,
            branches=body["branches"],
            compression=body["compression"],
            target_size=body["targetSize"],
            collection=base64.b64decode(upload) if upload is not None else None,
            collection_name=body["collectionName"],
            run=body["run"],
        )
        return dumped(schemas.Skim, skim), 201


@api.get("/skims")
@documented(schemas.SkimPage, query=schemas.SkimArgs)
def skims() -> ResponseReturnValue:
    """Skims, newest first, of one ``owner``, in one ``state`` and of one
    ``dataset`` if asked.
    """
    args = load_args(schemas.SkimArgs)
    with catalog_session() as session:
        page = skim_page(args, session=session)
        return page_body(page, schemas.Skim)


def skim_page(args: dict[str, Any], *, session: Session) -> KeysetPage:
    """The page of skims the loaded *args* ask for.

    An unknown owner finds no skims, as an owner without skims does, so the
    answer does not tell which logins exist (as the other surfaces).

    :raises DatasetNotFound: for an unknown dataset, as the other surfaces say.
    """
    statement: Select[Any] = select(Skim)
    if args.get("owner"):
        statement = statement.where(owned_by(args["owner"]))
    if args.get("state"):
        statement = statement.where(Skim.state == args["state"])
    if args.get("dataset"):
        parent = get_dataset(args["dataset"], session=session)
        statement = statement.where(Skim.parent_id == parent.id)
    return keyset_page(
        statement,
        SKIM_KEYSET,
        session=session,
        cursor=args["cursor"],
        limit=args["limit"],
    )


@api.get("/skims/<number>")
@documented(schemas.Skim, numbers=("number",))
def skim(number: str) -> ResponseReturnValue:
    """One skim: its state, progress in percent, counts and error.

    A `number` that is not a whole number is a 400, as on every skim route.
    """
    with catalog_session() as session:
        return dumped(schemas.Skim, get_skim(skim_number(number), session=session))


#: What run, cancel and retry each read and answer: an optional empty body,
#: the skim.
skim_action = documented(
    schemas.Skim,
    body=schemas.SkimActionInput,
    optional_body=True,
    numbers=("number",),
)


@api.post("/skims/<number>/run")
@skim_action
@require_role(ROLE_PHYSICIST, action="running a skim")
def skim_run(number: str) -> ResponseReturnValue:
    """Queue a defined skim for the task server: its owner or an admin may.
    Asking again for a skim on its way changes nothing.
    """
    return changed(run_skim, number)


@api.post("/skims/<number>/cancel")
@skim_action
@require_role(ROLE_PHYSICIST, action="cancelling a skim")
def cancel(number: str) -> ResponseReturnValue:
    """Cancel a skim in progress: its owner or an admin may."""
    return changed(cancel_skim, number)


@api.post("/skims/<number>/retry")
@skim_action
@require_role(ROLE_PHYSICIST, action="retrying a skim")
def retry(number: str) -> ResponseReturnValue:
    """Run a failed skim again; only its missing output files are written.
    Its owner or an admin may.
    """
    return changed(retry_skim, number)


def changed(change: Callable[..., Skim], number: str) -> ResponseReturnValue:
    """Make *change* (:func:`run_skim`, :func:`cancel_skim` or
    :func:`retry_skim`) to the skim *number* as the request's user, and
    answer with the skim. The request has no body, or ``{}``.
    """
    skim_id = skim_number(number)
    load_body(schemas.SkimActionInput, optional=True)
    with catalog_session() as session:
        found = change(skim_id, by=acting_in(session), session=session)
        return dumped(schemas.Skim, found)


@api.get("/skims/<number>/collection")
@documented(
    None,
    query=schemas.CollectionArgs,
    files=(ROOT_FILE, CSV_FILE),
    numbers=("number",),
)
def collection(number: str) -> ResponseReturnValue:
    """The skim's event collection, once selected: ``format=root`` (TTree
    ``Collection``) or ``format=csv``.
    """
    skim_id = skim_number(number)
    wanted = load_args(schemas.CollectionArgs)["format"]
    with catalog_session() as session:
        return collection_download(get_skim(skim_id, session=session), wanted)


@api.get("/skims/<number>/files")
@documented(schemas.SkimOutputFiles, numbers=("number",))
def skim_files(number: str) -> ResponseReturnValue:
    """The files of a done skim's output dataset, each with its download."""
    with catalog_session() as session:
        found = get_skim(skim_number(number), session=session)
        items = [
            {
                "file": file,
                "url": url_for("api.skim_file", number=found.id, lfn=file.lfn),
            }
            for file, _ in output_files(found)
        ]
        assert found.output is not None  # output_files raised otherwise
        body = {"logicalDatasetName": found.output.name, "items": items}
        return dumped(schemas.SkimOutputFiles, body)


@api.get("/skims/<number>/files/<lfn>")
@documented(None, files=(ROOT_FILE,), numbers=("number",))
def skim_file(number: str, lfn: str) -> ResponseReturnValue:
    """One file of a done skim's output dataset (ROOT)."""
    skim_id = skim_number(number)
    with catalog_session() as session:
        return output_download(get_skim(skim_id, session=session), lfn)
