"""The provenance graph of a dataset, laid out for an inline SVG.

The layout is computed here, on the server, and drawn by the template
``_provenance_graph.html``: one row of nodes per distance (the furthest
ancestors at the top, the dataset itself in the middle, its descendants
below), an edge from each parent to its child. Nothing but the template's
escaping touches the dataset names, and the browser needs no script.

A row of more than :data:`MAX_COLUMNS` datasets wraps into lines of that many,
so that a dataset of 200 children makes a graph 1,818 px wide, not 45,000.
A wrapped row lists its datasets by data type, then next to their relatives
one step nearer the dataset (the children of one parent together), then by
name. Its edges run orthogonally in the gaps: down from the parent to the
middle of the gap between the rows, along it, and down the gap between two
columns to the line of the child, so that no edge crosses a box.

The page draws at most :data:`PAGE_NODES` datasets, the nearest first (a
``provenance_limit`` argument asks for up to :data:`MAX_PAGE_NODES`), and
says how many of each data type it left out: a dataset of thousands of
descendants made a page of tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from catalog.datasets import ANCESTORS, DESCENDANTS, Provenance, ProvenanceNode

NODE_WIDTH = 210
NODE_HEIGHT = 38
GAP_X = 18
GAP_Y = 40
MARGIN = 6
MAX_LABEL = 28
# The widest line of a graph: 8 boxes are 1,818 px, which a full-HD screen
# (1,920 px) shows whole, as the page lets a wrapped graph use the width of the
# window (hepcat.css); rows of up to 8 are drawn as before.
MAX_COLUMNS = 8
PITCH = NODE_WIDTH + GAP_X
# The gap between the lines of a wrapped row. Edges out of a line turn in it
# EXIT_DROP below the boxes above, edges into the next line ENTRY_DROP above
# the boxes below; in the gaps between columns, edges into the row run LANE
# left of the middle, edges out of it LANE right, so that the two never
# merge into one line that would link a dataset to the one below it.
LINE_GAP = 32
EXIT_DROP = 8
ENTRY_DROP = 16
LANE = 4
PAGE_NODES = 200
MAX_PAGE_NODES = 1000
UNTYPED = "no dataType"


@dataclass(frozen=True)
class GraphNode:
    """A dataset drawn as a box whose top-left corner is at (*x*, *y*)."""

    name: str
    title: str  # the first line: data type and distance
    label: str  # the second line: the version (tag chain) or stream
    distance: int
    x: int
    y: int

    @property
    def centre(self) -> int:
        return self.x + NODE_WIDTH // 2


@dataclass(frozen=True)
class GraphEdge:
    """A parent → child link, from the bottom of the parent's box to the top
    of the child's.
    """

    parent: str
    child: str
    path: str  # SVG path data


@dataclass(frozen=True)
class LeftOutSide:
    """The datasets a capped graph leaves out in one direction: *count* in
    all, and *kinds*, how many of each data type (``"4,800 DAOD_PHYS"``).
    """

    direction: str
    count: int
    kinds: str


@dataclass(frozen=True)
class Graph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT
    left_out: tuple[LeftOutSide, ...] = ()
    more: int | None = None  # the provenance_limit that shows more, if any
    wrapped: bool = False  # a row holds more than MAX_COLUMNS datasets

    @property
    def total(self) -> int:
        """The datasets of the whole graph, those left out included."""
        return len(self.nodes) + sum(side.count for side in self.left_out)


def page_limit(asked: int) -> int:
    """The datasets a page draws when *asked* for that many: 1 to
    :data:`MAX_PAGE_NODES`.
    """
    return min(max(asked, 1), MAX_PAGE_NODES)


def layout(provenance: Provenance) -> Graph:
    """Place the nodes of *provenance* in rows by distance and route its edges;
    say what a cap left out and which limit shows more.
    """
    rows = _rows(provenance.nodes, provenance.edges)
    columns = min(max((len(row) for row in rows), default=0), MAX_COLUMNS)
    width = 2 * MARGIN + columns * NODE_WIDTH + max(columns - 1, 0) * GAP_X
    placed = _placed(rows, columns, width)
    bands = {band.number: band for _, band in placed.values()}
    height = max((band.bottom for band in bands.values()), default=MARGIN) + MARGIN
    edges = [
        _edge(*placed[parent], *placed[child])
        for parent, child in provenance.edges
        if parent in placed and child in placed
    ]
    nodes = [node for node, _ in placed.values()]
    left_out = _left_out(provenance)
    more = None
    if left_out and len(nodes) < MAX_PAGE_NODES:
        more = MAX_PAGE_NODES
    wrapped = any(band.lines > 1 for band in bands.values())
    return Graph(
        nodes, edges, width, height, left_out=left_out, more=more, wrapped=wrapped
    )


def _placed(
    rows: list[list[ProvenanceNode]], columns: int, width: int
) -> dict[str, tuple[GraphNode, _Band]]:
    """The box of each dataset of *rows* and the band of its row: a row on
    one line in the middle of *width*, as before, a longer one in lines of
    *columns* filled from the left, so that the gaps between columns, where
    its edges run, are gaps on every line.
    """
    placed = {}
    top = MARGIN
    for number, row in enumerate(rows):
        band = _Band(number, top, -(-len(row) // columns))
        count = columns if band.lines > 1 else len(row)
        left = (width - count * PITCH + GAP_X) // 2
        for position, node in enumerate(row):
            line, column = divmod(position, columns)
            y = top + line * (NODE_HEIGHT + LINE_GAP)
            placed[node.dataset.name] = (_node(node, left + column * PITCH, y), band)
        top = band.bottom + GAP_Y
    return placed


@dataclass(frozen=True)
class _Band:
    """The lines of one row (one distance), from *top* down."""

    number: int
    top: int
    lines: int

    @property
    def bottom(self) -> int:
        return self.top + self.lines * NODE_HEIGHT + (self.lines - 1) * LINE_GAP


def _left_out(provenance: Provenance) -> tuple[LeftOutSide, ...]:
    """What *provenance* left out, ancestors first, the commonest types first."""
    sides = []
    for direction in (ANCESTORS, DESCENDANTS):
        rows = [row for row in provenance.left_out if row.direction == direction]
        if rows:
            kinds = [f"{r.n_datasets:,} {r.data_type or UNTYPED}" for r in rows]
            count = provenance.n_left_out(direction)
            sides.append(LeftOutSide(direction, count, ", ".join(kinds)))
    return tuple(sides)


def _rows(
    nodes: Sequence[ProvenanceNode], edges: Sequence[tuple[str, str]]
) -> list[list[ProvenanceNode]]:
    """The nodes grouped by distance, the furthest ancestors first; each row
    by name, a row that wraps as :func:`_wrapped_order` says.
    """
    by_distance: dict[int, list[ProvenanceNode]] = {}
    for node in nodes:
        by_distance.setdefault(node.distance, []).append(node)
    relatives: dict[str, set[str]] = {}
    for parent, child in edges:
        relatives.setdefault(parent, set()).add(child)
        relatives.setdefault(child, set()).add(parent)
    # The nearest rows first: a wrapped row follows the order of the row one
    # step nearer the dataset, which is then already in its final order.
    for distance in sorted(by_distance, key=abs):
        row = sorted(by_distance[distance], key=lambda n: n.dataset.name)
        if len(row) > MAX_COLUMNS:
            nearer = by_distance.get(distance - 1 if distance > 0 else distance + 1)
            rank = {n.dataset.name: i for i, n in enumerate(nearer or ())}
            row.sort(key=lambda n: _wrapped_order(n, rank, relatives))
        by_distance[distance] = row
    return [by_distance[distance] for distance in sorted(by_distance, reverse=True)]


def _wrapped_order(
    node: ProvenanceNode, rank: dict[str, int], relatives: dict[str, set[str]]
) -> tuple[bool, str, int, str]:
    """Where *node* goes in a wrapped row: by data type (none last), then by
    the first of its relatives in the row nearer the dataset (*rank*: name →
    place), so that the children of one parent stay together, then by name.
    """
    dataset = node.dataset
    near = (rank[name] for name in relatives.get(dataset.name, ()) if name in rank)
    return (
        dataset.data_type is None,
        dataset.data_type or "",
        min(near, default=len(rank)),
        dataset.name,
    )


def _node(node: ProvenanceNode, x: int, y: int) -> GraphNode:
    dataset = node.dataset
    kind = dataset.data_type or "dataset"
    title = kind if node.distance == 0 else f"{kind} ({_relation(node.distance)})"
    label = dataset.version or dataset.stream_name or dataset.name.split(".")[1]
    return GraphNode(dataset.name, title, _clipped(label), node.distance, x, y)


def _relation(distance: int) -> str:
    if distance == 1:
        return "parent"
    if distance == -1:
        return "child"
    return f"{distance:+d}"


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _edge(parent: GraphNode, upper: _Band, child: GraphNode, lower: _Band) -> GraphEdge:
    """The edge from *parent*, in the band *upper*, to *child*, in *lower*:
    between wrapped rows routed in the gaps (:func:`_routed`), otherwise a
    curve from the bottom of the parent's box to the top of the child's.
    """
    if lower.number == upper.number + 1 and upper.lines + lower.lines > 2:
        return GraphEdge(parent.name, child.name, _routed(parent, upper, child, lower))
    x1, y1 = parent.centre, parent.y + NODE_HEIGHT
    x2, y2 = child.centre, child.y
    bend = (y2 - y1) // 2 if y2 > y1 else GAP_Y
    path = f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"
    return GraphEdge(parent.name, child.name, path)


def _routed(parent: GraphNode, upper: _Band, child: GraphNode, lower: _Band) -> str:
    """The path from *parent* down to *child* in the next band, one of them
    wrapped: out of the parent's line and down a gap between columns to the
    middle of the gap between the bands, along it, then down a gap between
    columns to the child's line and into its box. A box on the last line
    of its band is left, and one on the first line entered, straight from
    that middle.
    """
    middle = upper.bottom + GAP_Y // 2
    points = [(parent.centre, parent.y + NODE_HEIGHT)]
    if parent.y + NODE_HEIGHT < upper.bottom:
        lane = _gap_between_columns(parent.x, leaving=True)
        turn = parent.y + NODE_HEIGHT + EXIT_DROP
        points += [(parent.centre, turn), (lane, turn), (lane, middle)]
    else:
        points.append((parent.centre, middle))
    if child.y > lower.top:
        lane = _gap_between_columns(child.x, leaving=False)
        turn = child.y - ENTRY_DROP
        points += [(lane, middle), (lane, turn), (child.centre, turn)]
    else:
        points.append((child.centre, middle))
    points.append((child.centre, child.y))
    steps = [points[0]] + [p for before, p in pairwise(points) if p != before]
    return "M" + " L".join(f"{x},{y}" for x, y in steps)


def _gap_between_columns(x: int, *, leaving: bool) -> int:
    """The x of the lane, in a gap between two columns of a wrapped row, that
    edges take into (*leaving* false) or out of the box at *x*: an edge leaves
    by the gap on the box's right and enters by the one on its left, or the
    other where the box is in the first or the last column.
    """
    column = (x - MARGIN) // PITCH
    if leaving:
        gap = column if column < MAX_COLUMNS - 1 else column - 1
    else:
        gap = column - 1 if column > 0 else 0
    middle = MARGIN + gap * PITCH + NODE_WIDTH + GAP_X // 2
    return middle + LANE if leaving else middle - LANE
