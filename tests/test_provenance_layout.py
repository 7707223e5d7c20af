"""The provenance graph of the dataset page stays readable when a dataset has
many parents or children: a distance of more datasets than a line holds wraps
into lines of at most 8 boxes, the children of one type together and next to
their parent, and no edge runs across a box. A dataset of 200 children once
drew one row of 200 boxes, an SVG 45,000 px wide.

Expected values come from the box size of the page (210 × 38 px, 18 px apart,
a 6 px margin) and from the family of datasets each test writes, not from the
code under test.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, groupby, pairwise
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_api import make_app
from test_pages import svg_graph
from test_provenance_cap import AOD, EVNT, HITS, ZEE, add_family
from werkzeug.test import TestResponse

from catalog.models import Dataset, ProvenanceEdge
from catalog.nomenclature import name_columns
from catalog.reference import add_references

SVG = "{http://www.w3.org/2000/svg}"
BOX_WIDTH, BOX_HEIGHT = 210, 38
# 8 boxes of 210 px, 7 gaps of 18 px and a margin of 6 px on each side.
WIDEST = 8 * 210 + 7 * 18 + 2 * 6
VERSION = "e3601_s3126_r10724"
Edges = set[tuple[str, str]]


@dataclass(frozen=True)
class Box:
    x: float
    y: float

    def holds(self, x: float, y: float) -> bool:
        """Whether (*x*, *y*) is inside the box, not on its border."""
        return (
            self.x < x < self.x + BOX_WIDTH - 0.01
            and self.y < y < self.y + BOX_HEIGHT - 0.01
        )


@dataclass(frozen=True)
class Drawing:
    """The provenance SVG of a dataset page, as the browser gets it."""

    width: int
    height: int
    view_box: str
    names: list[str]  # every drawn dataset, once per box
    boxes: dict[str, Box]
    edges: list[tuple[str, str, list[tuple[float, float]]]]  # parent, child, points
    paths: dict[tuple[str, str], str]  # (parent, child) → the SVG path data

    def reading_order(self, names: Any) -> list[str]:
        """*names* as a physicist reads the boxes: line by line, left to right."""
        return sorted(names, key=lambda name: (self.boxes[name].y, self.boxes[name].x))


def drawing(response: TestResponse) -> Drawing:
    """The provenance graph of a dataset page, parsed as the XML it is."""
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    svg = ET.fromstring(html[html.index("<svg ") : html.index("</svg>") + 6])
    names, boxes = [], {}
    for node in svg.iter(f"{SVG}a"):
        rect = node.find(f"{SVG}rect")
        assert rect is not None
        assert (rect.get("width"), rect.get("height")) == ("210", "38")
        names.append(node.get("data-name", ""))
        boxes[names[-1]] = Box(float(rect.get("x", "")), float(rect.get("y", "")))
    edges = [
        (path.get("data-parent", ""), path.get("data-child", ""), points(path))
        for path in svg.iter(f"{SVG}path")
        if path.get("class") == "edge"
    ]
    paths = {
        (path.get("data-parent", ""), path.get("data-child", "")): path.get("d", "")
        for path in svg.iter(f"{SVG}path")
        if path.get("class") == "edge"
    }
    return Drawing(
        int(svg.get("width", "")),
        int(svg.get("height", "")),
        svg.get("viewBox", ""),
        names,
        boxes,
        edges,
        paths,
    )


def points(path: ET.Element) -> list[tuple[float, float]]:
    """The points an edge passes: its lines as they are, a curve sampled."""
    found: list[tuple[float, float]] = []
    for command, numbers in re.findall(r"([MLC])([^MLC]*)", path.get("d", "")):
        pairs = re.findall(r"(-?[\d.]+),(-?[\d.]+)", numbers)
        given = [(float(x), float(y)) for x, y in pairs]
        if command == "C":
            found += bezier(found[-1], *given)
        else:
            found += given
    return found


def bezier(*control: tuple[float, float]) -> list[tuple[float, float]]:
    """40 points along the cubic Bézier curve of four *control* points."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = control
    steps = [t / 40 for t in range(1, 41)]
    return [
        (
            (1 - t) ** 3 * x0
            + 3 * (1 - t) ** 2 * t * x1
            + 3 * (1 - t) * t**2 * x2
            + t**3 * x3,
            (1 - t) ** 3 * y0
            + 3 * (1 - t) ** 2 * t * y1
            + 3 * (1 - t) * t**2 * y2
            + t**3 * y3,
        )
        for t in steps
    ]


def passed(line: list[tuple[float, float]]) -> Iterator[tuple[float, float]]:
    """Every point of *line* 2 px apart or less."""
    yield line[0]
    for (x0, y0), (x1, y1) in pairwise(line):
        steps = max(int(max(abs(x1 - x0), abs(y1 - y0)) // 2), 1)
        for step in range(1, steps + 1):
            yield x0 + (x1 - x0) * step / steps, y0 + (y1 - y0) * step / steps


def assert_readable(graph: Drawing, edges: Edges) -> None:
    """At most 8 boxes wide, each dataset once, no box over another, each edge
    of *edges* between two drawn datasets from its parent's box to its child's
    and across no box.
    """
    assert graph.width <= WIDEST
    assert graph.view_box == f"0 0 {graph.width} {graph.height}"
    assert len(graph.names) == len(set(graph.names))
    for a, b in combinations(graph.boxes.values(), 2):
        assert abs(a.x - b.x) >= BOX_WIDTH or abs(a.y - b.y) >= BOX_HEIGHT, (a, b)
    for box in graph.boxes.values():
        assert 0 <= box.x and box.x + BOX_WIDTH <= graph.width
        assert 0 <= box.y and box.y + BOX_HEIGHT <= graph.height
    drawn = set(graph.names)
    assert {(p, c) for p, c, _ in graph.edges} == {
        (p, c) for p, c in edges if p in drawn and c in drawn
    }
    by_row: dict[float, list[Box]] = {}
    for box in graph.boxes.values():
        by_row.setdefault(box.y, []).append(box)
    for parent, child, line in graph.edges:
        (x1, y1), (x2, y2) = line[0], line[-1]
        top, bottom = graph.boxes[parent], graph.boxes[child]
        assert y1 == top.y + BOX_HEIGHT and top.x <= x1 <= top.x + BOX_WIDTH
        assert y2 == bottom.y and bottom.x <= x2 <= bottom.x + BOX_WIDTH
        for x, y in passed(line):
            near = (b for row, boxes in by_row.items() if row < y for b in boxes)
            assert not any(box.holds(x, y) for box in near), (parent, child, x, y)


def add_links(
    Session: sessionmaker[OrmSession],  # noqa: N803
    links: Edges,
) -> None:
    """Write the datasets named in *links* (parent, child) and their edges."""
    names = sorted({name for link in links for name in link})
    with Session.begin() as session:
        add_references(names, session=session)
        datasets = {n: Dataset(**name_columns(n), source="prodsys") for n in names}
        session.add_all(datasets.values())
        session.flush()
        session.add_all(
            ProvenanceEdge(parent_id=datasets[p].id, child_id=datasets[c].id)
            for p, c in links
        )


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Any) -> FlaskClient:
    return make_app(catalog_engine, tmp_path).test_client()


def page(client: FlaskClient, name: str = AOD, **query: Any) -> TestResponse:
    return client.get(f"/datasets/{name}", query_string=query)


# --- many children, many parents -------------------------------------------------


def test_a_dataset_of_200_children_draws_a_graph_at_most_8_boxes_wide(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    family = add_family(Session, phys=200)

    graph = drawing(page(client))

    assert graph.width == WIDEST
    assert len(graph.names) == 200 and {AOD, HITS} <= set(graph.names)
    assert_readable(graph, family.edges)
    # 198 children drawn, 8 a line: 25 lines below the dataset.
    children = [n for n in graph.names if family.distances[n][1] == -1]
    assert len(children) == 198
    assert len({graph.boxes[name].y for name in children}) == 25


def test_a_thousand_children_draw_8_boxes_wide_each_once(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=1000)

    graph = drawing(page(client, provenance_limit=1000))

    assert graph.width == WIDEST
    assert graph.view_box == f"0 0 {WIDEST} {graph.height}"
    assert len(graph.names) == len(set(graph.names)) == 1000
    assert len(set(graph.boxes.values())) == 1000


def test_a_merge_of_40_parents_draws_them_in_lines_above_it(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    merged = f"{ZEE}.merge.AOD.{VERSION}_r10726"
    parents = [f"{ZEE}.recon.AOD.e3601_s3126_r{10_800 + i}" for i in range(40)]
    daod = f"{ZEE}.deriv.DAOD_PHYS.{VERSION}_r10726_p4164"
    links = {(parent, merged) for parent in parents} | {(merged, daod)}
    add_links(Session, links)

    graph = drawing(page(client, merged))

    assert_readable(graph, links)
    assert sorted(graph.names) == sorted({*parents, merged, daod})
    # 40 parents, 8 a line: 5 lines, all above the merged dataset.
    rows = {graph.boxes[name].y for name in parents}
    assert len(rows) == 5 and max(rows) < graph.boxes[merged].y


def test_a_wrapped_row_keeps_types_together_and_children_by_their_parent(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    # 13 children of AOD: by name the NTUP_PILEUP of the recon step comes
    # after the merged AOD, away from the other NTUP_PILEUP. 9 grandchildren:
    # by name in the opposite order of their parents.
    phys = [f"{ZEE}.deriv.DAOD_PHYS.{VERSION}_p{4000 + i}" for i in range(8)]
    pileup = [f"{ZEE}.deriv.NTUP_PILEUP.{VERSION}_p{4100 + i}" for i in range(3)]
    merged = f"{ZEE}.merge.AOD.{VERSION}_r10726"
    late = f"{ZEE}.recon.NTUP_PILEUP.{VERSION}_r10727"
    children = [*phys, *pileup, merged, late]
    valid = {
        f"{ZEE}.deriv.NTUP_PHYSVAL.{VERSION}_p{4999 - i}": p for i, p in enumerate(phys)
    }
    below = {**valid, f"{ZEE}.deriv.DAOD_PHYS.{VERSION}_r10726_p4000": merged}
    links = {(HITS, AOD)} | {(AOD, c) for c in children}
    links |= {(parent, child) for child, parent in below.items()}
    add_links(Session, links)

    graph = drawing(page(client))

    assert_readable(graph, links)
    line = graph.reading_order(children)
    kinds = [name.split(".")[4] for name in line]
    assert [kind for kind, _ in groupby(kinds)] == ["AOD", "DAOD_PHYS", "NTUP_PILEUP"]
    assert len({graph.boxes[name].y for name in children}) == 2
    grandchildren = graph.reading_order(below)
    assert grandchildren[0] == f"{ZEE}.deriv.DAOD_PHYS.{VERSION}_r10726_p4000"
    assert [below[name] for name in grandchildren[1:]] == graph.reading_order(phys)


# --- small graphs, as they were ------------------------------------------------------


def test_a_graph_of_three_datasets_is_drawn_as_before(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=0)

    response = page(client)

    graph = drawing(response)
    assert (graph.width, graph.height, graph.view_box) == (222, 206, "0 0 222 206")
    assert graph.boxes == {EVNT: Box(6, 6), HITS: Box(6, 84), AOD: Box(6, 162)}
    html = response.get_data(as_text=True)
    assert 'class="graph-scroll">' in html
    assert graph.paths == {
        (EVNT, HITS): "M111,44 C111,64 111,64 111,84",
        (HITS, AOD): "M111,122 C111,142 111,142 111,162",
    }


@pytest.mark.parametrize(("children", "lines"), [(8, 1), (9, 2)])
def test_8_children_stand_in_one_line_and_a_ninth_starts_the_next(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    children: int,
    lines: int,
) -> None:
    family = add_family(Session, phys=children)

    graph = drawing(page(client))

    assert_readable(graph, family.edges)
    below = graph.reading_order(n for n in graph.names if family.distances[n][1] < 0)
    assert len({graph.boxes[name].y for name in below}) == lines
    assert [graph.boxes[name].x for name in below[:8]] == [
        6 + 228 * i for i in range(8)
    ]
    assert graph.boxes[AOD].x == (WIDEST - BOX_WIDTH) // 2
    assert svg_graph(page(client))[1] == family.edges
