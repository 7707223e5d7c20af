"""A field filter means the same thing on every surface: the search page
(``/datasets``), the JSON API (``/api/v1/datasets``) and MQL (``SearchQuery``)
find the same datasets for it, on SQLite, PostgreSQL and MariaDB.

The catalogue is a handful of datasets written here: runs of periods A, A1,
A12 and D (every one also in AllYear), a trashed run, two Monte Carlo
samples whose cross-sections come from their EVNT datasets, and two DDM
containers, one dataset in both.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from catalog.config import load_config
from catalog.datasets import add_dataset
from catalog.models import AMI_TRASHED, Container, ContainerMember, Dataset
from catalog.mql import compile_search, printed_range
from web.app import create_app
from web.client.atlas import dataset_search

RUN_A1 = "data15_13TeV.00267073.physics_Main.daq.RAW"
RUN_A12 = "data15_13TeV.00267162.physics_Main.daq.RAW"
RUN_D = "data15_13TeV.00276262.physics_Main.daq.RAW"
RUN_TRASHED = "data15_13TeV.00284500.physics_Main.daq.RAW"
ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZMUMU = "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu"
EVNT_ZEE = f"{ZEE}.evgen.EVNT.e3601"
AOD_ZEE = f"{ZEE}.recon.AOD.e3601_s3126_r10724"
EVNT_ZMUMU = f"{ZMUMU}.evgen.EVNT.e3601"
AOD_ZMUMU = f"{ZMUMU}.recon.AOD.e3601_s3126_r10724"
CONTAINER_A = "mc16_13TeV.Zll_A"
CONTAINER_B = "mc16_13TeV.Zll_B"
# A mean cross-section as it is stored, and as AMI prints it (15 digits).
STORED_XSEC = 1.9009867062499999
PRINTED_XSEC = "1.90098670625"

RUNS = {RUN_A1, RUN_A12, RUN_D, RUN_TRASHED}
MC = {EVNT_ZEE, AOD_ZEE, EVNT_ZMUMU, AOD_ZMUMU}
EVERY = RUNS | MC


def _seed(session: OrmSession) -> None:
    periods = {
        RUN_A1: "A,A1,AllYear",
        RUN_A12: "A,A12,AllYear",
        RUN_D: "AllYear,D,D3",
        RUN_TRASHED: "AllYear,J,J6",
    }
    for name, period in periods.items():
        add_dataset(name, "tier0", session=session, period=period)
    session.flush()
    trashed = session.scalars(select(Dataset).where(Dataset.name == RUN_TRASHED))
    trashed.one().ami_status = AMI_TRASHED
    # Zmumu first: its EVNT has the lower id but the later name.
    cross_sections = {ZMUMU: 1.90098670626, ZEE: STORED_XSEC}
    for sample, cross_section in cross_sections.items():
        evnt = add_dataset(f"{sample}.evgen.EVNT.e3601", "prodsys", session=session)
        aod = add_dataset(
            f"{sample}.recon.AOD.e3601_s3126_r10724", "prodsys", session=session
        )
        session.flush()
        for dataset in (evnt, aod):
            dataset.cross_section = cross_section
            dataset.cross_section_source_id = evnt.id
    members = {CONTAINER_A: [AOD_ZEE, AOD_ZMUMU], CONTAINER_B: [AOD_ZMUMU]}
    for name, children in members.items():
        container = Container(name=name, scope="mc16_13TeV")
        session.add(container)
        session.flush()
        for child in children:
            session.add(ContainerMember(container_id=container.id, child_name=child))


@pytest.fixture
def catalogue(Session: sessionmaker[OrmSession]) -> sessionmaker[OrmSession]:  # noqa: N803
    with Session.begin() as session:
        _seed(session)
    return Session


@pytest.fixture
def client(
    catalog_engine: Engine, tmp_path: Path, catalogue: sessionmaker[OrmSession]
) -> FlaskClient:
    config = load_config(env={}, data_dir=str(tmp_path))
    app: Flask = create_app(config, engine=catalog_engine)
    return app.test_client()


def api_names(client: FlaskClient, **args: str) -> list[str]:
    """The names ``GET /api/v1/datasets`` answers, in its order."""
    response = client.get("/api/v1/datasets", query_string={**args, "limit": 1000})
    assert response.status_code == 200, response.json
    return [item["logicalDatasetName"] for item in response.json["items"]]


def page_names(client: FlaskClient, **args: str) -> list[str]:
    """The names the search page lists, in its order."""
    response = client.get("/datasets", query_string={**args, "limit": 1000})
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = re.findall(
        r'<td class="name"><a href="/datasets/([^"]+)">',
        response.get_data(as_text=True),
    )
    return list(rows)


def mql_names(Session: sessionmaker[OrmSession], mql: str) -> list[str]:  # noqa: N803
    """The first column of the MQL query *mql* (trashed datasets too)."""
    with Session() as session:
        search = compile_search("dataset", mql, show_archived=True, session=session)
        return [row[0] for row in session.execute(search.statement)]


def mql_where(Session: sessionmaker[OrmSession], where: str) -> set[str]:  # noqa: N803
    return set(mql_names(Session, f"SELECT logicalDatasetName WHERE {where}"))


# --- one filter, one meaning ------------------------------------------------------


FILTERS = [
    # period: one period of the list at a time, ignoring case; a letter and
    # % is that period and its sub-periods, not AllYear.
    ("period", "A", "period = 'A'", {RUN_A1, RUN_A12}),
    ("period", "A%", "period LIKE 'A%'", {RUN_A1, RUN_A12}),
    ("period", "a1", "period = 'a1'", {RUN_A1}),
    ("period", "AllYear", "period = 'AllYear'", RUNS),
    ("period", "D%", "period LIKE 'D%'", {RUN_D}),
    # amiStatus: compared in upper case.
    ("amiStatus", "valid", "amiStatus = 'valid'", EVERY - {RUN_TRASHED}),
    ("amiStatus", "trashed", "amiStatus = 'trashed'", {RUN_TRASHED}),
    # crossSectionSource: the EVNT dataset's name.
    (
        "crossSectionSource",
        EVNT_ZEE,
        f"crossSectionSource = '{EVNT_ZEE}'",
        {EVNT_ZEE, AOD_ZEE},
    ),
    (
        "crossSectionSource",
        "%Zmumu%",
        "crossSectionSource LIKE '%Zmumu%'",
        {EVNT_ZMUMU, AOD_ZMUMU},
    ),
    # crossSection: equal as printed, with 15 significant digits.
    (
        "crossSection",
        PRINTED_XSEC,
        f"crossSection = {PRINTED_XSEC}",
        {EVNT_ZEE, AOD_ZEE},
    ),
    (
        "crossSection",
        repr(STORED_XSEC),
        f"crossSection = {STORED_XSEC!r}",
        {EVNT_ZEE, AOD_ZEE},
    ),
    # inContainer: any container holding the dataset, not only the first.
    ("inContainer", CONTAINER_B, f"inContainer = '{CONTAINER_B}'", {AOD_ZMUMU}),
    (
        "inContainer",
        CONTAINER_A,
        f"inContainer = '{CONTAINER_A}'",
        {AOD_ZEE, AOD_ZMUMU},
    ),
    ("inContainer", "%zll_b", "inContainer LIKE '%zll_b'", {AOD_ZMUMU}),
]


@pytest.mark.parametrize(("field", "value", "where", "expected"), FILTERS)
def test_a_filter_finds_what_mql_finds_on_every_surface(
    client: FlaskClient,
    catalogue: sessionmaker[OrmSession],
    field: str,
    value: str,
    where: str,
    expected: set[str],
) -> None:
    assert mql_where(catalogue, where) == expected
    assert set(api_names(client, **{field: value})) == expected
    assert set(page_names(client, **{field: value})) == expected


def test_a_source_is_named_never_numbered(
    client: FlaskClient, catalogue: sessionmaker[OrmSession]
) -> None:
    with catalogue() as session:
        source_id = session.scalar(select(Dataset.id).where(Dataset.name == EVNT_ZEE))

    shown = mql_names(
        catalogue, f"SELECT crossSectionSource WHERE logicalDatasetName = '{AOD_ZEE}'"
    )

    assert shown == [EVNT_ZEE]
    assert api_names(client, crossSectionSource=str(source_id)) == []
    assert page_names(client, crossSectionSource=str(source_id)) == []


def test_sorting_by_the_source_sorts_by_its_name_on_the_pages_and_in_mql(
    client: FlaskClient, catalogue: sessionmaker[OrmSession]
) -> None:
    # The Zmumu EVNT has the lower id: by id, its datasets would come first.
    zee_first = [{EVNT_ZEE, AOD_ZEE}, {EVNT_ZMUMU, AOD_ZMUMU}]

    paged = page_names(client, q="mc16_13TeV.%", sort="crossSectionSource")
    ordered = mql_names(
        catalogue,
        "SELECT logicalDatasetName WHERE logicalDatasetName LIKE 'mc16%' "
        "ORDER BY crossSectionSource",
    )

    descending = page_names(client, q="mc16_13TeV.%", sort="-crossSectionSource")

    assert [set(paged[:2]), set(paged[2:])] == zee_first
    assert [set(ordered[:2]), set(ordered[2:])] == zee_first
    assert [set(descending[:2]), set(descending[2:])] == zee_first[::-1]


def test_the_api_sorts_by_columns_and_says_which_field_it_cannot_sort(
    client: FlaskClient,
) -> None:
    assert set(api_names(client, sort="crossSectionSource")) == EVERY

    response = client.get("/api/v1/datasets?sort=inContainer")

    assert response.status_code == 400
    assert "inContainer cannot sort" in response.json["error"]["message"]


# --- numbers as printed ------------------------------------------------------------


def test_the_printed_range_holds_the_numbers_printed_alike() -> None:
    low, high = printed_range(float(PRINTED_XSEC))

    assert low <= STORED_XSEC <= high
    assert f"{math.nextafter(low, 2):.15g}" == PRINTED_XSEC
    assert f"{math.nextafter(high, 0):.15g}" == PRINTED_XSEC
    assert high - low < 1.1e-14
    assert not low <= 1.90098670626 <= high
    assert printed_range(0.0) == (0.0, 0.0)
    assert printed_range(-2.5e-300)[0] < -2.5e-300 < printed_range(-2.5e-300)[1]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (f"crossSection >= {PRINTED_XSEC}", {EVNT_ZEE, AOD_ZEE, EVNT_ZMUMU, AOD_ZMUMU}),
        (f"crossSection > {PRINTED_XSEC}", {EVNT_ZMUMU, AOD_ZMUMU}),
        (f"crossSection <= {PRINTED_XSEC}", {EVNT_ZEE, AOD_ZEE}),
        (f"crossSection < {PRINTED_XSEC}", set()),
        (f"crossSection != {PRINTED_XSEC}", {EVNT_ZMUMU, AOD_ZMUMU}),
        (f"crossSection IN (1, {PRINTED_XSEC})", {EVNT_ZEE, AOD_ZEE}),
    ],
)
def test_mql_compares_a_number_as_printed(
    catalogue: sessionmaker[OrmSession], where: str, expected: set[str]
) -> None:
    assert mql_where(catalogue, where) == expected


# --- names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (f"mc16_13TeV:{AOD_ZEE}", [AOD_ZEE]),
        (f"data15_13TeV:{AOD_ZEE}", []),
        ("mc16_13TeV:%Zee%", [EVNT_ZEE, AOD_ZEE]),
        (f"{AOD_ZEE}/", [AOD_ZEE]),
        (f"mc16_13TeV:{AOD_ZEE}/", [AOD_ZEE]),
    ],
)
def test_a_name_pattern_may_be_a_rucio_did_or_end_with_a_slash(
    client: FlaskClient, pattern: str, expected: list[str]
) -> None:
    assert api_names(client, name=pattern) == expected
    assert page_names(client, q=pattern) == expected


def test_the_client_searches_a_rucio_did(catalogue: sessionmaker[OrmSession]) -> None:
    found = {}
    for pattern in (f"mc16_13TeV:{AOD_ZEE}/", f"data15_13TeV:{AOD_ZEE}", AOD_ZEE):
        arguments, _ = dataset_search(patterns=[pattern, RUN_A1])
        found[pattern] = set(mql_names(catalogue, arguments["mql"]))

    assert found == {
        f"mc16_13TeV:{AOD_ZEE}/": {AOD_ZEE, RUN_A1},
        f"data15_13TeV:{AOD_ZEE}": {RUN_A1},
        AOD_ZEE: {AOD_ZEE, RUN_A1},
    }


def test_the_dataset_page_links_each_container_to_its_search(
    client: FlaskClient,
) -> None:
    page = client.get(f"/datasets/{AOD_ZMUMU}").get_data(as_text=True)
    links = re.findall(r'href="(/datasets\?inContainer=[^"]+)"', page)

    assert len(links) == 2
    assert {tuple(page_names_at(client, link)) for link in links} == {
        tuple(sorted([AOD_ZEE, AOD_ZMUMU])),
        (AOD_ZMUMU,),
    }


def page_names_at(client: FlaskClient, url: str) -> list[str]:
    text = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
    return sorted(re.findall(r'<td class="name"><a href="/datasets/([^"]+)">', text))


# --- empty values -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        {"dataType": ""},
        {"nFiles": ""},
        {"name": ""},
        {"crossSection": " "},
        {"period": "", "amiStatus": "", "inContainer": ""},
    ],
)
def test_an_empty_value_filters_nothing(
    client: FlaskClient, args: dict[str, Any]
) -> None:
    page_args = {("q" if k == "name" else k): v for k, v in args.items()}

    assert set(api_names(client, **args)) == EVERY
    assert set(page_names(client, **page_args)) == EVERY
