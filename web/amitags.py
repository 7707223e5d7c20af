"""The pages of AMI configuration tags: the list, and one tag with its
transformation, release, parameters and the datasets made with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, render_template, request
from marshmallow import ValidationError

from catalog.amitags import (
    datasets_with_tag,
    get_ami_tag,
    list_ami_tags,
    tag_parameters,
)
from catalog.errors import InvalidInput, InvalidName
from catalog.nomenclature import parse_tag_chain
from web.api.errors import flatten
from web.api.schemas import AmiTagArgs
from web.app import catalog_session
from web.pages import arg, int_arg

amitags = Blueprint("amitags", __name__)

DATASETS_PER_PAGE = 50


@amitags.get("/amitags")
def tag_list() -> str:
    """Every AMI tag, by type letter and number (``type`` filters by letter)."""
    tag_type = type_letter(request.args)
    with catalog_session() as session:
        tags = list_ami_tags(session=session, tag_type=tag_type or None)
    return render_template("amitags.html", tags=tags, tag_type=tag_type)


def type_letter(args: Mapping[str, str]) -> str:
    """Return the query argument ``type``, a tag's type letter; empty when
    absent.

    :raises InvalidInput: when it is not one lower-case letter, with the
        message of the API's ``/api/v1/amitags`` (the same check).
    """
    tag_type = arg(args, "type")
    if tag_type:
        try:
            AmiTagArgs(only=("type",)).load({"type": tag_type})
        except ValidationError as error:
            details = flatten(error.messages)
            raise InvalidInput("; ".join(details), details) from None
    return tag_type


@amitags.get("/amitags/<tag>")
def tag(tag: str) -> str:
    """One AMI tag: what it configures, and the datasets made with it
    (counted up to 1,000: "more than 1,000" for a tag of a big campaign).
    """
    offset = int_arg(request.args, "offset", 0)
    with catalog_session() as session:
        found = get_ami_tag(tag, session=session)
        datasets = datasets_with_tag(
            found.tag, session=session, offset=offset, limit=DATASETS_PER_PAGE
        )
    return render_template(
        "amitag.html", tag=found, parameters=tag_parameters(found), datasets=datasets
    )


@amitags.app_template_global()
def tags_of(version: str | None) -> list[str]:
    """The AMI tags of a dataset's version (``e3601_s3126`` → two tags), or
    none when the version is not a tag chain.
    """
    try:
        return [str(tag) for tag in parse_tag_chain(version or "")]
    except InvalidName:
        return []
