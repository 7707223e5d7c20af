"""The selection language: conditions on TAG attributes, such as
``nJets >= 2 && abs(jet_pt1 - 91) < 10 and trigger("HLT_e26_lhtight")``.

A selection is read by a tokenizer and a recursive-descent parser into a
tree of nodes, checked against the attributes of a TAG (a
:class:`Vocabulary`), and compiled either to numpy (vectorised over column
arrays) or to a SQLAlchemy condition (bound parameters only). Nothing is ever
handed to ``eval``. The grammar, lowest precedence first::

    selection   := or
    or          := and (("or" | "||") and)*
    and         := not (("and" | "&&") not)*
    not         := ("not" | "!") not | comparison
    comparison  := sum (COMPARE sum)* | sum "in" interval
    interval    := ("[" | "(") sum "," sum ("]" | ")")
    sum         := product (("+" | "-") product)*
    product     := unary (("*" | "/") unary)*
    unary       := "-" unary | primary
    primary     := NUMBER | NAME | NAME "(" arguments ")" | "(" or ")"

``COMPARE`` is one of ``< <= > >= == !=``. A chain ``20 < pt < 50`` means
``20 < pt and pt < 50``; ``pt in [20, 50)`` means ``20 <= pt and pt < 50``
(a square bracket includes its end, a round one excludes it). Functions:
``abs(x)``; ``bit(attribute, n)``, true when bit *n* (0 to 63) of an integer
attribute is set; ``trigger("NAME")``, the bit of that trigger in the TAG's
trigger menu. Keywords are case-insensitive, attribute names are not.

Arithmetic is done in double precision, as in ROOT's ``TTree::Draw``. A
division by zero has no value, and a comparison with no value is false, also
under ``not`` -- the same in numpy and in SQL.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
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

from catalog.errors import InvalidInput

MAX_LENGTH = 10_000
MAX_DEPTH = 64  # levels of the tree
MAX_NESTING = 24  # parentheses, 'not' and '-' inside each other
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

NUMBER = "number"
BOOLEAN = "condition"


class SelectionError(InvalidInput):
    """A selection that cannot be read or does not fit the TAG. The message
    points at the place with a caret line and suggests close names.
    """

    def __init__(
        self,
        expression: str,
        position: int,
        reason: str,
        length: int = 1,
        suggestions: Sequence[str] = (),
    ) -> None:
        hint = f"; did you mean {', '.join(map(repr, suggestions))}?"
        summary = f"column {position + 1}: {reason}{hint if suggestions else ''}"
        shown = re.sub(r"\s", " ", expression)
        caret = " " * position + "^" * max(1, length)
        super().__init__(f"{summary}\n  {shown}\n  {caret}", errors=[summary])
        self.expression = expression
        self.position = position
        self.reason = reason
        self.suggestions = list(suggestions)


# -- tokens ---------------------------------------------------------------

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<op><=|>=|==|!=|&&|\|\||[<>!+\-*/(),\[\]])
    """,
    re.VERBOSE,
)
KEYWORDS = {"and": "&&", "or": "||", "not": "!", "in": "in"}
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
MISTAKES = {
    "=": "use '==' to compare",
    "&": "use '&&' or 'and' to combine conditions",
    "|": "use '||' or 'or' to combine conditions",
    '"': "a string must end with a quote on the same line",
    "'": "a string must end with a quote on the same line",
}


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, op or end
    text: str
    position: int

    @property
    def shown(self) -> str:
        return "the end" if self.kind == "end" else repr(self.text)


def tokenize(expression: str) -> Iterator[Token]:
    """The tokens of *expression*, keywords given as their operator, ending
    with an ``end`` token.

    :raises SelectionError: for a character that starts no token.
    """
    position = 0
    while position < len(expression):
        match = TOKEN.match(expression, position)
        if match is None:
            char = expression[position]
            reason = MISTAKES.get(char, "this character has no meaning here")
            raise SelectionError(expression, position, f"unexpected {char!r}: {reason}")
        kind, text = match.lastgroup or "", match.group()
        if kind == "name" and text.lower() in KEYWORDS:
            kind, text = "op", KEYWORDS[text.lower()]
        if kind != "space":
            yield Token(kind, text, position)
        position = match.end()
    yield Token("end", "", len(expression))


# -- the tree -------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A node of a selection tree; *position* and *length* locate its text."""

    position: int = field(compare=False)
    length: int = field(compare=False)

    kind = NUMBER

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True)
class Number(Node):
    value: int | float


@dataclass(frozen=True)
class Attribute(Node):
    name: str


@dataclass(frozen=True)
class Negate(Node):
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Abs(Node):
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Arithmetic(Node):
    op: str  # + - * /
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Node):
    op: str  # < <= > >= == !=
    left: Node
    right: Node

    kind = BOOLEAN

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Bit(Node):
    """Bit *bit* of the integer attribute *attribute* is set."""

    attribute: Attribute
    bit: int

    kind = BOOLEAN


@dataclass(frozen=True)
class Trigger(Node):
    """The trigger *name* fired; :func:`bind` turns it into a :class:`Bit`."""

    name: str

    kind = BOOLEAN


@dataclass(frozen=True)
class Not(Node):
    operand: Node

    kind = BOOLEAN

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Logical(Node):
    op: str  # && or ||
    operands: tuple[Node, ...]

    kind = BOOLEAN

    def children(self) -> tuple[Node, ...]:
        return self.operands


def depth(node: Node) -> int:
    """The number of levels of the tree under *node*, itself included
    (without recursion: a long chain such as ``a+a+...+a`` is deep).
    """
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children())
    return deepest


# -- the parser -----------------------------------------------------------


class Parser:
    """A recursive-descent parser over the tokens of one expression."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = list(tokenize(expression))
        self.index = 0
        self.nesting = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def error(self, reason: str, start: int, end: int | None = None) -> SelectionError:
        length = (end if end is not None else start + 1) - start
        return SelectionError(self.expression, start, reason, length)

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def accept(self, *texts: str) -> Token | None:
        if self.token.kind == "op" and self.token.text in texts:
            return self.advance()
        return None

    def expect(self, text: str, what: str) -> Token:
        token = self.accept(text)
        if token is None:
            found = self.token
            raise self.error(f"expected {what} but found {found.shown}", found.position)
        return token

    def span(self, start: int) -> int:
        previous = self.tokens[self.index - 1]
        return previous.position + len(previous.text) - start

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise self.error("the selection is empty", 0)
        node = self.condition(self.logical("||"))
        if self.token.kind != "end":
            found = self.token
            raise self.error(
                f"unexpected {found.shown} after a complete selection; "
                "join conditions with 'and' or 'or'",
                found.position,
                found.position + len(found.text),
            )
        return node

    def nested(self, start: int) -> None:
        """Enter one more level of nesting, opened at *start*."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            reason = f"the selection is nested more than {MAX_NESTING} levels deep"
            raise self.error(reason, start)

    def condition(self, node: Node) -> Node:
        return self.of_kind(node, BOOLEAN, "did you forget a comparison?")

    def number(self, node: Node) -> Node:
        return self.of_kind(node, NUMBER, "a condition has no numeric value")

    def of_kind(self, node: Node, kind: str, hint: str) -> Node:
        if node.kind != kind:
            found = NUMBER if kind == BOOLEAN else BOOLEAN
            reason = f"expected a {kind} but found a {found}; {hint}"
            raise self.error(reason, node.position, node.position + node.length)
        return node

    def logical(self, op: str) -> Node:
        """``or`` (*op* ``||``) or ``and`` (*op* ``&&``) chains."""
        start = self.token.position
        parse_operand = self.negation if op == "&&" else lambda: self.logical("&&")
        operands = [parse_operand()]
        while self.accept(op):
            operands.append(self.condition(parse_operand()))
        if len(operands) == 1:
            return operands[0]
        self.condition(operands[0])
        return Logical(start, self.span(start), op, tuple(operands))

    def negation(self) -> Node:
        start = self.token.position
        if self.accept("!"):
            self.nested(start)
            operand = self.condition(self.negation())
            self.nesting -= 1
            return Not(start, self.span(start), operand)
        return self.comparison()

    def comparison(self) -> Node:
        start = self.token.position
        left = self.sum()
        if self.accept("in"):
            return self.interval(start, self.number(left))
        comparisons: list[Node] = []
        while self.token.kind == "op" and self.token.text in COMPARISONS:
            op = self.advance().text
            right = self.number(self.sum())
            comparisons.append(
                Compare(start, self.span(start), op, self.number(left), right)
            )
            left = right
        if not comparisons:
            return left
        if len(comparisons) == 1:
            return comparisons[0]
        return Logical(start, self.span(start), "&&", tuple(comparisons))

    def interval(self, start: int, value: Node) -> Node:
        opening = self.accept("[", "(")
        if opening is None:
            found = self.token
            raise self.error(
                f"expected an interval such as [20, 50) but found {found.shown}",
                found.position,
            )
        low = self.number(self.sum())
        self.expect(",", "',' between the ends of the interval")
        high = self.number(self.sum())
        closing = self.accept("]", ")")
        if closing is None:
            raise self.error(
                "expected ']' or ')' to end the interval", self.token.position
            )
        low_op = ">=" if opening.text == "[" else ">"
        high_op = "<=" if closing.text == "]" else "<"
        length = self.span(start)
        return Logical(
            start,
            length,
            "&&",
            (
                Compare(start, length, low_op, value, low),
                Compare(start, length, high_op, value, high),
            ),
        )

    def sum(self) -> Node:
        return self.arithmetic(("+", "-"), self.product)

    def product(self) -> Node:
        return self.arithmetic(("*", "/"), self.unary)

    def arithmetic(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        start = self.token.position
        left = operand()
        while token := self.accept(*ops):
            right = self.number(operand())
            left = Arithmetic(
                start, self.span(start), token.text, self.number(left), right
            )
        return left

    def unary(self) -> Node:
        start = self.token.position
        if self.accept("-"):
            self.nested(start)
            operand = self.number(self.unary())
            self.nesting -= 1
            if isinstance(operand, Number):
                return Number(start, self.span(start), -operand.value)
            return Negate(start, self.span(start), operand)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Number(token.position, len(token.text), self.literal(token))
        if token.kind == "name":
            self.advance()
            if self.accept("("):
                return self.call(token)
            return Attribute(token.position, len(token.text), token.text)
        if self.accept("("):
            self.nested(token.position)
            inner = self.logical("||")
            self.nesting -= 1
            self.expect(")", f"')' to close the '(' at column {token.position + 1}")
            return inner
        raise self.error(
            f"expected an attribute, a number or '(' but found {token.shown}",
            token.position,
            token.position + max(1, len(token.text)),
        )

    def literal(self, token: Token) -> int | float:
        text = token.text
        value: int | float
        if re.fullmatch(r"\d+", text) and int(text) <= INT64_MAX:
            return int(text)
        # Beyond 64 bits a whole number is taken as a double, as in SQL.
        value = float(text)
        if not math.isfinite(value):
            raise self.error("this number is too large", token.position)
        return value

    def call(self, name: Token) -> Node:
        arguments = self.arguments()
        start = name.position
        length = self.span(start)
        function = name.text.lower()
        if function == "abs":
            (operand,) = self.arity(name, arguments, 1)
            assert isinstance(operand, Node)  # arity() refused strings
            return Abs(start, length, self.number(operand))
        if function == "bit":
            attribute, bit = self.arity(name, arguments, 2)
            return Bit(start, length, *self.bit_arguments(attribute, bit))
        if function == "trigger":
            (argument,) = self.arity(name, arguments, 1)
            if not isinstance(argument, Token):
                raise self.error(
                    'trigger() takes a quoted trigger name, as in trigger("HLT_mu26")',
                    argument.position,
                    argument.position + argument.length,
                )
            return Trigger(start, length, argument.text[1:-1])
        near = difflib.get_close_matches(function, ["abs", "bit", "trigger"], n=1)
        raise SelectionError(
            self.expression,
            start,
            f"unknown function {name.text!r}",
            len(name.text),
            [f"{n}()" for n in near],
        )

    def arguments(self) -> list[Node | Token]:
        arguments: list[Node | Token] = []
        if self.accept(")"):
            return arguments
        self.nested(self.token.position)
        while True:
            if self.token.kind == "string":
                arguments.append(self.advance())
            else:
                arguments.append(self.logical("||"))
            if not self.accept(","):
                break
        self.nesting -= 1
        self.expect(")", "',' or ')' in the arguments")
        return arguments

    def arity(
        self, name: Token, arguments: list[Node | Token], count: int
    ) -> list[Node | Token]:
        if len(arguments) != count:
            plural = "s" if count > 1 else ""
            raise self.error(
                f"{name.text}() takes {count} argument{plural}, not {len(arguments)}",
                name.position,
                name.position + len(name.text),
            )
        strings = [a for a in arguments if isinstance(a, Token)]
        if strings and name.text.lower() != "trigger":
            raise self.error(
                "a string is only allowed in trigger()", strings[0].position
            )
        return arguments

    def bit_arguments(self, attribute: Any, bit: Any) -> tuple[Attribute, int]:
        if not isinstance(attribute, Attribute):
            raise self.error(
                "bit() takes an attribute first, as in bit(triggerBits, 3)",
                attribute.position,
                attribute.position + attribute.length,
            )
        if not (isinstance(bit, Number) and isinstance(bit.value, int)):
            raise self.error(
                "bit() takes a whole number from 0 to 63 second",
                bit.position,
                bit.position + bit.length,
            )
        if not 0 <= bit.value <= 63:
            raise self.error(
                "a bit number goes from 0 to 63",
                bit.position,
                bit.position + bit.length,
            )
        return attribute, bit.value


def parse(expression: str) -> Node:
    """Read *expression* into a tree of nodes; the tree is a condition.

    :raises SelectionError: when it is not a well-formed selection.
    """
    if len(expression) > MAX_LENGTH:
        raise SelectionError(
            expression[:80], 80, f"a selection has at most {MAX_LENGTH} characters"
        )
    tree = Parser(expression).parse()
    if depth(tree) > MAX_DEPTH:
        raise SelectionError(
            expression, 0, f"the selection is nested more than {MAX_DEPTH} levels deep"
        )
    return tree


# -- checking against a TAG -----------------------------------------------

INTEGER = "int"
FLOAT = "float"


@dataclass(frozen=True)
class Vocabulary:
    """What a selection may name: the *attributes* of a TAG with their type
    (``"int"`` or ``"float"``) and its trigger menu, *triggers* in bit order,
    kept in the integer attribute *trigger_attribute*.
    """

    attributes: Mapping[str, str]
    triggers: Sequence[str] = ()
    trigger_attribute: str = "triggerBits"


def similar(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Up to *n* of *candidates* close to *name*, ignoring case."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    if name.lower() in lowered:  # only the case differs: no other guess
        return [lowered[name.lower()]]
    near = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[match] for match in near]


class Binder:
    """Checks a tree against a :class:`Vocabulary` and resolves triggers."""

    def __init__(self, expression: str, vocabulary: Vocabulary) -> None:
        self.expression = expression
        self.vocabulary = vocabulary

    def error(
        self, node: Node, reason: str, near: Sequence[str] = ()
    ) -> SelectionError:
        return SelectionError(self.expression, node.position, reason, node.length, near)

    def bind(self, node: Node) -> Node:
        if isinstance(node, Attribute):
            return self.attribute(node)
        if isinstance(node, Trigger):
            return self.trigger(node)
        if isinstance(node, Bit):
            return self.bit(node)
        changes: dict[str, Node | tuple[Node, ...]] = {
            name: self.bind(value)
            for name, value in vars(node).items()
            if isinstance(value, Node)
        }
        if isinstance(node, Logical):
            changes["operands"] = tuple(self.bind(child) for child in node.operands)
        return type(node)(**{**vars(node), **changes}) if changes else node

    def attribute(self, node: Attribute) -> Attribute:
        names = list(self.vocabulary.attributes)
        if node.name not in self.vocabulary.attributes:
            reason = f"unknown attribute {node.name!r}"
            raise self.error(node, reason, similar(node.name, names))
        return node

    def bit(self, node: Bit) -> Bit:
        self.attribute(node.attribute)
        if self.vocabulary.attributes[node.attribute.name] != INTEGER:
            reason = f"bit() needs an integer attribute; {node.attribute.name!r} is not"
            raise self.error(node.attribute, reason)
        return node

    def trigger(self, node: Trigger) -> Bit:
        menu = list(self.vocabulary.triggers)
        if not menu:
            reason = "this TAG has no trigger menu; test bits with bit(triggerBits, n)"
            raise self.error(node, reason)
        if node.name not in menu:
            reason = f"unknown trigger {node.name!r}"
            raise self.error(node, reason, similar(node.name, menu))
        where = Attribute(node.position, node.length, self.vocabulary.trigger_attribute)
        return self.bit(Bit(node.position, node.length, where, menu.index(node.name)))


def attributes_of(node: Node) -> set[str]:
    """The names of the attributes that *node* reads."""
    if isinstance(node, Attribute):
        return {node.name}
    if isinstance(node, Bit):
        return {node.attribute.name}
    return set().union(*(attributes_of(child) for child in node.children()))


def nullable(node: Node) -> bool:
    """Whether *node* can have no value: a number that divides, or a
    comparison of one. Combined conditions always have a value.
    """
    if isinstance(node, Arithmetic) and node.op == "/":
        return True
    if isinstance(node, Logical | Not | Bit):
        return False
    return any(nullable(child) for child in node.children())


def bit_mask(bit: int) -> int:
    """The signed 64-bit integer with only bit *bit* set."""
    mask = 1 << bit
    return mask - (1 << 64) if bit == 63 else mask


def is_arithmetic(node: Node) -> bool:
    return isinstance(node, Arithmetic | Negate | Abs)


# -- the compiled selection -----------------------------------------------


@dataclass(frozen=True)
class Selection:
    """A selection checked against a vocabulary, ready to run."""

    text: str
    tree: Node
    vocabulary: Vocabulary

    @property
    def attributes(self) -> set[str]:
        """The attributes the selection reads."""
        return attributes_of(self.tree)

    def numpy(self, columns: Mapping[str, np.ndarray], length: int) -> np.ndarray:
        """The boolean mask of the rows of *columns* (arrays of *length*
        rows, by attribute name) that pass the selection.
        """
        with np.errstate(all="ignore"):
            mask = NumpyCompiler(columns).condition(self.tree)
        return np.broadcast_to(mask, (length,))

    def sql(self, columns: Mapping[str, ColumnElement[Any]]) -> ColumnElement[bool]:
        """The selection as a SQLAlchemy condition on *columns* (by
        attribute name); every number in it is a bound parameter.
        """
        return SqlCompiler(columns, self.vocabulary).condition(self.tree)


def compile_selection(expression: str, vocabulary: Vocabulary) -> Selection:
    """Parse *expression* and check it against *vocabulary*.

    :raises SelectionError: when it is malformed, names an unknown attribute,
        trigger or function, or uses bit() on a non-integer attribute.
    """
    tree = Binder(expression, vocabulary).bind(parse(expression))
    return Selection(expression, tree, vocabulary)


# -- numpy ------------------------------------------------------------------


class NumpyCompiler:
    """Evaluates a bound tree over column arrays."""

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.columns = columns

    def condition(self, node: Node) -> Any:
        if isinstance(node, Logical):
            combine = np.logical_and if node.op == "&&" else np.logical_or
            result = self.condition(node.operands[0])
            for operand in node.operands[1:]:
                result = combine(result, self.condition(operand))
            return result
        if isinstance(node, Not):
            return np.logical_not(self.condition(node.operand))
        if isinstance(node, Bit):
            # As in SQL, the bits are those of the value as a signed 64-bit
            # integer (int64 columns are not copied).
            column = self.columns[node.attribute.name].astype(np.int64, copy=False)
            return np.bitwise_and(column, np.int64(bit_mask(node.bit))) != 0
        assert isinstance(node, Compare)
        return self.compare(node)

    def compare(self, node: Compare) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        if np.ndim(left) == 0 and np.ndim(right) != 0:
            left, right, op = right, left, FLIPPED[node.op]
        else:
            op = node.op
        if (
            isinstance(right, int | float)
            and getattr(left, "dtype", None) == np.float32
        ):
            return compare_float32(left, op, float(right))
        if op == "!=" and nullable(node):
            # NaN != x is true in numpy; "no value" must make it false.
            return np.logical_or(left < right, left > right)
        return OPERATORS[op](left, right)

    def value(self, node: Node) -> Any:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Attribute):
            return self.columns[node.name]
        if isinstance(node, Negate):
            return np.negative(self.double(node.operand))
        if isinstance(node, Abs):
            return np.abs(self.double(node.operand))
        assert isinstance(node, Arithmetic)
        left, right = self.double(node.left), self.double(node.right)
        if node.op != "/":
            return OPERATORS[node.op](left, right)
        quotient = np.divide(left, right)
        return np.where(np.equal(right, 0), np.nan, quotient)

    def double(self, node: Node) -> Any:
        value = self.value(node)
        if isinstance(value, np.ndarray):
            return value.astype(np.float64, copy=False)
        return np.float64(value)


# The same operators serve numpy arrays and SQLAlchemy columns.
OPERATORS: dict[str, Any] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def compare_float32(array: np.ndarray, op: str, value: float) -> np.ndarray:
    """``array <op> value`` for a float32 *array*, exact as in double
    precision but without converting the array: the double *value* is
    replaced by the float32 neighbour that gives the same answer.
    """
    nearest = np.float32(value)
    below = nearest if float(nearest) <= value else np.nextafter(nearest, -np.inf)
    above = nearest if float(nearest) >= value else np.nextafter(nearest, np.inf)
    exact = float(nearest) == value
    if op == "==":
        return array == nearest if exact else np.zeros(array.shape, bool)
    if op == "!=":
        return array != nearest if exact else np.ones(array.shape, bool)
    bound = {">": below, "<=": below, ">=": above, "<": above}[op]
    return np.asarray(OPERATORS[op](array, bound))


# -- SQL ------------------------------------------------------------------


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
            return combine(*(self.condition(operand) for operand in node.operands))
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
        if node.op == "/":
            zero = sql_literal(0.0, Double)
            return left / func.nullif(right, zero, type_=Double)
        combined: ColumnElement[Any] = OPERATORS[node.op](left, right)
        return combined
