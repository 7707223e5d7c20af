"""Checking a selection's tree against the attributes of a TAG."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from skimengine.selection.syntax import (
    Abs,
    Arithmetic,
    Attribute,
    Bit,
    Logical,
    Negate,
    Node,
    Not,
    SelectionError,
    Trigger,
)

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
