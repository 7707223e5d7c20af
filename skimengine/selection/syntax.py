"""The selection language's tokens, tree and parser (the grammar is in
:mod:`skimengine.selection`).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import InvalidInput

MAX_LENGTH = 10_000
MAX_DEPTH = 64  # levels of the tree
MAX_NESTING = 24  # parentheses, 'not' and '-' inside each other
MAX_NUMBER_LENGTH = 100  # characters of one number
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# What the operators do: the same functions serve numpy arrays (the numpy
# compiler) and SQLAlchemy columns (the SQL one).
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

NUMBER = "number"
BOOLEAN = "condition"


class SelectionError(InvalidInput):
    """A selection that cannot be read or does not fit the TAG. The message
    points at the place with a caret line and suggests close names; a fault
    of the whole selection (its length) has no *position*.
    """

    def __init__(
        self,
        expression: str,
        position: int | None,
        reason: str,
        length: int = 1,
        suggestions: Sequence[str] = (),
    ) -> None:
        hint = f"; did you mean {', '.join(map(repr, suggestions))}?"
        if position is None:
            # A fault of the whole selection, at no place in it.
            super().__init__(reason, errors=[reason])
        else:
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
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
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
    """A token: its *text* as the user typed it (what messages quote and
    carets underline) and, for an operator, the operator *op* the parser
    reads, the same for a keyword and its symbol (``AND`` and ``&&``).
    """

    kind: str  # number, name, string, op or end
    text: str
    position: int
    op: str = ""

    @property
    def shown(self) -> str:
        return "the end" if self.kind == "end" else repr(self.text)


def tokenize(expression: str) -> Iterator[Token]:
    """The tokens of *expression*, ending with an ``end`` token; a keyword
    is an ``op`` token whose *op* is its operator.

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
        op = text if kind == "op" else ""
        if kind == "name" and text.lower() in KEYWORDS:
            kind, op = "op", KEYWORDS[text.lower()]
        if kind != "space":
            yield Token(kind, text, position, op)
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


def too_deep(node: Node, limit: int) -> Node | None:
    """The leftmost node more than *limit* levels down the tree under *node*
    (itself the first level), where the part too deep starts; or None.
    Without recursion: a long chain such as ``a+a+...+a`` is deep.
    """
    stack = [(node, 1)]
    while stack:
        current, level = stack.pop()
        if level > limit:
            return current
        stack.extend((child, level + 1) for child in reversed(current.children()))
    return None


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
        """The next token, taken, when it is one of the operators *texts*."""
        if self.token.kind == "op" and self.token.op in texts:
            return self.advance()
        return None

    def expect(self, text: str, what: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise self.unexpected(f"expected {what}")
        return token

    def unexpected(self, reason: str) -> SelectionError:
        """The error at the next token: *reason*, then that token, quoted
        and underlined whole as the user typed it.
        """
        found = self.token
        end = found.position + max(1, len(found.text))
        return self.error(f"{reason} but found {found.shown}", found.position, end)

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
        while self.token.kind == "op" and self.token.op in COMPARISONS:
            op = self.advance().op
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
            raise self.unexpected("expected an interval such as [20, 50)")
        low = self.number(self.sum())
        self.expect(",", "',' between the ends of the interval")
        high = self.number(self.sum())
        closing = self.accept("]", ")")
        if closing is None:
            raise self.unexpected("expected ']' or ')' to end the interval")
        low_op = ">=" if opening.op == "[" else ">"
        high_op = "<=" if closing.op == "]" else "<"
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
                start, self.span(start), token.op, self.number(left), right
            )
        return left

    def unary(self) -> Node:
        start = self.token.position
        if self.accept("-"):
            if self.token.kind == "number" and _whole(self.token.text) == -INT64_MIN:
                # The one whole number a minus sign keeps in 64 bits.
                self.advance()
                return Number(start, self.span(start), INT64_MIN)
            self.nested(start)
            operand = self.number(self.unary())
            self.nesting -= 1
            if isinstance(operand, Number):
                value = -operand.value
                if isinstance(value, int) and value > INT64_MAX:
                    value = float(value)  # -(-2**63), as any whole number past 64 bits
                return Number(start, self.span(start), value)
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
        raise self.unexpected("expected an attribute, a number or '('")

    def literal(self, token: Token) -> int | float:
        text = token.text
        value: int | float
        if len(text) > MAX_NUMBER_LENGTH:
            reason = f"a number has at most {MAX_NUMBER_LENGTH} characters"
            raise self.error(reason, token.position, token.position + len(text))
        whole = _whole(text)
        if whole is not None and whole <= INT64_MAX:
            return whole
        # Beyond 64 bits a whole number is taken as a double, as in SQL.
        value = float(text)
        if not math.isfinite(value):
            raise self.error("this number is too large", token.position)
        if value == 0 and re.search(r"[1-9]", re.split("[eE]", text)[0]):
            reason = (
                "this number is nearer to zero than the smallest double "
                "(about 4.9e-324); write 0 for zero"
            )
            raise self.error(reason, token.position, token.position + len(text))
        return value

    def call(self, name: Token) -> Node:
        arguments = self.arguments(name.position)
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

    def arguments(self, start: int) -> list[Node | Token]:
        """The arguments of the call whose name is at *start*, up to its
        closing parenthesis.
        """
        arguments: list[Node | Token] = []
        if self.accept(")"):
            return arguments
        self.nested(start)
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


def _whole(text: str) -> int | None:
    """The value of the number *text* when it is written as a whole number
    (digits only), else None.
    """
    return int(text) if text.isascii() and text.isdigit() else None


def parse(expression: str) -> Node:
    """Read *expression* into a tree of nodes; the tree is a condition.

    :raises SelectionError: when it is not a well-formed selection.
    """
    if len(expression) > MAX_LENGTH:
        raise SelectionError(
            expression,
            None,
            f"the selection has {len(expression)} characters; "
            f"a selection has at most {MAX_LENGTH}",
        )
    tree = Parser(expression).parse()
    deep = too_deep(tree, MAX_DEPTH)
    if deep is not None:
        reason = f"the selection is nested more than {MAX_DEPTH} levels deep here"
        raise SelectionError(expression, deep.position, reason)
    return tree
