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
with the message, never SQL and never a traceback. That includes a request
whose body is over the endpoint's limit (:data:`MAX_COMMAND_BYTES`), which
is refused before the ``Command`` is read: it answers
:class:`CommandTooLong` in the converter the request asks for.

A command in the URL (``GET``, or a query string on a ``POST``) must not
carry ``-AMIPass``: servers and proxies log URLs. It is refused with
:class:`PasswordInUrl` before the password is looked at.
"""

from __future__ import annotations

import io
import logging
import time
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from catalog.errors import AuthenticationFailed, HepcatError, InvalidInput
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
#: The most bytes a request's body may have, URL-encoded or multipart (files
#: and all): Flask's default form limit, kept on purpose. The credentials are
#: in the command, so any client makes the endpoint read and parse this much
#: before it knows who asks, and the reply echoes the arguments back; a
#: command takes about ten times its size in memory while it is answered.
#: Larger event collections go through the API or the page (docs/ami.md).
MAX_COMMAND_BYTES = 500_000
#: Marks a request whose body came in chunks and went past the limit.
CHUNKED_OVER = "hepcat.chunked_over"
#: Bytes read from the start of a body too long to read, for its fields.
PEEK = 512


class CommandTooLong(InvalidInput):
    """The body of an AMI request is over the endpoint's *limit*, so its
    command is not read; *size* is the bytes of the request's body as sent
    (URL-encoded or multipart), when the request says.
    """

    def __init__(self, size: int | None, limit: int) -> None:
        sent = f"{size:,} bytes as sent, " if size is not None else ""
        super().__init__(
            f"the command is too long: {sent}over the AMI endpoint's limit of "
            f"{limit:,} bytes; send a large event collection (AMICreateSkim "
            "-collection) through the JSON API instead, POST /api/v1/skims with "
            "the collection in base64, or upload it on the page /skims/new"
        )


class PasswordInUrl(InvalidInput):
    """A command sent in the URL carries ``-AMIPass``."""

    def __init__(self) -> None:
        super().__init__(
            "send -AMIPass in a POST body, never in a URL: URLs are logged"
        )


def frontend() -> Response:
    """Answer the AMI command of the request."""
    started = time.perf_counter()
    request.max_form_memory_size = MAX_COMMAND_BYTES
    try:
        if _body_over_limit():
            raise RequestEntityTooLarge()
        name = request.values.get("Converter", "")
        reply = answer(request.values.get("Command", ""), name, started)
    except RequestEntityTooLarge:
        name, reply = refused(started)
    converter = CONVERTERS.get(name, CONVERTERS[""])
    body = converter.render(reply)
    return Response(body, status=200, mimetype=converter.mimetype)


for _path in PATHS:
    ami.add_url_rule(_path, view_func=frontend, methods=["GET", "POST"])


def answer(text: str, converter: str, started: float) -> Reply:
    """The reply to the command line *text*, an error included."""
    line = CommandLine(text.split(maxsplit=1)[0] if text.strip() else "")
    try:
        if "-amipass" in request.args.get("Command", "").lower():
            raise PasswordInUrl()
        get_converter(converter)
        line = parse_command_line(text)
        _log_in(line)
        with catalog_session() as session:
            found = run_command(line, session=session)
    except Exception as error:  # noqa: BLE001 - every error becomes a reply
        return failed(line, error, started)
    seconds = time.perf_counter() - started
    return Reply(line.name, line.arguments, found.rowsets, found.infos, None, seconds)


def _body_over_limit() -> bool:
    """Whether the request's body, file parts and all, is over the limit:
    the form's own limit holds each field alone, not a multipart body's
    files, which anyone may send before the command is read.
    """
    size = request.content_length
    return size > MAX_COMMAND_BYTES if size is not None else _chunked_over_limit()


def _chunked_over_limit() -> bool:
    """Whether a body sent in chunks (no ``Content-Length`` to look at)
    goes past the limit. Such a body is read up to one byte past it, and
    that much is handed on (its size is unknown).
    """
    environ = request.environ  # not the request's fields: they are cached
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("CONTENT_LENGTH"):
        return False
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return False
    data = environ["wsgi.input"].read(MAX_COMMAND_BYTES + 1)
    environ["wsgi.input"] = io.BytesIO(data)
    environ[CHUNKED_OVER] = len(data) > MAX_COMMAND_BYTES
    return bool(environ[CHUNKED_OVER])


def refused(started: float) -> tuple[str, Reply]:
    """The converter asked for and the reply to a request whose body is too
    long to read (:class:`CommandTooLong`).

    Only the start of the body is read, where pyAMI puts the ``Converter``
    before the ``Command``: the answer then comes in the format the client
    reads, and names the command when the start shows it.
    """
    ahead = _fields_ahead(request.stream.read(PEEK))
    converter = request.args.get("Converter", ahead.get("Converter", ""))
    # A name is whole only when something follows it in what was read.
    words = ahead.get("Command", "").split(maxsplit=1)
    line = CommandLine(words[0] if len(words) == 2 else "")
    size = None if request.environ.get(CHUNKED_OVER) else request.content_length
    error = CommandTooLong(size, MAX_COMMAND_BYTES)
    return converter, failed(line, error, started)


def _fields_ahead(head: bytes) -> dict[str, str]:
    """The form fields that *head*, the start of the body, shows (in a
    multipart body: the fields it holds whole, before any file).
    """
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary", "")
        return _parts_ahead(head, boundary.encode("latin-1", "replace"))
    if request.mimetype == "application/x-www-form-urlencoded":
        text = head.decode("utf-8", "replace")
        return dict(parse_qsl(text, keep_blank_values=True))
    return {}


def _parts_ahead(head: bytes, boundary: bytes) -> dict[str, str]:
    """The fields of a multipart body that *head* holds whole."""
    decoder = MultipartDecoder(boundary)
    decoder.receive_data(head)
    found: dict[str, str] = {}
    name, value = "", b""
    try:
        while not isinstance(event := decoder.next_event(), NeedData | Epilogue):
            if isinstance(event, Field | File):
                name, value = (event.name if isinstance(event, Field) else ""), b""
            elif isinstance(event, Data) and name:
                value += event.data
                if not event.more_data:
                    found[name] = value.decode("utf-8", "replace")
    except ValueError:  # not a multipart body after all
        pass
    return found


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
