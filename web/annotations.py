"""Annotations on the dataset page: the list of a dataset's tags, and the
forms with which physicists add them and remove them.

The page template includes ``_annotations.html``, which reads the tags
through :func:`annotations_of`; a tag is changed or removed by its author or
by an admin (:func:`catalog.annotations.check_author`). A refused form comes
back on the dataset page as it was filled, with the error beside it
(:func:`annotation_form`).
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from catalog.annotations import (
    annotate,
    list_annotations,
    may_change,
    remove_annotation,
)
from catalog.errors import HepcatError, InvalidInput, PermissionDenied
from catalog.models import Hashtag
from catalog.models.users import ROLE_PHYSICIST
from web.app import catalog_session
from web.auth import acting_user, require_role, shown_user
from web.pages import dataset as dataset_page

annotation_pages = Blueprint("annotations", __name__)


@annotation_pages.app_template_global()
def annotations_of(dataset_name: str) -> list[Hashtag]:
    """The annotations of a dataset, for the dataset page."""
    with catalog_session() as db:
        return list_annotations(dataset_name, session=db)


@annotation_pages.app_template_global()
def may_remove(hashtag: Hashtag) -> bool:
    """Whether the current user may remove *hashtag*: its author, or an admin."""
    return may_change(hashtag, shown_user())


@annotation_pages.app_template_global()
def annotation_form() -> tuple[Mapping[str, str], HepcatError | None]:
    """What the form to annotate shows: what was typed and the error, on the
    page brought back by :func:`refused_annotation`; nothing otherwise.
    """
    refused: tuple[Mapping[str, str], HepcatError] | None
    refused = g.get("refused_annotation")
    return refused if refused is not None else (MultiDict(), None)


@annotation_pages.post("/datasets/<name>/annotations")
@require_role(ROLE_PHYSICIST, action="annotating a dataset")
def add_annotation(name: str) -> ResponseReturnValue:
    """Tag the dataset from the form on its page; a tag already there is
    changed only by its author or an admin. A mistake shows the page again,
    the form as it was filled, with the error.
    """
    user = acting_user()
    form = request.form
    try:
        with catalog_session() as db:
            annotate(
                name,
                form.get("name", ""),
                scope=form.get("scope", "") or "PHYS",
                comment=form.get("comment"),
                user=user,
                session=db,
            )
    except (InvalidInput, PermissionDenied) as err:
        # A mistake in what was typed, or another physicist's tag. The
        # transaction has been rolled back: nothing was saved.
        return refused_annotation(name, form, err)
    return redirect(url_for("pages.dataset", name=name, _anchor="annotations"))


def refused_annotation(
    name: str, values: Mapping[str, str], error: HepcatError
) -> ResponseReturnValue:
    """The page of the dataset *name*, its annotation form filled with
    *values* and *error* beside it, with the error's status.
    """
    g.refused_annotation = (values, error)
    return dataset_page(name), error.status


@annotation_pages.post("/datasets/<name>/annotations/<scope>/<tag>/delete")
@require_role(ROLE_PHYSICIST, action="removing an annotation")
def delete_annotation(name: str, scope: str, tag: str) -> Response:
    """Remove a tag: its author may, and an admin may remove any."""
    with catalog_session() as db:
        remove_annotation(name, scope, tag, user=acting_user(), session=db)
    return redirect(url_for("pages.dataset", name=name, _anchor="annotations"))
