"""Annotations of datasets (AMI hashtags): anyone who may read sees them; a
physicist adds them; their author or an admin changes or removes them (the
rule of :func:`catalog.annotations.check_author`, shared with the dataset
page).
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.annotations import (
    annotate,
    list_annotations,
    remove_annotation,
)
from catalog.models.users import ROLE_PHYSICIST
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_body
from web.app import catalog_session
from web.auth import acting_user, require_role


@api.get("/datasets/<name>/annotations")
@documented(schemas.AnnotationList)
def dataset_annotations(name: str) -> ResponseReturnValue:
    """The annotations of a dataset, by scope and name."""
    with catalog_session() as session:
        found = list_annotations(name, session=session)
        return {"items": schemas.Annotation(many=True).dump(found)}


@api.post("/datasets/<name>/annotations")
@documented(schemas.Annotation, status=201, body=schemas.AnnotationInput)
@require_role(ROLE_PHYSICIST, action="annotating a dataset")
def add_annotation(name: str) -> ResponseReturnValue:
    """Annotate a dataset; annotating again with the same scope and name
    changes the comment. Needs the role physicist, and to change another
    physicist's annotation, admin.
    """
    body = load_body(schemas.AnnotationInput)
    user = acting_user()
    with catalog_session() as session:
        hashtag = annotate(
            name,
            body["name"],
            scope=body["scope"],
            comment=body["comment"],
            user=user,
            session=session,
        )
        return dumped(schemas.Annotation, hashtag), 201


@api.delete("/datasets/<name>/annotations/<scope>/<tag>")
@documented(None, status=204)
@require_role(ROLE_PHYSICIST, action="removing an annotation")
def delete_annotation(name: str, scope: str, tag: str) -> ResponseReturnValue:
    """Remove an annotation from a dataset: its author (a physicist) may, and
    an admin may remove any.
    """
    with catalog_session() as session:
        remove_annotation(name, scope, tag, user=acting_user(), session=session)
    return "", 204
