"""The errors of hepcat.

Every error that reaches a user derives from :class:`HepcatError`. Specific
errors also derive from the matching builtin, carry an HTTP ``status`` for the
web surfaces, and build their message from their arguments. Each surface (JSON
API, AMI endpoint, CLI, client, tasks) renders them in exactly one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from catalog.urls import hide_password


class HepcatError(Exception):
    """Base class of every error hepcat reports to a user."""

    status: int = 500

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


def _suggest(suggestions: Sequence[str]) -> str:
    if not suggestions:
        return ""
    return f"; did you mean {', '.join(map(repr, suggestions))}?"


class ConfigError(HepcatError, ValueError):
    """A setting has a value that cannot be used. The message quotes the
    value with any password in it hidden.
    """

    status = 500

    def __init__(self, name: str, value: object, reason: str) -> None:
        shown = hide_password(value) if isinstance(value, str) else value
        super().__init__(f"setting {name} = {shown!r} is not usable: {reason}")
        self.name = name


class UnknownSetting(HepcatError, KeyError):
    """A configuration file or variable names a setting that does not exist."""

    status = 500

    def __init__(self, name: str, where: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(f"unknown setting {name!r} in {where}{_suggest(suggestions)}")
        self.name = name

    def __str__(self) -> str:  # KeyError would quote the message again
        return self.message


class NotFound(HepcatError, LookupError):
    """An object the user named does not exist."""

    status = 404

    def __str__(self) -> str:
        return self.message


class DatasetNotFound(NotFound):
    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(f"no dataset named {name!r}{_suggest(suggestions)}")
        self.name = name
        self.suggestions = list(suggestions)


class ContainerNotFound(NotFound):
    """No DDM container has the name the user gave."""

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        hint = _suggest(suggestions) or (
            "; the catalogue knows a container once DDM announces it "
            "(create_cnt or register_cnt)"
        )
        super().__init__(f"no DDM container named {name!r}{hint}")
        self.name = name
        self.suggestions = list(suggestions)


class FileNotFound(NotFound):
    def __init__(self, key: str, by: str = "LFN") -> None:
        super().__init__(f"no file with {by} {key!r} in the catalogue")
        self.key = key


class EventFileNotFound(NotFound):
    """An event data file is in none of the places the file store looks."""

    def __init__(self, lfn: str, looked: Sequence[str]) -> None:
        places = "; ".join(looked) or "nowhere (no storage root configured)"
        super().__init__(f"event file {lfn!r} not found; looked in: {places}")
        self.lfn = lfn
        self.looked = list(looked)


class AmiTagNotFound(NotFound):
    def __init__(self, tag: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(f"no AMI tag {tag!r}{_suggest(suggestions)}")
        self.tag = tag


class RunNotFound(NotFound):
    def __init__(self, run_number: int) -> None:
        super().__init__(f"no run {run_number} in the catalogue; see the list of runs")
        self.run_number = run_number


class UserNotFound(NotFound):
    def __init__(self, login: str) -> None:
        super().__init__(f"no user {login!r}; the list of users gives their logins")
        self.login = login


class InvalidName(HepcatError, ValueError):
    """A dataset name or AMI tag chain does not follow the nomenclature."""

    status = 400

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name!r} is not a valid name: {reason}")
        self.name = name
        self.reason = reason


class InvalidInput(HepcatError, ValueError):
    """A request carries a value that cannot be used."""

    status = 400

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors) or [message]


class RequestTooLarge(HepcatError):
    """A request's body is over the web server's *limit* (the setting
    ``max_upload_mb``), so it is not read; its *size* is None when it came
    in chunks, read up to the limit only.
    """

    status = 413

    def __init__(self, size: int | None, limit: int) -> None:
        sent = (
            f"{size:,} bytes, over"
            if size is not None
            else "sent in chunks, it goes past"
        )
        super().__init__(
            f"the request is too large: {sent} the server's limit of "
            f"{limit:,} bytes (setting max_upload_mb); an event collection that "
            "large is better selected on the server from its TAG database"
        )


class DatabaseUnavailable(HepcatError, ConnectionError):
    """The catalogue database cannot be reached."""

    status = 503

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the catalogue database {hide_password(url)}: {reason}; "
            "check HEPCAT_DATABASE_URL and that the server is running"
        )


class BrokerUnavailable(HepcatError, ConnectionError):
    """The DDM STOMP broker cannot be reached, or does not take the
    subscription.
    """

    status = 503

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"cannot subscribe at the DDM broker {hide_password(address)}: {reason}; "
            "check HEPCAT_DDM_BROKER and that the broker is running"
        )


class SchemaOutdated(HepcatError, RuntimeError):
    """The catalogue schema is older than this version of hepcat."""

    status = 503

    def __init__(self, current: str | None, head: str) -> None:
        shown = current or "empty"
        super().__init__(
            f"the catalogue schema is at {shown}, this hepcat needs {head}; "
            "run 'hepcat db upgrade'"
        )


class AuthenticationFailed(HepcatError, PermissionError):
    """Credentials (password, token, certificate DN) were given and are wrong,
    or a request that needs a user came without any.
    """

    status = 401


class PermissionDenied(HepcatError, PermissionError):
    """The user is known but lacks the role the request needs."""

    status = 403

    def __init__(self, login: str | None, role: str, action: str) -> None:
        who = f"user {login!r}" if login else "an anonymous user"
        super().__init__(f"{action} needs the role {role!r}; {who} does not have it")
        self.login = login
        self.role = role


class QuarantineNotFound(NotFound):
    """No quarantined record has the id an operator gave."""

    def __init__(self, record_id: int) -> None:
        super().__init__(
            f"no quarantined record with id {record_id}; the ids are in the "
            "first column of 'hepcat quarantine list' and of the quarantine page"
        )
        self.record_id = record_id


class UnknownSource(InvalidInput):
    """A filter names no source of quarantined records or of differences."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(
            f"no source named {name!r}; the sources are {', '.join(sorted(known))}"
        )
        self.name = name


class AlreadyReleased(InvalidInput):
    """An operator asked to release a record that is released already."""

    def __init__(self, record_id: int, key: str | None) -> None:
        named = f" ({key})" if key else ""
        super().__init__(
            f"quarantined record {record_id}{named} is released already; "
            "nothing to do (a record found bad again is quarantined anew, "
            "with an id of its own)"
        )
        self.record_id = record_id
