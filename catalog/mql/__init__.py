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
  wildcards and a backslash is an ordinary character. A field that is not
  text is matched in the text the answers print (``true``, ``2015-06-01
  09:00:00``, ``42``); ``LIKE`` on a floating-point field is refused.
- ``=``, ``!=``, ``<>`` and ``IN`` on text are exact (case-sensitive, also on
  MariaDB, whose default collation is not), except on the status fields, whose
  values are upper-case codes: ``amiStatus = 'valid'`` means ``'VALID'``.
- ``period`` holds a comma-separated list (``A,A1,AllYear``): ``=``, ``IN``
  and ``LIKE`` are true when one period of the list matches, ignoring case;
  ``!=``, ``NOT IN`` and ``NOT LIKE`` when none does. A value with a comma
  is refused: no period name holds one.
- ``inContainer`` is every container holding the dataset, itself or
  through the containers it holds (:func:`catalog.containers.members_of`):
  a condition is true when one of them meets it; ``=`` and ``IN`` name a
  container as the container lookups do (:func:`catalog.containers.named`:
  a DID, the trailing ``/`` given or not). Selected, it is the first
  container holding the dataset itself, by name.
- A floating-point number stands for the values printed as it is, with 15
  significant digits (:func:`printed_range`).
- ``crossSectionSource`` is the name of the source dataset, not its id.

:func:`filter_condition` gives a field filter of the search pages and of the
JSON API (``field=value``) its meaning by these same rules.
"""

from __future__ import annotations

from catalog.mql.compiler import (
    ExactText,
    Search,
    compile_search,
    filter_condition,
    printed_range,
    text_like,
)
from catalog.mql.entities import (
    ENTITIES,
    Entity,
    Link,
    entity_field,
    entity_fields,
    get_entity,
)
from catalog.mql.syntax import (
    MAX_DEPTH,
    MAX_IN_VALUES,
    MAX_LENGTH,
    MAX_NUMBER_LENGTH,
    MAX_ROWS,
    MAX_TERMS,
    BoolOp,
    Comparison,
    FieldRef,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    OrderItem,
    Query,
    Selected,
    Token,
    parse,
    tokenize,
)

__all__ = [
    "ENTITIES",
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_LENGTH",
    "MAX_NUMBER_LENGTH",
    "MAX_ROWS",
    "MAX_TERMS",
    "BoolOp",
    "Comparison",
    "Entity",
    "ExactText",
    "FieldRef",
    "InList",
    "IsNull",
    "Like",
    "Link",
    "Literal",
    "Not",
    "OrderItem",
    "Query",
    "Search",
    "Selected",
    "Token",
    "compile_search",
    "entity_field",
    "entity_fields",
    "filter_condition",
    "get_entity",
    "parse",
    "printed_range",
    "text_like",
    "tokenize",
]
