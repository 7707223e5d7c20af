"""Reading a request's arguments and answering with a page of a list.

A list answers ``{"items": [...], "next": URL, "cursor": "..."}``: ``next``
is the URL of the following page (the same arguments and its cursor) and
``cursor`` that cursor alone; both are ``null`` on the last page. Cursors are
opaque and made by :mod:`catalog.keyset`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import request, url_for
from marshmallow import Schema, ValidationError

from catalog.keyset import KeysetPage
from web.pages import one_value_each


def load_args(
    schema: type[Schema], hint: Callable[[str, list[str]], str] | None = None
) -> dict[str, Any]:
    """Return the query arguments of the request, loaded by *schema*.

    :param hint: how to ask for several values of an argument, said when
        one is repeated (:func:`web.pages.one_value_each`).
    :raises InvalidInput: for an argument given more than once; no
        argument of the API takes several.
    :raises marshmallow.ValidationError: for a bad or unknown argument.
    """
    one_value_each(request.args, hint=hint)
    loaded: dict[str, Any] = schema().load(request.args)
    return loaded


def load_body(schema: type[Schema], *, optional: bool = False) -> dict[str, Any]:
    """Return the JSON body of the request, loaded by *schema*.

    :param optional: take a request without a body as one of ``{}``.
    :raises marshmallow.ValidationError: when it is missing or does not fit.
    """
    body = {} if optional and not request.get_data() else json_object()
    loaded: dict[str, Any] = schema().load(body)
    return loaded


def json_object() -> dict[str, Any]:
    """The JSON object the request's body holds.

    :raises marshmallow.ValidationError: when it holds none, saying why.
    """
    if not request.is_json:
        kind = request.mimetype or "none"
        raise ValidationError(
            {"body": [f"must be JSON, sent as Content-Type: application/json "
                      f"(this request's is {kind})"]}
        )  # fmt: skip
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ValidationError({"body": ["is JSON nested too deeply"]}) from None
    if body is None and request.get_data():
        raise ValidationError({"body": ["is not JSON that parses"]})
    if not isinstance(body, dict):
        raise ValidationError({"body": ["must be a JSON object"]})
    return body


def dumped(schema: type[Schema], obj: Any) -> dict[str, Any]:
    """*obj* dumped by *schema*."""
    shown: dict[str, Any] = schema().dump(obj)
    return shown


def page_body(page: KeysetPage, item: type[Schema]) -> dict[str, Any]:
    """The answer of a list: *page*'s rows dumped by *item*, and the way on."""
    return {
        "items": item(many=True).dump(page.rows),
        "next": next_url(page.next_cursor),
        "cursor": page.next_cursor,
    }


def next_url(cursor: str | None) -> str | None:
    """The URL of the current request with *cursor* (None: no next page)."""
    if cursor is None:
        return None
    args = {key: value for key, value in request.args.items() if key != "cursor"}
    values = {**(request.view_args or {}), **args, "cursor": cursor}
    return url_for(str(request.endpoint), **values)
