"""A DDM container's name, as a physicist holds it (from a paper, a grid
job), resolved on every surface: the dataset page, the JSON API, the AMI
endpoint, our client and ``hepcat ami``.

Containers are made the way DDM makes them: Rucio's ``create_cnt``,
``register_cnt`` and ``detach`` messages applied by the DDM ingester's own
path (:func:`ingest.ddm.ingest_messages`), on SQLite, PostgreSQL and
MariaDB. The client and the command line talk to a live ``hepcat serve``
(SQLite), whose catalogue gets its container the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from live import ServedCatalog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import post, rows, search
from test_ddm import event, with_ids
from test_pages import visible_text

from catalog.config import load_config
from catalog.db import create_catalog_engine, session_factory
from catalog.derived import ALL_EVENTS, SOME_EVENTS
from catalog.models import AMI_TRASHED, Dataset
from ingest.ddm import ingest_messages
from web.app import create_app
from web.client import Client, get_dataset_info

SCOPE = "data15_13TeV"
CONTAINER = "data15_13TeV.periodB.physics_Main.PhysCont.AOD.grp15_v01_f629"
RUN_1 = "data15_13TeV.00271421.physics_Main.merge.AOD.f629_m1504"
RUN_2 = "data15_13TeV.00271516.physics_Main.merge.AOD.f629_m1504"
DETACHED = "data15_13TeV.00271595.physics_Main.merge.AOD.f629_m1504"
LATE = "data15_13TeV.00271744.physics_Main.merge.AOD.f629_m1504"
CREATED = "2026-03-01 09:00:00"


def put_in_container(
    Session: sessionmaker[OrmSession],  # noqa: N803
    container: str,
    children: Sequence[str],
    *,
    scope: str = SCOPE,
    child_type: str = "DATASET",
) -> None:
    """DDM announces *container* and registers *children* in it."""
    parent = {"scope": scope, "name": container}
    story = [event("create_cnt", CREATED, account="phys", **parent)]
    for child in children:
        member = {"childscope": scope, "childname": child, "childtype": child_type}
        story.append(event("register_cnt", "2026-03-01 10:00:00", **parent, **member))
    ingest_messages(with_ids(story), Session)


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def period_container(
    Session: sessionmaker[OrmSession],  # noqa: N803
    dataset_factory: Callable[..., Any],
) -> str:
    """A period container of two catalogued runs' AODs and one DDM has not
    delivered to the catalogue yet; a third run was registered and detached.
    """
    counts = {
        RUN_1: (3, 3000, 3_000_000_000, ALL_EVENTS),
        RUN_2: (2, 1500, 1_500_000_000, SOME_EVENTS),
        DETACHED: (4, 4000, 4_000_000_000, ALL_EVENTS),
    }
    for name, (files, events, size, status) in counts.items():
        dataset_factory(
            name,
            "tier0",
            n_files=files,
            total_events=events,
            total_size=size,
            prodsys_status=status,
        )
    put_in_container(Session, CONTAINER, [RUN_1, RUN_2, DETACHED, LATE])
    parent = {"scope": SCOPE, "name": CONTAINER}
    taken_out = {"child_scope": SCOPE, "child_name": DETACHED}
    detach = event("detach", "2026-03-02 10:00:00", **parent, **taken_out)
    ingest_messages(with_ids([detach]), Session)
    return CONTAINER


# --- the dataset page -------------------------------------------------------------


def test_the_page_of_a_container_name_shows_its_totals_and_datasets(
    client: FlaskClient, period_container: str
) -> None:
    response = client.get(f"/datasets/{period_container}")

    text = visible_text(response)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    heading = f"DDM container VALID {ALL_EVENTS} {SOME_EVENTS} {period_container}"
    assert heading in text
    assert "nDatasets 3 nFiles 5 totalEvents 4,500 totalSize 4.5 GB" in text
    assert "dataType CONTAINER" in text
    assert f"scope {SCOPE}" in text
    assert f"prodsysStatus {ALL_EVENTS}, {SOME_EVENTS} amiStatus VALID" in text
    linked = re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', html)
    assert linked == [RUN_1, RUN_2]
    assert "Not in the catalogue yet DDM put these" in text and LATE in text
    assert DETACHED not in text


def test_a_datasets_page_links_to_the_page_of_its_container(
    client: FlaskClient, period_container: str
) -> None:
    page = client.get(f"/datasets/{RUN_1}").get_data(as_text=True)

    assert f'href="/datasets/{period_container}"' in page
    followed = client.get(f"/datasets/{period_container}")
    assert "nDatasets 3" in visible_text(followed)


def test_searching_a_containers_exact_name_links_its_page(
    client: FlaskClient, period_container: str
) -> None:
    exact = client.get("/datasets", query_string={"q": period_container})
    partial = client.get("/datasets", query_string={"q": "PhysCont.AOD.grp15_v99"})

    html = exact.get_data(as_text=True)
    assert exact.status_code == 200
    assert "No dataset has this name, but a DDM container has" in visible_text(exact)
    assert f'href="/datasets/{period_container}"' in html
    assert f"inContainer={period_container}" in html
    assert 'id="container-match"' not in partial.get_data(as_text=True)


def test_the_page_takes_a_rucio_did_and_the_trailing_slash(
    client: FlaskClient, period_container: str
) -> None:
    with_scope = client.get(f"/datasets/{SCOPE}:{period_container}/")
    other_scope = client.get(f"/datasets/mc16_13TeV:{period_container}")

    assert with_scope.status_code == 200
    assert "nFiles 5" in visible_text(with_scope)
    assert other_scope.status_code == 404
    assert "DatasetNotFound" in visible_text(other_scope)


# --- the JSON API -----------------------------------------------------------------


def test_the_api_answers_a_container(
    client: FlaskClient, period_container: str
) -> None:
    plain = client.get(f"/api/v1/containers/{period_container}")
    as_did = client.get(f"/api/v1/containers/{SCOPE}:{period_container}")

    assert plain.status_code == 200, plain.json
    assert plain.json == {
        "logicalDatasetName": period_container,
        "scope": SCOPE,
        "dataType": "CONTAINER",
        "created": "2026-03-01T09:00:00+00:00",
        "ddmErased": None,
        "nDatasets": 3,
        "nFiles": 5,
        "totalEvents": 4500,
        "totalSize": 4_500_000_000,
        "prodsysStatuses": [ALL_EVENTS, SOME_EVENTS],
        "amiStatuses": ["VALID"],
        "datasets": [RUN_1, RUN_2, LATE],
        "notCatalogued": [LATE],
    }
    assert as_did.json == plain.json


def test_an_unknown_container_is_a_404_in_the_apis_error_shape(
    client: FlaskClient, period_container: str
) -> None:
    response = client.get(f"/api/v1/containers/{period_container}x")

    assert response.status_code == 404
    error = response.json["error"]
    assert error["type"] == "ContainerNotFound"
    assert error["status"] == 404
    assert f"did you mean {period_container!r}" in error["message"]
    assert error["details"] == [error["message"]]


def test_a_container_in_a_container_counts_its_datasets_too(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    year = "data15_13TeV.AllYear.physics_Main.PhysCont.AOD.grp15_v01_f629"
    put_in_container(Session, year, [period_container], child_type="CONTAINER")
    # A loop of containers, which Rucio forbids, must still end.
    put_in_container(Session, period_container, [year], child_type="CONTAINER")

    found = client.get(f"/api/v1/containers/{year}").json

    assert found["datasets"] == [RUN_1, RUN_2, LATE]
    assert (found["nDatasets"], found["nFiles"]) == (3, 5)


def test_the_containers_route_is_in_the_openapi_document(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json

    operation = document["paths"]["/api/v1/containers/{container}"]["get"]
    answer = operation["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/Container"}
    assert "404" in operation["responses"]


# --- the AMI endpoint -------------------------------------------------------------


def test_ami_get_dataset_info_answers_a_container(
    client: FlaskClient, period_container: str
) -> None:
    command = f'AMIGetDatasetInfo -logicalDatasetName="{period_container}"'

    found = rows(client, command)

    assert found == [
        {
            "logicalDatasetName": period_container,
            "scope": SCOPE,
            "dataType": "CONTAINER",
            "nDatasets": "3",
            "nFiles": "5",
            "totalEvents": "4500",
            "totalSize": "4500000000",
            "prodsysStatus": f"{ALL_EVENTS},{SOME_EVENTS}",
            "amiStatus": "VALID",
            "created": CREATED,
            "ddmErased": "NULL",
        }
    ]
    assert '<rowset type="dataset">' in post(client, command)


def test_ami_takes_the_containers_did_and_keeps_the_dataset_error_for_others(
    client: FlaskClient, period_container: str
) -> None:
    did = f'AMIGetDatasetInfo -logicalDatasetName="{SCOPE}:{period_container}/"'
    other = f"mc16_13TeV:{period_container}"
    wrong_scope = f'AMIGetDatasetInfo -logicalDatasetName="{other}"'

    (found,) = rows(client, did)
    refused = post(client, wrong_scope)

    assert (found["logicalDatasetName"], found["nFiles"]) == (period_container, "5")
    assert (
        f'<error type="DatasetNotFound"><![CDATA[no dataset named {other!r}' in refused
    )


def test_a_dataset_wins_over_a_container_of_its_name(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    put_in_container(Session, RUN_1, [RUN_2])

    (ami,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{RUN_1}"')
    page = visible_text(client.get(f"/datasets/{RUN_1}"))
    container = client.get(f"/api/v1/containers/{RUN_1}").json

    assert (ami["logicalDatasetName"], ami["nFiles"]) == (RUN_1, "3")
    assert "DDM container" not in page and "Lumi blocks" in page
    assert (container["dataType"], container["datasets"]) == ("CONTAINER", [RUN_2])


def test_a_trashed_member_shows_in_the_containers_statuses(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    with Session.begin() as session:
        run = session.scalars(select(Dataset).where(Dataset.name == RUN_2)).one()
        run.ami_status = AMI_TRASHED

    command = f'AMIGetDatasetInfo -logicalDatasetName="{period_container}"'
    (found,) = rows(client, command)

    assert found["amiStatus"] == "TRASHED,VALID"


# --- the inContainer filter: the datasets the totals count ------------------------

YEAR = "data15_13TeV.AllYear.physics_Main.PhysCont.AOD.grp15_v01_f629"


def found_in(client: FlaskClient, container: str) -> dict[str, list[str]]:
    """The datasets the ``inContainer`` filter finds for *container* on the
    JSON API, the search page and ``SearchQuery``, each sorted.
    """
    args = {"inContainer": container, "limit": "1000"}
    api = client.get("/api/v1/datasets", query_string=args)
    page = client.get("/datasets", query_string=args)
    mql = f"SELECT logicalDatasetName WHERE inContainer = '{container}'"
    assert api.status_code == page.status_code == 200, api.json
    html = page.get_data(as_text=True)
    return {
        "api": sorted(item["logicalDatasetName"] for item in api.json["items"]),
        "page": sorted(
            re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', html)
        ),
        "ami": sorted(
            row["logicalDatasetName"] for row in search(client, "dataset", mql)
        ),
    }


def test_the_filter_finds_the_datasets_of_the_containers_a_container_holds(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    put_in_container(Session, YEAR, [period_container], child_type="CONTAINER")
    # A loop of containers, which Rucio forbids, must still end.
    put_in_container(Session, period_container, [YEAR], child_type="CONTAINER")

    found = found_in(client, YEAR)

    totals = client.get(f"/api/v1/containers/{YEAR}").json
    counted = sorted(set(totals["datasets"]) - set(totals["notCatalogued"]))
    assert counted == [RUN_1, RUN_2]
    assert found == {"api": counted, "page": counted, "ami": counted}


@pytest.mark.parametrize(
    "spelling",
    [f"{SCOPE}:{CONTAINER}", f"{CONTAINER}/", f"{SCOPE}:{CONTAINER}/"],
    ids=["did", "slash", "did and slash"],
)
def test_the_filter_takes_the_names_a_container_lookup_takes(
    client: FlaskClient, period_container: str, spelling: str
) -> None:
    found = found_in(client, spelling)
    other_scope = f"mc16_13TeV:{period_container}"
    args = {"inContainer": other_scope}
    refused = client.get("/api/v1/datasets", query_string=args)
    page = client.get("/datasets", query_string=args)
    mql = f"SELECT logicalDatasetName WHERE inContainer = '{other_scope}'"

    assert found == {
        "api": [RUN_1, RUN_2],
        "page": [RUN_1, RUN_2],
        "ami": [RUN_1, RUN_2],
    }
    # Under another scope it names no container: the API and the search page
    # say so, SearchQuery finds nothing.
    assert refused.status_code == page.status_code == 404
    assert refused.json["error"]["type"] == "ContainerNotFound"
    assert "404 ContainerNotFound no DDM container named" in visible_text(page)
    assert search(client, "dataset", mql) == []


def test_the_search_page_says_a_container_filter_names_no_container(
    client: FlaskClient, period_container: str
) -> None:
    misspelt = client.get("/datasets", query_string={"inContainer": CONTAINER + "x"})
    pattern = client.get("/datasets?inContainer=%25nothing%25")
    blanks = client.get("/datasets?inContainer=%20%20")

    # The form as typed, with the API's error above it and its status.
    text, html = visible_text(misspelt), misspelt.get_data(as_text=True)
    assert misspelt.status_code == 404
    assert (
        f"404 ContainerNotFound no DDM container named '{CONTAINER}x'; "
        f"did you mean '{CONTAINER}'?" in text
    )
    assert 'id="search-error"' in html
    assert f'name="inContainer" value="{CONTAINER}x"' in html
    assert "No dataset matches" not in text
    # A pattern is a search that may find nothing; blanks filter nothing.
    assert pattern.status_code == 200
    assert "No dataset matches" in visible_text(pattern)
    assert blanks.status_code == 200
    assert "3 datasets match" in visible_text(blanks)


def test_the_filter_finds_a_container_ddm_spelt_with_its_trailing_slash(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    slashed = "data15_13TeV.periodJ.physics_Main.PhysCont.AOD.grp15_v01_f629/"
    put_in_container(Session, slashed, [RUN_1])

    found = found_in(client, slashed.rstrip("/"))

    assert found == {"api": [RUN_1], "page": [RUN_1], "ami": [RUN_1]}


# --- our client and hepcat ami, against a live server -----------------------------


def served_container_of(served: ServedCatalog) -> tuple[str, list[Dataset]]:
    """Put two DAOD_PHYS datasets of the served world in a new container of
    the served catalogue; return its name and the datasets, as stored.
    """
    name = f"mc16_13TeV.hepcat_test_{uuid.uuid4().hex[:8]}.DAOD_PHYS"
    engine = create_catalog_engine(served.database_url)
    Session = session_factory(engine)  # noqa: N806
    try:
        with Session() as session:
            query = select(Dataset).where(Dataset.data_type == "DAOD_PHYS")
            members = list(session.scalars(query.order_by(Dataset.name).limit(2)))
        put_in_container(Session, name, [d.name for d in members], scope="mc16_13TeV")
    finally:
        engine.dispose()
    return name, members


@pytest.fixture(scope="module")
def served_container(served_catalog: ServedCatalog) -> tuple[str, list[Dataset]]:
    return served_container_of(served_catalog)


def test_our_client_gets_a_containers_info(
    served_catalog: ServedCatalog, served_container: tuple[str, list[Dataset]]
) -> None:
    name, members = served_container
    client = Client(served_catalog.url + "/AMI/FrontEnd", timeout=30)

    (found,) = get_dataset_info(client, name)

    assert found["dataType"] == "CONTAINER"
    assert found["nDatasets"] == 2
    assert found["nFiles"] == sum(d.n_files for d in members)
    assert found["totalEvents"] == sum(d.total_events for d in members)
    assert found["totalSize"] == sum(d.total_size for d in members)


def test_hepcat_ami_prints_a_container(
    served_catalog: ServedCatalog, served_container: tuple[str, list[Dataset]]
) -> None:
    name, members = served_container
    url = served_catalog.url + "/AMI/FrontEnd"
    command = ["AMIGetDatasetInfo", f"-logicalDatasetName={name}", "--url", url]

    done = subprocess.run(
        [sys.executable, "-m", "hepcat", "ami", *command],
        env=served_catalog.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = {" ".join(line.split()) for line in done.stdout.splitlines()}
    assert f"logicalDatasetName {name}" in lines
    assert "dataType CONTAINER" in lines
    assert "nDatasets 2" in lines
    assert f"totalEvents {sum(d.total_events for d in members)}" in lines


# --- large containers: totals in SQL, datasets a page at a time ------------------


def test_the_totals_are_added_up_without_loading_the_datasets(
    Session: sessionmaker[OrmSession],  # noqa: N803
    period_container: str,
) -> None:
    from catalog.containers import find_container

    with Session() as session:
        found = find_container(period_container, session=session)
        loaded = [obj for obj in session.identity_map.values()]

    assert found is not None
    assert (found.n_files, found.total_events, found.total_size) == (
        5,
        4500,
        4_500_000_000,
    )
    assert (found.prodsys_statuses, found.ami_statuses) == (
        [ALL_EVENTS, SOME_EVENTS],
        ["VALID"],
    )
    assert not any(isinstance(obj, Dataset) for obj in loaded)


def test_the_container_page_shows_its_datasets_a_page_at_a_time(
    client: FlaskClient, period_container: str
) -> None:
    first = client.get(f"/datasets/{period_container}?limit=2")
    second = client.get(f"/datasets/{period_container}?limit=2&offset=2")

    html = first.get_data(as_text=True)
    linked = re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', html)
    assert linked == [RUN_1, RUN_2]
    assert "Not in the catalogue yet" not in visible_text(first)
    assert "datasets 1–2 of 3" in visible_text(first)
    assert 'rel="next"' in html and "offset=2" in html
    later = visible_text(second)
    assert "Not in the catalogue yet" in later and LATE in later
    assert RUN_1 not in re.sub(r"<h1.*?</h1>", "", second.get_data(as_text=True))
    assert "nFiles 5" in later  # the totals are the whole container's


def test_a_bad_page_of_a_container_is_refused(
    client: FlaskClient, period_container: str
) -> None:
    response = client.get(f"/datasets/{period_container}?limit=0")

    assert response.status_code == 400


def test_the_api_lists_at_most_a_thousand_names_and_counts_them_all(
    client: FlaskClient,
    period_container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("catalog.containers.LISTED", 2)

    found = client.get(f"/api/v1/containers/{period_container}").json

    assert found["datasets"] == [RUN_1, RUN_2]
    assert found["nDatasets"] == 3
    assert found["notCatalogued"] == [LATE]
    assert (found["nFiles"], found["totalSize"]) == (5, 4_500_000_000)


@pytest.mark.parametrize("catalogued", [0, 1, 2], ids=["none", "some", "all"])
def test_the_api_names_the_datasets_not_catalogued_however_many(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    dataset_factory: Callable[..., Any],
    catalogued: int,
) -> None:
    for name in [RUN_1, RUN_2][:catalogued]:
        dataset_factory(name, "tier0", n_files=1)
    put_in_container(Session, CONTAINER, [RUN_2, RUN_1])

    found = client.get(f"/api/v1/containers/{CONTAINER}").json

    assert found["datasets"] == [RUN_1, RUN_2]
    assert found["notCatalogued"] == [RUN_1, RUN_2][catalogued:]
    assert (found["nDatasets"], found["nFiles"]) == (2, catalogued)


def test_a_container_did_is_read_as_a_datasets_is(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    group = "group.phys-higgs.hepcat.containers.v1/"
    put_in_container(Session, group, [RUN_1], scope="group.phys-higgs")

    bare = group.rstrip("/")  # as DDM spelt it, with its trailing /, or not
    as_did = client.get(f"/api/v1/containers/group.phys-higgs:{bare}")
    other = client.get(f"/api/v1/containers/group.phys-susy:{bare}")

    assert as_did.status_code == 200, as_did.json
    assert as_did.json["datasets"] == [RUN_1]
    assert other.status_code == 404


def test_an_unknown_container_suggests_names_as_datasets_do(
    client: FlaskClient, period_container: str
) -> None:
    response = client.get(f"/api/v1/containers/{SCOPE}:{period_container}x")

    assert response.status_code == 404
    assert f"did you mean {period_container!r}" in response.json["error"]["message"]
