"""A pyAMI-like client for the AMI command endpoint of hepcat (or of AMI).

:class:`Client` sends one AMI command (``POST`` of the form fields
``Command`` and ``Converter``, ``../shared/AMI_PROTOCOL.md``) and parses the
XML answer into an :class:`AmiResult`. An ``<error type="...">`` in the answer
is raised again as the client class of the same name (:class:`DatasetNotFound`,
:class:`InvalidInput`, ...), all subclasses of :class:`AmiError`, so that
``except DatasetNotFound:`` works on the caller's side as on the server's.

The functions below carry the names and arguments of ``pyAMI_atlas.api``
(:func:`list_datasets`, :func:`get_dataset_info`, :func:`list_files`, ...),
send the same commands, and return plain Python values: lists of dicts keyed
by the names pyAMI returns, with numbers as numbers and ``None`` for a missing
value (pyAMI returns every value as a string and a missing one as ``'NULL'``).

Nothing here reads configuration or prints: the ``hepcat ami`` command does.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AmiConnectionError",
    "AmiError",
    "AmiProtocolError",
    "AmiResult",
    "AmiTagNotFound",
    "AuthenticationFailed",
    "BOOLEAN_FIELDS",
    "Client",
    "DATASET_CATALOG",
    "DEFAULT_TIMEOUT",
    "DatabaseUnavailable",
    "DatasetNotFound",
    "EventFileNotFound",
    "FORMATS",
    "FileNotFound",
    "InvalidInput",
    "InvalidName",
    "NUMERIC_FIELDS",
    "NotFound",
    "PermissionDenied",
    "Rowset",
    "RunNotFound",
    "SchemaOutdated",
    "USER_AGENT",
    "UserNotFound",
    "argv_arguments",
    "command_line",
    "dataset_search",
    "error_from",
    "get_ami_tag",
    "get_dataset_info",
    "get_dataset_prov",
    "get_file",
    "list_commands",
    "list_dataperiods",
    "list_datasets",
    "list_files",
    "list_runs",
    "mql_string",
    "parse_answer",
    "parse_command_line",
    "quote",
    "render",
    "search_mql",
    "typed_value",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the endpoint's answer, unless told otherwise."""

USER_AGENT = "hepcat-client/1"


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


class InvalidInput(AmiError, ValueError):
    """The command carries a value that cannot be used (a malformed MQL query,
    an unknown field, a missing argument).
    """


class InvalidName(AmiError, ValueError):
    """A dataset name or AMI tag does not follow the nomenclature."""


class AuthenticationFailed(AmiError, PermissionError):
    """The credentials are wrong, or the command needs a user and has none."""


class PermissionDenied(AmiError, PermissionError):
    """The user lacks the role the command needs."""


class DatabaseUnavailable(AmiError, ConnectionError):
    """The server cannot reach its catalogue database."""


class SchemaOutdated(AmiError, RuntimeError):
    """The server's catalogue schema needs ``hepcat db upgrade``."""


_ERRORS: dict[str, type[AmiError]] = {
    cls.__name__: cls
    for cls in (
        NotFound,
        DatasetNotFound,
        FileNotFound,
        AmiTagNotFound,
        RunNotFound,
        UserNotFound,
        EventFileNotFound,
        InvalidInput,
        InvalidName,
        AuthenticationFailed,
        PermissionDenied,
        DatabaseUnavailable,
        SchemaOutdated,
    )
}


def error_from(kind: str | None, message: str) -> AmiError:
    """Return the client error for an ``<error type="kind">`` of the server."""
    cls = _ERRORS.get(kind or "", AmiError)
    return cls(message, kind=kind or None)


# --- command lines --------------------------------------------------------

_COMMAND = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ARGUMENT = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")


def quote(value: str) -> str:
    """Return *value* as a double-quoted AMI argument value: ``"`` and ``\\``
    are escaped with a backslash.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(command: str, arguments: Mapping[str, Any]) -> str:
    """Return the AMI command line of *command* with *arguments*.

    A value ``True`` is a bare flag (``-total``), ``None`` or ``False`` leaves
    the argument out, and any other value is quoted (``-limit="0,5"``).

    :raises InvalidInput: when the command or an argument name is not a name;
        they are never quoted, so they must not carry spaces or quotes.
    """
    if not _COMMAND.fullmatch(command):
        raise InvalidInput(f"{command!r} is not an AMI command name")
    words = [command]
    for name, value in arguments.items():
        if not _ARGUMENT.fullmatch(name):
            raise InvalidInput(f"{name!r} is not an AMI argument name")
        if value is True:
            words.append(f"-{name}")
        elif value is not None and value is not False:
            words.append(f"-{name}={quote(str(value))}")
    return " ".join(words)


_WORD = re.compile(
    r"\s+-(?P<name>[A-Za-z][A-Za-z0-9_.]*)"
    r'(?:=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]*)))?',
    re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def parse_command_line(line: str) -> tuple[str, dict[str, Any]]:
    """Split the AMI command line *line* into the command and its arguments;
    the inverse of :func:`command_line`.

    :raises InvalidInput: when *line* does not follow the AMI syntax.
    """
    line = line.strip()
    command, _, _ = line.partition(" ")
    if not _COMMAND.fullmatch(command):
        raise InvalidInput(f"{command!r} is not an AMI command name")
    arguments: dict[str, Any] = {}
    position = len(command)
    while position < len(line):
        match = _WORD.match(line, position)
        if match is None:
            rest = line[position:].strip()
            raise InvalidInput(f"cannot read the AMI command line at {rest[:40]!r}")
        arguments[match["name"]] = _word_value(match)
        position = match.end()
    return command, arguments


def _word_value(match: re.Match[str]) -> str | bool:
    if match["quoted"] is not None:
        return _ESCAPE.sub(r"\1", match["quoted"])
    if match["bare"] is not None:
        return match["bare"]
    return True


def argv_arguments(words: Iterable[str]) -> dict[str, Any]:
    """The arguments of a command given as separate words, as a shell hands
    them over (``-logicalDatasetName=mc16...``, ``-flag``): no quoting.

    :raises InvalidInput: for a word that is not ``-name=value`` or ``-name``.
    """
    arguments: dict[str, Any] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not name.startswith("-") or not _ARGUMENT.fullmatch(name[1:]):
            raise InvalidInput(f"{word!r} is not an AMI argument (-name=value)")
        arguments[name[1:]] = value if equals else True
    return arguments


# --- results --------------------------------------------------------------

NUMERIC_FIELDS = frozenset(
    {
        # dataset
        "datasetNumber",
        "runNumber",
        "nFiles",
        "totalEvents",
        "totalSize",
        "crossSection",
        "crossSectionMin",
        "crossSectionMax",
        "genFiltEff",
        "completion",
        "ecmEnergy",
        "nLostLumiBlocks",
        "ddmNFiles",
        "ddmTotalEvents",
        "ddmTotalSize",
        "prodsysIdentifier",
        # production task
        "taskId",
        "parentTaskId",
        "totalEventsRequested",
        # file
        "fileSize",
        "events",
        # provenance, runs, periods, AMI tags
        "distance",
        "nLumiBlocks",
        "periodLevel",
        "nRuns",
        "reprocessingErrors",
        "tagNumber",
    }
)
"""AMI field names whose values are numbers; the client returns them as
``int`` or ``float``. A test keeps this set in step with the catalogue's
numeric columns.
"""

BOOLEAN_FIELDS = frozenset(
    {"ddmOpen", "ddmConsistent", "ddmIncomplete", "lost", "stableBeams", "isBaseType"}
)
"""AMI field names whose values are ``true`` or ``false``; the client returns
them as ``bool``.
"""

_NULL = "NULL"
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def typed_value(name: str, text: str | None) -> Any:
    """Return the value of field *name* as the server wrote it in *text*:
    ``None`` when missing, a number or a ``bool`` when the field is one.
    """
    if text is None or text == "" or text == _NULL:
        return None
    if name in BOOLEAN_FIELDS:
        return _BOOLEANS.get(text.lower(), text)
    if name not in NUMERIC_FIELDS:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # An AMI server may write "N/A"; keep what it says.


@dataclass(frozen=True)
class Rowset:
    """One ``<rowset type="...">`` of an answer: its rows, as dicts."""

    type: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AmiResult:
    """The parsed answer to one command."""

    command: str
    arguments: dict[str, str]
    rowsets: list[Rowset]
    infos: list[str]
    xml: str

    def rows(self, rowset_type: str | None = None) -> list[dict[str, Any]]:
        """The rows of every rowset of *rowset_type* (default: of all)."""
        return [
            row
            for rowset in self.rowsets
            if rowset_type is None or rowset.type == rowset_type
            for row in rowset.rows
        ]

    def rowset_types(self) -> list[str]:
        """The types of the rowsets, each once, in the order they came."""
        return list(dict.fromkeys(rowset.type for rowset in self.rowsets))


def parse_answer(
    body: bytes, url: str, types: Mapping[str, str] | None = None
) -> AmiResult:
    """Parse the XML answer *body* of *url*.

    :param types: maps a field name (an ``AS`` alias) to the AMI field whose
        type it has; other names are their own AMI field.
    :raises AmiError: the subclass the answer's ``<error>`` names.
    :raises AmiProtocolError: when *body* is not an AMI message.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise AmiProtocolError(url, f"not XML ({err})") from None
    if root.tag != "AMIMessage":
        raise AmiProtocolError(url, f"the root element is <{root.tag}>")
    _raise_errors(root)
    arguments = {
        args.get("argName", ""): args.get("argValue", "") for args in root.iter("args")
    }
    entity = arguments.get("entity")
    rowsets = [
        Rowset(element.get("type", ""), _rows(element, entity, types or {}))
        for element in root.iter("rowset")
    ]
    return AmiResult(
        command=(root.findtext("command") or "").strip(),
        arguments=arguments,
        rowsets=rowsets,
        infos=[(info.text or "").strip() for info in root.findall("info")],
        xml=body.decode("utf-8", "replace"),
    )


def _raise_errors(root: ET.Element) -> None:
    errors = root.findall("error")
    if not errors:
        return
    message = "\n".join((error.text or "").strip() for error in errors)
    raise error_from(errors[0].get("type"), message or "the server gave no reason")


def _rows(
    rowset: ET.Element, entity: str | None, types: Mapping[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for row in rowset.iter("row"):
        values: dict[str, Any] = {}
        for element in row.iter("field"):
            name = element.get("name", "")
            table = element.get("table")
            value = typed_value(types.get(name, name), element.text)
            # pyAMI names a field of another table than the command's entity
            # "table.name", so that files.LFN and dataset.LFN cannot collide.
            if entity and table and table != entity:
                name = f"{table}.{name}"
            values[name] = value
        rows.append(values)
    return rows


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
            that their values are typed like those fields.
        """
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


def _error_body(err: urllib.error.HTTPError, url: str) -> bytes:
    body = err.read()
    if b"<AMIMessage" in body:
        return body
    raise AmiProtocolError(url, f"HTTP {err.code} {err.reason}")


# --- the pyAMI_atlas functions --------------------------------------------


def get_dataset_info(client: Client, dataset: str) -> list[dict[str, Any]]:
    """Every field of *dataset*, derived quantities included: a list of one
    dict keyed by AMI field names (``logicalDatasetName``, ``nFiles``, ...).

    :raises DatasetNotFound: when there is no such dataset.
    """
    return client.execute("AMIGetDatasetInfo", logicalDatasetName=dataset).rows()


def list_files(
    client: Client,
    dataset: str,
    total: bool | None = None,
    limit: int | Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The files of *dataset* (``LFN``, ``fileGUID``, ``fileSize``,
    ``events``); with *total*, one more row with the sums, as pyAMI returns it.

    :param limit: the number of files, or ``(offset, number)``.
    """
    arguments: dict[str, Any] = {
        "logicalDatasetName": dataset,
        "total": "yes" if total else "no",
        "limit": _limit(limit),
    }
    return client.execute("AMIListFiles", **arguments).rows()


def get_dataset_prov(client: Client, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The provenance of *dataset*: ``{"node": [...], "edge": [...]}``.

    A node has ``logicalDatasetName``, ``dataType`` and ``distance`` (0 for
    *dataset*, 1, 2, ... for its ancestors, -1, -2, ... for its descendants);
    an edge has ``source`` and ``destination``.
    """
    result = client.execute("AMIGetDatasetProv", logicalDatasetName=dataset)
    return {"node": result.rows("node"), "edge": result.rows("edge")}


_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def get_file(client: Client, file: str) -> list[dict[str, Any]]:
    """The file whose GUID or LFN is *file*, as a list of one dict."""
    key = "GUID" if _GUID.match(file) else "LFN"
    return client.execute("AMIGetFileInfo", **{key: file}).rows()


def get_ami_tag(client: Client, tag: str) -> list[dict[str, Any]]:
    """The AMI tag *tag* (``r10724``): ``tagType``, ``tagNumber``,
    ``transformation``, ``SWReleaseCache``, ``description`` and its parameters.
    """
    return client.execute("AMIGetAMITagInfo", amiTag=tag).rows("amiTagInfo")


def list_runs(
    client: Client, year: int | None = None, data_periods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The runs, of *year* (``2015`` or ``15``) and of *data_periods* when
    given (one command per period, as pyAMI sends them).
    """
    arguments = {"projectName": _year_pattern(year)}
    if not data_periods:
        return client.execute("AMIListRuns", **arguments).rows()
    return [
        row
        for period in data_periods
        for row in client.execute("AMIListRuns", **arguments, period=period).rows()
    ]


def list_dataperiods(
    client: Client, level: int, year: int | None = None
) -> list[dict[str, Any]]:
    """The data periods of *level* (1, 2 or 3), of *year* when given."""
    return client.execute(
        "AMIListDataPeriods",
        periodLevel=level,
        createdSince="2009-01-01 00:00:00",
        projectName=_year_pattern(year),
    ).rows()


def list_commands(client: Client) -> list[dict[str, Any]]:
    """The commands the endpoint answers."""
    return client.execute("AMIListCommands").rows()


def _year_pattern(year: int | None) -> str | None:
    return None if not year else f"data{year % 100:02d}%"


def _limit(limit: int | Sequence[int] | None) -> str | None:
    if not limit:
        return None
    if isinstance(limit, int):
        return f"0,{limit}"
    offset, count = limit
    return f"{int(offset)},{int(count)}"


# --- list_datasets: the SearchQuery pyAMI builds ---------------------------


@dataclass(frozen=True)
class _Table:
    """A table the client searches: its entity, and its short field names."""

    entity: str
    fields: Mapping[str, str]


_DATASETS = _Table(
    "dataset",
    {
        "ami_status": "amiStatus",
        "ami_tags": "version",
        "atlas_release": "AtlasRelease",
        "beam": "beamType",
        "completion": "completion",
        "conditions_tag": "conditionsTag",
        "cross_section": "crossSection",
        "dataset_number": "datasetNumber",
        "ecm_energy": "ecmEnergy",
        "events": "totalEvents",
        "generator_filter_efficiency": "genFiltEff",
        "generator_name": "generatorName",
        "generator_tune": "generatorTune",
        "geometry": "geometryVersion",
        "in_container": "inContainer",
        "job_config": "jobConfig",
        "ldn": "logicalDatasetName",
        "modified": "lastModified",
        "nfiles": "nFiles",
        "pdf": "PDF",
        "period": "period",
        "physics_comment": "physicsComment",
        "physics_short": "physicsShort",
        "prodsys_status": "prodsysStatus",
        "production_step": "productionStep",
        "project": "projectName",
        "requested_by": "requestedBy",
        "responsible": "physicistResponsible",
        "run_number": "runNumber",
        "stream": "streamName",
        "total_size": "totalSize",
        "transformation_package": "TransformationPackage",
        "trash_annotation": "trashAnnotation",
        "trash_date": "trashDate",
        "trash_trigger": "trashTrigger",
        "trigger_config": "triggerConfig",
        "type": "dataType",
    },
)

# The tables a dataset search may reach through "table.field" names.
_FOREIGN = {
    "files": _Table(
        "files",
        {
            "cross_section": "crossSection",
            "events": "events",
            "generator_filter_efficiency": "genFiltEff",
            "guid": "fileGUID",
            "input_file": "inputFile",
            "lfn": "LFN",
            "size": "fileSize",
        },
    ),
    "keywords": _Table("dataset_keywords", {"name": "keyword"}),
    "hashtags": _Table(
        "HASHTAGS",
        {
            "comment": "comment",
            "fullname": "fullname",
            "name": "name",
            "scope": "scope",
        },
    ),
}

DATASET_CATALOG = "mc[0-9].*|data[0-9].*"
"""The ``-catalog`` pyAMI sends with a dataset search."""


def list_datasets(
    client: Client,
    patterns: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    order: str | Sequence[str] | None = None,
    limit: int | Sequence[int] | None = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Search datasets, as ``pyAMI_atlas.api.list_datasets`` does.

    Each row has ``ldn`` and one key per name in *fields*, under the short
    names pyAMI uses (``events``, ``nfiles``, ``cross_section``, ...; a field
    of another table is written ``files.lfn`` and read back as ``files_lfn``).

    :param patterns: dataset names, ``%`` as the wildcard (a list, or one
        string with commas); any of them matches.
    :param fields: short names of the fields to return besides ``ldn``.
    :param order: short names to sort by (default: the returned fields).
    :param limit: the number of datasets, or ``(offset, number)``.
    :param show_archived: search the archived catalogues too.
    :param grl: a Good Run List XML file; only its runs are searched.
    :param filters: ``short_name=value`` (or a list of values, any of which
        matches; ``%`` as the wildcard). ``ami_status`` is ``VALID`` unless
        given; ``data_period="A"`` matches periods ``A``, ``A1``, ...
    :raises InvalidInput: for a short name the client does not know.
    """
    arguments, aliases = dataset_search(
        patterns, fields, order, limit, show_archived, grl, **filters
    )
    return client.send("SearchQuery", arguments, types=aliases).rows()


def dataset_search(
    patterns: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    order: str | Sequence[str] | None = None,
    limit: int | Sequence[int] | None = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The arguments of the ``SearchQuery`` that :func:`list_datasets` sends
    (same parameters), and the AMI field each ``AS`` alias stands for.
    """
    if grl:
        filters["run_number"] = _grl_runs(grl)
    if filters.get("data_period"):
        filters["period"] = _period_patterns(filters["data_period"])
    filters.pop("data_period", None)
    filters.setdefault("ami_status", "VALID")
    names = [p.rstrip("/") for p in _words(patterns)]
    mql, aliases = search_mql(names, _words(fields), _words(order), limit, filters)
    arguments = {
        "catalog": DATASET_CATALOG,
        "entity": _DATASETS.entity,
        "mql": mql,
        "showArchived": "true" if show_archived else None,
    }
    return arguments, aliases


def search_mql(
    patterns: Sequence[str],
    fields: Sequence[str],
    order: Sequence[str],
    limit: int | Sequence[int] | None,
    filters: Mapping[str, Any],
) -> tuple[str, dict[str, str]]:
    """Return the MQL of a dataset search, and its aliases' AMI fields.

    The query has the shape pyAMI gives it: ``SELECT f AS a, ... WHERE
    (patterns) AND ((filter) AND ...) ORDER BY ... LIMIT o,n``; every value
    is an MQL string literal.
    """
    selected = list(dict.fromkeys(["ldn", *fields]))
    resolved = {name: _resolve(name) for name in selected}
    columns = ", ".join(f"{resolved[n]} AS {n.replace('.', '_')}" for n in selected)
    where = f"{_any_of('ldn', patterns)} AND {_all_of(filters)}"
    ordering = ", ".join(_resolve(name) for name in (order or selected))
    mql = f"SELECT {columns} WHERE {where} ORDER BY {ordering}{_mql_limit(limit)}"
    aliases = {n.replace(".", "_"): resolved[n].split(".", 1)[1] for n in selected}
    return mql, aliases


def _resolve(name: str) -> str:
    """``events`` → ``dataset.totalEvents``; ``files.lfn`` → ``files.LFN``."""
    table_name, _, short = name.rpartition(".")
    table = _FOREIGN.get(table_name) if table_name else _DATASETS
    if table is None:
        raise InvalidInput(
            f"unknown table {table_name!r} in field {name!r}; the tables are "
            f"{', '.join(_FOREIGN)}"
        )
    if short not in table.fields:
        near = difflib.get_close_matches(short, table.fields, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InvalidInput(f"unknown field {name!r} of {table.entity}{hint}")
    return f"{table.entity}.{table.fields[short]}"


def _any_of(name: str, values: Sequence[str]) -> str:
    if not values:
        return "(1 = 1)"
    column = _resolve(name)
    return "(" + " OR ".join(_condition(column, value) for value in values) + ")"


def _all_of(filters: Mapping[str, Any]) -> str:
    parts = [
        _any_of(name, _words(values)) for name, values in filters.items() if values
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "(1 = 1)"


def _condition(column: str, value: str) -> str:
    operator = "like" if "%" in value else "="
    return f"{column} {operator} {mql_string(value)}"


def mql_string(value: str) -> str:
    """Return *value* as an MQL string literal: single-quoted, a quote inside
    doubled (``'it''s'``) as in SQL.
    """
    return "'" + value.replace("'", "''") + "'"


def _mql_limit(limit: int | Sequence[int] | None) -> str:
    shown = _limit(limit)
    return f" LIMIT {shown}" if shown else ""


def _words(value: str | int | Iterable[Any] | None) -> list[str]:
    """pyAMI's lists: ``None`` → ``[]``, ``"a,b"`` → ``["a", "b"]``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [word for word in value.split(",") if word]
    if isinstance(value, int):
        return [str(value)]
    return [str(word) for word in value]


def _period_patterns(periods: str | Sequence[str]) -> list[str]:
    """``A`` → ``A%`` (A, A1, A2, ...); ``A1`` and ``A%`` stay as they are."""
    return [
        p if p[-1].isdigit() or p.endswith("%") else p + "%" for p in _words(periods)
    ]


def _grl_runs(path: str) -> list[str]:
    """The run numbers of the Good Run List XML file *path*."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise InvalidInput(f"cannot read the Good Run List {path}: {err}") from None
    return [(run.text or "").strip() for run in root.iter("Run")]


# --- output for the command line ------------------------------------------

FORMATS = ("text", "json", "csv", "xml")
"""The formats :func:`render` writes (``hepcat ami --format``)."""


def render(result: AmiResult, form: str = "text") -> str:
    """Return *result* as text to print in the format *form*.

    ``text``: each rowset as a table with a header line (a rowset of one row
    as ``field  value`` lines), then the server's ``<info>`` messages;
    ``json``: an object mapping each rowset type to its rows; ``csv``: a
    header and the rows (``# type`` before each rowset when there are
    several); ``xml``: the answer as the server sent it. A missing value is
    ``NULL`` in text (as pyAMI prints it), empty in CSV, ``null`` in JSON;
    a rowset without rows is left out of text and CSV.
    """
    if form == "xml":
        return result.xml if result.xml.endswith("\n") else result.xml + "\n"
    if form == "json":
        rowsets = {kind: result.rows(kind) for kind in result.rowset_types()}
        return json.dumps(rowsets, indent=2) + "\n"
    if form == "csv":
        return _csv(result)
    if form == "text":
        return _text(result)
    raise InvalidInput(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row))


def _shown(value: Any, null: str = _NULL) -> str:
    """*value* as the server wrote it (``true``, not ``True``)."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filled(result: AmiResult) -> list[str]:
    """The types of the rowsets that have rows."""
    return [kind for kind in result.rowset_types() if result.rows(kind)]


def _csv(result: AmiResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    kinds = _filled(result)
    for kind in kinds:
        rows = result.rows(kind)
        columns = _columns(rows)
        if len(kinds) > 1:
            out.write(f"# {kind}\n")
        writer.writerow(columns)
        writer.writerows([[_shown(row.get(c), "") for c in columns] for row in rows])
    return out.getvalue()


def _text(result: AmiResult) -> str:
    blocks = []
    kinds = _filled(result)
    for kind in kinds:
        rows = result.rows(kind)
        title = [f"{kind}:"] if len(kinds) > 1 else []
        table = _fields(rows[0]) if len(rows) == 1 else _table(rows)
        blocks.append("\n".join(title + table))
    blocks.extend(result.infos)
    return "".join(block + "\n" for block in blocks if block)


def _fields(row: Mapping[str, Any]) -> list[str]:
    width = max((len(name) for name in row), default=0)
    return [f"{name:<{width}}  {_shown(value)}" for name, value in row.items()]


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = _columns(rows)
    cells = [[_shown(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *cells]
    return [_line(line, widths) for line in lines]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))
    return "  ".join(padded).rstrip()
