"""The provenance graph of a dataset, laid out for an inline SVG.

The layout is computed here, on the server, and drawn by the template
``_provenance_graph.html``: one row of nodes per distance (the furthest
ancestors at the top, the dataset itself in the middle, its descendants
below), an edge from each parent to its child. Nothing but the template's
escaping touches the dataset names, and the browser needs no script.

The page draws at most :data:`PAGE_NODES` datasets, the nearest first (a
``provenance_limit`` argument asks for up to :data:`MAX_PAGE_NODES`), and
says how many of each data type it left out: a dataset of thousands of
descendants made a page of tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from catalog.datasets import ANCESTORS, DESCENDANTS, Provenance, ProvenanceNode

NODE_WIDTH = 210
NODE_HEIGHT = 38
GAP_X = 18
GAP_Y = 40
MARGIN = 6
MAX_LABEL = 28
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
    rows = _rows(provenance.nodes)
    widest = max((len(row) for row in rows), default=0)
    width = 2 * MARGIN + widest * NODE_WIDTH + max(widest - 1, 0) * GAP_X
    height = 2 * MARGIN + len(rows) * NODE_HEIGHT + max(len(rows) - 1, 0) * GAP_Y
    nodes = [
        _node(node, column, len(row), number, width)
        for number, row in enumerate(rows)
        for column, node in enumerate(row)
    ]
    placed = {node.name: node for node in nodes}
    edges = [
        _edge(placed[parent], placed[child])
        for parent, child in provenance.edges
        if parent in placed and child in placed
    ]
    left_out = _left_out(provenance)
    more = None
    if left_out and len(nodes) < MAX_PAGE_NODES:
        more = MAX_PAGE_NODES
    return Graph(nodes, edges, width, height, left_out=left_out, more=more)


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


def _rows(nodes: Sequence[ProvenanceNode]) -> list[list[ProvenanceNode]]:
    """The nodes grouped by distance, the furthest ancestors first."""
    by_distance: dict[int, list[ProvenanceNode]] = {}
    for node in nodes:
        by_distance.setdefault(node.distance, []).append(node)
    return [
        sorted(by_distance[distance], key=lambda n: n.dataset.name)
        for distance in sorted(by_distance, reverse=True)
    ]


def _node(
    node: ProvenanceNode, column: int, count: int, row: int, width: int
) -> GraphNode:
    used = count * NODE_WIDTH + (count - 1) * GAP_X
    x = (width - used) // 2 + column * (NODE_WIDTH + GAP_X)
    y = MARGIN + row * (NODE_HEIGHT + GAP_Y)
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


def _edge(parent: GraphNode, child: GraphNode) -> GraphEdge:
    x1, y1 = parent.centre, parent.y + NODE_HEIGHT
    x2, y2 = child.centre, child.y
    bend = (y2 - y1) // 2 if y2 > y1 else GAP_Y
    path = f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"
    return GraphEdge(parent.name, child.name, path)
