"""The Flask application: server-rendered pages over the catalogue.

:func:`create_app` takes its configuration and engine explicitly, so a test
can build as many applications as it likes. Each request that reads the
catalogue opens its own transaction with :func:`catalog_session`, and every
error a page meets is rendered in one place, :func:`render_error`.
"""

from __future__ import annotations

import gc
import logging
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from catalog.config import Config, load_config
from catalog.db import open_catalog, session_factory
from catalog.errors import (
    AuthenticationFailed,
    DatabaseUnavailable,
    HepcatError,
    InvalidInput,
    RequestTooLarge,
)
from web.secretkey import stored_secret_key

logger = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"

#: The methods whose requests carry no body that a view reads.
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class WebCatalog:
    """What the application keeps in ``app.extensions["hepcat"]``."""

    config: Config
    engine: Engine
    Session: sessionmaker[Session]  # noqa: N815 - named like the fixture


def create_app(config: Config | None = None, *, engine: Engine | None = None) -> Flask:
    """Create the web application for the catalogue.

    :param config: the settings (default: :func:`catalog.config.load_config`).
    :param engine: the catalogue engine (default: opened from *config*); the
        application never disposes an engine it was given.
    """
    config = config if config is not None else load_config()
    engine = engine if engine is not None else open_catalog(config)
    app = Flask(__name__)
    app.config["SECRET_KEY"] = config.secret_key or _stored_secret_key(config)
    # Flask's defaults already hold these keys (None, False): set, not setdefault.
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = config.secure_cookies
    # Bodies over it are refused before a view reads them (refuse_large_bodies).
    app.config["MAX_CONTENT_LENGTH"] = upload_limit(config)
    app.extensions["hepcat"] = WebCatalog(config, engine, session_factory(engine))
    app.register_error_handler(HepcatError, render_error)
    app.register_error_handler(HTTPException, render_http_error)
    app.before_request(refuse_large_bodies)
    app.before_request(refuse_nul_characters)
    app.after_request(add_security_headers)

    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
    return app


def upload_limit(config: Config) -> int:
    """The bytes of the largest request body the pages and the API take."""
    return int(config.max_upload_mb * 1_000_000)


def refuse_large_bodies() -> None:
    """Refuse a request whose body is over the upload limit before a view
    reads it, with an error each surface renders its own way. The AMI
    endpoint has a lower limit of its own, and answers in AMI's formats.

    A body that says its size is refused unread. One sent in chunks cannot
    say it: it is read here, up to the limit, and kept for the view (Werkzeug
    would cut a form at the limit without a word, and a field with it).

    :raises RequestTooLarge: when the body is over the limit.
    """
    if request.blueprint == "ami":
        # It reads no more than the start of a body over its own limit.
        # (None would mean the application's limit, not none.)
        request.max_content_length = sys.maxsize
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    size = request.content_length
    if size is not None and size > limit:
        raise RequestTooLarge(size, limit)
    chunked = size is None and request.method not in BODILESS_METHODS
    if chunked and len(request.get_data(cache=True)) >= limit:
        raise RequestTooLarge(None, limit)


def refuse_nul_characters() -> None:
    """Refuse a NUL character in a page's path segment, query argument or
    form field: no catalogue text holds one, and PostgreSQL cannot even
    compare with it. The JSON API and the AMI endpoint answer such input in
    their own formats; an unknown URL stays a 404.

    :raises InvalidInput: naming the argument.
    """
    if request.url_rule is None or request.blueprint == "ami" or _in_api():
        return
    path = (request.view_args or {}).items()
    arguments = [*request.args.items(multi=True), *request.form.items(multi=True)]
    for name, value in [*path, *arguments]:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL characters")


#: Sent with every response: no site may frame hepcat's pages (clickjacking),
#: a browser takes each response for the type it is sent as, and a link
#: followed to another site does not carry the URL it was on. There is no
#: ``script-src``: the pages keep their inline scripts.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    """Add :data:`SECURITY_HEADERS` to *response*, keeping any a view set."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def settle() -> None:
    """Call once the application is built, in a process that serves it: the
    objects alive now (modules, routes, the model) live as long as the
    process, so they are moved out of the garbage collector's reach. Without
    this a full collection scans them all, a pause of about 100 ms on one
    request in a dozen.
    """
    gc.collect()
    gc.freeze()


def _blueprints() -> list[Any]:
    """The parts of the application, each a blueprint in its own module."""
    from web.ami import ami
    from web.amitags import amitags
    from web.annotations import annotation_pages
    from web.api import api
    from web.auth import auth
    from web.operations import operations
    from web.pages import pages
    from web.plots import plots
    from web.runs import runs
    from web.skims import skims
    from web.tags import tags
    from web.users import users

    return [
        pages,
        runs,
        amitags,
        tags,
        skims,
        operations,
        plots,
        auth,
        users,
        annotation_pages,
        api,
        ami,
    ]


def _stored_secret_key(config: Config) -> str:
    """Return the key kept in the data directory, making it on first use.

    A key that survives restarts keeps sessions valid; when the directory
    cannot be written, a key for this process alone will do.
    """
    path = config.data_path / SECRET_KEY_FILE
    try:
        return stored_secret_key(path)
    except OSError as err:
        logger.warning(
            "Cannot keep a secret key in %s (%s); using one per process", path, err
        )
        return secrets.token_hex(32)


def web_catalog() -> WebCatalog:
    """Return the catalogue of the current application."""
    state: WebCatalog = current_app.extensions["hepcat"]
    return state


@contextmanager
def catalog_session() -> Iterator[Session]:
    """Open a transaction on the catalogue for the current request.

    :raises DatabaseUnavailable: when the database cannot be reached.
    """
    state = web_catalog()
    try:
        with state.Session.begin() as session:
            yield session
    except OperationalError as err:
        logger.warning("Catalogue database error: %s", err.orig)
        url = state.engine.url.render_as_string(hide_password=True)
        reason = str(err.orig).strip().splitlines()[0] if err.orig else "unknown"
        raise DatabaseUnavailable(url, reason) from None


def render_error(error: HepcatError) -> ResponseReturnValue:
    """Render *error* as the error page, with its HTTP status; a page that
    needs a login answers with the login form instead, which leads back.
    """
    if _in_api():
        return _render_api_error(error)
    if isinstance(error, AuthenticationFailed):
        from web.auth import login_page

        return login_page(error.message, error.status)
    if error.status >= 500:
        logger.warning("%s on %s: %s", error.type, request.path, error.message)
    return _error_page(error.type, error.message, error.status)


def render_http_error(error: HTTPException) -> ResponseReturnValue:
    """Render an HTTP error (unknown URL, wrong method, unexpected failure)."""
    if _in_api():
        return _render_api_error(error)
    status = error.code or 500
    if status == 404:
        message = f"no page at {request.path}; search the datasets instead"
        return _error_page("NotFound", message, 404)
    if status >= 500:
        # Flask has logged the exception; the page says only that it happened.
        message = "hepcat met an unexpected error, logged on the server; try again"
        return _error_page("InternalError", message, status)
    return _error_page(type(error).__name__, error.description or error.name, status)


def _in_api() -> bool:
    """Whether the request is under the JSON API's prefix. Its blueprint
    renders its own errors, but an unknown URL or method there matches no
    route, so the application's handlers meet it first.
    """
    from web.api import api

    prefix = str(api.url_prefix)
    return request.path == prefix or request.path.startswith(prefix + "/")


def _render_api_error(error: Exception) -> ResponseReturnValue:
    from web.api.errors import render_api_error

    return render_api_error(error)


def _error_page(kind: str, message: str, status: int) -> tuple[str, int]:
    context: dict[str, Any] = {"type": kind, "message": message, "status": status}
    return render_template("error.html", **context), status
