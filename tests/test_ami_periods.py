"""``AMIListDataPeriods -createdSince``: the periods whose data began since
then (the first start of their runs), not those hepcat happened to read
since then, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import rows

from catalog.models import Period
from ingest.world import build_world

# The simulated world's data15 runs start on 2015-06-01 (267073, periods A,
# A1, AllYear), 2015-06-10 (267639, A2), 2015-07-31 (276262, D, D3),
# 2015-08-01 and 2015-10-29 (284500, J, J6).
COMMAND = 'AMIListDataPeriods -projectName="data15%" -createdSince="{}"'


@pytest.fixture
def client(seeded_world: None, plain_client: FlaskClient) -> FlaskClient:
    return plain_client


def periods(client: FlaskClient, since: str) -> list[str]:
    return [row["period"] for row in rows(client, COMMAND.format(since), "periods")]


def test_periods_of_a_year_are_not_created_the_next(client: FlaskClient) -> None:
    assert periods(client, "2016-01-01 00:00:00") == []


def test_periods_created_since_are_those_whose_data_began_since(
    client: FlaskClient,
) -> None:
    # By level, then name.
    assert periods(client, "2015-07-01 00:00:00") == ["D", "J", "D3", "J6"]
    assert periods(client, "2015-06-10 09:00:00") == ["D", "J", "A2", "D3", "J6"]


def test_the_periods_created_since_count_all_their_runs(client: FlaskClient) -> None:
    found = rows(client, COMMAND.format("2015-07-01 00:00:00"), "periods")

    assert {row["period"]: int(row["nRuns"]) for row in found} == {
        "D": 2,
        "J": 1,
        "D3": 2,
        "J6": 1,
    }


def test_what_pyami_asks_lists_every_period(client: FlaskClient) -> None:
    every = periods(client, "2009-01-01 00:00:00")

    assert every == ["A", "D", "J", "A1", "A2", "D3", "J6", "AllYear"]


def test_a_period_without_known_runs_counts_from_when_hepcat_read_it(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    # COMA may list a period before its runs: it has no data time yet.
    with Session.begin() as session:
        session.add(Period(project="data15_13TeV", name="K", level=1))

    assert periods(client, "2016-01-01 00:00:00") == ["K"]
    assert "K" in periods(client, "2009-01-01 00:00:00")


def test_a_period_that_began_at_the_time_asked_for_is_listed(
    sources: Any,
    ingest: Callable[[], Any],
    plain_client: FlaskClient,
) -> None:
    # Runs written as COMA's ingester writes them; on SQLite their whole
    # seconds are stored as "2015-06-01 09:00:00", without the ".000000"
    # of a time to compare with, which made the first sort before it.
    sources.coma.add_world(build_world())
    ingest()

    every = ["A", "D", "J", "A1", "A2", "D3", "J6", "AllYear"]
    later = ["D", "J", "A2", "D3", "J6"]
    assert periods(plain_client, "2015-06-01 09:00:00") == every
    assert periods(plain_client, "2015-06-01 09:00:00.000001") == later
