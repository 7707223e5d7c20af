"""AMI command arguments at their edges: an argument given without the value
it needs is refused by the endpoint (the flags excepted), and a field renamed
with ``AS`` in a ``SearchQuery`` reaches our client typed as the field it
names, in Python and through ``hepcat ami --format json``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyAMI.object
import pytest
from flask import Flask
from flask.testing import FlaskClient
from live import ServedCatalog
from sqlalchemy import Engine, select
from test_ami import post

from catalog.config import load_config
from catalog.db import session_factory
from catalog.models import Dataset
from web.ami.commands import COMMANDS
from web.ami.reply import Field, Reply, Rowset, render_text
from web.app import create_app
from web.client import Client, alias_types

ZEE_EVNT = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
TRASHED = ZEE_EVNT.replace("e3601", "e3602")

# --- the endpoint: arguments without a value ----------------------------------


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path, dataset_factory: Any) -> FlaskClient:
    dataset_factory(ZEE_EVNT, n_files=3, total_events=3000, total_size=123)
    app: Flask = create_app(
        load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine
    )
    return app.test_client()


def error_of(body: str) -> tuple[str, str]:
    match = re.search(r'<error type="(\w+)"><!\[CDATA\[(.*)\]\]></error>', body, re.S)
    assert match is not None, body
    return match.group(1), match.group(2)


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            "AMIListRuns -projectName",
            'AMIListRuns -projectName needs a value: -projectName="..."',
        ),
        (
            'AMIListRuns -projectName="data15%" -period',
            "AMIListRuns -period needs a value",
        ),
        ("AMIListRuns -PROJECTNAME=", "AMIListRuns -projectName needs a value"),
        ("AMIGetDatasetInfo -logicalDatasetName", "-logicalDatasetName needs a value"),
        (
            f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -limit',
            "-limit needs a value",
        ),
        ('SearchQuery -entity="dataset" -mql', "SearchQuery -mql needs a value"),
    ],
)
def test_an_argument_without_its_value_is_refused_by_name(
    client: FlaskClient, command: str, said: str
) -> None:
    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert said in message


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -limit=\u00b2',
            '-limit must be "offset,count" or "count"',
        ),
        (
            f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -limit=1,\u0663',
            '-limit must be "offset,count" or "count"',
        ),
        (
            f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -limit={"9" * 5000},1',
            '-limit must be "offset,count" or "count"',
        ),
        (
            'SearchQuery -entity="dataset" -mql="SELECT logicalDatasetName '
            f'WHERE totalEvents > {"9" * 5000}"',
            "is longer than 100 characters",
        ),
    ],
)
def test_an_unusual_number_is_refused_by_name(
    client: FlaskClient, command: str, said: str
) -> None:
    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert said in message


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ('AMIGetDatasetInfo -logicalDatasetName="a\x00"', "-logicalDatasetName"),
        ('AMIListRuns -projectName="data15\x00%"', "-projectName"),
        ("AMIGetFileInfo -LFN=a\x00b", "-LFN"),
        ('SearchQuery -entity="dataset" -mql="\x00"', "-mql"),
        # An argument the command does not take, and a credential: refused
        # before either is looked at, and the value never shown.
        ('AMIListRuns -nosuch="\x00"', "-nosuch"),
        ('AMIListCommands -AMIUser="ada\x00" -AMIPass="secret"', "-AMIUser"),
    ],
)
def test_a_nul_character_in_an_argument_is_refused_by_name(
    client: FlaskClient, command: str, said: str
) -> None:
    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert message == f"{said} must not contain NUL characters"


def test_the_hashtags_command_asks_for_the_argument_it_takes(
    client: FlaskClient,
) -> None:
    kind, message = error_of(post(client, "DatasetWBListHashtags"))

    assert kind == "InvalidInput"
    assert message == 'DatasetWBListHashtags needs -ldn="..."'


DATA_RUN = "data16_13TeV.00300800.physics_Main.merge.AOD.f705_m1606"


def test_an_in_list_of_a_thousand_periods_is_answered(
    client: FlaskClient, dataset_factory: Any
) -> None:
    # SQLite once refused the chain of 1000 ORs this compiles to ("Expression
    # tree is too large"), and the reply called it an outage.
    dataset_factory(DATA_RUN, period="AllYear,P999")
    periods = ",".join(f"'P{number}'" for number in range(1000))
    command = (
        'SearchQuery -entity="dataset" -mql="SELECT logicalDatasetName '
        f'WHERE period IN ({periods})"'
    )

    found = pyAMI.object.DOMObject(post(client, command)).get_rows()

    assert [dict(row)["logicalDatasetName"] for row in found] == [DATA_RUN]


def test_a_query_of_too_many_conditions_is_refused_naming_the_limit(
    client: FlaskClient,
) -> None:
    periods = ",".join(f"'P{number}'" for number in range(1000))
    command = (
        'SearchQuery -entity="dataset" -mql="SELECT logicalDatasetName '
        f'WHERE period IN ({periods}) OR nFiles = 3"'
    )

    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert "more than 1000 conditions" in message
    assert "database" not in message


def test_a_flag_may_stand_alone(client: FlaskClient) -> None:
    files = f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -total'
    search = (
        'SearchQuery -entity="dataset" '
        '-mql="SELECT dataset.logicalDatasetName AS ldn" -showArchived'
    )

    total = pyAMI.object.DOMObject(post(client, files)).get_rows("total")
    found = pyAMI.object.DOMObject(post(client, search)).get_rows()

    assert [dict(row)["events"] for row in total] == ["3000"]
    assert [dict(row)["ldn"] for row in found] == [ZEE_EVNT]


def flagged(client: FlaskClient, value: str) -> tuple[list[str], list[str]]:
    """The datasets ``SearchQuery -showArchived=value`` finds among the one
    valid and one trashed, and the ``total`` of ``AMIListFiles -total=value``.
    """
    files = f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -total={value}'
    search = (
        'SearchQuery -entity="dataset" '
        f'-mql="SELECT dataset.logicalDatasetName AS ldn" -showArchived={value}'
    )
    total = pyAMI.object.DOMObject(post(client, files)).get_rows("total")
    found = pyAMI.object.DOMObject(post(client, search)).get_rows()
    return [dict(row)["ldn"] for row in found], [dict(r)["events"] for r in total]


def test_a_flag_takes_the_usual_words_for_true_and_false(
    client: FlaskClient, dataset_factory: Any
) -> None:
    dataset_factory(TRASHED, ami_status="TRASHED")

    for value in ["true", "YES", "y", "1", "On", '" true "']:
        assert flagged(client, value) == ([ZEE_EVNT, TRASHED], ["3000"]), value
    for value in ["false", "No", "n", "0", "OFF"]:
        assert flagged(client, value) == ([ZEE_EVNT], []), value


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (
            'SearchQuery -entity="dataset" -mql="SELECT *" -showArchived=maybe',
            "-showArchived",
        ),
        (f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -total=maybe', "-total"),
        (f'AMIListFiles -logicalDatasetName="{ZEE_EVNT}" -TOTAL=2', "-total"),
    ],
)
def test_a_flag_of_another_value_is_refused_by_name(
    client: FlaskClient, command: str, name: str
) -> None:
    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert message.startswith(
        f"{name} must be true or false (true, yes, y, 1, on; false, no, n, 0, off; "
        "in any letter case; alone it is true), got "
    )


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            "AMIListDataPeriods -createdSince=garbage",
            "-createdSince must be a time in ISO 8601 (2015-07-03T10:15:00Z), "
            "got 'garbage'",
        ),
        (
            "AMIListDataPeriods -periodLevel=one",
            "-periodLevel must be an integer, got 'one'",
        ),
        (
            "AMIListDataPeriods -periodLevel=99999999999",
            "-periodLevel is out of range: '99999999999'",
        ),
        (
            "AMIGetFileInfo -LFN=x -GUID=y",
            "AMIGetFileInfo takes -LFN or -GUID, not both: give one",
        ),
        (
            "AMIListDataPeriods -periodLevel=4",
            "-periodLevel must be 1, 2 or 3, got 4",
        ),
    ],
)
def test_a_bad_argument_is_named_as_it_was_given(
    client: FlaskClient, command: str, said: str
) -> None:
    kind, message = error_of(post(client, command))

    assert kind == "InvalidInput"
    assert message == said


def test_every_flag_is_an_argument_of_its_command() -> None:
    flags = {c.name: set(c.flags) for c in COMMANDS.values() if c.flags}

    assert flags == {
        "SearchQuery": {"showArchived"},
        "AMIListFiles": {"total"},
        "AMICreateSkim": {"noRun"},
    }
    assert all(set(c.flags) <= set(c.arguments) for c in COMMANDS.values())


# --- our client: fields renamed with AS -----------------------------------------

RENAMED = (
    "SELECT dataset.logicalDatasetName AS ldn, dataset.totalEvents AS events, "
    "dataset.nFiles AS nfiles, dataset.crossSection AS cross_section, "
    "dataset.dataType AS nFiles WHERE dataset.dataType = 'EVNT' "
    "ORDER BY dataset.logicalDatasetName LIMIT 0,2"
)


def test_the_aliases_of_a_select_list_name_their_fields() -> None:
    mql = (
        "select files.LFN as lfn,files.events  AS  n, dataset.NFILES AS x, totalEvents"
    )

    assert alias_types(mql) == {"lfn": "LFN", "n": "events", "x": "nFiles"}
    assert alias_types(RENAMED) == {
        "ldn": "logicalDatasetName",
        "events": "totalEvents",
        "nfiles": "nFiles",
        "cross_section": "crossSection",
        "nFiles": "dataType",
    }


@pytest.fixture(scope="module")
def evnt(served_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """The first two EVNT datasets of the served catalogue, as ``RENAMED``
    should read them.
    """
    query = select(Dataset).where(Dataset.data_type == "EVNT").order_by(Dataset.name)
    with session_factory(served_engine)() as session:
        yield [_expected(d) for d in session.scalars(query.limit(2))]


def _expected(dataset: Dataset) -> dict[str, Any]:
    return {
        "ldn": dataset.name,
        "events": dataset.total_events,
        "nfiles": dataset.n_files,
        "cross_section": pytest.approx(dataset.cross_section, rel=1e-12),
        "nFiles": "EVNT",
    }


def test_execute_types_a_renamed_field_as_its_field(
    ami_url: str, evnt: list[dict[str, Any]]
) -> None:
    rows = Client(ami_url).execute("SearchQuery", entity="dataset", mql=RENAMED).rows()

    assert rows == evnt
    assert all(isinstance(row["nfiles"], int) for row in rows)
    assert all(isinstance(row["cross_section"], float) for row in rows)


def hepcat_ami(served: ServedCatalog, ami_url: str, *args: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "hepcat", "ami", *args],
        env={**served.env(), "HEPCAT_AMI_URL": ami_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hepcat_ami_json_gives_renamed_numbers_as_numbers(
    served_catalog: ServedCatalog, ami_url: str, evnt: list[dict[str, Any]]
) -> None:
    line = f'SearchQuery -entity="dataset" -mql="{RENAMED}"'

    done = hepcat_ami(served_catalog, ami_url, line, "--format", "json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dataset"] == evnt


def test_hepcat_ami_names_the_argument_without_a_value(
    served_catalog: ServedCatalog, ami_url: str
) -> None:
    done = hepcat_ami(served_catalog, ami_url, "AMIListRuns", "-projectName")

    assert done.returncode == 1
    assert done.stderr == (
        'InvalidInput: AMIListRuns -projectName needs a value: -projectName="..."\n'
    )
    assert done.stdout == ""


def test_a_limit_past_ten_thousand_rows_gives_the_rows_there_are(
    client: FlaskClient,
) -> None:
    mql = "SELECT logicalDatasetName WHERE logicalDatasetName LIKE '%' LIMIT 0,20000"
    answer = pyAMI.object.DOMObject(
        post(client, f'SearchQuery -entity="dataset" -mql="{mql}"')
    )

    assert [row["logicalDatasetName"] for row in answer.get_rows()] == [ZEE_EVNT]


def test_an_error_holding_the_end_of_a_cdata_section_reaches_pyami_whole(
    client: FlaskClient,
) -> None:
    body = post(client, 'AMIGetDatasetInfo -logicalDatasetName="x]]>y"')

    with pytest.raises(pyAMI.exception.Error) as raised:
        pyAMI.object.DOMObject(body)

    assert "no dataset named 'x]]>y'" in str(raised.value)


def test_the_text_format_tells_a_newline_from_a_backslash_and_escapes_quotes() -> None:
    values = ["a\nb", "a\\nb", 'say "hi"', None]
    rows = [[Field("comment", value)] for value in values]
    reply = Reply("DatasetWBListHashtags", rowsets=[Rowset("annotation", rows)])

    shown = [
        line.split(" = ", 1)[1]
        for line in render_text(reply).splitlines()
        if "comment = " in line
    ]

    assert shown == ['"a\\nb"', '"a\\\\nb"', '"say \\"hi\\""', "NULL"]
