"""What a selection means at the edges of double arithmetic: the columnar
store (numpy) and the relational store (SQLite, PostgreSQL, MariaDB) select
the same rows of a TAG with extreme but finite values, a comparison with no
value is false, and arithmetic that could leave the range of a double is
refused before it runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from test_selection import selected_rows
from test_skim_pages import DATASET, SurfaceWorld, make_surface_world

from catalog.models import TagDatabase
from skimengine.collection import FileRef
from skimengine.selection import SelectionError, compile_selection
from skimengine.tags import (
    SCHEMA,
    TagTable,
    count_sql,
    get_tag,
    insert_events,
    vocabulary,
)

VOCABULARY = vocabulary(("T0", "T1", "T2"))
INT32 = [0, 1, -1, 2, 3, -3, 7, 2**31 - 1, -(2**31)]
INT64 = [0, 1, -1, 2**53, 2**53 + 1, 2**62, 2**63 - 1, -(2**63), 9007199254740993]
FLOAT32 = [0.0, -0.0, 0.1, 1.5, -1.5, 3.4028235e38, -3.4028235e38, 1e-45]
FLOAT32 += [16777217.0, 20.0, 50.0]


def extreme_columns(n: int = 33) -> dict[str, np.ndarray]:
    """TAG columns whose values are the extremes of their types, mixed so
    that each row pairs different ones.
    """
    columns = {}
    for attribute in SCHEMA:
        pool = {np.int32: INT32, np.int64: INT64}.get(attribute.dtype.type, FLOAT32)
        step = 3 + len(attribute.name)
        values = [pool[(i * step) % len(pool)] for i in range(n)]
        columns[attribute.name] = np.array(values, attribute.dtype)
    columns["FileIndex"] = np.zeros(n, np.int32)
    columns["Entry"] = np.arange(n)
    return columns


EXTREME = extreme_columns()

# Expressions that both stores run, and must select alike.
AGREE = [
    "nJets > 0",
    "EventNumber > 9007199254740992",
    "EventNumber == 9007199254740993",
    "EventNumber + 0 == 9007199254740993",
    "EventNumber - 1 > 9223372036854775806",
    "EventNumber * 2 > 0",
    "EventNumber * EventNumber > 0",
    "nJets * 3000000000 > 0",
    "RunNumber * RunNumber * RunNumber > 0",
    "MET == 0.1",
    "MET != 0.1",
    "MET >= 16777217",
    "MET < 1e39",
    "MET * 1e200 > 1",
    "MET * MET * MET * MET * MET * MET * MET > 0",
    "MET * 1e-200 > 0",
    "MET / 1e200 > 0",
    "1e-300 / EventNumber < 0",
    "MET / (MET - jet_pt1) > 1e60",
    "(MET - jet_pt1) * (MET - jet_pt2) * MET != 0",
    "MET / 0 > 1",
    "not (MET / 0 > 1)",
    "MET / nJets != 0",
    "not (MET / nJets != 0)",
    "nJets / (nJets - nJets) == 1",
    "not (1/0 == 1)",
    "0 * (1/0) == 0",
    "MET / (MET - MET) > 0",
    "abs(EventNumber) > 0",
    "abs(-9223372036854775808) > 0",
    "-EventNumber < 0",
    "EventNumber < 9223372036854775808",
    "bit(triggerBits, 63) or bit(nJets, 31)",
    "MET in [20, 50)",
    "MET - MET != 0",
    "0.1 + 0.2 == 0.3",
    "EventNumber + 1 > EventNumber",
    # A whole number meets a double as a double, constants too.
    "9223372036854775807 == 9223372036854775808",
    "9007199254740993 > 9007199254740992.0",
    "EventNumber == 9007199254740992.0",
    # A constant with no value, in every shape: never equal, never different.
    "MET != 1/0",
    "MET != abs(1/0)",
    "MET != -(1/0)",
    "MET != 2*(1/0)",
    "not (MET != abs(1/0))",
    "MET == -(1/0)",
    "MET > -(1/0)",
    "nJets != -(1/0)",
    "abs(1/0) != MET",
    "EventNumber != abs(1/0)",
    "MET != 100/nJets",
]

# Arithmetic that can go beyond the largest double (numpy would give
# infinity, PostgreSQL and MariaDB an error) or round to zero (an error on
# PostgreSQL), with the part pointed at.
REFUSED = {
    "MET * 1e308 > 1": "MET * 1e308",
    "MET * 1e300 * 1e300 > 0": "MET * 1e300",
    "not (MET * 1e300 * 1e300 > 0)": "MET * 1e300",
    "EventNumber * 1e300 > 0": "EventNumber * 1e300",
    "nJets > MET * MET * MET * MET * MET * MET * MET * MET": (
        "MET * MET * MET * MET * MET * MET * MET * MET"
    ),
    "1e200 * 1e200 > 0": "1e200 * 1e200",
    "EventNumber * 1e289 + EventNumber * 1e289 > 0": (
        "EventNumber * 1e289 + EventNumber * 1e289"
    ),
    "MET / (MET - jet_pt1) / 1e-250 > 0": "MET / (MET - jet_pt1) / 1e-250",
    "MET * 1e-300 > 0": "MET * 1e-300",
    "1e-300 * 1e-300 == 0": "1e-300 * 1e-300",
    "MET / 1e300 / 1e300 > 0": "MET / 1e300",
}


@pytest.fixture
def extreme_tag(Session, dataset_factory):  # noqa: N803
    """EXTREME as the rows of a registered TAG in ``tag_event``."""
    return register_tag(Session, dataset_factory, EXTREME)


def register_tag(Session, dataset_factory, columns):  # noqa: N803
    """*columns* as the rows of a registered TAG in ``tag_event``; its id."""
    dataset = dataset_factory("mc16_13TeV.361106.Zee.recon.AOD.e3601_s3126_r10724")
    files = (FileRef("5a1d3f3e-0000-4000-8000-000000000001", "AOD._000001.root"),)
    table = TagTable(files, columns, VOCABULARY.triggers)
    with Session.begin() as session:
        tag = TagDatabase(dataset_id=dataset.id, store="sql", location="-")
        session.add(tag)
        session.flush()
        insert_events(tag.id, table, session=session)
        return tag.id


def test_both_stores_select_the_same_extreme_rows(Session, extreme_tag):  # noqa: N803
    differ = []
    with Session() as session:
        for expression in AGREE:
            selection = compile_selection(expression, VOCABULARY)
            rows = selected_rows(session, selection, extreme_tag)

            numpy_rows = np.flatnonzero(selection.numpy(EXTREME, len(EXTREME["MET"])))
            if rows != numpy_rows.tolist():
                differ.append(expression)
    assert differ == []


def columns_of(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """TAG columns holding *rows* (each a few attributes; the others 0)."""
    columns = {
        a.name: np.array([row.get(a.name, 0) for row in rows], a.dtype)
        for a in SCHEMA
    }
    columns["FileIndex"] = np.zeros(len(rows), np.int32)
    columns["Entry"] = np.arange(len(rows))
    return columns


# Rows, and what each selection keeps of them, worked out by hand.
EDGES = columns_of(
    [
        {"EventNumber": 2**53, "nJets": 1, "nMuons": 1, "MET": 3.0e38},
        {"EventNumber": 2**53 + 2, "triggerBits": -(2**63)},
        {"nJets": 999, "triggerBits": -(2**63) + 1},
    ]
)
KEEPS = {
    # Doubles round: 2**53 + 2 is exact, 2**53 + 1 is not.
    "EventNumber + (nJets + nMuons) == 9007199254740994": [0, 1],
    "(EventNumber + nJets) + nMuons == 9007199254740994": [1],
    "MET * (1e300 * 1e-300) > 1e38": [0],
    "nJets * (MET * 2) > 1e38": [0],
    # The triggerBits of bit 63 alone is a whole number, not a double.
    "triggerBits == -9223372036854775808": [1],
    "triggerBits != -9223372036854775808": [0, 2],
    # A thousand conditions: SQLite reads a flat chain as 1,000 levels deep.
    "||".join(["MET<0"] * 999 + ["nJets==999"]): [2],
    "&&".join(["MET>=0"] * 999 + ["nJets!=999"]): [0, 1],
}


@pytest.mark.parametrize("expression", list(KEEPS), ids=lambda e: e[:40])
def test_both_stores_keep_the_grouping_and_the_numbers_written(
    Session, dataset_factory, expression  # noqa: N803
):
    tag_id = register_tag(Session, dataset_factory, EDGES)
    selection = compile_selection(expression, VOCABULARY)

    with Session() as session:
        rows = selected_rows(session, selection, tag_id)
    numpy_rows = np.flatnonzero(selection.numpy(EDGES, len(EDGES["MET"]))).tolist()

    assert (rows, numpy_rows) == (KEEPS[expression], KEEPS[expression])


@pytest.mark.parametrize(
    "expression, where, reason",
    [
        (
            "nJets > 1 and MET > " + "+".join(["MET"] * 70),
            "MET+MET",
            "nested more than 64 levels deep here",
        ),
        (
            "nJets > 1 or " + "abs(" * 25 + "MET" + ")" * 25 + " > 1",
            "abs(MET)",
            "nested more than 24 levels deep",
        ),
        ("MET * 1e-400 > 0", "1e-400", "nearer to zero than the smallest double"),
        ("MET / 0.0e-999 > 0", None, None),
    ],
)
def test_a_limit_or_a_number_out_of_range_is_shown_where_it_is(
    expression, where, reason
):
    if where is None:  # zero written as zero is no mistake
        compile_selection(expression, VOCABULARY)
        return
    with pytest.raises(SelectionError) as raised:
        compile_selection(expression, VOCABULARY)

    error = raised.value
    assert reason in error.reason
    if where == "abs(MET)":  # under the 25th abs(, the first too many
        assert error.position == len("nJets > 1 or ") + 4 * 24
    elif where == "MET+MET":  # where the chain that is too deep starts
        assert error.position == len("nJets > 1 and MET > ")
    else:
        assert expression[error.position :].startswith(where)


@pytest.mark.parametrize(
    "expression",
    ["MET != 1/0", "MET != abs(1/0)", "MET != -(1/0)", "MET != 2*(1/0)"],
)
def test_a_comparison_with_no_value_selects_nothing(expression):
    selection = compile_selection(expression, VOCABULARY)
    negated = compile_selection(f"not ({expression})", VOCABULARY)

    n = len(EXTREME["MET"])
    assert not selection.numpy(EXTREME, n).any()
    assert negated.numpy(EXTREME, n).all()


@pytest.mark.parametrize("expression", sorted(REFUSED))
def test_arithmetic_beyond_the_range_of_a_double_is_refused(expression):
    with pytest.raises(SelectionError) as raised:
        compile_selection(expression, VOCABULARY)

    part = REFUSED[expression]
    error = raised.value
    assert "double" in error.reason
    assert expression[error.position :].startswith(part)
    assert error.args[0].splitlines()[2].count("^") == len(part)


# -- what a user of the live count sees ------------------------------------------


@pytest.fixture
def surface(catalog_engine: Engine, tmp_path: Path) -> SurfaceWorld:
    """On SQLite, PostgreSQL and MariaDB."""
    return make_surface_world(catalog_engine, tmp_path / "data")


def test_the_live_count_of_a_comparison_with_no_value_is_zero(surface):
    client = surface.app.test_client()
    url = f"/api/v1/tags/{DATASET}/count"

    counts = {
        text: client.get(url, query_string={"select": text}).json["count"]
        for text in ("MET != abs(1/0)", "MET != -(1/0)", "not (MET != 2*(1/0))")
    }

    everything = len(surface.tag)
    assert counts == {
        "MET != abs(1/0)": 0,
        "MET != -(1/0)": 0,
        "not (MET != 2*(1/0))": everything,
    }
    with surface.Session() as session:
        tag = get_tag(DATASET, session=session)
        assert [count_sql(tag, text, session=session) for text in counts] == list(
            counts.values()
        )


def test_the_live_count_refuses_arithmetic_that_overflows(surface):
    answer = surface.app.test_client().get(
        f"/api/v1/tags/{DATASET}/count",
        query_string={"select": "nJets >= 2 and MET * 1e300 * 1e300 > 0"},
    )

    assert answer.status_code == 400
    error = answer.json["error"]
    assert error["type"] == "SelectionError"
    first, shown, caret = error["message"].splitlines()
    assert first.startswith("column 16: ") and "double" in first
    assert caret == "  " + " " * 15 + "^" * len("MET * 1e300")
