"""AMI command lines: ``Command -name="value"``, written and read."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from web.client.errors import InvalidInput

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
