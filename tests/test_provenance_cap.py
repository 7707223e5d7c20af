"""A provenance graph is capped: at most ``limit`` datasets, ``depth`` steps,
the nearest first, and says how many of each data type it left out, in each
direction. A dataset of 5,000 children once made a page of 33 MB and as large
an answer of the JSON API and of AMI.

Expected values come from the family of datasets each test writes, not from
the code under test.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import statements_of
from test_ami import post, rows
from test_api import API, assert_error, make_app
from test_pages import svg_graph, visible_text

from catalog.datasets import get_dataset, get_provenance
from catalog.errors import InvalidInput
from catalog.models import Dataset, ProvenanceEdge
from catalog.nomenclature import name_columns
from catalog.reference import add_references

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
EVNT = f"{ZEE}.evgen.EVNT.e3601"
HITS = f"{ZEE}.simul.HITS.e3601_s3126"
AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"


@dataclass(frozen=True)
class Family:
    """The datasets around :data:`AOD`: name → (data type, distance), and
    the edges (parent, child) between them.
    """

    distances: dict[str, tuple[str, int]]
    edges: set[tuple[str, str]]

    def left_out(self, shown: set[str], sign: int) -> Counter[str]:
        """The data types of the relatives of one side (1: ancestors, -1:
        descendants) not in *shown*.
        """
        return Counter(
            kind
            for name, (kind, distance) in self.distances.items()
            if distance * sign > 0 and name not in shown
        )


def add_family(
    Session: sessionmaker[OrmSession],  # noqa: N803
    *,
    phys: int,
    lite: int = 0,
    grandchildren: int = 0,
) -> Family:
    """Write :data:`AOD` with its parent HITS and grandparent EVNT, *phys*
    DAOD_PHYS and *lite* DAOD_PHYSLITE children and an NTUP_PILEUP child of
    each of the first *grandchildren* DAOD_PHYS: a few statements, however
    many.
    """
    version = "e3601_s3126_r10724"
    children = [f"{ZEE}.deriv.DAOD_PHYS.{version}_p{4000 + i}" for i in range(phys)]
    children += [
        f"{ZEE}.deriv.DAOD_PHYSLITE.{version}_p{6000 + i}" for i in range(lite)
    ]
    below = {
        f"{ZEE}.deriv.NTUP_PILEUP.{version}_p{4000 + i}_p9000": children[i]
        for i in range(grandchildren)
    }
    links = {HITS: EVNT, AOD: HITS, **dict.fromkeys(children, AOD), **below}
    names = [EVNT, *links]
    with Session.begin() as session:
        add_references(names, session=session)
        datasets = {n: Dataset(**name_columns(n), source="prodsys") for n in names}
        session.add_all(datasets.values())
        session.flush()
        session.add_all(
            ProvenanceEdge(parent_id=datasets[p].id, child_id=datasets[c].id)
            for c, p in links.items()
        )
    distance = {EVNT: 2, HITS: 1, AOD: 0, **dict.fromkeys(children, -1)}
    distance.update(dict.fromkeys(below, -2))
    kinds = {n: (n.split(".")[4], distance[n]) for n in names}
    return Family(kinds, {(p, c) for c, p in links.items()})


@pytest.fixture
def family(Session: sessionmaker[OrmSession]) -> Family:  # noqa: N803
    """38 datasets: 2 ancestors, 30 children (25 DAOD_PHYS, 5 DAOD_PHYSLITE)
    and 5 grandchildren (NTUP_PILEUP).
    """
    return add_family(Session, phys=25, lite=5, grandchildren=5)


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Any) -> FlaskClient:
    return make_app(catalog_engine, tmp_path).test_client()


# --- catalog ---------------------------------------------------------------------


def test_a_graph_larger_than_the_limit_keeps_the_nearest_and_counts_the_rest(
    Session: sessionmaker[OrmSession],  # noqa: N803
    family: Family,
) -> None:
    with Session() as session:
        graph = get_provenance(
            get_dataset(AOD, session=session), session=session, limit=10
        )

    shown = {node.dataset.name: node.distance for node in graph.nodes}
    assert len(shown) == 10 and not graph.complete
    assert shown[AOD] == 0 and shown[HITS] == 1
    assert all(abs(distance) <= 1 for distance in shown.values())
    assert {
        (r.data_type, r.n_datasets)
        for r in graph.left_out
        if r.direction == "ancestors"
    } == {("EVNT", 1)}
    below = {
        (r.data_type, r.n_datasets)
        for r in graph.left_out
        if r.direction == "descendants"
    }
    assert below == set(family.left_out(set(shown), -1).items())
    assert below == {("DAOD_PHYS", 17), ("DAOD_PHYSLITE", 5), ("NTUP_PILEUP", 5)}
    assert set(graph.edges) == {
        (p, c) for p, c in family.edges if p in shown and c in shown
    }


def test_depth_keeps_the_nearest_steps_and_counts_the_rest(
    Session: sessionmaker[OrmSession],  # noqa: N803
    family: Family,
) -> None:
    with Session() as session:
        aod = get_dataset(AOD, session=session)
        one = get_provenance(aod, session=session, depth=1)
        none = get_provenance(aod, session=session, depth=0)

    assert {n.dataset.name for n in one.nodes} == {
        name for name, (_, d) in family.distances.items() if abs(d) <= 1
    }
    assert set(one.left_out) == {
        ("ancestors", "EVNT", 1),
        ("descendants", "NTUP_PILEUP", 5),
    }
    assert [n.dataset.name for n in none.nodes] == [AOD] and none.edges == []
    assert none.n_left_out("ancestors") == 2 and none.n_left_out("descendants") == 35


def test_a_graph_within_the_limit_is_whole_as_before(
    Session: sessionmaker[OrmSession],  # noqa: N803
    family: Family,
) -> None:
    with Session() as session:
        aod = get_dataset(AOD, session=session)
        graph = get_provenance(aod, session=session)
        exact = get_provenance(aod, session=session, limit=len(family.distances))
        deep = get_provenance(aod, session=session, depth=2)

    for whole in (graph, exact, deep):
        assert whole.complete and whole.left_out == ()
        assert {n.dataset.name: n.distance for n in whole.nodes} == {
            name: distance for name, (_, distance) in family.distances.items()
        }
        assert set(whole.edges) == family.edges


def test_a_cycle_is_counted_once_and_ends(
    Session: sessionmaker[OrmSession],  # noqa: N803
    family: Family,
) -> None:
    with Session.begin() as session:
        ids = {name: i for name, i in session.execute(select(Dataset.name, Dataset.id))}
        grandchild = next(n for n in family.distances if "NTUP_PILEUP" in n)
        session.add(ProvenanceEdge(parent_id=ids[grandchild], child_id=ids[EVNT]))

    with Session() as session:
        graph = get_provenance(
            get_dataset(AOD, session=session), session=session, depth=1
        )

    # EVNT is now above AOD and below it, and so is the NTUP_PILEUP before
    # it: left out on both sides, each once.
    assert set(graph.left_out) == {
        ("ancestors", "EVNT", 1),
        ("ancestors", "NTUP_PILEUP", 1),
        ("descendants", "EVNT", 1),
        ("descendants", "NTUP_PILEUP", 5),
    }


@pytest.mark.parametrize(
    ("depth", "limit", "fragment"),
    [(-1, 10, "depth must be 0 or more"), (None, 0, "limit must be 1 to 10,000")],
)
def test_a_bad_depth_or_limit_is_refused(
    Session: sessionmaker[OrmSession],  # noqa: N803
    family: Family,
    depth: int | None,
    limit: int,
    fragment: str,
) -> None:
    with Session() as session, pytest.raises(InvalidInput, match=fragment):
        get_provenance(
            get_dataset(AOD, session=session), session=session, depth=depth, limit=limit
        )


def test_a_thousand_children_take_a_few_queries_and_load_only_those_shown(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
) -> None:
    add_family(Session, phys=1000)
    for limit, loaded in ((200, 200), (1000, 1000), (10_000, 1003)):
        with Session() as session:
            aod = get_dataset(AOD, session=session)
            with statements_of(catalog_engine) as statements:
                graph = get_provenance(aod, session=session, limit=limit)
            assert len(session.identity_map) == loaded

        assert len(graph.nodes) == loaded
        assert sum(row.n_datasets for row in graph.left_out) == 1003 - loaded
        # A query a level of the graph each way (three up, two down), one for
        # the shown datasets and one to count those left out on each side:
        # as many for a thousand children as for ten.
        assert len(statements) <= 10, statements


# --- the JSON API ------------------------------------------------------------------


def test_the_api_takes_depth_and_limit_and_says_what_it_left_out(
    client: FlaskClient, family: Family
) -> None:
    url = f"{API}/datasets/{AOD}/provenance"

    capped = client.get(url, query_string={"limit": 10}).json
    shallow = client.get(url, query_string={"depth": 1}).json
    whole = client.get(url).json

    shown = {n["logicalDatasetName"] for n in capped["nodes"]}
    assert len(shown) == 10 and capped["complete"] is False
    assert capped["leftOut"] == [
        {"direction": "ancestors", "dataType": "EVNT", "count": 1},
        {"direction": "descendants", "dataType": "DAOD_PHYS", "count": 17},
        {"direction": "descendants", "dataType": "DAOD_PHYSLITE", "count": 5},
        {"direction": "descendants", "dataType": "NTUP_PILEUP", "count": 5},
    ]
    assert Counter(
        {r["dataType"]: r["count"] for r in capped["leftOut"][1:]}
    ) == family.left_out(shown, -1)
    edges = {(e["source"], e["destination"]) for e in capped["edges"]}
    assert edges == {(p, c) for p, c in family.edges if p in shown and c in shown}
    assert len(shallow["nodes"]) == 32 and shallow["complete"] is False
    assert whole["complete"] is True and whole["leftOut"] == []
    assert {n["logicalDatasetName"]: n["distance"] for n in whole["nodes"]} == {
        name: distance for name, (_, distance) in family.distances.items()
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"depth": -1}, "depth"),
        ({"depth": "2.5"}, "depth"),
        ({"deep": 1}, "deep"),
    ],
)
def test_the_api_refuses_a_bad_depth_or_limit(
    client: FlaskClient, family: Family, query: dict[str, Any], field: str
) -> None:
    response = client.get(f"{API}/datasets/{AOD}/provenance", query_string=query)

    message = assert_error(response, 400, "ValidationError")
    assert message.startswith(f"{field}: ")


# --- AMI ---------------------------------------------------------------------------


def test_ami_takes_depth_and_limit_and_says_what_it_left_out(
    client: FlaskClient, family: Family
) -> None:
    command = f'AMIGetDatasetProv -logicalDatasetName="{AOD}"'

    nodes = rows(client, f'{command} -limit="10"', "node")
    left_out = rows(client, f"{command} -limit=10", "leftOut")
    body = post(client, f'{command} -depth="1"')
    whole = post(client, command)

    assert len(nodes) == 10
    shown = {n["logicalDatasetName"] for n in nodes}
    assert {(r["direction"], r["dataType"]): int(r["count"]) for r in left_out} == {
        ("ancestors", "EVNT"): 1
    } | {("descendants", kind): n for kind, n in family.left_out(shown, -1).items()}
    assert "left out 1 more ancestors and 5 more descendants" in body
    assert 'rowset type="leftOut"' in body
    # The whole graph answers as it always did: nodes and edges, no note.
    assert re.findall(r'<rowset type="(\w+)"', whole) == ["node", "edge"]
    assert "<info>" not in whole
    assert len(rows(client, command, "node")) == len(family.distances)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ('-limit="0"', "limit must be 1 to 10,000"),
        ('-limit="0,10"', "-limit must be a whole number"),
        ('-depth="-1"', "-depth must be a whole number"),
        ('-depht="1"', "did you mean -depth?"),
    ],
)
def test_ami_refuses_a_bad_depth_or_limit(
    client: FlaskClient, family: Family, arguments: str, fragment: str
) -> None:
    body = post(client, f'AMIGetDatasetProv -logicalDatasetName="{AOD}" {arguments}')

    assert '<error type="InvalidInput">' in body
    assert fragment in body


# --- the dataset page ----------------------------------------------------------------


def test_the_page_draws_200_datasets_and_says_what_it_left_out(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=1000)

    page = client.get(f"/datasets/{AOD}")
    more = client.get(f"/datasets/{AOD}", query_string={"provenance_limit": 5000})

    nodes, _ = svg_graph(page)
    assert len(nodes) == 200 and {AOD, HITS} <= set(nodes)
    assert (
        "The graph shows 200 of 1,003 datasets, the nearest first, and leaves out "
        "1 more ancestors: 1 EVNT and 802 more descendants: 802 DAOD_PHYS."
        in visible_text(page)
    )
    assert "provenance_limit=1000" in page.get_data(as_text=True)
    assert len(svg_graph(more)[0]) == 1000
    assert (
        "leaves out 1 more ancestors: 1 EVNT and 2 more descendants: 2 DAOD_PHYS."
        in visible_text(more)
    )
    assert "provenance_limit=" not in more.get_data(as_text=True)


def test_the_page_of_a_smaller_graph_draws_it_whole(
    client: FlaskClient, family: Family
) -> None:
    page = client.get(f"/datasets/{AOD}")
    capped = client.get(f"/datasets/{AOD}", query_string={"provenance_limit": 10})

    nodes, edges = svg_graph(page)
    assert set(nodes) == set(family.distances) and edges == family.edges
    assert "leaves out" not in visible_text(page)
    assert len(svg_graph(capped)[0]) == 10
    assert (
        "leaves out 1 more ancestors: 1 EVNT and 27 more descendants: "
        "17 DAOD_PHYS, 5 DAOD_PHYSLITE, 5 NTUP_PILEUP." in visible_text(capped)
    )
