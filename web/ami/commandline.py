"""The command line of an AMI request: ``AMIListFiles -logicalDatasetName="..."
-total=yes -limit=0,5 -AMIUser="..." -AMIPass="..."``.

A command is a name followed by arguments ``-name="value"`` (a backslash
escapes ``"`` and ``\\``), ``-name=value`` (up to the next blank) or a bare
``-flag``. The credentials ``-AMIUser``/``-AMIPass`` are taken out of the
arguments, so that they are never echoed back: first the pair pyAMI appends
at the end (``-AMIUser="..." -AMIPass="..."``, ``"`` and ``\\`` escaped),
before the rest is read, so that a mistake in the rest (a quote left open)
cannot make them part of an error message; and an error that quotes the
command stars out any credential value it would show. No value may hold a
NUL character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from catalog.errors import InvalidInput

CREDENTIALS = ("AMIUser", "AMIPass")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ARGUMENT = re.compile(r"-(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?P<equals>=?)")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# The credentials pyAMI appends to every command it sends with a login.
_APPENDED = re.compile(
    rf"\s-AMIUser=(?P<user>{_QUOTED})\s+-AMIPass=(?P<password>{_QUOTED})\s*\Z",
    re.IGNORECASE,
)
# A credential anywhere, however written: its name and what may follow it as
# its value, after blanks or an "=" (or both, or neither): a word of bare
# characters and quoted parts, "..." or '...', a quote perhaps never closed.
_CREDENTIAL = re.compile(
    r"-AMI(?:User|Pass)(?P<value>\s*=?\s*"
    r"""(?:"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s"']+)*)""",
    re.IGNORECASE | re.DOTALL,
)
#: Characters of the command an error message quotes.
SNIPPET = 20


@dataclass(frozen=True)
class CommandLine:
    """A parsed command: its name, its arguments in order, the credentials."""

    name: str
    arguments: tuple[tuple[str, str], ...] = ()
    credentials: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the argument *name* (any letter case), or *default*."""
        for key, value in self.arguments:
            if key.lower() == name.lower():
                return value
        return default

    def has(self, name: str) -> bool:
        return self.get(name) is not None


def parse_command_line(text: str) -> CommandLine:
    """Parse the ``Command`` field of an AMI request.

    :raises InvalidInput: for an empty command, an argument that does not
        start with ``-``, a quote left open, or a value (a credential's too)
        with a NUL character.
    """
    text, appended = _appended_credentials(text.strip())
    name_match = _NAME.match(text)
    if name_match is None:
        raise InvalidInput(
            "the Command field must start with a command name, such as AMIListCommands"
        )
    arguments: list[tuple[str, str]] = []
    position = name_match.end()
    while True:
        position = _skip_blanks(text, position)
        if position == len(text):
            break
        name, value, position = _argument(text, position)
        arguments.append((name, value))
    _refuse_nul([*arguments, *appended.items()])
    return _with_credentials_apart(name_match.group(), arguments, appended)


def _refuse_nul(arguments: list[tuple[str, str]]) -> None:
    """Refuse a value with a NUL character, naming its argument but not
    showing the value (it may be a password): no name in the catalogue has
    one, and PostgreSQL cannot even compare text with it.
    """
    for name, value in arguments:
        if "\x00" in value:
            raise InvalidInput(f"-{name} must not contain NUL characters")


def _appended_credentials(text: str) -> tuple[str, dict[str, str]]:
    """Take the credentials pyAMI appends off the end of *text*: return the
    rest and the credentials (none when *text* does not end with them).
    """
    match = _APPENDED.search(text)
    if match is None:
        return text, {}
    found = {"AMIUser": match.group("user"), "AMIPass": match.group("password")}
    unquoted = {key: _unescaped(value[1:-1]) for key, value in found.items()}
    return text[: match.start()].rstrip(), unquoted


def _unescaped(value: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", value)


def _snippet(text: str, position: int) -> str:
    """The characters of *text* from *position* that an error message
    quotes, with the value of any credential in them starred out.
    """
    chars = list(text)
    for match in _CREDENTIAL.finditer(text):
        start, end = match.span("value")
        chars[start:end] = "*" * (end - start)
    return "".join(chars[position : position + SNIPPET])


def _skip_blanks(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _argument(text: str, position: int) -> tuple[str, str, int]:
    """Read the argument at *position*: its name, value and end."""
    match = _ARGUMENT.match(text, position)
    if match is None:
        found = _snippet(text, position)
        raise InvalidInput(
            f"expected an argument -name=value at character {position + 1}, "
            f"found {found!r}"
        )
    name, end = match.group("name"), match.end()
    if not match.group("equals"):
        if end < len(text) and not text[end].isspace():
            raise InvalidInput(f"unexpected {text[end]!r} after -{name}")
        return name, "", end
    if end < len(text) and text[end] == '"':
        value, end = _quoted(text, end, name)
        return name, value, end
    stop = end
    while stop < len(text) and not text[stop].isspace():
        stop += 1
    return name, text[end:stop], stop


def _quoted(text: str, position: int, name: str) -> tuple[str, int]:
    """Read the double-quoted value opening at *position*; return it
    unescaped and the position after its closing quote.
    """
    chars: list[str] = []
    index = position + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in '"\\':
            chars.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    raise InvalidInput(f'the value of -{name} opens a quote (") and never closes it')


def _with_credentials_apart(
    name: str, arguments: list[tuple[str, str]], appended: dict[str, str]
) -> CommandLine:
    """The command *name* with its *arguments*, the credentials among them
    taken out and joined to those *appended* at its end (which win).
    """
    credentials = {}
    kept = []
    for key, value in arguments:
        canonical = next((c for c in CREDENTIALS if c.lower() == key.lower()), None)
        if canonical:
            credentials[canonical] = value
        else:
            kept.append((key, value))
    return CommandLine(name, tuple(kept), {**credentials, **appended})
