"""The :class:`Client`: one AMI command sent over HTTP, its answer read."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from web.client.commands import command_line
from web.client.errors import AmiConnectionError, AmiProtocolError, InvalidInput
from web.client.results import AmiResult, alias_types, parse_answer

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the endpoint's answer, unless told otherwise."""

USER_AGENT = "hepcat-client/1"


# --- the client -----------------------------------------------------------


class Client:
    """Send AMI commands to one endpoint.

    :param url: the endpoint, e.g. ``http://127.0.0.1:5000/AMI/FrontEnd``.
    :param token: an API token, sent as ``Authorization: Bearer <token>``.
    :param user: a login, sent with *password* as ``-AMIUser``/``-AMIPass``
        appended to every command.
    :param timeout: seconds to wait for an answer (default 60).
    :raises InvalidInput: when *url* is not an http(s) URL, or *user* comes
        without *password*.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"{url!r} is not an http:// or https:// URL")
        if user is not None and password is None:
            raise InvalidInput(f"user {user!r} needs a password")
        self.url = url
        self.token = token
        self.user = user
        self._password = password
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def execute(self, command: str, /, **arguments: Any) -> AmiResult:
        """Send *command* with *arguments* and return the parsed answer.

        ``client.execute("AMIListFiles", logicalDatasetName=name, total="no")``
        sends ``AMIListFiles -logicalDatasetName="..." -total="no"``.

        :raises AmiError: the subclass named by the server's ``<error>``.
        :raises AmiConnectionError: when the endpoint cannot be reached.
        """
        return self.send(command, arguments)

    def send(
        self,
        command: str,
        arguments: Mapping[str, Any],
        *,
        types: Mapping[str, str] | None = None,
    ) -> AmiResult:
        """Like :meth:`execute`, with the arguments as a mapping.

        :param types: maps ``AS`` aliases to the AMI fields they stand for, so
            that their values are typed like those fields; a ``SearchQuery``
            reads them from the select list of its ``-mql`` too.
        """
        if command.lower() == "searchquery":
            types = {**_mql_types(arguments), **(types or {})}
        if self.user is not None:
            arguments = {**arguments, "AMIUser": self.user, "AMIPass": self._password}
        line = command_line(command, arguments)
        return parse_answer(self._post(line), self.url, types)

    def _post(self, line: str) -> bytes:
        form = urllib.parse.urlencode({"Command": line, "Converter": ""}).encode()
        request = urllib.request.Request(self.url, data=form, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("User-Agent", USER_AGENT)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                body: bytes = answer.read()
                return body
        except urllib.error.HTTPError as err:
            # hepcat answers every command with 200, but an AMI server or a
            # proxy may send an AMI message with an error status; the message
            # says more than the status does.
            return _error_body(err, self.url)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise AmiConnectionError(self.url, str(reason)) from None


def _mql_types(arguments: Mapping[str, Any]) -> dict[str, str]:
    """The AMI fields of the aliases of the ``-mql`` in *arguments*."""
    for name, value in arguments.items():
        if name.lower() == "mql" and isinstance(value, str):
            return alias_types(value)
    return {}


def _error_body(err: urllib.error.HTTPError, url: str) -> bytes:
    body = err.read()
    if b"<AMIMessage" in body:
        return body
    raise AmiProtocolError(url, f"HTTP {err.code} {err.reason}")
