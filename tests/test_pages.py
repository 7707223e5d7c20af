"""The web pages, as a physicist uses them: search, sort, page through and
open datasets, and meet clear errors instead of tracebacks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

from catalog.config import load_config
from catalog.db import create_catalog_engine
from catalog.models import File, ProvenanceEdge
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
