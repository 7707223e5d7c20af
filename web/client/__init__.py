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

The modules: :mod:`~web.client.errors`, :mod:`~web.client.commands` (command
lines), :mod:`~web.client.results` (answers read into rows),
:mod:`~web.client.transport` (the :class:`Client`), :mod:`~web.client.atlas`
(the pyAMI_atlas functions) and :mod:`~web.client.render` (output for the
command line). Every public name is here.
"""

from __future__ import annotations

from web.client.atlas import (
    DATASET_CATALOG,
    PAGE_ROWS,
    dataset_search,
    get_ami_tag,
    get_dataset_info,
    get_dataset_prov,
    get_file,
    list_commands,
    list_dataperiods,
    list_datasets,
    list_files,
    list_runs,
    mql_string,
    search_mql,
)
from web.client.commands import (
    argv_arguments,
    command_line,
    parse_command_line,
    quote,
)
from web.client.errors import (
    AlreadyReleased,
    AmiConnectionError,
    AmiError,
    AmiProtocolError,
    AmiTagNotFound,
    AuthenticationFailed,
    ContainerNotFound,
    DatabaseUnavailable,
    DatasetNotFound,
    EventFileNotFound,
    FileNotFound,
    IncompleteAnswer,
    InvalidInput,
    InvalidName,
    NotFound,
    PermissionDenied,
    QuarantineNotFound,
    RequestTooLarge,
    RunNotFound,
    SchemaOutdated,
    UnknownSource,
    UserNotFound,
    error_from,
)
from web.client.render import (
    FORMATS,
    render,
)
from web.client.results import (
    BOOLEAN_FIELDS,
    NUMERIC_FIELDS,
    AmiResult,
    Rowset,
    alias_types,
    parse_answer,
    typed_value,
)
from web.client.transport import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    Client,
)

__all__ = [
    "AlreadyReleased",
    "AmiConnectionError",
    "AmiError",
    "AmiProtocolError",
    "AmiResult",
    "AmiTagNotFound",
    "AuthenticationFailed",
    "BOOLEAN_FIELDS",
    "Client",
    "ContainerNotFound",
    "DATASET_CATALOG",
    "DEFAULT_TIMEOUT",
    "DatabaseUnavailable",
    "DatasetNotFound",
    "EventFileNotFound",
    "FORMATS",
    "FileNotFound",
    "IncompleteAnswer",
    "InvalidInput",
    "InvalidName",
    "NUMERIC_FIELDS",
    "NotFound",
    "PAGE_ROWS",
    "PermissionDenied",
    "QuarantineNotFound",
    "RequestTooLarge",
    "Rowset",
    "RunNotFound",
    "SchemaOutdated",
    "USER_AGENT",
    "UnknownSource",
    "UserNotFound",
    "alias_types",
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
