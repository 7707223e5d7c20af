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
under ``not`` -- the same in numpy and in SQL. Arithmetic that could leave
the range of a double for some values of its attributes is refused (see
:meth:`~skimengine.selection.binding.Binder.check_range`): numpy would give
infinity where the databases raise an error.

The modules: :mod:`~skimengine.selection.syntax` (tokens, tree, parser),
:mod:`~skimengine.selection.binding` (checking a tree against a TAG's
attributes), :mod:`~skimengine.selection.to_numpy` and
:mod:`~skimengine.selection.to_sql` (the two compilers); this one holds the
compiled :class:`Selection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement

from skimengine.selection.binding import (
    FLOAT,
    INTEGER,
    Binder,
    Vocabulary,
    attributes_of,
    bit_mask,
)
from skimengine.selection.syntax import (
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
    SelectionError,
    Trigger,
    parse,
)
from skimengine.selection.to_numpy import NumpyCompiler
from skimengine.selection.to_sql import SqlCompiler

__all__ = [
    "FLOAT",
    "INTEGER",
    "Abs",
    "Arithmetic",
    "Attribute",
    "Bit",
    "Compare",
    "Logical",
    "Negate",
    "Node",
    "Not",
    "Number",
    "Selection",
    "SelectionError",
    "Trigger",
    "Vocabulary",
    "bit_mask",
    "compile_selection",
    "parse",
]

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
        trigger or function, uses bit() on a non-integer attribute, or has
        arithmetic that could leave the range of a double.
    """
    binder = Binder(expression, vocabulary)
    tree = binder.bind(parse(expression))
    binder.check_range(tree)
    return Selection(expression, tree, vocabulary)
