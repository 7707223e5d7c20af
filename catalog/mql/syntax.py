"""MQL text to a tree: the tokenizer, the tree's nodes and the
recursive-descent parser, which name the position of any mistake.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from catalog.errors import InvalidInput

MAX_LENGTH = 20_000
"""The longest MQL text accepted, in characters."""

MAX_DEPTH = 64
"""How deeply parentheses and ``NOT`` may nest."""

MAX_ROWS = 10_000
"""The most rows one query returns; a query without ``LIMIT`` stops there."""

MAX_IN_VALUES = 1000
"""The most values of one ``IN`` list."""

MAX_TERMS = 1000
"""The most conditions of one query, an ``IN`` list counting one per value:
what the query compiles to grows with them.
"""

MAX_NUMBER_LENGTH = 100
"""The longest number accepted, in characters."""

MAX_OFFSET = 2**63 - 1
"""The largest number after ``LIMIT`` or ``OFFSET``: a 64-bit integer."""


# ---------------------------------------------------------------------------
# Tokens

KEYWORDS = frozenset(
    "SELECT AS WHERE AND OR NOT LIKE IN IS NULL ORDER BY ASC DESC LIMIT OFFSET".split()
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>'(?:[^']|'')*')
    | (?P<op><>|!=|<=|>=|=|<|>)
    | (?P<punct>[(),.*])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """A token of MQL: its kind (``keyword``, ``name``, ``string``,
    ``number``, ``op``, ``punct``, ``end``), value, and 1-based position.
    """

    kind: str
    value: Any
    position: int

    def describe(self) -> str:
        """The token as a message shows it (never the content of a string)."""
        if self.kind == "end":
            return "the end of the query"
        if self.kind == "string":
            return "a quoted string"
        return f"{self.kind} {str(self.value)[:40]!r}"


def tokenize(text: str) -> list[Token]:
    """Split MQL *text* into tokens, ending with an ``end`` token.

    :raises InvalidInput: for a character that starts no token, or a string
        without its closing quote.
    """
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _bad_character(text, position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", None, len(text) + 1))
    return tokens


def _token(kind: str, text: str, position: int) -> Token:
    if kind == "name" and text.upper() in KEYWORDS:
        return Token("keyword", text.upper(), position)
    if kind == "string":
        return Token(kind, text[1:-1].replace("''", "'"), position)
    if kind == "number":
        return Token(kind, _number(text, position), position)
    return Token(kind, text, position)


def _number(text: str, position: int) -> int | float:
    """The value of the number token *text*, which starts at *position*.

    :raises InvalidInput: when it is longer than :data:`MAX_NUMBER_LENGTH`.
    """
    if len(text) > MAX_NUMBER_LENGTH:
        raise InvalidInput(
            f"the number at position {position} is longer than "
            f"{MAX_NUMBER_LENGTH} characters"
        )
    is_int = re.fullmatch(r"-?[0-9]+", text) is not None
    return int(text) if is_int else float(text)


def _bad_character(text: str, position: int) -> InvalidInput:
    if text[position] == "'":
        return InvalidInput(
            f"unterminated string at position {position + 1}: close it with a "
            "quote ('' stands for a quote inside a string)"
        )
    return InvalidInput(
        f"unexpected character {text[position]!r} at position {position + 1}"
    )


# ---------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class FieldRef:
    """A field as the query names it: ``files.LFN`` or ``totalEvents``."""

    entity: str | None
    name: str
    position: int

    def __str__(self) -> str:
        return f"{self.entity}.{self.name}" if self.entity else self.name


@dataclass(frozen=True)
class Literal:
    """A number, a quoted string, or ``NULL`` (``None``)."""

    value: str | int | float | None
    position: int


Operand = FieldRef | Literal


@dataclass(frozen=True)
class Comparison:
    """``left op right``, *op* one of ``= != < <= > >=`` (``<>`` is ``!=``)."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Like:
    operand: Operand
    pattern: Literal
    negated: bool = False


@dataclass(frozen=True)
class InList:
    operand: Operand
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class BoolOp:
    """``AND`` or ``OR`` of two or more conditions."""

    op: str
    conditions: tuple[Condition, ...]


Condition = Comparison | Like | InList | IsNull | Not | BoolOp


@dataclass(frozen=True)
class Selected:
    """A field of the SELECT list and its alias; ``field`` None is ``*``.
    *position* is where its output name is written: its alias, else itself.
    """

    field: FieldRef | None
    alias: str | None = None
    position: int = 0


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed MQL query."""

    fields: tuple[Selected, ...]
    where: Condition | None = None
    order: tuple[OrderItem, ...] = ()
    offset: int = 0
    limit: int | None = None


# ---------------------------------------------------------------------------
# The parser

# The comparison operators, ``<>`` spelled ``!=``.
_COMPARISONS = {op: op for op in ("=", "!=", "<", "<=", ">", ">=")} | {"<>": "!="}


def parse(mql: str) -> Query:
    """Parse the MQL text *mql* into a :class:`Query`.

    :raises InvalidInput: naming the mistake and its position.
    """
    if len(mql) > MAX_LENGTH:
        raise InvalidInput(f"the query is longer than {MAX_LENGTH} characters")
    return _Parser(tokenize(mql)).query()


class _Parser:
    """Recursive descent over the grammar in ``docs/ami.md``."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.terms = 0

    # --- token helpers

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.current
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, kind: str, *values: str) -> Token | None:
        token = self.current
        if token.kind == kind and (not values or token.value in values):
            return self.advance()
        return None

    def expect(self, kind: str, value: str | None, expected: str) -> Token:
        token = self.accept(kind, value) if value else self.accept(kind)
        if token is None:
            raise self.error(expected)
        return token

    def error(self, expected: str) -> InvalidInput:
        token = self.current
        return InvalidInput(
            f"expected {expected} at position {token.position}, "
            f"found {token.describe()}"
        )

    # --- grammar

    def query(self) -> Query:
        self.expect("keyword", "SELECT", "SELECT")
        fields = self.select_list()
        where = self.condition() if self.accept("keyword", "WHERE") else None
        order = self.order_list() if self.accept("keyword", "ORDER") else ()
        offset, limit = self.limit() if self.accept("keyword", "LIMIT") else (0, None)
        if self.current.kind != "end":
            raise self.error("WHERE, ORDER BY, LIMIT or the end of the query")
        return Query(fields, where, order, offset, limit)

    def select_list(self) -> tuple[Selected, ...]:
        items = [self.selected()]
        while self.accept("punct", ","):
            items.append(self.selected())
        return tuple(items)

    def selected(self) -> Selected:
        star = self.accept("punct", "*")
        if star:
            return Selected(None, position=star.position)
        ref = self.field_ref()
        if self.accept("keyword", "AS"):
            alias = self.expect("name", None, "an alias")
            return Selected(ref, alias.value, alias.position)
        return Selected(ref, position=ref.position)

    def field_ref(self) -> FieldRef:
        first = self.expect("name", None, "a field name")
        if not self.accept("punct", "."):
            return FieldRef(None, first.value, first.position)
        second = self.expect("name", None, f"a field name after '{first.value}.'")
        return FieldRef(first.value, second.value, first.position)

    def condition(self) -> Condition:
        return self.joined("OR", self.conjunction)

    def conjunction(self) -> Condition:
        return self.joined("AND", self.negation)

    def joined(self, op: str, part: Callable[[], Condition]) -> Condition:
        parts = [part()]
        while self.accept("keyword", op):
            parts.append(part())
        return parts[0] if len(parts) == 1 else BoolOp(op, tuple(parts))

    def negation(self) -> Condition:
        if self.accept("keyword", "NOT"):
            with self.nested():
                return Not(self.negation())
        if self.accept("punct", "("):
            with self.nested():
                inner = self.condition()
            self.expect("punct", ")", "')'")
            return inner
        return self.predicate()

    def nested(self) -> _Nesting:
        return _Nesting(self)

    def predicate(self) -> Condition:
        start = self.current.position
        found = self.comparison()
        self.terms += len(found.values) if isinstance(found, InList) else 1
        if self.terms > MAX_TERMS:
            raise InvalidInput(
                f"the query has more than {MAX_TERMS} conditions (each value of "
                f"an IN list counts as one); the condition at position {start} "
                "is past that"
            )
        return found

    def comparison(self) -> Condition:
        left = self.operand()
        negated = self.accept("keyword", "NOT") is not None
        if self.accept("keyword", "LIKE"):
            return Like(left, self.string_literal(), negated)
        if self.accept("keyword", "IN"):
            return InList(left, self.literal_list(), negated)
        if negated:
            raise self.error("LIKE or IN after NOT")
        if self.accept("keyword", "IS"):
            negated = self.accept("keyword", "NOT") is not None
            self.expect("keyword", "NULL", "NULL")
            return IsNull(left, negated)
        op = self.accept("op")
        if op is None:
            raise self.error("a comparison (=, !=, <, <=, >, >=, LIKE, IN, IS)")
        return Comparison(_COMPARISONS[op.value], left, self.operand())

    def operand(self) -> Operand:
        if self.current.kind == "name":
            return self.field_ref()
        return self.literal()

    def literal(self) -> Literal:
        token = self.current
        if token.kind in ("string", "number"):
            self.advance()
            return Literal(token.value, token.position)
        if self.accept("keyword", "NULL"):
            return Literal(None, token.position)
        raise self.error("a field, a number or a quoted string")

    def string_literal(self) -> Literal:
        token = self.current
        if token.kind not in ("string", "number"):
            raise self.error("a quoted pattern")
        self.advance()
        return Literal(str(token.value), token.position)

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("punct", "(", "'(' to open the list")
        values = [self.literal()]
        while self.accept("punct", ","):
            values.append(self.literal())
        self.expect("punct", ")", "')' to close the list")
        if len(values) > MAX_IN_VALUES:
            raise InvalidInput(f"IN lists hold at most {MAX_IN_VALUES} values")
        return tuple(values)

    def order_list(self) -> tuple[OrderItem, ...]:
        self.expect("keyword", "BY", "BY after ORDER")
        items = [self.order_item()]
        while self.accept("punct", ","):
            items.append(self.order_item())
        return tuple(items)

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        direction = self.accept("keyword", "ASC", "DESC")
        return OrderItem(ref, direction is not None and direction.value == "DESC")

    def limit(self) -> tuple[int, int]:
        first = self.count()
        if self.accept("punct", ","):
            return first, self.count()
        if self.accept("keyword", "OFFSET"):
            return self.count(), first
        return 0, first

    def count(self) -> int:
        token = self.current
        if token.kind != "number" or not isinstance(token.value, int):
            raise self.error("a whole number")
        if not 0 <= token.value <= MAX_OFFSET:
            raise InvalidInput(
                f"LIMIT needs numbers from 0 to {MAX_OFFSET}, at {token.position}"
            )
        self.advance()
        return int(token.value)


class _Nesting:
    """Counts nesting, so that a deep query is refused instead of
    exhausting the stack.
    """

    def __init__(self, parser: _Parser) -> None:
        self.parser = parser

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_DEPTH:
            raise InvalidInput(
                f"the query nests deeper than {MAX_DEPTH} levels "
                f"(at position {self.parser.current.position})"
            )

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1
