"""Checking a selection's tree against the attributes of a TAG."""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from skimengine.selection.syntax import (
    NUMBER,
    Abs,
    Arithmetic,
    Attribute,
    Bit,
    Logical,
    Negate,
    Node,
    Not,
    Number,
    SelectionError,
    Trigger,
)

# -- checking against a TAG -----------------------------------------------

INTEGER = "int"
FLOAT = "float"


@dataclass(frozen=True)
class Vocabulary:
    """What a selection may name: the *attributes* of a TAG with their type
    (``"int"``, at most 64 bits, or ``"float"``, finite float32 values) and
    its trigger menu, *triggers* in bit order, kept in the integer attribute
    *trigger_attribute*.
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


# -- the range of double arithmetic ---------------------------------------------

# The smallest magnitude other than zero that a number can have, and the
# largest; (inf, 0) for a number that is always zero or has no value.
Magnitude = tuple[float, float]
ALWAYS_ZERO: Magnitude = (math.inf, 0.0)
MAGNITUDES: dict[str, Magnitude] = {
    INTEGER: (1.0, 2.0**63),
    FLOAT: (2.0**-149, 3.4028234663852886e38),  # float32 subnormal and max
}
OVERFLOW = (
    "this arithmetic can go beyond the largest double (about 1.8e308) for "
    "values its attributes can take; use smaller numbers"
)
UNDERFLOW = (
    "this arithmetic can come nearer to zero than the smallest double (about "
    "4.9e-324) for values its attributes can take; use larger numbers"
)


def _grain(smallest: float) -> float:
    """The power of two that divides every double of magnitude at least
    *smallest*: a sum of such numbers is zero or at least this.
    """
    if math.isinf(smallest):
        return smallest
    exponent = math.frexp(smallest)[1] - 1  # of the highest bit
    return math.ldexp(1.0, max(exponent - 52, -1074))


def _sum(left: Magnitude, right: Magnitude) -> Magnitude:
    return min(_grain(left[0]), _grain(right[0])), left[1] + right[1]


def _product(left: Magnitude, right: Magnitude) -> Magnitude:
    if math.isinf(left[0]) or math.isinf(right[0]):
        return ALWAYS_ZERO
    return left[0] * right[0], left[1] * right[1]


def _quotient(left: Magnitude, right: Magnitude) -> Magnitude:
    if math.isinf(left[0]) or math.isinf(right[0]):
        return ALWAYS_ZERO  # zero, or no value: a division by zero
    return left[0] / right[1], left[1] / right[0]


# Bounds computed in double precision hold for the values too: rounding to
# nearest is monotonic.
COMBINE: dict[str, Callable[[Magnitude, Magnitude], Magnitude]] = {
    "+": _sum,
    "-": _sum,
    "*": _product,
    "/": _quotient,
}


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

    def check_range(self, node: Node) -> None:
        """Check that the arithmetic of the bound tree *node* stays within
        the range of a double for every value its attributes can take:
        numpy would reach infinity (and NaN from it), PostgreSQL and MariaDB
        raise an error, and PostgreSQL also when a product or a quotient
        rounds to zero.

        :raises SelectionError: at the first arithmetic that could not.
        """
        if node.kind == NUMBER:
            self.magnitude(node)
            return
        for child in node.children():
            self.check_range(child)

    def magnitude(self, node: Node) -> Magnitude:
        if isinstance(node, Number):
            size = abs(float(node.value))
            return (size, size) if size else ALWAYS_ZERO
        if isinstance(node, Attribute):
            return MAGNITUDES[self.vocabulary.attributes[node.name]]
        if isinstance(node, Negate | Abs):
            return self.magnitude(node.operand)
        assert isinstance(node, Arithmetic)
        left, right = self.magnitude(node.left), self.magnitude(node.right)
        smallest, largest = COMBINE[node.op](left, right)
        if largest > sys.float_info.max:
            raise self.error(node, OVERFLOW)
        if smallest == 0:
            raise self.error(node, UNDERFLOW)
        return smallest, largest


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
