"""The pages of skims: the list (by state and owner), the form that
defines one (and runs it, if asked), and one skim with its state, progress,
counts and error, the forms that run, cancel or retry it, and its event
collection and output files to download.

Skims run on the task server (:class:`skimengine.task.SkimTask`), which
takes a ``defined`` skim whose run was requested through its states; these
pages only read the skim's row, and the detail page's script asks
``/api/v1/skims/<id>`` for the progress while the skim runs. Requesting,
running, cancelling and retrying are forms with a CSRF token, for
physicists (:func:`web.auth.require_role`);
:mod:`skimengine.skims` lets only a skim's owner or an admin change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from catalog.errors import InvalidInput, NotFound
from catalog.fields import whole_number
from catalog.models import SKIM_STATES, Skim, User
from catalog.models.users import ROLE_ADMIN, ROLE_PHYSICIST
from catalog.users import get_user, has_role
from skimengine.collection import read_collection
from skimengine.extract import DEFAULT_COMPRESSION, DEFAULT_TARGET_SIZE
from skimengine.skims import (
    ACTIVE_STATES,
    cancel_skim,
    collection_path,
    get_skim,
    list_skims,
    output_file,
    output_note,
    request_skim,
    retry_skim,
    retryable,
    run_skim,
    selected_nothing,
    shown_output_name,
    skim_progress,
    waiting_for_run,
)
from web.app import catalog_session
from web.auth import acting_user, require_role, shown_user
from web.pages import FILES_PER_PAGE, arg, files_page, int_arg
from web.tags import list_tag_databases

skims = Blueprint("skims", __name__)

SKIMS_PER_PAGE = 50


@skims.app_template_global()
def may_change(skim: Skim) -> bool:
    """Whether the current user may cancel or retry *skim*: its owner (a
    physicist), or an admin.
    """
    user = shown_user()
    if user is None or not has_role(user, ROLE_PHYSICIST):
        return False
    return skim.owner_id == user.id or has_role(user, ROLE_ADMIN)


@skims.get("/skims")
def skim_list() -> str:
    """The skims, newest first, filtered by state, owner and dataset."""
    state, owner = arg(request.args, "state"), arg(request.args, "owner")
    dataset = arg(request.args, "dataset")
    offset = int_arg(request.args, "offset", 0)
    limit = int_arg(request.args, "limit", SKIMS_PER_PAGE)
    with catalog_session() as session:
        page = list_skims(
            session=session,
            owner=owner or None,
            state=state or None,
            parent=dataset or None,
            offset=offset,
            limit=limit,
        )
        return render_template(
            "skims.html",
            page=page,
            state=state,
            owner=owner,
            dataset=dataset,
            states=SKIM_STATES,
            progress=skim_progress,
        )


@skims.get("/skims/new")
@require_role(ROLE_PHYSICIST, action="requesting a skim")
def new_skim() -> ResponseReturnValue:
    """The form that defines a skim, filled from the query arguments (the
    TAG page's composer sends ``dataset`` and ``select``).
    """
    return skim_form(request.args)


def skim_form(
    values: MultiDict[str, str], error: InvalidInput | NotFound | None = None
) -> ResponseReturnValue:
    """The request form filled with *values*; with *error*, the mistake
    above it and the error's status.
    """
    with catalog_session() as session:
        datasets = [tag.dataset.name for tag in list_tag_databases(session=session)]
        page = render_template(
            "skim_new.html",
            values=values,
            datasets=datasets,
            default_compression=DEFAULT_COMPRESSION,
            default_target_size=DEFAULT_TARGET_SIZE,
            error=error,
        )
    return page, error.status if error is not None else 200


@skims.post("/skims/new")
@require_role(ROLE_PHYSICIST, action="requesting a skim")
def create_skim() -> ResponseReturnValue:
    """Define the skim of the form, and with the *Define and run* button
    request its run; on success go to its page. A mistake shows the form
    again, as it was filled, with the error.
    """
    form = request.form
    upload = request.files.get("collection")
    name = upload.filename if upload is not None else None
    data = upload.read() if upload is not None and name else None
    try:
        with catalog_session() as session:
            skim = request_skim(
                arg(form, "dataset"),
                arg(form, "select"),
                arg(form, "name"),
                owner=acting_in(session),
                session=session,
                branches=[b.strip() for b in arg(form, "branches").split(",")],
                compression=arg(form, "compression") or None,
                target_size=target_size_in(form),
                collection=data,
                collection_name=name if data is not None else None,
                run=arg(form, "run") == "1",
            )
            skim_id = skim.id
    except (InvalidInput, NotFound) as err:
        # The transaction has been rolled back: nothing was saved.
        return skim_form(form, err)
    return redirect(url_for("skims.skim", skim_id=skim_id))


def target_size_in(form: Mapping[str, str]) -> int | None:
    """The form's target size of an output file, in bytes, when given; its
    range is checked by :func:`request_skim`, as for the other surfaces.

    :raises InvalidInput: when it is not a whole number.
    """
    text = arg(form, "target_size")
    if not text:
        return None
    return whole_number(
        text,
        "the target size",
        kind="a whole number of bytes",
        signed=True,
        maximum=None,
    )


@skims.get("/skims/<skim_id>")
def skim(skim_id: str) -> str:
    """One skim: state, progress, selection, counts, error and actions (no
    *Retry* for a skim a retry cannot mend, :func:`retryable`),
    and its output files a page at a time (``files_offset``, and
    ``files_limit``, 50 by default), as on a dataset's page.
    """
    number = skim_number(skim_id)
    files_offset = int_arg(request.args, "files_offset", 0)
    files_limit = int_arg(request.args, "files_limit", FILES_PER_PAGE)
    with catalog_session() as session:
        found = get_skim(number, session=session)
        return render_template(
            "skim.html",
            skim=found,
            output=shown_output_name(found),
            note=output_note(found),
            progress=skim_progress(found),
            active=found.state in ACTIVE_STATES,
            waiting=waiting_for_run(found),
            nothing=selected_nothing(found),
            retry=retryable(found),
            has_collection=bool(found.collection_path) and found.n_selected != 0,
            files=(
                files_page(found.output, files_offset, files_limit, session=session)
                if found.output is not None
                else None
            ),
            default_target_size=DEFAULT_TARGET_SIZE,
        )


@skims.post("/skims/<skim_id>/run")
@require_role(ROLE_PHYSICIST, action="running a skim")
def run(skim_id: str) -> Response:
    """Queue the defined skim for the task server: its owner or an admin may."""
    return changed(run_skim, skim_id)


@skims.post("/skims/<skim_id>/cancel")
@require_role(ROLE_PHYSICIST, action="cancelling a skim")
def cancel(skim_id: str) -> Response:
    """Cancel the skim: its owner or an admin may."""
    return changed(cancel_skim, skim_id)


@skims.post("/skims/<skim_id>/retry")
@require_role(ROLE_PHYSICIST, action="retrying a skim")
def retry(skim_id: str) -> Response:
    """Run the failed skim again: its owner or an admin may."""
    return changed(retry_skim, skim_id)


def changed(change: Callable[..., Skim], skim_id: str) -> Response:
    """Make *change* (:func:`run_skim`, :func:`cancel_skim` or
    :func:`retry_skim`) to the skim *skim_id* as the request's user, and go
    back to the skim's page.
    """
    number = skim_number(skim_id)
    with catalog_session() as session:
        change(number, by=acting_in(session), session=session)
    return redirect(url_for("skims.skim", skim_id=number))


@skims.get("/skims/<skim_id>/collection.<any(root, csv):kind>")
def collection(skim_id: str, kind: str) -> Response:
    """The skim's event collection, as ROOT or CSV."""
    number = skim_number(skim_id)
    with catalog_session() as session:
        return collection_download(get_skim(number, session=session), kind)


@skims.get("/skims/<skim_id>/files/<lfn>")
def output(skim_id: str, lfn: str) -> Response:
    """A file of the skim's output dataset."""
    number = skim_number(skim_id)
    with catalog_session() as session:
        return output_download(get_skim(number, session=session), lfn)


def skim_number(text: str) -> int:
    """The id of a skim, from the path of a page or of the JSON API; one
    too large to be any skim's is left to :func:`get_skim`.

    :raises InvalidInput: unless it is a whole number, naming it.
    """
    return whole_number(text, "skim id", maximum=None)


def output_download(found: Skim, lfn: str) -> Response:
    """The output file *lfn* of *found* as a download.

    :raises OutputNotReady: when it is not one of its output's files.
    """
    storage_root = current_app.extensions["hepcat"].config.storage_path
    _, path = output_file(found, lfn, storage_root)
    return send_file(
        path, mimetype="application/octet-stream", as_attachment=True, download_name=lfn
    )


def acting_in(session: Session) -> User:
    """The user of the request, read again in *session* (a skim keeps its
    owner, who must belong to the skim's session).
    """
    return get_user(acting_user().login, session=session)


def collection_download(found: Skim, kind: str) -> Response:
    """The event collection of *found* as a download: ``root`` or ``csv``.

    :raises CollectionNotReady: before its selection ran.
    """
    path = collection_path(found)
    stem = f"skim-{found.id}-{found.name}-collection"
    if kind == "csv":
        text = read_collection(path, path.name).to_csv()
        headers = {"Content-Disposition": f'attachment; filename="{stem}.csv"'}
        return Response(text, mimetype="text/csv", headers=headers)
    return send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"{stem}.root",
    )
