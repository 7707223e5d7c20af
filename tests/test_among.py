"""Membership tests written with catalog.db.among find exactly the rows an
``IN`` list finds, whatever form they take on each database (an array or
split text on PostgreSQL, a JSON array on SQLite, a list on MariaDB).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from catalog.db import SEPARATOR, among, utcnow
from catalog.models import File
from catalog.upsert import upsert

LFNS = [
    "AOD.000001.pool.root.1",
    "AOD.000002.pool.root.1",
    "odd,name with 'quotes' and \\ \"double\" {braces}",
    "NULL",
]

CASES = {
    "text": [LFNS[0], LFNS[1], "AOD.999999.pool.root.1"],
    "quotes, commas, braces": [LFNS[2], LFNS[3]],
    "the separator inside a value": [LFNS[1], f"x{SEPARATOR}y"],
    "an empty value": ["", LFNS[0]],
    "nothing": [],
    "many": [*LFNS, *(f"absent.{n}" for n in range(30_000))],
}


@pytest.fixture
def file_ids(Session: Any, dataset_factory: Any) -> list[int]:  # noqa: N803
    """The files LFNS, in one dataset; their ids."""
    dataset = dataset_factory("mc16_13TeV.410000.Among.recon.AOD.e1_s2_r3")
    rows = [
        {"dataset_id": dataset.id, "lfn": lfn, "guid": f"{n:08d}-AAAA-BBBB-CCCC-0",
         "status": "finished", "modified": utcnow()}
        for n, lfn in enumerate(LFNS)
    ]  # fmt: skip
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    with Session() as session:
        query = select(File.id).order_by(File.guid)
        return list(session.scalars(query))


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_among_text_finds_what_in_finds(
    Session: Any,  # noqa: N803
    file_ids: list[int],
    values: list[str],
) -> None:
    with Session() as session:
        query = select(File.lfn).where(among(File.lfn, values))
        found = set(session.scalars(query))
    assert found == set(LFNS) & set(values)


def test_among_numbers_and_their_negation(
    Session: Any,  # noqa: N803
    file_ids: list[int],
) -> None:
    wanted = [file_ids[1], file_ids[3], max(file_ids) + 1000]
    with Session() as session:
        found = set(session.scalars(select(File.id).where(among(File.id, wanted))))
        others = set(session.scalars(select(File.id).where(~among(File.id, wanted))))
    assert found == {file_ids[1], file_ids[3]}
    assert others == {file_ids[0], file_ids[2]}


def test_a_statement_compiled_once_finds_what_each_new_set_of_values_finds(
    Session: Any,  # noqa: N803
    file_ids: list[int],
) -> None:
    """The values are parameters: one statement shape, cached after its
    first use, takes each new set of values (and a set of another form).
    """
    with Session() as session:
        for values in [*CASES.values(), *CASES.values()]:
            query = select(File.lfn).where(among(File.lfn, values))
            assert set(session.scalars(query)) == set(LFNS) & set(values)
        for wanted in ([file_ids[0]], [file_ids[2], file_ids[3]], []):
            query = select(File.id).where(among(File.id, wanted))
            assert set(session.scalars(query)) == set(wanted)
