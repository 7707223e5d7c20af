"""Dataset name patterns as conditions on the project, so that an index
can find the matching names.

MQL's ``LIKE`` ignores letter case. On PostgreSQL that is an ``ILIKE``, and
no B-tree index on ``dataset.name`` serves an ``ILIKE`` whose pattern starts
with a letter; a query such as ``name LIKE 'data16_13TeV.%' ORDER BY name
LIMIT 100`` then walks the whole name index in order until it has its rows,
through every project that sorts before ``data16_13TeV``.

Every dataset name starts with its ``project_name`` and a dot (the
nomenclature fills the column in, :func:`catalog.datasets.name_columns`):
``mc16_13TeV`` for ``mc16_13TeV.361106.Zee...``, the scope ``user.jdoe`` for
``user.jdoe.test1``. Project names are ASCII (the nomenclature admits nothing
else in them). So the start of a pattern tells which projects a matching
name can belong to. The catalogue has few projects; :class:`ProjectFinder`
reads them with one short query (a loose scan of an index led by
``project_name``, a step down the index per project) and sorts them in three
kinds:

- projects whose every name matches: the pattern is a start followed by
  ``%`` only, and every name of the project starts with it
  (``data16_13TeV.%`` and ``data16_13TeV``, ``mc1%`` and ``mc16_13TeV``);
- projects some of whose names may match: the pattern is tested on them;
- the others, whose names cannot match.

The compiler writes the pattern as ``project_name IN (whole) OR
(project_name IN (partial) AND name LIKE pattern)``, which is true of
exactly the same rows. With a single project, the planner walks the index
on ``(project_name, name)`` in name order. A project wholly matched is not
tested against the pattern as well: the planner would count the two
conditions as independent and expect far fewer rows than there are, and
then prefer sorting the whole project to walking it in order.

Where a project could match only in a way that is hard to reason about (a
``_``, which matches any one character, a dot included; a non-ASCII
character, which a database may fold onto an ASCII letter), the pattern is
tested on it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from catalog.models import Dataset

#: Past this many project names to look through, a pattern is left as it is:
#: the lookup would cost more than it saves.
MAX_PROJECTS = 200


def pattern_head(pattern: str) -> tuple[str, bool]:
    """The part of the LIKE *pattern* before its first ``%``, and whether
    a ``%`` follows it (then a matching name may be longer than the head).
    """
    head, percent, _ = pattern.partition("%")
    return head, bool(percent)


def could_start(project: str, pattern: str) -> bool:
    """Whether a name made of *project*, a dot and more could match the LIKE
    *pattern* (``%`` and ``_`` wildcards, letter case ignored).

    Only the head of the pattern (before its first ``%``) is compared; a
    ``_`` or a non-ASCII character of either side counts as a match.
    """
    head, open_ended = pattern_head(pattern)
    start = project + "."
    if not open_ended and len(start) > len(head):
        return False
    return all(
        _may_equal(wanted, found) for wanted, found in zip(head, start, strict=False)
    )


def starts_every(project: str, pattern: str) -> bool:
    """Whether every name made of *project*, a dot and more matches the LIKE
    *pattern*: the pattern is a start and ``%`` only, and that start is
    within the project and its dot, character for character (a ``_`` matches
    anything; a non-ASCII character is never taken to match).
    """
    head, _ = pattern_head(pattern)
    start, tail = project + ".", pattern[len(head) :]
    if not tail or tail.strip("%") or len(head) > len(start):
        return False
    return all(
        wanted == "_" or _same_ascii(wanted, found)
        for wanted, found in zip(head, start, strict=False)
    )


def _may_equal(wanted: str, found: str) -> bool:
    if wanted == "_" or not wanted.isascii() or not found.isascii():
        return True
    return wanted.lower() == found.lower()


def _same_ascii(wanted: str, found: str) -> bool:
    # ASCII only: databases fold the case of other letters differently
    # (SQLite not at all), and Python folds some onto ASCII ones.
    both = wanted.isascii() and found.isascii()
    return both and wanted.lower() == found.lower()


@dataclass(frozen=True)
class Reach:
    """The projects a name pattern reaches: those whose every name matches
    (*whole*) and those some of whose names may match (*partial*).
    """

    whole: frozenset[str]
    partial: frozenset[str]

    def condition(self, matches: ColumnElement[bool]) -> ColumnElement[bool]:
        """The pattern's condition *matches* (on the name), written with the
        projects: true of exactly the same datasets.
        """
        if not self.partial:
            return in_projects(self.whole)
        if not self.whole:
            return and_(in_projects(self.partial), matches)
        possible = in_projects(self.whole | self.partial)
        return and_(possible, or_(in_projects(self.whole), matches))


class ProjectFinder:
    """Finds the projects that the name patterns of one query can reach.

    The project names are read from the catalogue at most once per starting
    letter for the life of the finder, which is one query.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, list[str] | None] = {}

    def reachable(self, pattern: str) -> Reach | None:
        """The projects a dataset name matching *pattern* can belong to;
        ``None`` when that says nothing (the pattern starts with ``%``) or
        when there are too many projects to look through.
        """
        head, _ = pattern_head(pattern)
        if not head:
            return None
        first = head[0] if head[0].isascii() and head[0].isalpha() else ""
        if first.lower() not in self.seen:
            self.seen[first.lower()] = self._projects(first)
        projects = self.seen[first.lower()]
        if projects is None:
            return None
        possible = [project for project in projects if could_start(project, pattern)]
        whole = {project for project in possible if starts_every(project, pattern)}
        return Reach(frozenset(whole), frozenset(possible) - whole)

    def _projects(self, first: str) -> list[str] | None:
        """The distinct project names starting with the letter *first* in
        either case (every name when *first* is empty), or ``None`` past
        :data:`MAX_PROJECTS`.
        """
        bounds: dict[str, object] = {"most": MAX_PROJECTS, "over": MAX_PROJECTS + 1}
        if first:
            lower, upper = first.lower(), first.upper()
            bounds |= {"lower": lower, "lower_end": chr(ord(lower) + 1)}
            bounds |= {"upper": upper, "upper_end": chr(ord(upper) + 1)}
        dialect = self.session.get_bind().dialect.name
        scan = _project_scan(bool(first), dialect in DISTINCT_SKIPPING)
        found = set(self.session.scalars(scan, bounds))
        return sorted(found) if len(found) <= MAX_PROJECTS else None


#: The databases whose ``SELECT DISTINCT`` of an index's leading column
#: skips from one value to the next by itself (MariaDB's and MySQL's "loose
#: index scan", ``Using index for group-by``). There the recursive query
#: below reads the whole range instead: MariaDB runs its correlated step as
#: a range scan, not as one probe, seconds per letter at a million datasets.
DISTINCT_SKIPPING = frozenset({"mysql", "mariadb"})


@functools.cache
def _project_scan(
    by_letter: bool, distinct: bool = False
) -> Select[Any] | CompoundSelect[Any]:
    """The query of the project names: all of them, or *by_letter*, those
    in the ranges ``[:lower, :lower_end)`` and ``[:upper, :upper_end)``; at
    most ``:most`` + 1 (``:over``) from each. A plain *distinct* query where
    the database skips through the index by itself (:data:`DISTINCT_SKIPPING`),
    a recursive one elsewhere. Built once, as SQLAlchemy takes a while to
    build it.
    """
    if not by_letter:
        if distinct:
            return _distinct_scan(None, None)
        return _loose_scan(None, None, "projects")
    if distinct:
        return union_all(
            _distinct_scan(bindparam("lower"), bindparam("lower_end")),
            _distinct_scan(bindparam("upper"), bindparam("upper_end")),
        )
    return union_all(
        _loose_scan(bindparam("lower"), bindparam("lower_end"), "lower_projects"),
        _loose_scan(bindparam("upper"), bindparam("upper_end"), "upper_projects"),
    )


def _distinct_scan(
    low: BindParameter[str] | None, high: BindParameter[str] | None
) -> Select[Any]:
    """The distinct ``project_name`` values in ``[low, high)``, at most
    ``:over``, as one ``SELECT DISTINCT``: MariaDB serves it with a loose scan
    of an index led by ``project_name``, one step per value.
    """
    column = Dataset.project_name
    query = select(column).distinct().limit(bindparam("over", type_=Integer))
    if low is not None and high is not None:
        query = query.where(column >= low, column < high)
    return query


def _loose_scan(
    low: BindParameter[str] | None, high: BindParameter[str] | None, name: str
) -> Select[Any]:
    """The distinct ``project_name`` values in ``[low, high)``, at most one
    more than ``:most``, each found by one step down the index (a recursive
    query, *name*: the next value is the least one past the last).
    """
    column = Dataset.project_name
    bounded = [] if high is None else [column < high]

    first = select(column).where(*bounded).order_by(column)
    first = first if low is None else first.where(column >= low)
    start = first.limit(1).scalar_subquery().label("project")
    scan = select(start, literal_column("1").label("n")).cte(name, recursive=True)
    following = (
        select(column)
        .where(column > scan.c.project, *bounded)
        .order_by(column)
        .limit(1)
        .scalar_subquery()
    )
    scan = scan.union_all(
        select(following, scan.c.n + literal_column("1")).where(
            scan.c.project.is_not(None), scan.c.n <= bindparam("most")
        )
    )
    return select(scan.c.project).where(scan.c.project.is_not(None))


def in_projects(projects: frozenset[str]) -> ColumnElement[bool]:
    """``project_name`` is one of *projects* (false when there is none).

    An equality on one project lets the planner walk the index on
    ``(project_name, name)`` in name order.
    """
    if not projects:
        return false()
    ordered = sorted(projects)
    if len(ordered) == 1:
        return Dataset.project_name == ordered[0]
    return Dataset.project_name.in_(ordered)
