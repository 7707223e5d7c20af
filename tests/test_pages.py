"""The web pages, as a physicist uses them: search, sort, page through and
open datasets, and meet clear errors instead of tracebacks.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

from catalog.config import load_config
from catalog.datasets import datasets_per_month
from catalog.db import create_catalog_engine
from catalog.derived import ALL_EVENTS, FAILED_TASK, TASK_FAILED
from catalog.models import (
    Dataset,
    File,
    ProvenanceEdge,
    Reconciliation,
    Replica,
    TaskLease,
    TaskRun,
)
from catalog.operations import (
    ingest_rates,
    quarantine,
    quarantine_count,
    release_read,
)
from catalog.users import add_user
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from web.app import create_app

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZMUMU = "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZEE_AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"
ZEE_DAOD = f"{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"
ZMUMU_DAOD = f"{ZMUMU}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"
DATA_AOD = "data15_13TeV.00276262.physics_Main.merge.AOD.f620_m1480"

NOW = dt.datetime.now(dt.UTC)
AN_HOUR_AGO = NOW - dt.timedelta(hours=1)

Factory = Callable[..., Any]


class CheckedClient(FlaskClient):
    """A test client that fails any test whose page leaks a traceback or SQL."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        if response.mimetype.startswith("text/"):
            body = response.get_data(as_text=True)
            assert "Traceback" not in body
            assert "SELECT" not in body
        return response


@pytest.fixture
def app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = CheckedClient
    return app.test_client()


class _Text(HTMLParser):
    # Every tag but <wbr> separates words, so that a table row reads as
    # "nFiles 2" and a dataset name with break opportunities stays whole.
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag != "wbr":
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(response: TestResponse) -> str:
    """The text a reader sees on the page, whitespace collapsed."""
    parser = _Text()
    parser.feed(response.get_data(as_text=True))
    return " ".join("".join(parser.parts).split())


def listed_datasets(response: TestResponse) -> list[str]:
    """The dataset names linked from the page's dataset table, in order."""
    html = response.get_data(as_text=True)
    table = html[html.index('<table class="grid datasets">') :]
    return re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', table)


def link(response: TestResponse, rel: str) -> str:
    html = response.get_data(as_text=True)
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    assert found, f"no {rel} link on the page"
    return found.group(1).replace("&amp;", "&")


def guid(dataset: Any, index: int) -> str:
    return f"{dataset.id:08x}-0000-4000-8000-{index:012x}"


def add_files(
    Session: sessionmaker[OrmSession],  # noqa: N803
    dataset: Any,
    count: int,
    events: int = 1000,
) -> None:
    with Session.begin() as session:
        for index in range(count):
            session.add(
                File(
                    dataset_id=dataset.id,
                    lfn=f"{dataset.name}._{index + 1:06d}.pool.root.1",
                    guid=guid(dataset, index),
                    size=2_500_000_000,
                    events=events,
                    status="finished",
                )
            )


# --- home --------------------------------------------------------------------


def test_home_page_shows_totals_and_recent_datasets(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    # MariaDB keeps whole seconds: the two times must differ by more.
    dataset_factory(ZEE_AOD, n_files=3, total_events=12_000, last_modified=AN_HOUR_AGO)
    dataset_factory(DATA_AOD, n_files=2, total_events=1_500_000, last_modified=NOW)

    response = client.get("/")

    assert response.status_code == 200
    text = visible_text(response)
    assert "2 datasets" in text
    assert "5 files" in text
    assert "1,512,000 events" in text
    assert listed_datasets(response) == [DATA_AOD, ZEE_AOD]
    assert 'name="q"' in response.get_data(as_text=True)


def test_home_page_of_an_empty_catalogue_says_how_to_fill_it(
    client: FlaskClient,
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert "holds no dataset yet" in visible_text(response)


# --- search ------------------------------------------------------------------


@pytest.fixture
def four_datasets(dataset_factory: Factory) -> None:
    dataset_factory(ZEE_AOD, total_events=200, total_size=1_234_567_890)
    dataset_factory(ZEE_DAOD, total_events=3_000, cross_section=1.9012)
    dataset_factory(ZMUMU_DAOD, total_events=10)
    dataset_factory(DATA_AOD, source="tier0", total_events=50_000)


@pytest.mark.usefixtures("four_datasets")
def test_search_by_pattern_finds_exactly_the_matching_names(
    client: FlaskClient,
) -> None:
    response = client.get("/datasets", query_string={"q": "mc16_13TeV.%.DAOD_PHYS.%"})

    assert response.status_code == 200
    assert "2 datasets match" in visible_text(response)
    assert listed_datasets(response) == [ZEE_DAOD, ZMUMU_DAOD]


@pytest.mark.usefixtures("four_datasets")
@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("MC16_13tev.%.daod_phys.%", [ZEE_DAOD, ZMUMU_DAOD]),
        ("mc16_13TeV.%", [ZEE_AOD, ZEE_DAOD, ZMUMU_DAOD]),
        ("data15%", [DATA_AOD]),
        ("mc16_13TeV_%", [ZEE_AOD, ZEE_DAOD, ZMUMU_DAOD]),  # "_" stands for "."
        ("mc16_13TeV._%Zmumu%", [ZMUMU_DAOD]),
        ("mc15%", []),
        ("data15_13TeV.%.AOD.%", [DATA_AOD]),
    ],
)
def test_a_pattern_ignores_case_and_reaches_whole_projects(
    client: FlaskClient, pattern: str, found: list[str]
) -> None:
    response = client.get("/datasets", query_string={"q": pattern})

    if found:
        assert sorted(listed_datasets(response)) == sorted(found)
    else:
        assert "No dataset matches" in visible_text(response)


@pytest.mark.usefixtures("four_datasets")
def test_a_pattern_without_wildcard_matches_names_containing_it(
    client: FlaskClient,
) -> None:
    response = client.get("/datasets", query_string={"q": "Zmumu"})

    assert "1 dataset matches" in visible_text(response)
    assert listed_datasets(response) == [ZMUMU_DAOD]


@pytest.mark.usefixtures("four_datasets")
def test_filter_by_data_type(client: FlaskClient) -> None:
    response = client.get("/datasets", query_string={"dataType": "AOD"})

    assert listed_datasets(response) == [DATA_AOD, ZEE_AOD]


@pytest.mark.usefixtures("four_datasets")
def test_filters_combine_with_the_pattern(client: FlaskClient) -> None:
    query = {"q": "%DAOD%", "datasetNumber": "361107", "amiStatus": "VALID"}

    response = client.get("/datasets", query_string=query)

    assert listed_datasets(response) == [ZMUMU_DAOD]


@pytest.mark.usefixtures("four_datasets")
def test_sort_descending_by_total_events(client: FlaskClient) -> None:
    response = client.get("/datasets", query_string={"sort": "-totalEvents"})

    assert listed_datasets(response) == [DATA_AOD, ZEE_DAOD, ZEE_AOD, ZMUMU_DAOD]
    assert "sorted by -totalEvents" in visible_text(response)


@pytest.mark.usefixtures("four_datasets")
def test_clicking_a_sorted_column_header_reverses_the_order(
    client: FlaskClient,
) -> None:
    ascending = client.get("/datasets", query_string={"sort": "totalEvents"})
    html = ascending.get_data(as_text=True)
    header = re.search(r'<a href="([^"]+)" title="sort by totalEvents">', html)
    assert header is not None

    descending = client.get(header.group(1).replace("&amp;", "&"))

    assert listed_datasets(descending)[0] == DATA_AOD


@pytest.mark.usefixtures("four_datasets")
def test_search_shows_sizes_and_cross_sections_for_people(
    client: FlaskClient,
) -> None:
    response = client.get("/datasets", query_string={"q": ZEE})

    text = visible_text(response)
    assert "1.2 GB" in text
    assert "crossSection (nb)" in text
    assert "1.9012" in text


def test_pagination_keeps_the_search_and_reaches_the_last_dataset(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    for name in (ZEE_EVNT, ZEE_AOD, ZEE_DAOD):
        dataset_factory(name)
    first = client.get("/datasets", query_string={"q": ZEE, "limit": "2"})

    second = client.get(link(first, "next"))

    assert "3 datasets match" in visible_text(first)
    assert listed_datasets(first) == [ZEE_DAOD, ZEE_EVNT]
    assert listed_datasets(second) == [ZEE_AOD]
    assert "next →" not in visible_text(second)
    assert "limit=2" in link(second, "prev")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"sort": "-totalEventz"}, "totalEventz"),
        ({"limit": "0"}, "limit must be between 1 and 1000, got 0"),
        ({"offset": "-1"}, "offset must be 0 or more, got -1"),
        ({"offset": "two"}, "offset must be an integer, got 'two'"),
        ({"offset": "1_0"}, "offset must be an integer, got '1_0'"),
        ({"offset": "9" * 19}, "offset is too large: at most 9,223,372,036,854,7"),
        ({"runNumber": "run276262"}, "runNumber must be an integer"),
    ],
)
def test_bad_search_input_is_explained_with_status_400(
    client: FlaskClient, args: dict[str, str], named: str
) -> None:
    response = client.get("/datasets", query_string=args)

    assert response.status_code == 400
    text = visible_text(response)
    assert "InvalidInput" in text
    assert named in text


def test_unknown_sort_field_suggests_the_right_one(client: FlaskClient) -> None:
    response = client.get("/datasets", query_string={"sort": "-totalEventz"})

    assert "did you mean totalEvents" in visible_text(response)


# --- the dataset page -----------------------------------------------------------


def test_dataset_page_shows_its_fields_and_files(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    daod = dataset_factory(ZEE_DAOD, n_files=2, total_events=12_345)
    add_files(Session, daod, 2)

    response = client.get(f"/datasets/{ZEE_DAOD}")

    assert response.status_code == 200
    text = visible_text(response)
    assert "nFiles 2" in text
    assert "totalEvents 12,345" in text
    assert "dataType DAOD_PHYS" in text
    assert f"{ZEE_DAOD}._000002.pool.root.1" in text
    assert guid(daod, 1) in text
    assert "2.5 GB" in text
    assert "trashAnnotation" not in text  # empty fields are hidden


def test_dataset_files_come_fifty_to_a_page(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    aod = dataset_factory(ZEE_AOD)
    add_files(Session, aod, 53)
    first = client.get(f"/datasets/{ZEE_AOD}")

    second = client.get(link(first, "next"))

    assert "files 1–50 of 53" in visible_text(first)
    assert "files 51–53 of 53" in visible_text(second)
    assert f"{ZEE_AOD}._000053.pool.root.1" in visible_text(second)


def test_dataset_page_lists_ancestors_and_descendants_as_links(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    evnt, aod, daod = (dataset_factory(n) for n in (ZEE_EVNT, ZEE_AOD, ZEE_DAOD))
    with Session.begin() as session:
        session.add(ProvenanceEdge(parent_id=evnt.id, child_id=aod.id))
        session.add(ProvenanceEdge(parent_id=aod.id, child_id=daod.id))

    response = client.get(f"/datasets/{ZEE_DAOD}")

    html = response.get_data(as_text=True)
    assert f'href="/datasets/{ZEE_EVNT}"' in html
    assert f'href="/datasets/{ZEE_AOD}"' in html
    assert "Ancestors distance dataType logicalDatasetName 2 EVNT" in (
        visible_text(response)
    )
    assert "Descendants" not in visible_text(response)


def test_dataset_page_says_where_its_cross_section_comes_from(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    evnt = dataset_factory(ZEE_EVNT, cross_section=1.9012)
    dataset_factory(ZEE_DAOD, cross_section=1.9012, cross_section_source_id=evnt.id)

    response = client.get(f"/datasets/{ZEE_DAOD}")

    assert "Taken from its nearest EVNT ancestor" in visible_text(response)
    assert "crossSection 1.9012 nb" in visible_text(response)
    assert f'href="/datasets/{ZEE_EVNT}"' in response.get_data(as_text=True)


def test_unknown_dataset_gives_404_suggesting_the_near_miss(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_DAOD)

    response = client.get(f"/datasets/{ZEE_DAOD[:-1]}5")

    assert response.status_code == 404
    text = visible_text(response)
    assert "DatasetNotFound" in text
    assert "did you mean" in text
    assert ZEE_DAOD in text


# --- errors and settings --------------------------------------------------------


def test_unknown_url_gives_a_404_page_with_the_search_box(
    client: FlaskClient,
) -> None:
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert "no page at /no/such/page" in visible_text(response)
    assert 'name="q"' in response.get_data(as_text=True)


def test_a_catalogue_without_tables_is_reported_without_sql(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    app = create_app(load_config(env={}, data_dir=str(tmp_path)), engine=engine)
    app.test_client_class = CheckedClient

    response = app.test_client().get("/datasets")

    engine.dispose()
    assert response.status_code == 503
    assert "DatabaseUnavailable" in visible_text(response)


def test_an_unexpected_failure_shows_no_traceback(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    app = create_app(load_config(env={}, data_dir=str(tmp_path)), engine=engine)
    app.test_client_class = CheckedClient

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError("SELECT name FROM dataset failed")

    response = app.test_client().get("/broken")

    engine.dispose()
    assert response.status_code == 500
    assert "unexpected error" in visible_text(response)


def test_secret_key_is_kept_in_the_data_directory(tmp_path: Path) -> None:
    config = load_config(env={}, data_dir=str(tmp_path))
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")

    keys = {create_app(config, engine=engine).secret_key for _ in range(2)}
    chosen = create_app(config.replace(secret_key="s3cret"), engine=engine)

    engine.dispose()
    assert len(keys) == 1
    assert (tmp_path / "secret_key").read_text().strip() in keys
    assert chosen.secret_key == "s3cret"


# --- shared by the pages below ---------------------------------------------------

ZEE_DAOD_P4072 = f"{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4072"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def world(Session: sessionmaker[OrmSession]) -> World:  # noqa: N803
    """The simulated world, written into the test's catalogue."""
    built = build_world()
    with Session.begin() as session:
        seed_catalog(built, session=session)
    return built


def png_size(response: TestResponse) -> tuple[int, int]:
    """The width and height of the PNG image *response* carries."""
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    data = response.get_data()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000  # axes, labels and text, not an empty image
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def status_badges(response: TestResponse) -> dict[str, str]:
    """The summary statuses on the home page: text → level (good, warn, bad)."""
    html = response.get_data(as_text=True)
    pattern = r'<span class="status (\w*)" title="prodsysStatus · DDM state">([^<]+)<'
    return {text: level for level, text in re.findall(pattern, html)}


def svg_graph(response: TestResponse) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """The provenance graph on a dataset page: node name → link, and edges."""
    html = response.get_data(as_text=True)
    svg = html[html.index('<svg class="provenance-graph"') : html.index("</svg>")]
    nodes = re.findall(r'<a class="node[^"]*" href="([^"]+)" data-name="([^"]+)"', svg)
    edges = re.findall(
        r'<path class="edge"[^>]* data-parent="([^"]+)" data-child="([^"]+)"', svg
    )
    return {name: href for href, name in nodes}, set(edges)


# --- home: summary status and datasets per month -----------------------------------


def test_home_status_combines_production_and_ddm(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    dataset_factory(
        ZEE_AOD,
        prodsys_status=ALL_EVENTS,
        ddm_open=False,
        ddm_consistent=True,
        last_modified=AN_HOUR_AGO,
    )
    daod = dataset_factory(ZEE_DAOD, prodsys_status=ALL_EVENTS, ddm_open=True)
    dataset_factory(DATA_AOD, prodsys_status=TASK_FAILED, last_modified=NOW)
    with Session.begin() as session:
        for rse in ("CERN-PROD_DATADISK", "BNL-OSG2_DATADISK"):
            session.add(Replica(dataset_name=ZEE_AOD, rse=rse, complete=True))
    add_files(Session, daod, 2)
    with Session.begin() as session:
        files = select(File).where(File.dataset_id == daod.id).order_by(File.lfn)
        session.scalars(files).first().lost = True

    badges = status_badges(client.get("/"))

    assert badges == {
        "ALL EVENTS AVAILABLE · DDM closed, 2 replicas": "good",
        "ALL EVENTS AVAILABLE · DDM open, 1 lost file": "bad",
        "TASK FAILED · DDM unknown": "bad",
    }


def test_datasets_per_month_counts_by_creation_month(
    dataset_factory: Factory, Session: Any
) -> None:
    june = dt.datetime(2015, 6, 3, 10, 0, tzinfo=dt.UTC)
    august = dt.datetime(2015, 8, 31, 23, 59, tzinfo=dt.UTC)
    dataset_factory(ZEE_EVNT, created=june)
    dataset_factory(ZEE_AOD, created=june + dt.timedelta(days=20))
    dataset_factory(DATA_AOD, created=august)

    with Session() as session:
        counts = datasets_per_month(session=session)

    assert counts == [(2015, 6, 2), (2015, 8, 1)]


def test_plots_are_images_on_an_empty_catalogue(client: FlaskClient) -> None:
    home = client.get("/").get_data(as_text=True)

    assert 'src="/plots/datasets-per-month.png"' in home
    assert png_size(client.get("/plots/datasets-per-month.png")) == (800, 260)
    assert png_size(client.get("/plots/ingest-rate.png")) == (800, 260)


def test_plots_of_a_populated_catalogue(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    dataset_factory(ZEE_EVNT, created=dt.datetime(2015, 6, 3, tzinfo=dt.UTC))
    dataset_factory(ZEE_AOD)
    with Session.begin() as session:
        for minutes in range(1, 30, 3):
            started = NOW - dt.timedelta(minutes=minutes)
            session.add(
                TaskRun(
                    task_name="prodsys" if minutes % 2 else "tier0",
                    started=started,
                    ended=started + dt.timedelta(seconds=2),
                    items=100 * minutes,
                    outcome="ok",
                )
            )

    assert png_size(client.get("/plots/datasets-per-month.png")) == (800, 260)
    assert png_size(client.get("/plots/ingest-rate.png?hours=1")) == (800, 260)


# --- search: any field, chosen columns ----------------------------------------------


def test_any_ami_field_filters_the_search(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_AOD, geometry_version="ATLAS-R2-2016-01-00-01")
    dataset_factory(ZEE_DAOD, geometry_version="ATLAS-R2-2015-03-01-00")
    dataset_factory(ZMUMU_DAOD)

    response = client.get("/datasets", query_string={"geometryVersion": "%2016%"})

    assert listed_datasets(response) == [ZEE_AOD]
    html = response.get_data(as_text=True)
    assert 'name="geometryVersion" value="%2016%"' in html  # editable on the form


def test_add_a_filter_on_any_field_from_the_form(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_AOD, geometry_version="ATLAS-R2-2016-01-00-01")
    dataset_factory(ZEE_DAOD, geometry_version="ATLAS-R2-2015-03-01-00")
    form = {"q": "Zee", "add_field": "geometryversion", "add_value": "%2015%"}

    redirect = client.get("/datasets", query_string=form)
    response = client.get(redirect.headers["Location"])

    assert redirect.status_code == 302
    assert "geometryVersion=%252015%25" in redirect.headers["Location"]
    assert "add_field" not in redirect.headers["Location"]
    assert listed_datasets(response) == [ZEE_DAOD]


def test_the_user_chooses_the_columns(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_AOD, atlas_release="21.0.77", n_files=3)
    dataset_factory(ZEE_EVNT, atlas_release="19.2.3.7", n_files=5)

    redirect = client.get("/datasets?q=Zee&column=nFiles&column=AtlasRelease")
    response = client.get(redirect.headers["Location"])
    html = response.get_data(as_text=True)
    headers = re.findall(r'title="sort by (\w+)"', html)
    by_release = client.get(link_to_sort(html, "AtlasRelease"))

    assert redirect.status_code == 302
    assert headers == ["logicalDatasetName", "nFiles", "AtlasRelease"]
    assert f"{ZEE_AOD} 3 21.0.77" in visible_text(response)
    assert listed_datasets(by_release) == [ZEE_EVNT, ZEE_AOD]
    assert "columns=logicalDatasetName,nFiles,AtlasRelease" in by_release.request.url


@pytest.mark.usefixtures("four_datasets")
@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "dataType=AOD&dataType=DAOD_PHYS",
            "the query argument dataType is given 2 times ('AOD', 'DAOD_PHYS')",
        ),
        ("dataType=&dataType=AOD", "dataType is given 2 times ('', 'AOD')"),
        (
            "datatype=AOD&dataType=DAOD_PHYS",
            "the query arguments datatype and dataType both filter on dataType",
        ),
        ("q=Zee&q=Zmumu", "the query argument q is given 2 times ('Zee', 'Zmumu')"),
    ],
)
def test_a_filter_given_twice_is_refused_not_half_read(
    client: FlaskClient, query: str, said: str
) -> None:
    response = client.get(f"/datasets?{query}")

    assert response.status_code == 400
    assert said in visible_text(response)
    assert '<table class="grid datasets">' not in response.get_data(as_text=True)


def test_the_count_says_trashed_datasets_are_listed(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_AOD)
    dataset_factory(ZEE_DAOD, ami_status="TRASHED")

    every = client.get("/datasets?q=Zee")
    valid = client.get("/datasets?q=Zee&amiStatus=VALID")

    assert "2 datasets match" in visible_text(every)
    assert "Trashed datasets count too: amiStatus=VALID hides them." in visible_text(
        every
    )
    assert "1 dataset matches" in visible_text(valid)
    assert "Trashed" not in visible_text(valid)


def link_to_sort(html: str, field: str) -> str:
    found = re.search(rf'<a href="([^"]+)" title="sort by {field}">', html)
    assert found, f"no sort link for {field}"
    return found.group(1).replace("&amp;", "&")


def test_user_input_is_escaped(client: FlaskClient) -> None:
    script = "<script>alert(1)</script>"

    search = client.get("/datasets", query_string={"q": script})
    bad_field = client.get("/datasets", query_string={script: "1"})

    assert bad_field.status_code == 400
    for response in (search, bad_field):
        html = response.get_data(as_text=True)
        assert script not in html
        assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("/datasets?datasetNumbr=361106", "did you mean datasetNumber"),
        ("/datasets?columns=nFilez", "nFilez"),
        ("/datasets?totalEvents=1%25", "totalEvents"),
        ("/datasets?add_field=nFilez&add_value=1", "nFilez"),
        ("/runs?offset=-1", "offset must be 0 or more, got -1"),
        ("/runs?limit=many", "limit must be an integer, got 'many'"),
        ("/periods?level=7", "level must be 1, 2 or 3, got 7"),
        ("/quarantine?offset=x", "offset must be an integer, got 'x'"),
        ("/reconciliation?offset=-5", "offset must be 0 or more, got -5"),
        ("/quarantine?source=bogus", "no source named 'bogus'; the sources are coma"),
        ("/reconciliation?source=prodsys", "the sources are ddm, tier0"),
        ("/taskserver?hours=0", "hours must be between 1 and 48, got 0"),
        ("/plots/ingest-rate.png?hours=abc", "hours must be an integer"),
        ("/amitags/rx", "not a valid name"),
    ],
)
def test_bad_page_arguments_are_explained_with_status_400(
    client: FlaskClient, url: str, named: str
) -> None:
    response = client.get(url)

    assert response.status_code == 400
    assert named in visible_text(response)


# --- the dataset page: provenance graph, DDM, lumi blocks ---------------------------


def test_provenance_graph_has_a_node_per_dataset_and_an_edge_per_link(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    names = (ZEE_EVNT, ZEE_AOD, ZEE_DAOD, ZEE_DAOD_P4072, ZMUMU_DAOD)
    evnt, aod, daod, other, _ = (dataset_factory(name) for name in names)
    with Session.begin() as session:
        for parent, child in ((evnt, aod), (aod, daod), (aod, other)):
            session.add(ProvenanceEdge(parent_id=parent.id, child_id=child.id))

    nodes, edges = svg_graph(client.get(f"/datasets/{ZEE_AOD}"))
    daod_nodes, daod_edges = svg_graph(client.get(f"/datasets/{ZEE_DAOD}"))

    assert nodes == {name: f"/datasets/{name}" for name in names[:4]}
    assert edges == {
        (ZEE_EVNT, ZEE_AOD),
        (ZEE_AOD, ZEE_DAOD),
        (ZEE_AOD, ZEE_DAOD_P4072),
    }
    assert set(daod_nodes) == {ZEE_EVNT, ZEE_AOD, ZEE_DAOD}
    assert daod_edges == {(ZEE_EVNT, ZEE_AOD), (ZEE_AOD, ZEE_DAOD)}


def test_a_dataset_without_relatives_draws_no_graph(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_AOD)

    response = client.get(f"/datasets/{ZEE_AOD}")

    assert "No recorded parent or child." in visible_text(response)
    assert "provenance-graph" not in response.get_data(as_text=True)


def test_dataset_page_shows_ddm_replicas_and_consistency(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    daod = dataset_factory(
        ZEE_DAOD,
        n_files=2,
        total_events=2000,
        ddm_open=False,
        ddm_n_files=3,
        ddm_total_events=2000,
        ddm_consistent=False,
    )
    with Session.begin() as session:
        session.add(
            Replica(dataset_name=ZEE_DAOD, rse="CERN-PROD_DATADISK", complete=True)
        )
        session.add(
            Replica(
                dataset_name=ZEE_DAOD,
                rse="BNL-OSG2_DATADISK",
                deleted_files=1,
                deleted_bytes=2_500_000_000,
            )
        )
        session.add(
            Reconciliation(
                dataset_id=daod.id, quantity="nFiles", catalog_value=2, source_value=3
            )
        )

    text = visible_text(client.get(f"/datasets/{ZEE_DAOD}"))

    assert "DDM closed, counts differ, 1 replica" in text
    assert "nFiles 2 3 no" in text
    assert "totalEvents 2,000 2,000 yes" in text
    assert re.search(r"totalSize \(bytes\) [\d,]+ (—|[\d,]+)", text)
    assert "BNL-OSG2_DATADISK no 1 2.5 GB" in text
    assert "CERN-PROD_DATADISK yes" in text
    assert (
        "Differences with DDM quantity catalogue DDM detected resolved nFiles 2 3"
        in (text)
    )


def test_dataset_page_shows_lost_lumi_blocks_of_real_data(
    client: FlaskClient, world: World, Session: Any
) -> None:
    with Session() as session:
        lossy = session.scalars(
            select(Dataset).where(Dataset.n_lost_lumi_blocks > 0).order_by(Dataset.name)
        ).first()
        raw = session.scalars(
            select(Dataset).filter_by(run_number=lossy.run_number, data_type="RAW")
        ).one()

    text = visible_text(client.get(f"/datasets/{lossy.name}"))

    assert f"nLostLumiBlocks {lossy.n_lost_lumi_blocks} " in text
    assert f"lostLumiBlocks {lossy.lost_lumi_blocks} " in text
    assert f"compared with {raw.name}" in text
    assert f"run {lossy.run_number} " in text


# --- runs, periods and AMI tags -----------------------------------------------------


def test_runs_page_lists_the_runs_newest_first_and_filters_by_period(
    client: FlaskClient, world: World
) -> None:
    every = client.get("/runs")
    in_a = client.get("/runs", query_string={"period": "A", "project": "data15%"})

    def listed(response: TestResponse) -> list[int]:
        html = response.get_data(as_text=True)
        return [int(n) for n in re.findall(r'href="/runs/(\d+)"', html)]

    period_a = next(p for p in world.periods if p.period == "A")
    assert listed(every) == sorted((r.run_number for r in world.runs), reverse=True)
    assert listed(in_a) == sorted(period_a.runs, reverse=True)
    run = world.runs[0]
    periods = sorted(p.period for p in world.periods if run.run_number in p.runs)
    # Each period is a link: the text reads "A , A1 , AllYear".
    assert f"{run.run_number} {run.project} {' , '.join(periods)} " in (
        visible_text(every)
    )


def test_run_page_lists_its_datasets_with_their_lumi_blocks(
    client: FlaskClient, world: World, Session: Any
) -> None:
    number = world.runs[0].run_number
    with Session() as session:
        datasets = session.scalars(select(Dataset).filter_by(run_number=number)).all()

    response = client.get(f"/runs/{number}")

    assert response.status_code == 200
    assert sorted(listed_datasets(response)) == sorted(d.name for d in datasets)
    text = visible_text(response)
    assert f"nLumiBlocks {world.runs[0].n_lumi_blocks}" in text
    for dataset in datasets:
        if dataset.lost_lumi_blocks:
            lost = f"{dataset.n_lost_lumi_blocks} {dataset.lost_lumi_blocks}"
            assert lost in text


def test_unknown_run_gives_404(client: FlaskClient) -> None:
    response = client.get("/runs/999999")

    assert response.status_code == 404
    assert "no run 999999 in the catalogue" in visible_text(response)


def expected_reprocessing_errors(world: World, project: str, runs: set[int]) -> int:
    """Failed, broken or aborted tasks whose input or output is of *runs*."""

    def of_period(name: str | None) -> bool:
        parts = (name or "").split(".")
        return (
            len(parts) > 1
            and parts[0] == project
            and parts[1].isdigit()
            and int(parts[1]) in runs
        )

    return sum(
        1
        for task in world.tasks
        if task.status in FAILED_TASK
        and any(of_period(name) for name in (task.input_dataset, *task.outputs))
    )


def test_periods_page_counts_runs_and_reprocessing_errors(
    client: FlaskClient, world: World
) -> None:
    text = visible_text(client.get("/periods"))
    level_2 = visible_text(client.get("/periods", query_string={"level": "2"}))

    errors = 0
    for spec in world.periods:
        found = expected_reprocessing_errors(world, spec.project, set(spec.runs))
        errors += found
        row = (
            f"{spec.project} {spec.period} {spec.level} {spec.description} "
            f"{len(spec.runs)} {found}"
        )
        assert row in text
        assert (row in level_2) == (spec.level == 2)
    assert errors > 0  # the failed reprocessing of one run is counted


def test_ami_tag_page_shows_its_configuration_and_datasets(
    client: FlaskClient, world: World
) -> None:
    response = client.get("/amitags/r10724")

    text = visible_text(response)
    assert "transformation Reco_tf.py" in text
    assert "SWReleaseCache AtlasOffline,21.0.77" in text
    assert "conditionsTag OFLCOND-MC16-SDR-25" in text
    expected = sorted(
        d.name for d in world.datasets if "r10724" in d.name.split(".")[-1].split("_")
    )
    assert listed_datasets(response) == expected
    listing = client.get("/amitags").get_data(as_text=True)
    assert all(f'href="/amitags/{tag.tag}"' in listing for tag in world.tags)


def test_unknown_ami_tag_suggests_close_ones(client: FlaskClient, world: World) -> None:
    response = client.get("/amitags/r10725")

    assert response.status_code == 404
    assert "no AMI tag 'r10725'; did you mean 'r10724'" in visible_text(response)


# --- operations: quarantine, reconciliation, task server ---------------------------


def test_quarantine_page_lists_records_and_filters_by_source(
    client: FlaskClient, Session: Any
) -> None:
    with Session.begin() as session:
        quarantine(
            "prodsys",
            "task 10000017",
            {"taskid": "x" * 1000},
            "taskid is not an integer: <script>alert(1)</script>",
            session=session,
        )
        quarantine("ddm", "message-7", "not json", "unreadable body", session=session)

    everything = client.get("/quarantine")
    only_ddm = client.get("/quarantine", query_string={"source": "ddm"})

    text = visible_text(everything)
    assert "2 records" in text
    assert "prodsys task 10000017 taskid is not an integer" in text
    assert "more characters" in text  # the long payload is clipped
    assert "<script>alert(1)" not in everything.get_data(as_text=True)
    assert "ddm (1)" in text and "prodsys (1)" in text
    assert "message-7" in visible_text(only_ddm)
    assert "task 10000017" not in visible_text(only_ddm)


@pytest.fixture
def admin_browser(app: Flask, Session: Any) -> FlaskClient:  # noqa: N803
    """A browser logged in as the admin ada; a reader rita exists too."""
    from test_access import PASSWORD, log_in

    with Session.begin() as session:
        add_user("ada", password=PASSWORD, roles=["admin"], session=session)
        add_user("rita", password=PASSWORD, roles=["reader"], session=session)
    app.test_client_class = CheckedClient
    return log_in(app, "ada")


def test_an_admin_releases_a_quarantined_record_from_the_page(
    app: Flask, client: FlaskClient, admin_browser: FlaskClient, Session: Any
) -> None:
    from test_access import csrf_token, log_in

    with Session.begin() as session:
        kept = quarantine("tier0", "lfn-1", {"guid": "x"}, "bad GUID", session=session)
        quarantine("coma", "Z9", {"period": "Z9"}, "level = 7", session=session)
        session.flush()
        record = kept.id
    form = {"csrf_token": csrf_token(admin_browser), "reason": "fixed in Tier-0"}
    release_form = f'action="/quarantine/{record}/release"'
    before = admin_browser.get("/quarantine").get_data(as_text=True)
    as_reader = log_in(app, "rita").get("/quarantine").get_data(as_text=True)
    anonymous = client.get("/quarantine").get_data(as_text=True)

    answer = admin_browser.post(
        f"/quarantine/{record}/release", data={**form, "source": "tier0"}
    )

    after = admin_browser.get("/quarantine", query_string={"source": "tier0"})
    held_only = visible_text(admin_browser.get("/quarantine?held=1"))
    again = admin_browser.post(f"/quarantine/{record}/release", data=form)
    forged = admin_browser.post(f"/quarantine/{record}/release", data={})
    assert release_form in before and 'name="csrf_token"' in before
    assert release_form not in as_reader and release_form not in anonymous
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/quarantine?source=tier0#q{record}"
    text = visible_text(after)
    assert f"{record} " in text and "lfn-1 bad GUID; released by ada on" in text
    assert re.search(r'UTC: fixed in Tier-0 \{"guid": "x"\} released', text)
    assert release_form not in after.get_data(as_text=True)
    assert (
        "lfn-1" not in held_only and 'Z9 level = 7 {"period": "Z9"} held' in held_only
    )
    assert again.status_code == 400
    assert f"quarantined record {record} (lfn-1) is released already" in (
        visible_text(again)
    )
    assert forged.status_code == 400  # no CSRF token


def test_releasing_from_the_page_needs_an_admin(
    app: Flask, admin_browser: FlaskClient, Session: Any
) -> None:
    from test_access import csrf_token, log_in

    with Session.begin() as session:
        kept = quarantine("tier0", "lfn-1", {"guid": "x"}, "bad GUID", session=session)
        session.flush()
        record = kept.id
    reader = log_in(app, "rita")

    answer = reader.post(
        f"/quarantine/{record}/release", data={"csrf_token": csrf_token(reader)}
    )

    assert answer.status_code == 403
    assert "releasing a record from quarantine needs the role 'admin'" in (
        visible_text(answer)
    )
    with Session() as session:
        assert quarantine_count(released=False, session=session) == 1


def test_task_server_page_counts_only_the_records_still_held(
    client: FlaskClient, Session: Any
) -> None:
    with Session.begin() as session:
        for key in ("a", "b", "c"):
            quarantine("tier0", key, {}, "bad", session=session)
        session.flush()
        release_read("tier0", ["a"], session=session)

    text = visible_text(client.get("/taskserver"))

    assert "2 records held in quarantine" in text
    assert 'href="/quarantine?held=1"' in client.get("/taskserver").get_data(
        as_text=True
    )


def test_reconciliation_page_shows_expected_and_catalogue_values(
    client: FlaskClient, dataset_factory: Factory, Session: Any
) -> None:
    aod = dataset_factory(ZEE_AOD, n_files=3, ddm_n_files=4)
    with Session.begin() as session:
        session.add(
            Reconciliation(
                dataset_id=aod.id, quantity="nFiles", catalog_value=3, source_value=4
            )
        )
        session.add(
            Reconciliation(
                dataset_id=aod.id,
                quantity="totalEvents",
                catalog_value=900,
                source_value=1000,
                resolved=NOW,
            )
        )

    standing = visible_text(client.get("/reconciliation"))
    everything = visible_text(client.get("/reconciliation", query_string={"all": 1}))

    assert "1 difference standing" in standing
    assert f"{ZEE_AOD} nFiles 4 3 -1" in standing
    assert f"{ZEE_AOD} totalEvents" not in standing
    assert "2 differences" in everything
    assert f"{ZEE_AOD} totalEvents 1,000 900 -100" in everything


SQL_FAILURE = """Traceback (most recent call last):
  File "/srv/hepcat/taskserver/runs.py", line 120, in run
    task.run(context)
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked
[SQL: SELECT name FROM dataset WHERE id = ?]
(Background on this error at: https://sqlalche.me/e/20/e3q8)"""


def test_task_server_page_shows_tasks_runs_and_backlogs(
    client: FlaskClient, Session: Any
) -> None:
    with Session.begin() as session:
        session.add(
            TaskLease(
                task_name="prodsys",
                owner="host-1:4242",
                expires=NOW + dt.timedelta(hours=1),
            )
        )
        for minutes, items, backlog in ((10, 1500, 300), (5, 700, 0)):
            started = NOW - dt.timedelta(minutes=minutes)
            session.add(
                TaskRun(
                    task_name="prodsys",
                    owner="host-1:4242",
                    started=started,
                    ended=started + dt.timedelta(seconds=2.5),
                    items=items,
                    backlog=backlog,
                    outcome="ok",
                )
            )
        session.add(
            TaskRun(
                task_name="tier0",
                started=AN_HOUR_AGO,
                ended=AN_HOUR_AGO + dt.timedelta(seconds=1),
                outcome="failed",
                error=SQL_FAILURE,
            )
        )

    response = client.get("/taskserver")

    text = visible_text(response)
    assert "2 tasks" in text
    assert "prodsys host-1:4242 until" in text
    assert "ok 700 0" in text  # the last run of prodsys, its items and backlog
    assert "tier0 free" in text
    assert "failed 0 unknown" in text
    assert "host-1:4242 ok 1,500 300 2.50 s 1" in text
    assert "OperationalError: (sqlite3.OperationalError) database is locked" in text
    assert 'src="/plots/ingest-rate.png?hours=6"' in response.get_data(as_text=True)
    assert "No task server seems to be running" not in text  # prodsys runs


def test_task_server_page_says_when_no_task_server_runs(
    client: FlaskClient, Session: Any
) -> None:
    with Session.begin() as session:
        session.add(TaskLease(task_name="prodsys"))  # freed when it stopped
        session.add(
            TaskRun(
                task_name="prodsys",
                started=AN_HOUR_AGO,
                ended=AN_HOUR_AGO + dt.timedelta(seconds=2),
                outcome="ok",
            )
        )

    text = visible_text(client.get("/taskserver"))

    assert (
        "No task server seems to be running: no task runs now, and the last run" in text
    )


def test_ingest_rates_sum_the_items_per_minute(Session: Any) -> None:
    minute = (NOW - dt.timedelta(minutes=3)).replace(second=0, microsecond=0)
    with Session.begin() as session:
        for seconds, items in ((10, 500), (40, 250)):
            ended = minute + dt.timedelta(seconds=seconds)
            session.add(
                TaskRun(
                    task_name="prodsys",
                    started=ended - dt.timedelta(seconds=5),
                    ended=ended,
                    items=items,
                    outcome="ok",
                )
            )
        session.add(TaskRun(task_name="tier0", started=NOW - dt.timedelta(days=2)))

    with Session() as session:
        rates = ingest_rates(NOW - dt.timedelta(hours=1), session=session)

    assert rates == {"prodsys": {minute: 750}}


def test_every_page_is_linked_from_the_navigation(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    nav = html[html.index("<nav>") : html.index("</nav>")]

    for path in (
        "/",
        "/datasets",
        "/runs",
        "/periods",
        "/amitags",
        "/taskserver",
        "/quarantine",
        "/reconciliation",
    ):
        assert f'href="{path}"' in nav
        assert client.get(path).status_code == 200
