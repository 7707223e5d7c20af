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
from markupsafe import escape
from sqlalchemy import Engine
from test_ami import CATALOG, post, search
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


# At the ends of time: the first microsecond of year 1, the last of year 9999,
# and a time between. A time to the day, hour, minute or second at the end of
# year 9999 stands for all of it up to that last microsecond, the latest time
# Python and every database hold.
FIRST = "data18_13TeV.00348897.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
MIDDLE = "data18_13TeV.00348898.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
LAST = "data18_13TeV.00348899.physics_Main.deriv.DAOD_PHYS.r11969_p4016"
ENDS = {
    FIRST: dt.datetime.min.replace(tzinfo=dt.UTC),
    MIDDLE: SECOND,
    LAST: dt.datetime.max.replace(tzinfo=dt.UTC),
}


@pytest.fixture
def ends_app(
    catalog_engine: Engine, tmp_path: Path, dataset_factory: Callable[..., Any]
) -> Flask:
    for name, created in ENDS.items():
        dataset_factory(name, created=created)
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("created = '9999-12-31'", [LAST]),
        ("created = '9999-12-31 23:59:59'", [LAST]),
        ("created = '9999-12-31T23:59Z'", [LAST]),
        ("created = '9999-12-31T23:59:59.999999'", [LAST]),
        ("created <= '9999-12-31'", [FIRST, MIDDLE, LAST]),
        ("created > '9999-12-31'", []),
        ("created < '9999-12-31 23:59:59'", [FIRST, MIDDLE]),
        ("created IN ('9999-12-31 23', '0001-01-01')", [FIRST, LAST]),
        ("created = '9999-12-31T23:59:59+00:00'", [LAST]),
        ("created = '0001-01-01'", [FIRST]),
        ("created = '0001-01-01 00:00:00.000000'", [FIRST]),
        ("created < '0001-01-01'", []),
        ("created >= '0001-01-01'", [FIRST, MIDDLE, LAST]),
        ("created > '0001-01-01 00:00:00'", [MIDDLE, LAST]),
        ("lastModified > '9999-12-31'", []),
        ("lastModified <= '9999-12-31'", [FIRST, MIDDLE, LAST]),
    ],
)
def test_a_time_at_the_end_of_year_9999_or_the_start_of_year_1_is_compared(
    ends_app: Flask, condition: str, expected: list[str]
) -> None:
    assert found(ends_app.test_client(), condition) == sorted(expected)


def test_the_api_and_the_search_page_find_the_last_second_of_year_9999(
    ends_app: Flask,
) -> None:
    value = "9999-12-31T23:59:59Z"
    response = ends_app.test_client().get(
        "/api/v1/datasets", query_string={"created": value}
    )
    ends_app.test_client_class = CheckedClient
    page = ends_app.test_client().get("/datasets", query_string={"created": value})

    assert response.status_code == 200, response.json
    assert [item["logicalDatasetName"] for item in response.json["items"]] == [LAST]
    assert listed_datasets(page) == [LAST]


# A time whose offset from UTC takes it before year 1 or after year 9999.
BEYOND = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"]


@pytest.mark.parametrize("value", BEYOND)
def test_a_time_beyond_the_years_1_to_9999_in_utc_is_refused_by_mql(
    ends_app: Flask, value: str
) -> None:
    mql = f"SELECT logicalDatasetName WHERE created >= '{value}'"
    command = f'SearchQuery {CATALOG} -entity="dataset" -mql="{mql}"'

    body = post(ends_app.test_client(), command)

    assert '<error type="InvalidInput">' in body
    assert (
        f"created is out of range (years 1 to 9999 in UTC): {value!r} (at "
        "position 44)]]></error>"
    ) in body


@pytest.mark.parametrize("value", BEYOND)
def test_a_time_beyond_the_years_1_to_9999_in_utc_is_refused_by_the_api(
    ends_app: Flask, value: str
) -> None:
    response = ends_app.test_client().get(
        "/api/v1/datasets", query_string={"created": value}
    )
    ends_app.test_client_class = CheckedClient
    page = ends_app.test_client().get("/datasets", query_string={"created": value})

    message = f"created is out of range (years 1 to 9999 in UTC): {value!r}"
    assert response.status_code == 400
    assert response.json["error"]["type"] == "InvalidInput"
    assert response.json["error"]["message"] == message
    assert page.status_code == 400
    assert escape(message) in page.get_data(as_text=True)
