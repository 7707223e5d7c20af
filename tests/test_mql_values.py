"""How MQL values compare, the same on SQLite, PostgreSQL and MariaDB: a
period value holds one period, ``LIKE`` on a field that is not text reads
the text the answers print, ``= NULL`` is ``IS NULL`` between literals too,
and the SELECT list names each of its fields once.
"""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import CATALOG, post, search

from catalog.models import Dataset
from web.ami.reply import text_of


@pytest.fixture
def client(seeded_world: None, plain_client: FlaskClient) -> FlaskClient:
    """A client on the simulated world that lets SQL through: MQL's answers
    echo their SELECT.
    """
    return plain_client


def names(client: FlaskClient, condition: str) -> list[str]:
    mql = f"SELECT logicalDatasetName WHERE {condition}"
    return sorted(row["logicalDatasetName"] for row in search(client, "dataset", mql))


def error(client: FlaskClient, mql: str) -> tuple[str, str]:
    """The type and message of the error the query *mql* answers."""
    command = f'SearchQuery {CATALOG} -entity="dataset" -mql="{mql}"'
    body = post(client, command)
    match = re.search(r'<error type="(\w+)"><!\[CDATA\[(.*)\]\]></error>', body, re.S)
    assert match is not None, body
    return match.group(1), match.group(2)


def all_names(Session: sessionmaker[OrmSession]) -> list[str]:  # noqa: N803
    """Every dataset a query finds (the world's are all valid)."""
    with Session() as session:
        query = select(Dataset.name).where(Dataset.ami_status == "VALID")
        return sorted(session.scalars(query))


# --- a period value is one period ---------------------------------------------


@pytest.mark.parametrize(
    ("condition", "hint"),
    [
        ("period = 'D,D3'", "period IN ('D', 'D3')"),
        ("period IN ('AllYear,J')", "period IN ('AllYear', 'J')"),
        ("period != 'A,A1'", "period IN ('A', 'A1')"),
        ("period LIKE 'A,A%'", "period LIKE 'A' OR period LIKE 'A%'"),
    ],
)
def test_a_period_value_with_a_comma_is_refused(
    client: FlaskClient, condition: str, hint: str
) -> None:
    # The world's datasets of D and D3 have the periods 'AllYear,D,D3':
    # the comma matched across two neighbouring periods of the list.
    kind, message = error(client, f"SELECT logicalDatasetName WHERE {condition}")

    assert kind == "InvalidInput"
    assert "a period name holds no comma" in message
    assert f"ask for several with {hint}" in message
    assert re.search(r"at position \d+", message)


def test_a_period_filter_with_a_comma_is_refused_by_the_api(
    client: FlaskClient,
) -> None:
    response = client.get("/api/v1/datasets?period=D,D3")

    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "InvalidInput" in body
    assert "a period name holds no comma, got 'D,D3'" in body


# --- a value that does not fit its field --------------------------------------


def test_a_value_out_of_range_is_named_by_its_field(client: FlaskClient) -> None:
    mql = "SELECT logicalDatasetName WHERE runNumber = 99999999999"

    kind, message = error(client, mql)

    # "must be an integer" is test_mql.py's test_a_value_that_does_not_fit_is_named.
    assert kind == "InvalidInput"
    assert message == "runNumber is out of range: 99999999999 (at position 45)"


# --- LIKE on a field that is not text -----------------------------------------


@pytest.fixture
def consistency(client: FlaskClient, Session: sessionmaker[OrmSession]) -> list[str]:  # noqa: N803
    """Sets ddmConsistent true on two datasets and false on one; returns
    the two.
    """
    first, second, third = all_names(Session)[:3]
    with Session.begin() as session:
        for name, value in ((first, True), (second, True), (third, False)):
            statement = update(Dataset).where(Dataset.name == name)
            session.execute(statement.values(ddm_consistent=value))
    return [first, second]


def test_like_on_a_boolean_or_an_integer_reads_it_as_the_answers_print_it(
    client: FlaskClient, consistency: list[str]
) -> None:
    assert names(client, "ddmConsistent LIKE 'true'") == consistency
    assert names(client, "ddmConsistent LIKE 'TRUE'") == consistency
    assert names(client, "ddmConsistent LIKE 't%'") == consistency
    assert names(client, "ddmConsistent = 'true'") == consistency
    assert len(names(client, "ddmConsistent LIKE 'false'")) == 1
    assert names(client, "ddmConsistent LIKE '1'") == []
    # An integer's text is its digits on every database.
    assert names(client, "nFiles LIKE '4'") == names(client, "nFiles = 4")
    assert names(client, "nFiles LIKE '4'")
    assert names(client, "runNumber LIKE '2762%'") == names(
        client, "runNumber = 276262"
    )


def test_like_on_a_time_reads_it_as_the_answers_print_it(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session() as session:
        created = dict(session.execute(select(Dataset.name, Dataset.created)).all())
    printed = text_of(created[min(created)])  # 2015-06-01 15:00:00, say

    found = names(client, f"created LIKE '{printed}'")

    assert found == sorted(n for n, c in created.items() if text_of(c) == printed)
    assert found


def test_like_on_a_floating_point_number_is_refused(client: FlaskClient) -> None:
    # Each database writes a double's text its own way.
    kind, message = error(
        client, "SELECT logicalDatasetName WHERE crossSection LIKE '1.9%'"
    )

    assert kind == "InvalidInput"
    assert message == (
        "crossSection is a number and LIKE compares text: compare it with =, "
        "!=, <, <=, >, >= or IN (at position 51)"
    )


# --- NULL between literals ------------------------------------------------------


def test_null_equal_to_null_is_null_is_null(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    every = all_names(Session)

    assert names(client, "NULL = NULL") == every
    assert names(client, "NULL IS NULL") == every
    assert names(client, "1 != NULL") == every
    assert names(client, "NULL != NULL") == []
    assert names(client, "1 = NULL") == []
    # As for a field, a NULL is in no list.
    assert names(client, "NULL IN (NULL)") == []


# --- the SELECT list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("mql", "said"),
    [
        (
            "SELECT nFiles AS a, totalEvents AS a",
            "the SELECT list names two fields 'a': the one at position 36 has "
            "the name of the one at position 18",
        ),
        (
            "SELECT nFiles, totalEvents, nFiles",
            "the SELECT list names two fields 'nFiles': the one at position 29 "
            "has the name of the one at position 8",
        ),
        ("SELECT *, dataset.nFiles", "two fields 'nFiles'"),
        ("SELECT files.LFN, LFN", "two fields 'files.LFN'"),
        ("SELECT logicalDatasetName, nFiles AS logicalDatasetName", "position 38"),
    ],
)
def test_two_fields_of_one_name_are_refused(
    client: FlaskClient, mql: str, said: str
) -> None:
    kind, message = error(client, f"{mql} LIMIT 1")

    assert kind == "InvalidInput"
    assert said in message
    assert "give it another alias" in message


def test_fields_a_client_tells_apart_may_share_a_name(client: FlaskClient) -> None:
    same = "SELECT crossSection, files.crossSection, nFiles AS n, totalEvents AS "

    found = search(client, "dataset", same + "N LIMIT 1")
    kind, _ = error(client, same + "n LIMIT 1")

    # pyAMI keys a foreign field by entity.name, and tells letter cases apart.
    assert list(found[0]) == ["crossSection", "files.crossSection", "n", "N"]
    assert kind == "InvalidInput"
