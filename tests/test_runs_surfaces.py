"""Runs and periods as every surface shows them: a run number past what the
catalogue can hold, and project patterns, answered alike by the pages, the
JSON API and AMI on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyAMI.object
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_pages import visible_text

from catalog.models import Period, PeriodRun, Run

API = "/api/v1"
# Runs of two projects, and the periods that hold them. COMA may list in a
# period a run of another project (300800 in A1), or one the catalogue does
# not know (999999): neither is a run of that period.
RUNS = {267073: "data15_13TeV", 267152: "data15_13TeV", 300800: "data16_13TeV"}
PERIODS = {
    ("data15_13TeV", "A"): [267073, 267152],
    ("data16_13TeV", "A"): [300800],
    ("data15_13TeV", "A1"): [267152, 300800, 999999],
    ("data15_13TeV", "b"): [267073],
}


@pytest.fixture
def client(
    Session: sessionmaker[OrmSession],  # noqa: N803
    plain_client: FlaskClient,
) -> FlaskClient:
    with Session.begin() as session:
        session.add_all(Run(run_number=n, project=p) for n, p in RUNS.items())
        for (project, name), numbers in PERIODS.items():
            period = Period(project=project, name=name, level=len(name))
            period.runs = [PeriodRun(run_number=n) for n in numbers]
            session.add(period)
    return plain_client


# --- a run number past the column's range ----------------------------------------


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30])
@pytest.mark.parametrize("prefix", ["", API])
def test_a_run_number_out_of_range_is_a_bad_request_on_page_and_api(
    client: FlaskClient, prefix: str, number: int
) -> None:
    response = client.get(f"{prefix}/runs/{number}")

    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert f"runNumber is out of range: {number}" in text
    assert "InvalidInput" in text


@pytest.mark.parametrize("number", ["abc", "-1", "1.5"])
def test_a_run_number_that_is_no_whole_number_is_the_apis_400_on_the_page(
    client: FlaskClient, number: str
) -> None:
    page = client.get(f"/runs/{number}")
    api = client.get(f"{API}/runs/{number}")

    message = api.json["error"]["message"]
    assert page.status_code == api.status_code == 400
    assert message == f"runNumber must be a whole number, got '{number}'"
    assert f"400 InvalidInput {message}" in visible_text(page)


# --- project patterns ignore letter case on every database ------------------------


def selection(project: str | None, period: str | None) -> dict[str, str]:
    """The query arguments of a project and a period, where given."""
    given = {"project": project, "period": period}
    return {name: value for name, value in given.items() if value is not None}


def runs_of_page(
    client: FlaskClient, project: str | None, period: str | None = None
) -> list[int]:
    html = client.get("/runs", query_string=selection(project, period)).get_data(True)
    return [int(n) for n in re.findall(r'href="/runs/(\d+)"', html)]


def runs_of_api(
    client: FlaskClient, project: str | None, period: str | None = None
) -> list[int]:
    response = client.get(f"{API}/runs", query_string=selection(project, period))
    return [item["runNumber"] for item in response.json["items"]]


def runs_of_ami(
    client: FlaskClient, project: str | None, period: str | None = None
) -> list[int]:
    arguments = {"projectName": project, "period": period}
    command = "AMIListRuns" + "".join(
        f' -{name}="{value}"' for name, value in arguments.items() if value is not None
    )
    body = client.post("/AMI/FrontEnd", data={"Command": command}).get_data(True)
    found = pyAMI.object.DOMObject(body).get_rows("runs")
    return [int(dict(row)["runNumber"]) for row in found]


def periods_of_page(client: FlaskClient, project: str) -> list[str]:
    html = client.get("/periods", query_string={"project": project}).get_data(True)
    return re.findall(r"<tr>\s*<td>([^<]+)</td>", html)


def periods_of_api(client: FlaskClient, project: str) -> list[str]:
    response = client.get(f"{API}/periods", query_string={"project": project})
    return [item["projectName"] for item in response.json["items"]]


def periods_of_ami(client: FlaskClient, project: str) -> list[str]:
    command = f'AMIListDataPeriods -projectName="{project}"'
    body = client.post("/AMI/FrontEnd", data={"Command": command}).get_data(True)
    found = pyAMI.object.DOMObject(body).get_rows("periods")
    return [dict(row)["projectName"] for row in found]


RUN_SURFACES = [runs_of_page, runs_of_api, runs_of_ami]
PERIOD_SURFACES = [periods_of_page, periods_of_api, periods_of_ami]
Surface = Callable[..., list]  # type: ignore[type-arg]


@pytest.mark.parametrize("runs_of", RUN_SURFACES)
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("DATA15%", [267152, 267073]),
        ("Data15_13tev%", [267152, 267073]),
        ("%13TEV", [300800, 267152, 267073]),
    ],
)
def test_a_run_project_pattern_ignores_letter_case(
    client: FlaskClient, runs_of: Surface, pattern: str, expected: list[int]
) -> None:
    assert runs_of(client, pattern) == expected


@pytest.mark.parametrize("periods_of", PERIOD_SURFACES)
def test_a_period_project_pattern_ignores_letter_case(
    client: FlaskClient, periods_of: Surface
) -> None:
    assert periods_of(client, "DATA16%") == ["data16_13TeV"]


@pytest.mark.parametrize("runs_of", RUN_SURFACES)
def test_a_project_name_without_wildcard_is_exact_on_every_database(
    client: FlaskClient, runs_of: Surface
) -> None:
    # As MQL's "=" on text: letter case included, also on MariaDB.
    assert runs_of(client, "data16_13TeV") == [300800]
    assert runs_of(client, "DATA16_13TEV") == []


# --- the runs of a period ---------------------------------------------------------


@pytest.mark.parametrize("runs_of", RUN_SURFACES)
@pytest.mark.parametrize(
    ("project", "period", "expected"),
    [
        (None, "A", [300800, 267152, 267073]),
        (None, "a", [300800, 267152, 267073]),
        ("data15_13TeV", "A", [267152, 267073]),
        ("DATA16%", "a", [300800]),
        (None, "A1", [267152]),
        ("%13tev", "a1", [267152]),
        ("data16_13TeV", "A1", []),
        (None, "B", [267073]),
        ("DATA15_13TEV", "A", []),
        (None, "Z", []),
    ],
)
def test_the_runs_of_a_period_are_those_it_lists_in_their_project(
    client: FlaskClient,
    runs_of: Surface,
    project: str | None,
    period: str,
    expected: list[int],
) -> None:
    assert runs_of(client, project, period) == expected
