"""The pages say what the other surfaces say: a NUL character in a URL is a
400 naming the argument (as on the JSON API), the search table's columns
show their values as AMI prints them and sort as the API does, and the
search form can take every optional column away.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_pages import CheckedClient, listed_datasets, visible_text
from werkzeug.test import TestResponse

from catalog.config import load_config
from catalog.models import Container, ContainerMember
from web.app import create_app

Factory = Callable[..., Any]

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZMUMU = "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu"
WMUNU = "mc16_13TeV.361101.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Wplusmunu"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZMUMU_EVNT = f"{ZMUMU}.evgen.EVNT.e3601"
WMUNU_EVNT = f"{WMUNU}.evgen.EVNT.e3601"
ZEE_DAOD = f"{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"
DATA_DAOD = "data15_13TeV.00267073.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
DATA_RAW = "data15_13TeV.00267073.physics_Main.daq.RAW"
PERIOD_A = "data15_13TeV.periodA.physics_Main.PhysCont.DAOD_PHYS.grp15_v01_p4072"
ALL_YEAR = "data15_13TeV.AllYear.physics_Main.PhysCont.DAOD_PHYS.grp15_v01_p4072"


@pytest.fixture
def app(catalog_engine: Any, tmp_path: Path) -> Flask:
    config = load_config(env={}, data_dir=str(tmp_path))
    made = create_app(config, engine=catalog_engine)
    made.test_client_class = CheckedClient
    return made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def table_cells(response: TestResponse, field: str) -> dict[str, str]:
    """The text of the column *field* of the page's dataset table, by dataset."""
    html = response.get_data(as_text=True).replace("<wbr>", "")
    table = html[html.index('<table class="grid datasets">') :]
    headers = re.findall(r'title="sort by (\w+)"', table)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL) for row in rows]
    position = headers.index(field)
    return {
        re.sub("<[^>]+>", "", row[0]): re.sub("<[^>]+>", "", row[position]).strip()
        for row in cells
    }


# --- a NUL character in the URL ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "argument"),
    [
        ("/datasets/a%00b", "name"),
        (f"/datasets/{ZEE_EVNT}?files_offset=%00", "files_offset"),
        ("/datasets?q=Zee%00", "q"),
        ("/datasets?dataType=AOD%00", "dataType"),
        ("/runs?project=%00", "project"),
        ("/runs?period=A%00", "period"),
        ("/periods?project=data15%00", "project"),
        ("/skims?owner=%00", "owner"),
        ("/skims?dataset=%00", "dataset"),
        ("/tags/%00", "name"),
        ("/tags/a%00/tag.root", "name"),
        ("/amitags?type=%00", "type"),
        ("/amitags/r%00", "tag"),
        ("/quarantine?source=%00", "source"),
        ("/reconciliation?source=%00", "source"),
        ("/admin/users/a%00b", "login"),
        ("/plots/ingest-rate.png?hours=%00", "hours"),
    ],
)
def test_a_nul_character_in_a_page_url_is_a_400_naming_the_argument(
    client: FlaskClient, dataset_factory: Factory, url: str, argument: str
) -> None:
    dataset_factory(ZEE_EVNT)

    response = client.get(url)

    assert response.status_code == 400
    text = visible_text(response)
    assert "InvalidInput" in text
    assert f"{argument} must not contain NUL characters" in text


def test_a_nul_character_in_a_form_field_is_a_400_naming_it(
    client: FlaskClient,
) -> None:
    from test_access import csrf_token

    form = {"login": "a\x00b", "password": "x", "csrf_token": csrf_token(client)}

    response = client.post("/login", data=form)

    assert response.status_code == 400
    assert "login must not contain NUL characters" in visible_text(response)


def test_the_api_keeps_its_own_answer_to_a_nul_character(client: FlaskClient) -> None:
    path = client.get("/api/v1/datasets/a%00b")
    argument = client.get("/api/v1/datasets?name=a%00b")

    assert path.status_code == argument.status_code == 400
    assert path.json["error"]["type"] == "InvalidInput"
    assert path.json["error"]["message"] == "name must not contain NUL characters"
    assert argument.json["error"]["type"] == "ValidationError"


def test_an_unknown_page_with_a_nul_character_is_still_a_404(
    client: FlaskClient,
) -> None:
    response = client.get("/nowhere?q=%00")

    assert response.status_code == 404


# --- the column inContainer ---------------------------------------------------------


@pytest.fixture
def containers(
    Session: sessionmaker[OrmSession],  # noqa: N803
    dataset_factory: Factory,
) -> None:
    """DATA_DAOD in two containers, ZEE_DAOD in none."""
    dataset_factory(DATA_DAOD)
    dataset_factory(ZEE_DAOD)
    with Session.begin() as session:
        for name in (PERIOD_A, ALL_YEAR):
            container = Container(name=name, scope="data15_13TeV")
            container.members.append(ContainerMember(child_name=DATA_DAOD))
            session.add(container)


@pytest.mark.usefixtures("containers")
def test_the_column_in_container_names_the_first_container(
    client: FlaskClient,
) -> None:
    response = client.get("/datasets", query_string={"columns": "inContainer"})

    # As SearchQuery shows it: the first container holding it, by name.
    assert table_cells(response, "inContainer") == {DATA_DAOD: ALL_YEAR, ZEE_DAOD: ""}


# --- where NULLs sort ---------------------------------------------------------------


@pytest.fixture
def cross_sections(dataset_factory: Factory) -> None:
    """Three MC samples with a cross-section, real data without one; two
    datasets without a completion. NULLs tie, in the order added (the last
    added first in a descending sort).
    """
    dataset_factory(ZEE_EVNT, cross_section=1.9012, completion=50.0)
    dataset_factory(ZMUMU_EVNT, cross_section=1.8977)
    dataset_factory(WMUNU_EVNT, cross_section=11.61, completion=70.0)
    dataset_factory(DATA_RAW, source="tier0", completion=90.0)
    dataset_factory(DATA_DAOD)


def api_names(client: FlaskClient, sort: str) -> list[str]:
    response = client.get("/api/v1/datasets", query_string={"sort": sort})
    assert response.status_code == 200, response.json
    return [item["logicalDatasetName"] for item in response.json["items"]]


@pytest.mark.usefixtures("cross_sections")
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("crossSection", [ZMUMU_EVNT, ZEE_EVNT, WMUNU_EVNT, DATA_RAW, DATA_DAOD]),
        ("-crossSection", [WMUNU_EVNT, ZEE_EVNT, ZMUMU_EVNT, DATA_DAOD, DATA_RAW]),
        ("completion", [ZEE_EVNT, WMUNU_EVNT, DATA_RAW, ZMUMU_EVNT, DATA_DAOD]),
        ("-completion", [DATA_RAW, WMUNU_EVNT, ZEE_EVNT, DATA_DAOD, ZMUMU_EVNT]),
    ],
)
def test_the_search_page_sorts_nulls_last_as_the_api_does(
    client: FlaskClient, sort: str, expected: list[str]
) -> None:
    response = client.get("/datasets", query_string={"sort": sort})

    assert listed_datasets(response) == expected
    assert api_names(client, sort) == expected


@pytest.mark.usefixtures("containers")
@pytest.mark.parametrize("sort", ["inContainer", "-inContainer"])
def test_datasets_in_no_container_come_last_either_way(
    client: FlaskClient, sort: str
) -> None:
    response = client.get("/datasets", query_string={"sort": sort})

    assert listed_datasets(response) == [DATA_DAOD, ZEE_DAOD]


# --- floating-point numbers as printed ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("crossSection", 1.897761287, "1.897761287"),
        ("crossSection", 2.749825e-05, "2.749825e-05"),
        ("crossSection", 0.1 + 0.2, "0.3"),
        ("completion", 20.66, "20.66"),  # its unit, %, in the header
        ("genFiltEff", 0.123456789012, "0.123456789012"),
    ],
)
def test_a_number_copied_from_the_search_page_finds_its_dataset(
    client: FlaskClient, dataset_factory: Factory, field: str, value: float, shown: str
) -> None:
    attribute = {"crossSection": "cross_section", "genFiltEff": "gen_filt_eff"}
    dataset_factory(ZEE_EVNT, **{attribute.get(field, field): value})
    dataset_factory(ZMUMU_EVNT, **{attribute.get(field, field): round(value, 1) + 1})
    page = client.get("/datasets", query_string={"columns": field})
    copied = table_cells(page, field)[ZEE_EVNT]

    found = client.get("/datasets", query_string={field: copied})

    assert copied == shown
    assert listed_datasets(found) == [ZEE_EVNT]


def test_the_dataset_page_shows_the_cross_section_as_ami_prints_it(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_EVNT, cross_section=1.897761287, completion=20.66)

    text = visible_text(client.get(f"/datasets/{ZEE_EVNT}"))

    assert "crossSection 1.897761287 nb" in text
    assert "completion 20.66 %" in text


# --- the columns of the search form -------------------------------------------------


class _Form(HTMLParser):
    """What the search form sends: its named inputs and selects, checked
    checkboxes only, disabled ones never.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.inside = False
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form" and "search" in found.get("class", "").split():
            self.inside = True
        if not self.inside or "name" not in found or "disabled" in found:
            return
        if tag == "select":
            self.fields.append((found["name"], ""))  # its first, empty option
        elif tag == "input" and (found.get("type") != "checkbox" or "checked" in found):
            self.fields.append((found["name"], found.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def submitted(response: TestResponse, *, untick: str) -> list[tuple[str, str]]:
    """The arguments the search form on *response* sends once every
    checkbox named *untick* has been unticked.
    """
    form = _Form()
    form.feed(response.get_data(as_text=True))
    return [(name, value) for name, value in form.fields if name != untick]


def column_headers(response: TestResponse) -> list[str]:
    return re.findall(r'title="sort by (\w+)"', response.get_data(as_text=True))


def test_unticking_every_optional_column_leaves_the_name_alone(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_EVNT, n_files=3, atlas_release="19.2.3.7")
    shown = client.get("/datasets?q=Zee&columns=nFiles,AtlasRelease")
    arguments = submitted(shown, untick="column")

    response = client.get("/datasets", query_string=arguments, follow_redirects=True)

    assert column_headers(shown) == ["logicalDatasetName", "nFiles", "AtlasRelease"]
    assert "columns=logicalDatasetName" in response.request.url
    assert column_headers(response) == ["logicalDatasetName"]
    assert listed_datasets(response) == [ZEE_EVNT]


def test_the_form_offers_every_column_it_can_show(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_EVNT)
    shown = client.get("/datasets?columns=inContainer,nFiles")
    arguments = submitted(shown, untick="")

    response = client.get("/datasets", query_string=arguments, follow_redirects=True)

    assert column_headers(response) == ["logicalDatasetName", "nFiles", "inContainer"]
