"""Keyset paging of the JSON API at its edges, on SQLite, PostgreSQL and
MariaDB: sorted by a yes/no field, every dataset is on exactly one page in
either direction, NULLs last; a cursor altered by hand is a 400 naming the
cursor, never a database error and never an empty page.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from test_api import API, assert_error, cursor_of, walked_items

from catalog.fields import ami_fields, value_type
from catalog.models import Dataset

BOOLEAN_FIELDS = sorted(
    name for name, column in ami_fields(Dataset).items() if value_type(column) is bool
)

# What DDM may say of a dataset: open or closed (or not yet known), its
# replicas consistent or not (not known while open), incomplete or not.
DDM_STATES = [
    {"ddm_open": True, "ddm_consistent": None, "ddm_incomplete": False},
    {"ddm_open": False, "ddm_consistent": True, "ddm_incomplete": False},
    {"ddm_open": False, "ddm_consistent": False, "ddm_incomplete": True},
    {"ddm_open": None, "ddm_consistent": None, "ddm_incomplete": False},
    {"ddm_open": True, "ddm_consistent": None, "ddm_incomplete": True},
    {"ddm_open": False, "ddm_consistent": True, "ddm_incomplete": False},
    {"ddm_open": None, "ddm_consistent": False, "ddm_incomplete": True},
]


@pytest.fixture
def ddm_datasets(dataset_factory: Any) -> list[Any]:
    """Datasets in every DDM state, most states twice (ties to break)."""
    return [
        dataset_factory(
            f"mc16_13TeV.{361100 + number}.PowhegPythia8EvtGen_Sample{number}"
            ".evgen.EVNT.e3601",
            **state,
        )
        for number, state in enumerate(DDM_STATES * 2)
    ]


def test_every_yes_no_field_of_a_dataset_is_paged() -> None:
    assert BOOLEAN_FIELDS == ["ddmConsistent", "ddmIncomplete", "ddmOpen"]


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("field", BOOLEAN_FIELDS)
def test_paging_by_a_yes_no_field_shows_every_dataset_once(
    client: FlaskClient, ddm_datasets: list[Any], field: str, descending: bool
) -> None:
    column = ami_fields(Dataset)[field]
    sort = f"-{field}" if descending else field

    items = walked_items(client, f"{API}/datasets?sort={sort}&limit=1", 1)

    names = [item["logicalDatasetName"] for item in items]
    assert sorted(names) == sorted(d.name for d in ddm_datasets)
    # In order, ties by id in the sort's direction, NULLs last.
    rank = {False: 1, True: 0} if descending else {False: 0, True: 1}
    expected = sorted(
        ddm_datasets,
        key=lambda d: (
            getattr(d, str(column.key)) is None,
            rank.get(getattr(d, str(column.key)), 2),
            -d.id if descending else d.id,
        ),
    )
    assert names == [d.name for d in expected]


def test_paging_by_two_yes_no_fields_shows_every_dataset_once(
    client: FlaskClient, ddm_datasets: list[Any]
) -> None:
    url = f"{API}/datasets?sort=-ddmOpen,ddmConsistent,-ddmIncomplete&limit=2"

    items = walked_items(client, url, 2)

    names = [item["logicalDatasetName"] for item in items]
    assert sorted(names) == sorted(d.name for d in ddm_datasets)


@pytest.mark.parametrize(
    ("sort", "document", "said"),
    [
        ("", {"o": "name", "k": ["a", None]}, "id cannot be null"),
        ("", {"o": "name", "k": [None, 1]}, "logicalDatasetName cannot be null"),
        ("", {"o": "name", "k": [1, 1]}, "logicalDatasetName must be"),
        ("", {"o": "name", "k": ["a", "1", 2]}, "does not hold a key"),
        ("", {"o": "name", "k": "ab"}, "does not hold a key"),
        ("", {"o": "name", "k": ["a", True]}, "id must be"),
        ("", {"o": "name", "k": ["a", 1.5]}, "id must be"),
        ("", {"o": "name", "k": ["\ud800", 1]}, "logicalDatasetName must be"),
        ("", {"k": ["a", 1]}, "another sort order"),
        ("", [["a", 1]], "does not hold a key"),
        ("ddmOpen", {"o": "ddm_open", "k": ["maybe", 1]}, "ddmOpen must be"),
        ("ddmOpen", {"o": "ddm_open", "k": [{"a": 1}, 1]}, "ddmOpen must be"),
        ("ddmIncomplete", {"o": "ddm_incomplete", "k": [None, 1]}, "cannot be null"),
        ("crossSection", {"o": "cross_section", "k": [10**400, 1]}, "crossSection"),
        ("created", {"o": "created", "k": [12, 1]}, "created must be"),
        ("created", {"o": "created", "k": ["2026-13-01", 1]}, "created must be"),
    ],
)
def test_a_cursor_altered_by_hand_is_a_400(
    client: FlaskClient, ddm_datasets: list[Any], sort: str, document: Any, said: str
) -> None:
    query = {"cursor": cursor_of(document), **({"sort": sort} if sort else {})}

    response = client.get(f"{API}/datasets", query_string=query)

    message = assert_error(response, 400, "InvalidInput")
    assert message.startswith("the cursor is not valid: ")
    assert said in message


@pytest.mark.parametrize("field", ["ddmOpen", "ddmConsistent"])
def test_a_cursor_after_a_null_holds_the_nulls_that_follow(
    client: FlaskClient, ddm_datasets: list[Any], field: str
) -> None:
    column = ami_fields(Dataset)[field]
    nulls = sorted(d.id for d in ddm_datasets if getattr(d, str(column.key)) is None)
    after_first = cursor_of({"o": column.key, "k": [None, nulls[0]]})

    response = client.get(
        f"{API}/datasets", query_string={"sort": field, "cursor": after_first}
    )

    assert response.status_code == 200, response.json
    ids = {d.name: d.id for d in ddm_datasets}
    assert [ids[i["logicalDatasetName"]] for i in response.json["items"]] == nulls[1:]
