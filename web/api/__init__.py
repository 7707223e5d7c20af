"""The JSON API under ``/api/v1``: the catalogue's datasets, DDM containers,
files, runs, periods, AMI tags, quarantine, annotations, TAG databases and
skims, described by an OpenAPI document at ``/api/v1/openapi.json``.

Each module holds the routes of one entity (``datasets``, ``files``,
``runs``, ...). A view parses its input with a marshmallow schema
(:mod:`web.api.schemas`), calls :mod:`catalog` inside
:func:`web.app.catalog_session`, and dumps the result with a schema. Every
error is rendered by :func:`web.api.errors.render_api_error`; lists are paged
by keyset (:mod:`web.api.paging`). Reading obeys ``anonymous_read`` (checked
for every request by :mod:`web.auth`); writing needs a role, given as an
``Authorization: Bearer <token>`` header.
"""

from __future__ import annotations

from flask import Blueprint, request

from catalog.errors import InvalidInput
from web.api.errors import render_api_error

api = Blueprint("api", __name__, url_prefix="/api/v1")
api.register_error_handler(Exception, render_api_error)


@api.before_request
def _check_path() -> None:
    """Refuse a NUL character in a path argument: no name in the catalogue
    has one, and PostgreSQL cannot even compare with it.
    """
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL characters")


# The routes; imported after the blueprint exists, which they decorate. (As
# "import web.api.x": "from web.api import annotations" would find the
# __future__ feature of that name instead of the module.)
import web.api.amitags  # noqa: E402
import web.api.annotations  # noqa: E402
import web.api.containers  # noqa: E402
import web.api.datasets  # noqa: E402
import web.api.files  # noqa: E402
import web.api.openapi  # noqa: E402
import web.api.quarantine  # noqa: E402
import web.api.runs  # noqa: E402
import web.api.skims  # noqa: E402
import web.api.tags  # noqa: E402, F401
