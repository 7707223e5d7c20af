"""Annotations of datasets: AMI's hashtags.

A physicist tags a dataset with a short name in a scope (``PHYS`` unless
told otherwise), and may add a comment; AMI clients find them as the
``HASHTAGS`` entity. A tag is unique per dataset, scope and name: annotating
again with the same tag changes its comment. A tag keeps its author, and only
its author or an admin may change or remove it (:func:`check_author`).

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.datasets import get_dataset
from catalog.errors import InvalidInput, NotFound, PermissionDenied
from catalog.models import Dataset, Hashtag, User
from catalog.models.users import ROLE_ADMIN, ROLE_PHYSICIST
from catalog.users import has_role

DEFAULT_SCOPE = "PHYS"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
SCOPE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
MAX_COMMENT = 1000


def annotate(
    dataset_name: str,
    name: str,
    *,
    scope: str = DEFAULT_SCOPE,
    comment: str | None = None,
    user: User,
    session: Session,
) -> Hashtag:
    """Tag the dataset *dataset_name* with *name* (a leading ``#`` is
    dropped) in *scope*, as *user*, its author; tagging it again changes only
    the comment, and only its author or an admin may do that.

    :raises DatasetNotFound: if there is no such dataset.
    :raises InvalidInput: for a bad name, scope or comment.
    :raises PermissionDenied: if the tag is another physicist's and *user*
        is not an admin.
    """
    name, scope, comment = _checked(name, scope, comment)
    dataset = get_dataset(dataset_name, session=session)
    hashtag = session.get(Hashtag, (dataset.id, scope, name))
    if hashtag is None:
        try:
            with session.begin_nested():
                hashtag = Hashtag(
                    dataset_id=dataset.id, scope=scope, name=name, author=user.login
                )
                session.add(hashtag)
                session.flush()
        except IntegrityError:
            # The same tag, added by a request at the same moment: this one
            # changes it, as a request after it would.
            hashtag = session.get_one(Hashtag, (dataset.id, scope, name))
    check_author(hashtag, user, "changing")
    hashtag.comment = comment
    session.flush()
    return hashtag


def _checked(name: str, scope: str, comment: str | None) -> tuple[str, str, str | None]:
    name = name.strip().removeprefix("#")
    scope = scope.strip().upper()
    comment = (comment or "").strip() or None
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a usable annotation: letters, digits, '_', '.', '+' "
            "or '-', at most 64 characters"
        )
    if not SCOPE_PATTERN.fullmatch(scope):
        raise InvalidInput(
            f"{scope!r} is not a usable scope: a letter, then letters, digits or "
            "'_', at most 32 characters (for example PHYS)"
        )
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidInput(f"a comment has at most {MAX_COMMENT} characters")
    return name, scope, comment


def may_change(hashtag: Hashtag, user: User | None) -> bool:
    """Whether *user* may change or remove *hashtag*: a physicist who is its
    author, or an admin.
    """
    if user is None or not has_role(user, ROLE_PHYSICIST):
        return False
    return hashtag.author == user.login or has_role(user, ROLE_ADMIN)


def check_author(hashtag: Hashtag, user: User, action: str) -> None:
    """Refuse *action* (``"changing"``, ``"removing"``) on *hashtag* to
    anyone but its author and admins. The caller has checked that *user* is
    a physicist.

    :raises PermissionDenied: for another physicist.
    """
    if hashtag.author != user.login and not has_role(user, ROLE_ADMIN):
        what = (
            f"{action} another physicist's annotation "
            f"{hashtag.scope}:{hashtag.name} (by {hashtag.author!r})"
        )
        raise PermissionDenied(user.login, ROLE_ADMIN, what)


def get_annotation(
    dataset_name: str, scope: str, name: str, *, session: Session
) -> Hashtag:
    """Return the tag *scope*:*name* of the dataset *dataset_name*.

    :raises DatasetNotFound: if there is no such dataset.
    :raises NotFound: if the dataset has no such tag.
    """
    dataset = get_dataset(dataset_name, session=session)
    hashtag = session.get(Hashtag, (dataset.id, scope.upper(), name))
    if hashtag is None:
        raise NotFound(
            f"dataset {dataset_name!r} has no annotation {name!r} in scope "
            f"{scope.upper()!r}"
        )
    return hashtag


def remove_annotation(
    dataset_name: str, scope: str, name: str, *, user: User, session: Session
) -> None:
    """Remove the tag *scope*:*name* from the dataset *dataset_name*, as
    *user*: its author or an admin.

    :raises DatasetNotFound: if there is no such dataset.
    :raises NotFound: if the dataset has no such tag.
    :raises PermissionDenied: if the tag is another physicist's and *user*
        is not an admin.
    """
    hashtag = get_annotation(dataset_name, scope, name, session=session)
    check_author(hashtag, user, "removing")
    session.delete(hashtag)
    session.flush()


def list_annotations(dataset_name: str, *, session: Session) -> list[Hashtag]:
    """The tags of the dataset *dataset_name*, by scope and name.

    :raises DatasetNotFound: if there is no such dataset.
    """
    dataset = get_dataset(dataset_name, session=session)
    query = (
        select(Hashtag)
        .where(Hashtag.dataset_id == dataset.id)
        .order_by(Hashtag.scope, Hashtag.name)
    )
    return list(session.scalars(query))


def annotated_datasets(
    name: str, *, scope: str | None = None, session: Session
) -> Sequence[str]:
    """The names of the datasets tagged *name* (in *scope*, or any scope)."""
    query = (
        select(Dataset.name)
        .join(Hashtag, Hashtag.dataset_id == Dataset.id)
        .where(Hashtag.name == name.strip().removeprefix("#"))
    )
    if scope is not None:
        query = query.where(Hashtag.scope == scope.upper())
    return session.scalars(query.distinct().order_by(Dataset.name)).all()
