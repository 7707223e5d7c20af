"""The errors of the client: one class per ``<error type="...">`` the
endpoint answers, all subclasses of :class:`AmiError`.
"""

from __future__ import annotations

# --- errors ---------------------------------------------------------------


class AmiError(Exception):
    """An error the AMI endpoint answered, or a failure to talk to it.

    An ``<error>`` whose ``type`` this client does not know is raised as an
    :class:`AmiError` itself; :attr:`type` still names what the server said.
    """

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self._kind = kind

    @property
    def type(self) -> str:
        """The error's kind, as the server named it (``DatasetNotFound``)."""
        return self._kind or type(self).__name__

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.type

    def __str__(self) -> str:  # LookupError and friends would quote the message
        return self.message


class AmiConnectionError(AmiError, ConnectionError):
    """The endpoint cannot be reached, or did not answer in time."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the AMI endpoint {url}: {reason}; check the URL "
            "(hepcat ami --url, HEPCAT_AMI_URL) and that the server is running"
        )
        self.url = url


class AmiProtocolError(AmiError):
    """The endpoint answered something that is not an AMI message."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the answer of {url} is not an AMI message: {reason}")
        self.url = url


class NotFound(AmiError, LookupError):
    """An object the command named does not exist."""


class DatasetNotFound(NotFound):
    """No dataset has the name the command gave."""


class ContainerNotFound(NotFound):
    """No DDM container has the name the request gave."""


class FileNotFound(NotFound):
    """No file has the LFN or GUID the command gave."""


class AmiTagNotFound(NotFound):
    """No AMI tag has the name the command gave."""


class RunNotFound(NotFound):
    """No run has the number the command gave."""


class UserNotFound(NotFound):
    """No user has the login the command gave."""


class EventFileNotFound(NotFound):
    """An event data file of a dataset is in no file catalogue nor storage."""


class QuarantineNotFound(NotFound):
    """No quarantined record has the id the request gave."""


class InvalidInput(AmiError, ValueError):
    """The command carries a value that cannot be used (a malformed MQL query,
    an unknown field, a missing argument).
    """


class InvalidName(AmiError, ValueError):
    """A dataset name or AMI tag does not follow the nomenclature."""


class AlreadyReleased(InvalidInput):
    """The quarantined record the request would release is released already."""


class UnknownSource(InvalidInput):
    """A filter named no source of quarantined records or of differences."""


class AuthenticationFailed(AmiError, PermissionError):
    """The credentials are wrong, or the command needs a user and has none."""


class PermissionDenied(AmiError, PermissionError):
    """The user lacks the role the command needs."""


class DatabaseUnavailable(AmiError, ConnectionError):
    """The server cannot reach its catalogue database."""


class SchemaOutdated(AmiError, RuntimeError):
    """The server's catalogue schema needs ``hepcat db upgrade``."""


class RequestTooLarge(AmiError, ValueError):
    """A request's body is over the server's upload limit. The AMI endpoint
    says so with ``CommandTooLong`` (an :class:`InvalidInput`); the JSON API
    and the pages with this error's name.
    """


class IncompleteAnswer(UserWarning):
    """A warning: the endpoint answered part of a list only, and the command
    has no ``-limit`` to ask for the rest with (``AMIListRuns``).
    """

    def __init__(self, command: str, info: str) -> None:
        super().__init__(f"{command} answered part of the list: {info}")
        self.command = command
        self.info = info


_ERRORS: dict[str, type[AmiError]] = {
    cls.__name__: cls
    for cls in (
        NotFound,
        DatasetNotFound,
        ContainerNotFound,
        FileNotFound,
        AmiTagNotFound,
        RunNotFound,
        UserNotFound,
        EventFileNotFound,
        QuarantineNotFound,
        InvalidInput,
        InvalidName,
        AlreadyReleased,
        UnknownSource,
        AuthenticationFailed,
        PermissionDenied,
        DatabaseUnavailable,
        SchemaOutdated,
        RequestTooLarge,
    )
}


def error_from(kind: str | None, message: str) -> AmiError:
    """Return the client error for an ``<error type="kind">`` of the server."""
    cls = _ERRORS.get(kind or "", AmiError)
    return cls(message, kind=kind or None)
