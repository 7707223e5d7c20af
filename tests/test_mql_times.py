"""A time given to the second, as AMI prints times, stands for that whole
second: ``created = '2026-12-07 10:22:43'`` finds the dataset created at
10:22:43.080597, through MQL (AMI SearchQuery), the JSON API and the search
page, on SQLite, PostgreSQL and MariaDB. A time with a fraction compares
exactly; a time given to the minute, hour or day stands for all of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from test_ami import search
from test_pages import CheckedClient, listed_datasets

from catalog.config import load_config
from web.app import create_app

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
ZMUMU = "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.evgen.EVNT.e3601"
WMUNU = "mc16_13TeV.361101.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Wplusmunu.evgen.EVNT.e3601"
SECOND = dt.datetime(2026, 12, 7, 10, 22, 43, tzinfo=dt.UTC)
CREATED = {
    WMUNU: SECOND - dt.timedelta(microseconds=1),  # the second before
    ZEE: SECOND + dt.timedelta(microseconds=80597),
    ZMUMU: SECOND + dt.timedelta(seconds=1),  # the second after
}


@pytest.fixture
def app(
    catalog_engine: Engine, tmp_path: Path, dataset_factory: Callable[..., Any]
) -> Flask:
    for name, created in CREATED.items():
        dataset_factory(name, created=created)
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def found(client: FlaskClient, condition: str) -> list[str]:
    """The datasets the MQL *condition* finds through AMI SearchQuery."""
    mql = f"SELECT logicalDatasetName WHERE {condition}"
    return sorted(row["logicalDatasetName"] for row in search(client, "dataset", mql))


def test_a_time_copied_from_ami_finds_its_dataset(client: FlaskClient) -> None:
    mql = f"SELECT created WHERE logicalDatasetName = '{ZEE}'"
    copied = search(client, "dataset", mql)[0]["created"]

    assert copied == "2026-12-07 10:22:43"
    assert found(client, f"created = '{copied}'") == [ZEE]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("created = '2026-12-07 10:22:43'", [ZEE]),
        ("'2026-12-07 10:22:43' = created", [ZEE]),
        ("created = '2026-12-07T10:22:43Z'", [ZEE]),
        ("created = '2026-12-07T12:22:43+02:00'", [ZEE]),
        ("created != '2026-12-07 10:22:43'", [WMUNU, ZMUMU]),
        ("created <= '2026-12-07 10:22:43'", [WMUNU, ZEE]),
        ("created > '2026-12-07 10:22:43'", [ZMUMU]),
        ("created < '2026-12-07 10:22:43'", [WMUNU]),
        ("created >= '2026-12-07 10:22:43'", [ZEE, ZMUMU]),
        ("'2026-12-07 10:22:43' >= created", [WMUNU, ZEE]),
        ("created IN ('2026-12-07 10:22:43', '2026-12-07 10:22:44')", [ZEE, ZMUMU]),
        ("created NOT IN ('2026-12-07 10:22:43')", [WMUNU, ZMUMU]),
    ],
)
def test_a_time_to_the_second_stands_for_the_whole_second(
    client: FlaskClient, condition: str, expected: list[str]
) -> None:
    assert found(client, condition) == sorted(expected)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("created = '2026-12-07 10:22:43.080597'", [ZEE]),
        ("created = '2026-12-07 10:22:43.08'", []),
        ("created = '2026-12-07 10:22:43.000000'", []),
        ("created = '2026-12-07 10:22:44.000000'", [ZMUMU]),
        ("created <= '2026-12-07 10:22:43.080596'", [WMUNU]),
        ("created < '2026-12-07 10:22:43.080597'", [WMUNU]),
        ("created <= '2026-12-07 10:22:43.080597'", [WMUNU, ZEE]),
        ("created > '2026-12-07 10:22:43.080597'", [ZMUMU]),
        ("created IN ('2026-12-07 10:22:43.080597')", [ZEE]),
    ],
)
def test_a_time_with_a_fraction_compares_exactly(
    client: FlaskClient, condition: str, expected: list[str]
) -> None:
    assert found(client, condition) == sorted(expected)


@pytest.mark.parametrize(
    "value", ["2026-12-07 10:22:43", "2026-12-07T10:22:43Z", "2026-12-07T10:22:43"]
)
def test_the_api_finds_a_time_copied_to_the_second(
    client: FlaskClient, value: str
) -> None:
    response = client.get("/api/v1/datasets", query_string={"created": value})

    assert response.status_code == 200, response.json
    assert [item["logicalDatasetName"] for item in response.json["items"]] == [ZEE]


def test_the_api_compares_a_time_with_a_fraction_exactly(client: FlaskClient) -> None:
    exact = client.get(
        "/api/v1/datasets", query_string={"created": "2026-12-07T10:22:43.080597Z"}
    )
    other = client.get(
        "/api/v1/datasets", query_string={"created": "2026-12-07T10:22:43.5Z"}
    )

    assert [item["logicalDatasetName"] for item in exact.json["items"]] == [ZEE]
    assert other.json["items"] == []


def test_the_search_page_finds_a_time_copied_to_the_second(app: Flask) -> None:
    app.test_client_class = CheckedClient  # no traceback nor SQL on a page
    page = app.test_client().get(
        "/datasets", query_string={"created": "2026-12-07 10:22:43"}
    )

    assert listed_datasets(page) == [ZEE]


# Around midnight: the last microsecond of 6 December, and three times of 7 December.
LATE = "data18_13TeV.00348885.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
EARLY = "data18_13TeV.00348894.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
NOON = "data18_13TeV.00348895.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
NIGHT = "data18_13TeV.00348896.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
DAYS = {
    LATE: dt.datetime(2026, 12, 6, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    EARLY: dt.datetime(2026, 12, 7, 0, 0, 0, tzinfo=dt.UTC),
    NOON: dt.datetime(2026, 12, 7, 12, 30, 15, 500_000, tzinfo=dt.UTC),
    NIGHT: dt.datetime(2026, 12, 7, 23, 59, 59, 999_999, tzinfo=dt.UTC),
}


@pytest.fixture
def days_app(
    catalog_engine: Engine, tmp_path: Path, dataset_factory: Callable[..., Any]
) -> Flask:
    for name, created in DAYS.items():
        dataset_factory(name, created=created)
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("created = '2026-12-07'", [EARLY, NOON, NIGHT]),
        ("created = '20261207'", [EARLY, NOON, NIGHT]),
        ("created != '2026-12-07'", [LATE]),
        ("created < '2026-12-07'", [LATE]),
        ("created <= '2026-12-07'", [LATE, EARLY, NOON, NIGHT]),
        ("created > '2026-12-06'", [EARLY, NOON, NIGHT]),
        ("created >= '2026-12-08'", []),
        ("created IN ('2026-12-06', '2026-12-08')", [LATE]),
        ("created = '2026-12-07 12'", [NOON]),
        ("created = '2026-12-07T12:30'", [NOON]),
        ("created = '2026-12-07 1230'", [NOON]),
        ("created = '2026-12-07T13:30+01:00'", [NOON]),
        ("created > '2026-12-07 12:30'", [NIGHT]),
        ("created <= '2026-12-07 12:29'", [LATE, EARLY]),
        ("created = '2026-12-07 23:59'", [NIGHT]),
        ("created = '2026-12-07 00:00'", [EARLY]),
        ("created = '2026-12-07 00:00:00.000000'", [EARLY]),
    ],
)
def test_a_time_to_the_minute_hour_or_day_stands_for_all_of_it(
    days_app: Flask, condition: str, expected: list[str]
) -> None:
    assert found(days_app.test_client(), condition) == sorted(expected)


def test_the_api_and_the_search_page_find_a_day(days_app: Flask) -> None:
    response = days_app.test_client().get(
        "/api/v1/datasets", query_string={"created": "2026-12-07"}
    )
    days_app.test_client_class = CheckedClient
    page = days_app.test_client().get(
        "/datasets", query_string={"created": "2026-12-07"}
    )

    assert response.status_code == 200, response.json
    named = sorted(item["logicalDatasetName"] for item in response.json["items"])
    assert named == sorted([EARLY, NOON, NIGHT])
    assert sorted(listed_datasets(page)) == sorted([EARLY, NOON, NIGHT])
