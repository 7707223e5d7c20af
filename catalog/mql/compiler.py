"""The tree of an MQL query compiled to a SQLAlchemy ``Select`` with bound
parameters only.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    String,
    and_,
    case,
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
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import InternalTraversal

from catalog.errors import InvalidInput
from catalog.fields import typed_value, value_type
from catalog.models import (
    AMI_VALID,
    Dataset,
)
from catalog.mql.entities import (
    LIST_FIELDS,
    MANY_VALUED_FIELDS,
    NAMING_FIELDS,
    UPPER_CASE_FIELDS,
    Entity,
    Link,
    entity_field,
    entity_fields,
    get_entity,
)
from catalog.mql.narrowing import ProjectFinder
from catalog.mql.syntax import (
    MAX_ROWS,
    BoolOp,
    Comparison,
    Condition,
    FieldRef,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    Operand,
    OrderItem,
    Query,
    Selected,
    parse,
)

# ---------------------------------------------------------------------------
# The compiler


@dataclass(frozen=True)
class Search:
    """A compiled MQL query.

    :param statement: the ``Select``; its columns are in the order of *names*.
    :param names: the output name of each column: its alias, or its AMI name.
    :param tables: the entity of each column, ``None`` for one with an alias.
    :param capped: True when the query had no LIMIT, or one past
        :data:`MAX_ROWS`: the statement then asks for one row more than
        :data:`MAX_ROWS`, to tell when it was cut.
    """

    entity: str
    statement: Select[Any]
    names: tuple[str, ...]
    tables: tuple[str | None, ...]
    capped: bool = False


def compile_search(
    entity: str,
    mql: str,
    *,
    show_archived: bool = False,
    session: Session | None = None,
) -> Search:
    """Compile the MQL query *mql* on *entity* into a :class:`Search`.

    On entity ``dataset``, a query whose conditions do not mention
    ``amiStatus`` finds only ``VALID`` datasets, as AMI shows them, unless
    *show_archived* is true.

    With a *session* on the catalogue, a ``logicalDatasetName`` pattern is
    written with the projects it can reach (looked up in the catalogue;
    :mod:`catalog.mql.narrowing`), so that an index can find the names. The
    results are the same with or without it.

    :raises InvalidInput: for an unknown entity or field, or a malformed query.
    """
    found = get_entity(entity)
    finder = ProjectFinder(session) if session is not None else None
    compiler = _Compiler(found, parse(mql), show_archived=show_archived, finder=finder)
    return compiler.search()


def filter_condition(entity: str, name: str, value: str) -> ColumnElement[bool]:
    """The condition of the search filter *name* = *value* on *entity* (the
    filters of the search pages and of the JSON API): what MQL's ``name LIKE
    'value'`` means when *value* holds ``%`` and the field is text, else
    ``name = 'value'``, the field compared as MQL compares it.

    :raises InvalidInput: for an unknown field, or a value that does not fit.
    """
    owner = get_entity(entity).name
    field_name, expression = entity_field(owner, name)
    found = _Field(expression, owner, field_name)
    if "%" in value and found.python_type is str:
        return _like(found, value)
    typed = _converted(found, value)
    return _each(found, lambda each: _membership(each, [typed]))


@dataclass(frozen=True)
class _Field:
    """A field resolved to its expression: which entity, which AMI name."""

    expression: ColumnElement[Any]
    entity: str
    name: str

    @property
    def python_type(self) -> type[Any]:
        """The Python type of its values (a time's for a time in UTC)."""
        return value_type(self.expression)


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

    def __init__(
        self,
        entity: Entity,
        query: Query,
        *,
        show_archived: bool,
        finder: ProjectFinder | None = None,
    ) -> None:
        self.entity = entity
        self.query = query
        self.show_archived = show_archived
        self.finder = finder
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
        """The columns of the SELECT list.

        :raises InvalidInput: for two of one name, as a client reads it (a
            foreign field's is ``entity.name``): it would keep one only.
        """
        named: dict[str, int] = {}
        for item in self.query.fields:
            for output in self.item_outputs(item):
                _, name, table = output
                foreign = table not in (None, self.entity.name)
                shown = f"{table}.{name}" if foreign else name
                if shown in named:
                    raise _same_name(shown, item.position, named[shown])
                named[shown] = item.position
                yield output

    def item_outputs(self, item: Selected) -> Iterator[_Output]:
        if item.field is None:
            for name in entity_fields(self.entity.name):
                yield self.resolve(FieldRef(None, name, 0)), name, self.entity.name
        else:
            found = self.resolve(item.field)
            table = None if item.alias else found.entity
            yield found, item.alias or found.name, table

    def resolve(self, ref: FieldRef, aliases: Sequence[str] = ()) -> _Field:
        """The field *ref* names; where *aliases* may be named too, the
        error for an unknown name suggests them as well.
        """
        owner, fields = self.scopes[self.owner(ref).lower()]
        found = fields.get(ref.name.lower())
        if found is None and ref.entity is None:
            return self.resolve_foreign(ref, aliases)
        if found is None:
            raise _unknown_field(ref, owner, [name for name, _ in fields.values()])
        if owner != self.entity.name:
            self.used[owner] = next(
                link for link in self.entity.links if link.entity == owner
            )
        return _Field(found[1], owner, found[0])

    def resolve_foreign(self, ref: FieldRef, aliases: Sequence[str] = ()) -> _Field:
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
        names = [n for n, _ in fields.values()]
        raise _unknown_field(ref, self.entity.name, names, aliases)

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
            return _joined(and_ if node.op == "AND" else or_, parts)
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
            matches = like_matches(str(operand.value), pattern)
            return true() if matches != node.negated else false()
        try:
            condition = _like(operand, pattern)
        except InvalidInput as err:
            position = node.pattern.position
            raise InvalidInput(f"{err.message} (at position {position})") from None
        found = self.by_project(operand, pattern, condition)
        return not_(found) if node.negated else found

    def by_project(
        self, operand: _Field, pattern: str, matches: ColumnElement[bool]
    ) -> ColumnElement[bool]:
        """*matches*, the condition that a dataset name matches *pattern*,
        written with the projects it can reach (:mod:`catalog.mql.narrowing`)
        when the compiler may look them up.
        """
        is_name = (operand.entity, operand.name) == ("dataset", "logicalDatasetName")
        if self.finder is None or not is_name:
            return matches
        reach = self.finder.reachable(pattern)
        return matches if reach is None else reach.condition(matches)

    def in_list(self, node: InList) -> ColumnElement[bool]:
        operand = self.operand(node.operand)
        if isinstance(operand, Literal):
            # A NULL is in no list, as for a field: IN is not IS NULL.
            hits = [
                _fold("=", operand, value)
                for value in node.values
                if None not in (operand.value, value.value)
            ]
            found: ColumnElement[bool] = _joined(or_, hits) if hits else false()
        else:
            typed = [_typed(operand, value) for value in node.values]
            values = [value for value in typed if value is not None]
            found = _each(operand, lambda each: _membership(each, values))
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
        """An ORDER BY item: an alias of the SELECT list (in any letter case,
        as field names; one in the same case first), or a field.
        """
        ref = item.field
        aliases = {name: found for found, name, table in outputs if table is None}
        found = _alias(ref, aliases) if ref.entity is None else None
        if found is None:
            found = self.resolve(ref, aliases=list(aliases))
        expression = found.expression
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
        if query.limit is None or query.limit > MAX_ROWS:
            # Cut at MAX_ROWS, as every AMI list is, and told when it was.
            return statement.limit(MAX_ROWS + 1), True
        return statement.limit(query.limit), False


def _same_name(name: str, position: int, first: int) -> InvalidInput:
    """The error for a second output named *name*, at *position*."""
    return InvalidInput(
        f"the SELECT list names two fields {name!r}: the one at position "
        f"{position} has the name of the one at position {first}; give it "
        "another alias (AS ...)"
    )


def _alias(ref: FieldRef, aliases: dict[str, _Field]) -> _Field | None:
    """The field of the alias *ref* names: the alias in its letter case,
    else the first one in any case; None when it names none.
    """
    if ref.name in aliases:
        return aliases[ref.name]
    same = (
        found for name, found in aliases.items() if name.lower() == ref.name.lower()
    )
    return next(same, None)


def _lowered(
    fields: dict[str, ColumnElement[Any]],
) -> dict[str, tuple[str, ColumnElement[Any]]]:
    return {name.lower(): (name, expression) for name, expression in fields.items()}


def _unknown_field(
    ref: FieldRef, entity: str, names: Sequence[str], aliases: Sequence[str] = ()
) -> InvalidInput:
    """The error for *ref*, a name of none of *names* (the fields of
    *entity*) nor *aliases*; it suggests the near ones of both.
    """
    lowered = {name.lower(): name for name in [*names, *aliases]}
    near = difflib.get_close_matches(ref.name.lower(), list(lowered), n=3)
    hint = f"; did you mean {', '.join(lowered[n] for n in near)}?" if near else ""
    what = "field or alias" if aliases else "field"
    return InvalidInput(
        f"unknown {what} {ref.name!r} of entity {entity} at position "
        f"{ref.position}{hint}"
    )


# ---------------------------------------------------------------------------
# Values and comparisons


def _typed(found: _Field, value: Literal) -> Any:
    """*value* as the Python type of *found* (:func:`_converted`).

    :raises InvalidInput: when it does not fit, naming the position.
    """
    try:
        return _converted(found, value.value)
    except InvalidInput as err:
        raise InvalidInput(f"{err.message} (at position {value.position})") from None


def _converted(found: _Field, raw: Any) -> Any:
    """*raw* as the Python type of *found*; numbers stand for their text on a
    text field, a status field's text is upper case, and a time without a
    fraction of a second is a :class:`TimeSpan`.

    :raises InvalidInput: when it does not fit.
    """
    if found.python_type is str and isinstance(raw, int | float):
        raw = str(raw)
    if found.python_type is str and isinstance(raw, str):
        raw = raw.upper() if found.name in UPPER_CASE_FIELDS else raw
    if found.name in LIST_FIELDS and isinstance(raw, str):
        _one_element(found, raw, "=")
    typed = typed_value(found.expression, raw, name=found.name)
    length = _span(raw) if isinstance(typed, dt.datetime) else None
    return TimeSpan(typed, length) if length is not None else typed


# A fraction of a second in a time's text: ``10:22:43.08`` (or ``,08``).
_FRACTION = re.compile(r"\d[.,]\d")
# The time of day in a time's text, after the date: ``10:22``, ``1022``.
_TIME_OF_DAY = re.compile(r"[Tt ]\s*([0-9:]+)")
# How long a time stands for, by the digits of its time of day.
_SPANS = {
    0: dt.timedelta(days=1),
    2: dt.timedelta(hours=1),
    4: dt.timedelta(minutes=1),
    6: dt.timedelta(seconds=1),
}


def _span(text: str) -> dt.timedelta | None:
    """How long the time written *text* stands for: the day, hour, minute or
    second it is given to; None for a time with a fraction of a second.
    """
    if _FRACTION.search(text):
        return None
    time_of_day = _TIME_OF_DAY.search(text.strip())
    digits = sum(c.isdigit() for c in time_of_day.group(1)) if time_of_day else 0
    return _SPANS.get(digits)


@dataclass(frozen=True)
class TimeSpan:
    """A time given without a fraction of a second: it stands for the whole
    second, minute, hour or day it is given to (*length*, from *start*), so
    that a time copied from an answer (AMI prints times to the second) finds
    the row it came from, and ``created = '2026-12-07'`` that day's.
    """

    start: dt.datetime
    length: dt.timedelta

    @property
    def last(self) -> dt.datetime:
        """The last microsecond of the span (every database keeps six
        digits of a second); the last of year 9999, the latest time there
        is, for a span that runs to its end.
        """
        latest = dt.datetime.max.replace(tzinfo=self.start.tzinfo)
        if latest - self.start < self.length:
            return latest
        return self.start + self.length - dt.timedelta(microseconds=1)


def _one_element(found: _Field, value: str, op: str) -> None:
    """Refuse *value*, compared with *op* to one element of the list field
    *found* (a period), when it holds a comma: no period name does, and the
    comma would match across two neighbouring periods of the list.

    :raises InvalidInput: saying how to ask for several periods.
    """
    if "," not in value:
        return
    # The periods named, for the example (two of them when it names none).
    parts = [part.strip() for part in value.split(",") if part.strip()] or ["A", "D"]
    if op == "=":
        listed = ", ".join(_quoted(part) for part in parts)
        several = f"{found.name} IN ({listed})"
    else:
        several = " OR ".join(f"{found.name} LIKE {_quoted(p)}" for p in parts)
    raise InvalidInput(
        f"a {found.name} name holds no comma, got {value!r}; ask for several "
        f"with {several}"
    )


def _quoted(text: str) -> str:
    """*text* as an MQL string literal."""
    return "'" + text.replace("'", "''") + "'"


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
    if op in ("=", "!="):
        equal = _each(found, lambda each: _membership(each, [typed]))
        return equal if op == "=" else not_(equal)
    if found.name in LIST_FIELDS:
        raise InvalidInput(
            f"{found.name} is a list of periods (at position {value.position}); "
            "compare it with =, !=, IN or LIKE"
        )
    bound = _bound(found, op, typed)
    return _each(found, lambda each: _OPERATORS[op](each.expression, bound))


def _each(
    found: _Field, condition: Callable[[_Field], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """*condition* on *found*; on a field of several values (``inContainer``),
    true when one of its values meets it.
    """
    some = MANY_VALUED_FIELDS.get(found.name)
    if some is None:
        return condition(found)
    return some(lambda value: condition(replace(found, expression=value)))


def _membership(found: _Field, values: Sequence[Any]) -> ColumnElement[bool]:
    """*found* equal to one of *values*; a floating-point number as printed
    (:func:`printed_range`); a name of a thing (:data:`NAMING_FIELDS`) as
    the thing it names.
    """
    if not values:
        return false()
    naming = NAMING_FIELDS.get(found.name)
    if naming is not None:
        return _joined(or_, [naming(value) for value in values])
    if found.name in LIST_FIELDS:
        has = [_list_has(found.expression, _escape_like(v)) for v in values]
        return _joined(or_, has)
    if found.python_type is str:
        return ExactText(found.expression, values)
    if found.python_type in (float, dt.datetime):
        ranges = [found.expression.between(*_range(found, v)) for v in values]
        return _joined(or_, ranges)
    if len(values) == 1:
        equal: ColumnElement[bool] = found.expression == values[0]
        return equal
    return found.expression.in_(values)


# The significant digits AMI prints of a floating-point number.
PRINTED_DIGITS = 15


def printed_range(value: float) -> tuple[float, float]:
    """The lowest and highest numbers printed as *value* is, with
    :data:`PRINTED_DIGITS` significant digits: ``1.90098670625`` stands for
    ``1.9009867062499999`` too. Zero is itself only.
    """
    shown = Decimal(f"{value:.{PRINTED_DIGITS}g}")
    if not shown:
        return value, value
    half = Decimal(5).scaleb(shown.adjusted() - PRINTED_DIGITS)
    return _finite(float(shown - half)), _finite(float(shown + half))


def _finite(number: float) -> float:
    """*number*, the largest float instead of an infinity (which MariaDB
    cannot take).
    """
    return math.copysign(min(abs(number), sys.float_info.max), number)


def _range(found: _Field, value: Any) -> tuple[Any, Any]:
    """The lowest and highest values of *found* that ``=`` *value* matches:
    a floating-point number's :func:`printed_range`, a :class:`TimeSpan`'s
    first and last microsecond, else *value* alone.
    """
    if found.python_type is float:
        return printed_range(value)
    if isinstance(value, TimeSpan):
        return value.start, value.last
    return value, value


def _bound(found: _Field, op: str, value: Any) -> Any:
    """The value an order comparison *op* of *found* is made with: the end
    of the :func:`_range` of *value* that keeps the values ``=`` matches on
    the side ``=`` puts them (``created <= '10:22:43'`` holds 10:22:43.5).
    """
    low, high = _range(found, value)
    return high if op in ("<=", ">") else low


def _like(found: _Field, pattern: str) -> ColumnElement[bool]:
    """*found* like the user's LIKE *pattern*, ignoring case: one period of a
    list (:func:`_list_like`), one value of a field of several, the text form
    of a field that is not text (:func:`_as_text`).

    :raises InvalidInput: for a period pattern with a comma, and a
        floating-point field, which has no text form all databases share.
    """
    if found.name in LIST_FIELDS:
        _one_element(found, pattern, "LIKE")
        return _list_like(found.expression, pattern)
    if found.python_type is float:
        raise InvalidInput(
            f"{found.name} is a number and LIKE compares text: compare it "
            "with =, !=, <, <=, >, >= or IN"
        )
    return _each(
        found,
        lambda each: text_like(_as_text(each), pattern),
    )


def _as_text(found: _Field) -> ColumnElement[Any]:
    """The text of *found* as the answers print it, the same on every
    database: a boolean ``true`` or ``false`` (a database's own cast gives
    ``1`` on SQLite and MariaDB, ``true`` on PostgreSQL), a time
    ``YYYY-MM-DD HH:MM:SS`` (:class:`PrintedTime`), an integer its digits.
    """
    if found.python_type is str:
        return found.expression
    if found.python_type is bool:
        is_true = found.expression.is_(True)
        return case((is_true, "true"), (found.expression.is_(False), "false"))
    if found.python_type is dt.datetime:
        return PrintedTime(found.expression)
    return cast(found.expression, String)


def _list_like(expression: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """One period of the list *expression* matches the user's LIKE *pattern*.

    A letter and ``%`` (``A%``, what pyAMI sends for ``data_period="A"``)
    stands for that period and its sub-periods: ``A``, ``A1``, ``A12``, not
    another period that starts with the letter (``AllYear``, which holds
    every run of its year).
    """
    if len(pattern) == 2 and pattern[0].isascii() and pattern[0].isalpha():
        if pattern[1] == "%":
            letter = pattern[0]
            subperiods = (_list_has(expression, f"{letter}{d}%") for d in "0123456789")
            return or_(_list_has(expression, letter), *subperiods)
    return _list_has(expression, _literal_backslashes(pattern))


def _list_has(expression: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """One element of the comma-separated list *expression* matches the LIKE
    *pattern* (backslash escapes), ignoring case.
    """
    padded = literal(",", String) + expression + literal(",", String)
    return padded.ilike(f"%,{pattern},%", escape="\\")


def _escape_like(value: str) -> str:
    """*value* as a LIKE pattern that matches it alone (backslash escapes)."""
    return re.sub(r"([\\%_])", r"\\\1", value)


def text_like(expression: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """*expression* (text) like the user's LIKE *pattern*, as MQL compares:
    ``%`` and ``_`` wildcards, a backslash an ordinary character, letter case
    ignored, on every database.
    """
    return expression.ilike(_literal_backslashes(pattern), escape="\\")


def _literal_backslashes(pattern: str) -> str:
    """The user's LIKE *pattern*, where a backslash is an ordinary character."""
    return pattern.replace("\\", "\\\\")


def like_matches(text: str, pattern: str) -> bool:
    """Whether *text* matches the user's LIKE *pattern* as the database's
    LIKE does (:func:`_like`): ``%`` any run of characters, ``_`` any one, a
    backslash an ordinary character, letter case ignored character by
    character (``lower(text) LIKE lower(pattern)``).

    A regular expression of the whole pattern would backtrack exponentially
    on one such as ``%a%a...%b``. Here the parts between the ``%`` are
    placed left to right, each at the first place it fits; a part is a
    fixed-length expression (characters and ``.``, no repetition), so each
    place is tried once, and the whole takes at most ``len(text) *
    len(pattern)`` steps.
    """
    chars = _lowered_chars(text)
    first, *rest = _lowered_chars(pattern).split("%")
    if not rest:
        return _fixed(first).fullmatch(chars) is not None
    *middle, last = rest
    end = len(chars) - len(last)
    if end < len(first) or _fixed(first).match(chars) is None:
        return False
    if _fixed(last).fullmatch(chars, end) is None:
        return False
    position = len(first)
    for part in middle:
        found = _fixed(part).search(chars, position, end)
        if found is None:
            return False
        position = found.end()
    return True


def _lowered_chars(text: str) -> str:
    """*text* in lower case, one character for one: a character whose lower
    case is longer (``İ``) stays as it is, so that ``_`` still counts one.
    """
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


def _fixed(part: str) -> re.Pattern[str]:
    """The expression of *part*, a piece of a LIKE pattern without ``%``:
    as many characters as *part* has, ``_`` any of them.
    """
    escaped = ("." if c == "_" else re.escape(c) for c in part)
    return re.compile("".join(escaped), re.DOTALL)


def _fold(op: str, left: Literal, right: Literal) -> ColumnElement[bool]:
    """A comparison of two literals (``1 = 1``), decided here. ``= NULL`` is
    ``IS NULL`` and ``!= NULL`` ``IS NOT NULL``, as for a field (``NULL =
    NULL`` is true); a NULL ordered (``NULL < 1``) is true of nothing.
    """
    a, b = left.value, right.value
    if a is None or b is None:
        both = a is None and b is None
        return true() if (op == "=" and both) or (op == "!=" and not both) else false()
    if isinstance(a, str) != isinstance(b, str):
        a, b = str(a), str(b)
    return true() if _OPERATORS[op](a, b) else false()


# The most conditions one AND or OR joins in the SQL; more are joined in
# parenthesised blocks of this many. A database parses "a OR b OR c ..." into
# a chain as deep as it is long, and SQLite refuses one deeper than 1000.
JOINED_BLOCK = 32


def _joined(
    join: Callable[..., ColumnElement[bool]], conditions: Sequence[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """*conditions* joined by *join* (``and_`` or ``or_``), in blocks of at
    most :data:`JOINED_BLOCK`, so that the SQL nests a few levels deep
    rather than one level for each condition. A short list is joined as it is.
    """
    parts = list(conditions)
    while len(parts) > JOINED_BLOCK:
        parts = [
            Parenthesised(join(*parts[start : start + JOINED_BLOCK]))
            for start in range(0, len(parts), JOINED_BLOCK)
        ]
    return join(*parts)


class Parenthesised(ColumnElement[bool]):
    """*inner* in parentheses of its own, which SQLAlchemy keeps: it merges a
    grouped ``OR`` into the ``OR`` around it.
    """

    # No Boolean type, and its own parentheses, as ExactText below.
    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner

    def self_group(self, against: Any = None) -> Parenthesised:
        return self


@compiles(Parenthesised)
def _parenthesised(element: Parenthesised, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


class PrintedTime(ColumnElement[str]):
    """The time *inner* as the answers print it, ``YYYY-MM-DD HH:MM:SS``, on
    every database: a database's own text of a time differs (SQLite's holds
    what was written, perhaps with microseconds; PostgreSQL's drops a zero
    fraction; MariaDB's keeps six digits).
    """

    inherit_cache = True
    type = String()
    _traverse_internals = [
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("mariadb", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, inner: ColumnElement[Any]) -> None:
        self.inner = inner
        self.sqlite = func.strftime(literal("%Y-%m-%d %H:%M:%S"), inner)
        self.mariadb = func.date_format(inner, literal("%Y-%m-%d %H:%i:%s"))
        self.postgresql = func.to_char(inner, literal("YYYY-MM-DD HH24:MI:SS"))

    @property
    def _from_objects(self) -> list[Any]:
        return list(self.inner._from_objects)


@compiles(PrintedTime)
def _printed_time(element: PrintedTime, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.postgresql, **kw))


@compiles(PrintedTime, "sqlite")
def _printed_time_sqlite(element: PrintedTime, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.sqlite, **kw))


@compiles(PrintedTime, "mysql")
@compiles(PrintedTime, "mariadb")
def _printed_time_mariadb(element: PrintedTime, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.mariadb, **kw))


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
