"""The AMI command endpoint, for pyAMI clients.

A client posts the form fields ``Command`` (one command line) and
``Converter`` (empty for XML, or the name of one of AMI's XSL converters) to
``/AMI/FrontEnd``, and gets an ``AMIMessage`` back
(``../shared/AMI_PROTOCOL.md``, ``docs/ami.md``). ``-AMIUser``/``-AMIPass``
in the command log the user in for this request (:func:`web.auth.ami_login`)
before reading is checked (:func:`web.auth.check_read`).

Every answer, an error included, has HTTP status 200: AMI's errors travel
in the message, and pyAMI reads the message whatever the status. An error is
rendered in one place, :func:`failed`: ``<error type="DatasetNotFound">``
with the message, never SQL and never a traceback.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError

from catalog.errors import AuthenticationFailed, HepcatError
from web import auth
from web.ami.commandline import CommandLine, parse_command_line
from web.ami.commands import run_command
from web.ami.reply import CONVERTERS, Reply, get_converter
from web.app import catalog_session

logger = logging.getLogger(__name__)

ami = Blueprint("ami", __name__)

PATHS = (
    "/AMI/FrontEnd",
    "/AMI2/FrontEnd",
    "/AMI/servlet/net.hep.atlas.Database.Bookkeeping.AMI.Servlet.FrontEnd",
)

UNEXPECTED = "hepcat met an unexpected error, logged on the server; try again"


def frontend() -> Response:
    """Answer the AMI command of the request."""
    started = time.perf_counter()
    name = request.values.get("Converter", "")
    converter = CONVERTERS.get(name, CONVERTERS[""])
    reply = answer(request.values.get("Command", ""), name, started)
    body = converter.render(reply)
    return Response(body, status=200, mimetype=converter.mimetype)


for _path in PATHS:
    ami.add_url_rule(_path, view_func=frontend, methods=["GET", "POST"])


def answer(text: str, converter: str, started: float) -> Reply:
    """The reply to the command line *text*, an error included."""
    line = CommandLine(text.split(maxsplit=1)[0] if text.strip() else "")
    try:
        get_converter(converter)
        line = parse_command_line(text)
        _log_in(line)
        with catalog_session() as session:
            found = run_command(line, session=session)
    except Exception as error:  # noqa: BLE001 - every error becomes a reply
        return failed(line, error, started)
    seconds = time.perf_counter() - started
    return Reply(line.name, line.arguments, found.rowsets, found.infos, None, seconds)


def _log_in(line: CommandLine) -> None:
    """Log in with the command's credentials, if any; then check that the
    request may read the catalogue.

    :raises AuthenticationFailed: for wrong or half-given credentials.
    """
    user, password = line.credentials.get("AMIUser"), line.credentials.get("AMIPass")
    if user or password:
        if not (user and password):
            raise AuthenticationFailed("give both -AMIUser and -AMIPass")
        auth.ami_login(user, password)
    auth.check_read()


def failed(line: CommandLine, error: Exception, started: float) -> Reply:
    """The reply to a command that met *error*: the error's class name and
    message for a :class:`HepcatError`; for anything else, a message that
    says only that it happened (the details go to the log).
    """
    if isinstance(error, HepcatError):
        kind, message = error.type, error.message
    elif isinstance(error, DBAPIError):
        logger.warning("AMI command %s: database error %s", line.name, error.orig)
        kind, message = (
            "DatabaseError",
            ("the catalogue database could not run this command; check its values"),
        )
    else:
        logger.exception("AMI command %s failed", line.name)
        kind, message = "InternalError", UNEXPECTED
    seconds = time.perf_counter() - started
    return Reply(line.name, line.arguments, error=(kind, message), seconds=seconds)
