"""Annotations on the dataset page: the list of a dataset's tags, and the
forms with which physicists add them and remove them.

The page template includes ``_annotations.html``, which reads the tags
through :func:`annotations_of`; a tag is changed or removed by its author or
by an admin (:func:`catalog.annotations.check_author`).
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from catalog.annotations import (
    annotate,
    list_annotations,
    may_change,
    remove_annotation,
)
from catalog.models import Hashtag
from catalog.models.users import ROLE_PHYSICIST
from web.app import catalog_session
from web.auth import acting_user, require_role, shown_user

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


@annotation_pages.post("/datasets/<name>/annotations")
@require_role(ROLE_PHYSICIST, action="annotating a dataset")
def add_annotation(name: str) -> Response:
    """Tag the dataset from the form on its page; a tag already there is
    changed only by its author or an admin.
    """
    user = acting_user()
    form = request.form
    with catalog_session() as db:
        annotate(
            name,
            form.get("name", ""),
            scope=form.get("scope", "") or "PHYS",
            comment=form.get("comment"),
            user=user,
            session=db,
        )
    return redirect(url_for("pages.dataset", name=name, _anchor="annotations"))


@annotation_pages.post("/datasets/<name>/annotations/<scope>/<tag>/delete")
@require_role(ROLE_PHYSICIST, action="removing an annotation")
def delete_annotation(name: str, scope: str, tag: str) -> Response:
    """Remove a tag: its author may, and an admin may remove any."""
    with catalog_session() as db:
        remove_annotation(name, scope, tag, user=acting_user(), session=db)
    return redirect(url_for("pages.dataset", name=name, _anchor="annotations"))
