"""The OpenAPI 3 document of the JSON API, at ``/api/v1/openapi.json``.

It is generated, never written by hand: every route of the blueprint is
found in the application's URL map, and its view declares what it reads and
answers with :func:`documented` (marshmallow schemas, turned into JSON Schema
by apispec's MarshmallowPlugin). A route without the declaration still
appears, so the document cannot silently miss one.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import Schema

from web.api import api, schemas

View = TypeVar("View", bound=Callable[..., Any])

VERSION = "1.0.0"
ERRORS = {
    400: "the input cannot be used (bad argument, body or cursor)",
    401: "no user, or wrong credentials, where one is needed",
    403: "the user lacks the role this needs",
    404: "no such object",
}
# Integers in paths (run numbers) are 32-bit columns.
MAX_INT = 2**31 - 1
# The media types of the files a download answers with, and their schema.
ROOT_FILE = "application/octet-stream"
CSV_FILE = "text/csv"
BINARY = {"type": "string", "format": "binary"}
# A path argument: <name>, <int:number>, <string(length=2):x>.
_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\(.*?\))?:)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Operation:
    """What a view reads and answers, for the OpenAPI document."""

    response: type[Schema] | None
    status: int
    query: type[Schema] | None
    body: type[Schema] | None
    errors: tuple[int, ...]
    files: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    optional_body: bool = False


UNDECLARED = Operation(None, 200, None, None, (400, 404))


def documented(
    response: type[Schema] | None = None,
    *,
    status: int = 200,
    query: type[Schema] | None = None,
    body: type[Schema] | None = None,
    errors: tuple[int, ...] = (400, 404),
    files: tuple[str, ...] = (),
    numbers: tuple[str, ...] = (),
    optional_body: bool = False,
) -> Callable[[View], View]:
    """Declare what a view answers (*response* with *status*; ``None``: no
    content, or a download of one of the media types *files*), the query
    arguments and JSON body it reads (*optional_body*: an empty one is taken
    too), and the error statuses it may answer besides 401/403.

    :param numbers: the path arguments that the view reads as whole numbers
        itself (a 400 for other text), documented as integers as those of
        ``<int:...>`` rules are.
    """

    def declare(view: View) -> View:
        operation = Operation(
            response, status, query, body, errors, files, numbers, optional_body
        )
        view.openapi = operation  # type: ignore[attr-defined]
        return view

    return declare


@api.get("/openapi.json")
@documented(schemas.OpenApiDocument, errors=())
def openapi_json() -> ResponseReturnValue:
    """This document: every route, its arguments, answers and errors."""
    state = current_app.extensions.setdefault("hepcat_openapi", {})
    if "document" not in state:
        state["document"] = openapi_document(current_app)
    return jsonify(state["document"])


def openapi_document(app: Flask) -> dict[str, Any]:
    """Build the OpenAPI document of the routes of the ``api`` blueprint."""
    spec = APISpec(
        title="hepcat JSON API",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": _description()},
    )
    spec.components.security_scheme("token", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=schemas.Error)
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint[:4] == "api."]
    for rule in sorted(rules, key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        operations = {m.lower(): _operation(rule.endpoint, view) for m in methods}
        numbers = getattr(view, "openapi", UNDECLARED).numbers
        path, parameters = _path(rule.rule, numbers)
        spec.path(path=path, operations=operations, parameters=parameters)
    return spec.to_dict()


def _description() -> str:
    return (
        "The hepcat catalogue: datasets with their AMI fields and derived "
        "quantities, files, provenance, runs, periods, AMI tags, quarantine "
        "and annotations. Lists are paged by keyset: follow `next`. Every "
        "error has the shape of the `Error` schema."
    )


def _path(rule: str, numbers: tuple[str, ...]) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path of a URL rule and its path parameters, those named in
    *numbers* integers.
    """
    parameters = []
    for found in _ARGUMENT.finditer(rule):
        integer = found["converter"] == "int" or found["name"] in numbers
        schema = (
            {"type": "integer", "minimum": 0, "maximum": MAX_INT}
            if integer
            else {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        )
        parameters.append(
            {"in": "path", "name": found["name"], "required": True, "schema": schema}
        )
    return _ARGUMENT.sub(r"{\g<name>}", rule), parameters


def _operation(endpoint: str, view: Callable[..., Any]) -> dict[str, Any]:
    doc = inspect.getdoc(view) or endpoint
    summary, _, description = doc.partition("\n\n")
    summary = " ".join(summary.split())
    operation: Operation = getattr(view, "openapi", UNDECLARED)
    role = getattr(view, "required_role", None)
    document: dict[str, Any] = {
        "operationId": endpoint.removeprefix("api."),
        "summary": summary,
        "tags": [view.__module__.rsplit(".", 1)[-1]],
        "responses": _responses(operation, role),
    }
    if description.strip():
        document["description"] = description.strip()
    if operation.query is not None:
        document["parameters"] = [{"in": "query", "schema": operation.query}]
    if operation.body is not None:
        content = {"application/json": {"schema": operation.body}}
        required = not operation.optional_body
        document["requestBody"] = {"required": required, "content": content}
    # Reading may be anonymous (setting anonymous_read); writing needs a token.
    document["security"] = [{"token": []}] if role else [{}, {"token": []}]
    return document


def _responses(operation: Operation, role: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "success"}
    if operation.response is not None:
        answer["content"] = {"application/json": {"schema": operation.response}}
    elif operation.files:
        answer["description"] = "the file"
        answer["content"] = {media: {"schema": BINARY} for media in operation.files}
    else:
        answer["description"] = "done; no content"
    responses = {str(operation.status): answer}
    statuses = {*operation.errors, 401, 403}
    for status in sorted(statuses):
        reason = ERRORS[status]
        if status == 403 and role:
            reason = f"the user lacks the role {role!r}"
        responses[str(status)] = _error(reason)
    responses["default"] = _error("any other error, in the same shape")
    return responses


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": "Error"}},
    }
