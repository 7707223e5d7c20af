"""A bound selection evaluated over numpy column arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from skimengine.selection.binding import bit_mask, nullable
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
        if {type(left), type(right)} == {int, float}:
            # Python compares a whole number with a double exactly; SQL and
            # numpy compare them as doubles.
            left, right = float(left), float(right)
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


FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def compare_float32(array: np.ndarray, op: str, value: float) -> np.ndarray:
    """``array <op> value`` for a float32 *array*, exact as in double
    precision but without converting the array: the double *value* is
    replaced by the float32 neighbour that gives the same answer. A *value*
    that is NaN (no value, such as ``abs(1/0)``) makes every comparison
    false, ``!=`` included.
    """
    if math.isnan(value):
        return np.zeros(array.shape, bool)
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
