"""MQL, the query language of AMI's ``SearchQuery``, parsed and compiled to SQL.

An MQL query names AMI fields and says nothing of tables or joins::

    SELECT dataset.logicalDatasetName AS ldn, files.LFN AS files_lfn
    WHERE (dataset.logicalDatasetName LIKE 'mc16_13TeV.%Zee%')
      AND NOT (dataset.period = 'A' OR dataset.nFiles < 2)
    ORDER BY dataset.totalEvents DESC LIMIT 0,10

:func:`parse` turns the text into a tree (:class:`Query`): a tokenizer and a
recursive-descent parser, which name the position of any mistake.
:func:`compile_search` resolves the AMI field names of an entity (declared once
on the model columns, :mod:`catalog.fields`), joins the foreign entities the
query uses (``files.LFN`` on entity ``dataset``), and builds a SQLAlchemy
``Select``. Every value of the query is a bound parameter; nothing the user
wrote becomes SQL text. Every mistake raises :class:`InvalidInput`, whose
message names the problem and its position and never shows SQL.

How values compare (``docs/ami.md``), the same on SQLite, PostgreSQL and
MariaDB:

- ``LIKE`` ignores letter case, as AMI's does; ``%`` and ``_`` are the
  wildcards and a backslash is an ordinary character.
- ``=``, ``!=``, ``<>`` and ``IN`` on text are exact (case-sensitive, also on
  MariaDB, whose default collation is not), except on the status fields, whose
  values are upper-case codes: ``amiStatus = 'valid'`` means ``'VALID'``.
- ``period`` holds a comma-separated list (``A,A1,AllYear``): ``=``, ``IN``
  and ``LIKE`` are true when one period of the list matches, ignoring case;
  ``!=``, ``NOT IN`` and ``NOT LIKE`` when none does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    String,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from catalog.errors import InvalidInput
from catalog.fields import ami_fields, typed_value
from catalog.models import (
    AMI_VALID,
    Container,
    ContainerMember,
    Dataset,
    DatasetKeyword,
    DataType,
    File,
    Hashtag,
    NomenclatureTemplate,
    ProductionStep,
    Project,
    SubDataType,
    SubProject,
)

MAX_LENGTH = 20_000
"""The longest MQL text accepted, in characters."""

MAX_DEPTH = 64
"""How deeply parentheses and ``NOT`` may nest."""

MAX_ROWS = 10_000
"""The most rows one query returns; a query without ``LIMIT`` stops there."""

MAX_IN_VALUES = 1000

# ---------------------------------------------------------------------------
# Tokens

KEYWORDS = frozenset(
    "SELECT AS WHERE AND OR NOT LIKE IN IS NULL ORDER BY ASC DESC LIMIT OFFSET".split()
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
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
        is_int = re.fullmatch(r"-?\d+", text) is not None
        return Token(kind, int(text) if is_int else float(text), position)
    return Token(kind, text, position)


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
    """A field of the SELECT list and its alias; ``field`` None is ``*``."""

    field: FieldRef | None
    alias: str | None = None


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
        if self.accept("punct", "*"):
            return Selected(None)
        ref = self.field_ref()
        if self.accept("keyword", "AS"):
            return Selected(ref, self.expect("name", None, "an alias").value)
        return Selected(ref)

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
        if token.value < 0:
            raise InvalidInput(f"LIMIT needs numbers of 0 or more, at {token.position}")
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


# ---------------------------------------------------------------------------
# Entities


@dataclass(frozen=True)
class Link:
    """How an entity reaches a foreign entity: the foreign entity's name, its
    model and the join condition (an outer join keeps rows without a match).
    """

    entity: str
    model: type[Any]
    on: Callable[[], ColumnElement[bool]]
    outer: bool = True


@dataclass(frozen=True)
class Entity:
    """An entity of ``SearchQuery -entity``: its model and its links."""

    name: str
    model: type[Any]
    links: tuple[Link, ...] = ()


def _in_container() -> ColumnElement[Any]:
    """``inContainer``: the (first, by name) DDM container holding the dataset."""
    return (
        select(func.min(Container.name))
        .join(ContainerMember, ContainerMember.container_id == Container.id)
        .where(ContainerMember.child_name == Dataset.name)
        .scalar_subquery()
    )


def _hashtag_fullname() -> ColumnElement[Any]:
    """``fullname`` of a hashtag: ``SCOPE:name``."""
    return Hashtag.scope + literal(":", String) + Hashtag.name


def _owned_by_dataset(model: Any) -> tuple[Link, ...]:
    return (Link("dataset", Dataset, lambda: Dataset.id == model.dataset_id, False),)


ENTITIES = {
    entity.name.lower(): entity
    for entity in (
        Entity(
            "dataset",
            Dataset,
            (
                Link("files", File, lambda: File.dataset_id == Dataset.id),
                Link(
                    "dataset_keywords",
                    DatasetKeyword,
                    lambda: DatasetKeyword.dataset_id == Dataset.id,
                ),
                Link("HASHTAGS", Hashtag, lambda: Hashtag.dataset_id == Dataset.id),
            ),
        ),
        Entity("files", File, _owned_by_dataset(File)),
        Entity("dataset_keywords", DatasetKeyword, _owned_by_dataset(DatasetKeyword)),
        Entity("HASHTAGS", Hashtag, _owned_by_dataset(Hashtag)),
        Entity("projects", Project),
        Entity("subprojects", SubProject),
        Entity("data_type", DataType),
        Entity("subData_type", SubDataType),
        Entity("productionStep", ProductionStep),
        Entity("nomenclature", NomenclatureTemplate),
    )
}
"""The entities of ``SearchQuery``, by lower-case name."""

# Fields that are no column of their own, by lower-case entity name.
COMPUTED: dict[str, dict[str, Callable[[], ColumnElement[Any]]]] = {
    "dataset": {"inContainer": _in_container},
    "hashtags": {"fullname": _hashtag_fullname},
}

# Fields whose values are upper-case codes: compared in upper case.
UPPER_CASE_FIELDS = frozenset({"amiStatus", "readStatus", "writeStatus"})
# Fields holding a comma-separated list, matched element by element.
LIST_FIELDS = frozenset({"period"})


def get_entity(name: str) -> Entity:
    """Return the entity called *name* (in any letter case).

    :raises InvalidInput: for an unknown entity; the message lists them.
    """
    entity = ENTITIES.get(name.lower())
    if entity is None:
        known = ", ".join(entity.name for entity in ENTITIES.values())
        raise InvalidInput(f"unknown entity {name!r}; the entities are {known}")
    return entity


def entity_fields(name: str) -> dict[str, ColumnElement[Any]]:
    """Every AMI field of the entity *name*: its columns, then computed fields.

    :raises InvalidInput: for an unknown entity.
    """
    entity = get_entity(name)
    computed = {key: make() for key, make in COMPUTED.get(name.lower(), {}).items()}
    return {**ami_fields(entity.model), **computed}


# ---------------------------------------------------------------------------
# The compiler


@dataclass(frozen=True)
class Search:
    """A compiled MQL query.

    :param statement: the ``Select``; its columns are in the order of *names*.
    :param names: the output name of each column: its alias, or its AMI name.
    :param tables: the entity of each column, ``None`` for one with an alias.
    :param capped: True when the query had no LIMIT: the statement then asks
        for one row more than :data:`MAX_ROWS`, to tell when it was cut.
    """

    entity: str
    statement: Select[Any]
    names: tuple[str, ...]
    tables: tuple[str | None, ...]
    capped: bool = False


def compile_search(entity: str, mql: str, *, show_archived: bool = False) -> Search:
    """Compile the MQL query *mql* on *entity* into a :class:`Search`.

    On entity ``dataset``, a query whose conditions do not mention
    ``amiStatus`` finds only ``VALID`` datasets, as AMI shows them, unless
    *show_archived* is true.

    :raises InvalidInput: for an unknown entity or field, or a malformed query.
    """
    found = get_entity(entity)
    return _Compiler(found, parse(mql), show_archived=show_archived).search()


@dataclass(frozen=True)
class _Field:
    """A field resolved to its expression: which entity, which AMI name."""

    expression: ColumnElement[Any]
    entity: str
    name: str

    @property
    def python_type(self) -> type[Any]:
        try:
            python_type: type[Any] = self.expression.type.python_type
        except NotImplementedError:
            return str
        return python_type


# A column of the result: the field, its output name, its entity (None
# when aliased).
_Output = tuple[_Field, str, str | None]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Compiler:
    """Builds the ``Select`` of one query on one entity."""

    def __init__(self, entity: Entity, query: Query, *, show_archived: bool) -> None:
        self.entity = entity
        self.query = query
        self.show_archived = show_archived
        self.used: dict[str, Link] = {}
        self.in_conditions: set[tuple[str, str]] = set()
        owners = [entity.name] + [link.entity for link in entity.links]
        self.scopes = {
            owner.lower(): (owner, _lowered(entity_fields(owner))) for owner in owners
        }

    def search(self) -> Search:
        outputs = list(self.outputs())
        where = self.condition(self.query.where) if self.query.where else true()
        if self.hides_trashed():
            where = and_(where, Dataset.ami_status == AMI_VALID)
        order = [self.ordering(item, outputs) for item in self.query.order]
        columns = [
            out.expression.label(f"c{i}") for i, (out, _, _) in enumerate(outputs)
        ]
        statement = select(*columns).select_from(self.entity.model)
        statement = self.joined(statement).where(where)
        statement = statement.order_by(*order, *self.tiebreak(order))
        statement, capped = self.limited(statement)
        return Search(
            self.entity.name,
            statement,
            tuple(name for _, name, _ in outputs),
            tuple(table for _, _, table in outputs),
            capped,
        )

    # --- fields

    def outputs(self) -> Iterator[_Output]:
        for item in self.query.fields:
            if item.field is None:
                for name in entity_fields(self.entity.name):
                    yield self.resolve(FieldRef(None, name, 0)), name, self.entity.name
            else:
                found = self.resolve(item.field)
                table = None if item.alias else found.entity
                yield found, item.alias or found.name, table

    def resolve(self, ref: FieldRef) -> _Field:
        owner, fields = self.scopes[self.owner(ref).lower()]
        found = fields.get(ref.name.lower())
        if found is None and ref.entity is None:
            return self.resolve_foreign(ref)
        if found is None:
            raise _unknown_field(ref, owner, [name for name, _ in fields.values()])
        if owner != self.entity.name:
            self.used[owner] = next(
                link for link in self.entity.links if link.entity == owner
            )
        return _Field(found[1], owner, found[0])

    def resolve_foreign(self, ref: FieldRef) -> _Field:
        """An unqualified name the entity lacks: the field of the one foreign
        entity that has it (``LFN`` on ``dataset`` is ``files.LFN``).
        """
        owners = [
            link.entity
            for link in self.entity.links
            if ref.name.lower() in self.scopes[link.entity.lower()][1]
        ]
        if len(owners) == 1:
            return self.resolve(FieldRef(owners[0], ref.name, ref.position))
        _, fields = self.scopes[self.entity.name.lower()]
        raise _unknown_field(ref, self.entity.name, [n for n, _ in fields.values()])

    def owner(self, ref: FieldRef) -> str:
        if ref.entity is None:
            return self.entity.name
        scope = self.scopes.get(ref.entity.lower())
        if scope is None:
            known = ", ".join(owner for owner, _ in self.scopes.values())
            raise InvalidInput(
                f"unknown entity {ref.entity!r} at position {ref.position}; "
                f"a query on {self.entity.name} may name {known}"
            )
        return scope[0]

    def joined(self, statement: Select[Any]) -> Select[Any]:
        for link in self.used.values():
            if link.outer:
                statement = statement.outerjoin(link.model, link.on())
            else:
                statement = statement.join(link.model, link.on())
        return statement

    # --- conditions

    def condition(self, node: Condition) -> ColumnElement[bool]:
        if isinstance(node, BoolOp):
            parts = [self.condition(part) for part in node.conditions]
            return and_(*parts) if node.op == "AND" else or_(*parts)
        if isinstance(node, Not):
            return not_(self.condition(node.condition))
        if isinstance(node, Comparison):
            return self.comparison(node)
        if isinstance(node, Like):
            return self.like(node)
        if isinstance(node, InList):
            return self.in_list(node)
        return self.is_null(node)

    def operand(self, operand: Operand) -> _Field | Literal:
        if isinstance(operand, Literal):
            return operand
        found = self.resolve(operand)
        self.in_conditions.add((found.entity, found.name))
        return found

    def comparison(self, node: Comparison) -> ColumnElement[bool]:
        left, right = self.operand(node.left), self.operand(node.right)
        if isinstance(left, Literal) and isinstance(right, Literal):
            return _fold(node.op, left, right)
        if isinstance(left, _Field) and isinstance(right, _Field):
            compared: ColumnElement[bool] = _OPERATORS[node.op](
                left.expression, right.expression
            )
            return compared
        if isinstance(left, Literal):
            left, right = right, left
            op = _FLIPPED[node.op]
        else:
            op = node.op
        assert isinstance(left, _Field) and isinstance(right, Literal)
        return _compare(left, op, right)

    def like(self, node: Like) -> ColumnElement[bool]:
        operand = self.operand(node.operand)
        pattern = str(node.pattern.value)
        if isinstance(operand, Literal):
            matches = _like_regex(pattern).fullmatch(str(operand.value)) is not None
            return true() if matches != node.negated else false()
        if operand.name in LIST_FIELDS:
            found = _list_has(operand.expression, _literal_backslashes(pattern))
        else:
            found = _as_text(operand).ilike(_literal_backslashes(pattern), escape="\\")
        return not_(found) if node.negated else found

    def in_list(self, node: InList) -> ColumnElement[bool]:
        operand = self.operand(node.operand)
        if isinstance(operand, Literal):
            hits = [_fold("=", operand, value) for value in node.values]
            found: ColumnElement[bool] = or_(*hits)
        else:
            values = [_typed(operand, value) for value in node.values]
            found = _membership(operand, [v for v in values if v is not None])
        return not_(found) if node.negated else found

    def is_null(self, node: IsNull) -> ColumnElement[bool]:
        operand = self.operand(node.operand)
        if isinstance(operand, Literal):
            return true() if (operand.value is None) != node.negated else false()
        if node.negated:
            return operand.expression.is_not(None)
        return operand.expression.is_(None)

    def hides_trashed(self) -> bool:
        if self.entity.model is not Dataset or self.show_archived:
            return False
        return ("dataset", "amiStatus") not in self.in_conditions

    # --- order and limit

    def ordering(self, item: OrderItem, outputs: list[_Output]) -> Any:
        """An ORDER BY item: an alias of the SELECT list, or a field."""
        ref = item.field
        aliases = {name: found for found, name, table in outputs if table is None}
        found = aliases.get(ref.name) if ref.entity is None else None
        expression = (found or self.resolve(ref)).expression
        return expression.desc() if item.descending else expression.asc()

    def tiebreak(self, order: list[Any]) -> list[Any]:
        """The primary keys of the rows not yet in *order*, so that the pages
        of a result are stable.
        """
        models = [self.entity.model] + [link.model for link in self.used.values()]
        ordered = {id(item.element) for item in order}
        keys = [column for model in models for column in model.__table__.primary_key]
        return [column for column in keys if id(column) not in ordered]

    def limited(self, statement: Select[Any]) -> tuple[Select[Any], bool]:
        query = self.query
        statement = statement.offset(query.offset) if query.offset else statement
        if query.limit is None:
            return statement.limit(MAX_ROWS + 1), True
        if query.limit > MAX_ROWS:
            raise InvalidInput(f"LIMIT asks for {query.limit} rows; at most {MAX_ROWS}")
        return statement.limit(query.limit), False


def _lowered(
    fields: dict[str, ColumnElement[Any]],
) -> dict[str, tuple[str, ColumnElement[Any]]]:
    return {name.lower(): (name, expression) for name, expression in fields.items()}


def _unknown_field(ref: FieldRef, entity: str, names: Sequence[str]) -> InvalidInput:
    lowered = {name.lower(): name for name in names}
    near = difflib.get_close_matches(ref.name.lower(), list(lowered), n=3)
    hint = f"; did you mean {', '.join(lowered[n] for n in near)}?" if near else ""
    return InvalidInput(
        f"unknown field {ref.name!r} of entity {entity} at position "
        f"{ref.position}{hint}"
    )


# ---------------------------------------------------------------------------
# Values and comparisons


def _typed(found: _Field, value: Literal) -> Any:
    """*value* as the Python type of *found*; numbers stand for their text
    on a text field.

    :raises InvalidInput: when it does not fit, naming the position.
    """
    raw = value.value
    if found.python_type is str and isinstance(raw, int | float):
        raw = str(raw)
    if found.python_type is str and isinstance(raw, str):
        raw = raw.upper() if found.name in UPPER_CASE_FIELDS else raw
    try:
        return typed_value(_Typed(found), raw)
    except InvalidInput as err:
        raise InvalidInput(f"{err.message} (at position {value.position})") from None


@dataclass(frozen=True)
class _Typed:
    """What :func:`catalog.fields.typed_value` reads of a column."""

    found: _Field

    @property
    def type(self) -> Any:
        return self.found.expression.type

    @property
    def info(self) -> dict[str, str]:
        return {"ami": self.found.name}

    @property
    def key(self) -> str:
        return self.found.name


def _compare(found: _Field, op: str, value: Literal) -> ColumnElement[bool]:
    typed = _typed(found, value)
    if typed is None:
        if op not in ("=", "!="):
            raise InvalidInput(
                f"NULL cannot be ordered (at position {value.position}); "
                "use IS NULL or IS NOT NULL"
            )
        null = found.expression.is_(None)
        return null if op == "=" else found.expression.is_not(None)
    if op in ("=", "!=") and (found.name in LIST_FIELDS or found.python_type is str):
        equal = _membership(found, [typed])
        return equal if op == "=" else not_(equal)
    if found.name in LIST_FIELDS:
        raise InvalidInput(
            f"{found.name} is a list of periods (at position {value.position}); "
            "compare it with =, !=, IN or LIKE"
        )
    compared: ColumnElement[bool] = _OPERATORS[op](found.expression, typed)
    return compared


def _membership(found: _Field, values: Sequence[Any]) -> ColumnElement[bool]:
    """*found* equal to one of *values*."""
    if not values:
        return false()
    if found.name in LIST_FIELDS:
        return or_(*(_list_has(found.expression, _escape_like(v)) for v in values))
    if found.python_type is str:
        return ExactText(found.expression, values)
    if len(values) == 1:
        equal: ColumnElement[bool] = found.expression == values[0]
        return equal
    return found.expression.in_(values)


def _as_text(found: _Field) -> ColumnElement[Any]:
    if found.python_type is str:
        return found.expression
    return cast(found.expression, String)


def _list_has(expression: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """One element of the comma-separated list *expression* matches the LIKE
    *pattern* (backslash escapes), ignoring case.
    """
    padded = literal(",", String) + expression + literal(",", String)
    return padded.ilike(f"%,{pattern},%", escape="\\")


def _escape_like(value: str) -> str:
    """*value* as a LIKE pattern that matches it alone (backslash escapes)."""
    return re.sub(r"([\\%_])", r"\\\1", value)


def _literal_backslashes(pattern: str) -> str:
    """The user's LIKE *pattern*, where a backslash is an ordinary character."""
    return pattern.replace("\\", "\\\\")


def _like_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a LIKE *pattern*, ignoring case."""
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _fold(op: str, left: Literal, right: Literal) -> ColumnElement[bool]:
    """A comparison of two literals (``1 = 1``), decided here."""
    a, b = left.value, right.value
    if a is None or b is None:
        return false()
    if isinstance(a, str) != isinstance(b, str):
        a, b = str(a), str(b)
    return true() if _OPERATORS[op](a, b) else false()


class ExactText(ColumnElement[bool]):
    """Text equal to one of *values*, letter case included.

    SQLite and PostgreSQL compare text exactly. MariaDB's usual collations
    ignore case, so there the values are compared as bytes as well; the plain
    comparison stays, so that an index can still be used.
    """

    # No Boolean type: SQLAlchemy would then render it as "(...) = 1" on
    # SQLite and MariaDB, where no index serves it. It renders its own
    # parentheses, so it never needs grouping.
    inherit_cache = True
    _traverse_internals = [
        ("plain", InternalTraversal.dp_clauseelement),
        ("exact", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, expression: ColumnElement[Any], values: Sequence[str]) -> None:
        as_bytes = cast(expression, LargeBinary)
        byte_values = [cast(literal(value, String), LargeBinary) for value in values]
        if len(values) == 1:
            self.plain = expression == values[0]
            self.exact = as_bytes == byte_values[0]
        else:
            self.plain = expression.in_(values)
            self.exact = as_bytes.in_(byte_values)

    def self_group(self, against: Any = None) -> ExactText:
        return self


@compiles(ExactText)
def _exact_text(element: ExactText, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.plain, **kw)})"


@compiles(ExactText, "mysql")
@compiles(ExactText, "mariadb")
def _exact_text_bytes(element: ExactText, compiler: Any, **kw: Any) -> str:
    plain = compiler.process(element.plain, **kw)
    return f"({plain} AND {compiler.process(element.exact, **kw)})"
