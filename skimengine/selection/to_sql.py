"""A bound selection as a SQLAlchemy condition."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Double,
    and_,
    cast,
    false,
    func,
    not_,
    or_,
)
from sqlalchemy import literal as sql_literal

from skimengine.selection.binding import (
    FLOAT,
    Vocabulary,
    bit_mask,
    is_arithmetic,
    nullable,
)
from skimengine.selection.syntax import (
    OPERATORS,
    Abs,
    Arithmetic,
    Attribute,
    Bit,
    Compare,
    Logical,
    Negate,
    Node,
    Not,
    Number,
)

# -- SQL ------------------------------------------------------------------

#: A chain of more conditions than this (``a or b or ...``) is joined as a
#: balanced tree of groups: SQLite reads a flat chain as a tree as deep as
#: it is long, and refuses one deeper than 1,000.
FLAT_CHAIN = 64


class SqlCompiler:
    """Turns a bound tree into a SQLAlchemy condition on columns."""

    def __init__(
        self, columns: Mapping[str, ColumnElement[Any]], vocabulary: Vocabulary
    ) -> None:
        self.columns = columns
        self.vocabulary = vocabulary

    def condition(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, Logical):
            combine = and_ if node.op == "&&" else or_
            return _chain(combine, [self.condition(o) for o in node.operands])
        if isinstance(node, Not):
            return not_(self.condition(node.operand))
        if isinstance(node, Bit):
            column = self.columns[node.attribute.name]
            mask = sql_literal(bit_mask(node.bit), BigInteger)
            return column.op("&")(mask) != 0
        assert isinstance(node, Compare)
        if self.in_double(node.left) or self.in_double(node.right):
            # As numpy does it: a whole number meets a non-whole one as a
            # double (SQLite alone would compare them exactly).
            left, right = self.double(node.left), self.double(node.right)
        else:
            left, right = self.value(node.left), self.value(node.right)
        compared: ColumnElement[bool] = OPERATORS[node.op](left, right)
        if nullable(node):
            return func.coalesce(compared, false())
        return compared

    def in_double(self, node: Node) -> bool:
        if isinstance(node, Number):
            return isinstance(node.value, float)
        if isinstance(node, Attribute):
            return self.vocabulary.attributes[node.name] == FLOAT
        return is_arithmetic(node)

    def value(self, node: Node) -> ColumnElement[Any]:
        if isinstance(node, Number):
            kind = BigInteger if isinstance(node.value, int) else Double
            return sql_literal(node.value, kind)
        assert isinstance(node, Attribute)
        return self.columns[node.name]

    def double(self, node: Node) -> ColumnElement[Any]:
        if isinstance(node, Number):
            return sql_literal(float(node.value), Double)
        if isinstance(node, Attribute):
            return cast(self.columns[node.name], Double)
        if isinstance(node, Negate):
            return -self.double(node.operand)
        if isinstance(node, Abs):
            return func.abs(self.double(node.operand), type_=Double)
        assert isinstance(node, Arithmetic)
        left, right = self.double(node.left), self.double(node.right)
        if isinstance(node.right, Arithmetic) and node.right.op == node.op:
            # SQLAlchemy takes a + (b + c) for a + b + c, which rounds
            # otherwise: a cast is a bound it keeps.
            right = cast(right, Double)
        if node.op == "/":
            zero = sql_literal(0.0, Double)
            return left / func.nullif(right, zero, type_=Double)
        combined: ColumnElement[Any] = OPERATORS[node.op](left, right)
        return combined


def _chain(
    combine: Callable[..., ColumnElement[bool]], clauses: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """*clauses* joined by *combine* (``and_``, ``or_``), in a balanced tree
    of groups when there are more than :data:`FLAT_CHAIN`. SQLAlchemy joins
    nested lists, and groups, of one operator into one flat list: a
    function call is a bound it keeps.
    """
    if len(clauses) <= FLAT_CHAIN:
        return combine(*clauses)
    middle = len(clauses) // 2
    halves = (_chain(combine, clauses[:middle]), _chain(combine, clauses[middle:]))
    return combine(*(func.coalesce(half, false(), type_=Boolean) for half in halves))
