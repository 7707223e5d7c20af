"""The AMI commands of TAG databases and skims, on SQLite, PostgreSQL and
MariaDB, read back with pyAMI's own parser: listing TAGs, their schema, the
count of a selection (the columnar store's), and requesting, reading,
listing and cancelling skims with ``-AMIUser``/``-AMIPass``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyAMI.exception
import pyAMI.object
import pytest
from sqlalchemy import Engine
from test_skim_pages import (
    DATASET,
    DIMUON,
    PASSWORD,
    UNTAGGED,
    SurfaceWorld,
    make_surface_world,
)

NEW_COMMANDS = {
    "AMIListTagDatabases",
    "AMIGetTagInfo",
    "AMICountTagEvents",
    "AMICreateSkim",
    "AMIGetSkimInfo",
    "AMIListSkims",
    "AMICancelSkim",
    "AMIRunSkim",
}


@pytest.fixture
def surface(catalog_engine: Engine, tmp_path: Path) -> SurfaceWorld:
    """On SQLite, PostgreSQL and MariaDB."""
    return make_surface_world(catalog_engine, tmp_path / "data")


def post(world: SurfaceWorld, command: str, login: str | None = None) -> str:
    """Send *command*, as *login* when given; the answer is always 200."""
    if login is not None:
        command += f' -AMIUser="{login}" -AMIPass="{PASSWORD}"'
    answer = world.app.test_client().post("/AMI/FrontEnd", data={"Command": command})
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def rows(
    world: SurfaceWorld, command: str, rowset: str, login: str | None = None
) -> list[dict[str, str]]:
    found = pyAMI.object.DOMObject(post(world, command, login))
    return [dict(row) for row in found.get_rows(rowset)]


def error(world: SurfaceWorld, command: str, login: str | None = None) -> tuple:
    """The type and message of the error *command* answers; pyAMI raises it."""
    body = post(world, command, login)
    match = re.search(r'<error type="(\w+)"><!\[CDATA\[(.*)\]\]></error>', body, re.S)
    assert match is not None, body
    with pytest.raises(pyAMI.exception.Error):
        pyAMI.object.DOMObject(body)
    return match.group(1), match.group(2)


def test_the_new_commands_are_listed(surface):
    found = {row["command"] for row in rows(surface, "AMIListCommands", "commands")}

    assert found >= NEW_COMMANDS


def test_tag_databases_and_their_schema(surface):
    listed = rows(surface, "AMIListTagDatabases", "tags")
    info = f'AMIGetTagInfo -logicalDatasetName="{DATASET}"'
    attributes = rows(surface, info, "attributes")
    triggers = rows(surface, info, "triggers")

    assert [(r["logicalDatasetName"], r["nEvents"], r["nFiles"]) for r in listed] == [
        (DATASET, str(len(surface.tag)), "2")
    ]
    met = next(row for row in attributes if row["name"] == "MET")
    assert (met["type"], met["kind"]) == ("float32", "float")
    assert float(met["max"]) == pytest.approx(float(surface.tag.columns["MET"].max()))
    assert {"bit": "1", "name": "HLT_mu26_ivarmedium"} in triggers


def test_the_count_is_the_tags_count(surface):
    command = f'AMICountTagEvents -logicalDatasetName="{DATASET}" -select="{DIMUON}"'

    [row] = rows(surface, command, "count")

    assert int(row["count"]) == surface.tag.count(DIMUON) > 0
    assert int(row["nEvents"]) == len(surface.tag)


def test_tag_mistakes_are_errors(surface):
    wrong = f'AMICountTagEvents -logicalDatasetName="{DATASET}" -select="MET >> 3"'
    untagged = f'AMIGetTagInfo -logicalDatasetName="{UNTAGGED}"'

    kind, message = error(surface, wrong)

    assert kind == "SelectionError" and message.startswith("column 6: ")
    assert error(surface, untagged)[0] == "TagNotFound"


def test_a_physicist_requests_a_skim_and_reads_it(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="dimuon" -branches="MET,mu_pt"'
    )

    [made] = rows(surface, create, "skim", login="phil")
    [read] = rows(surface, f'AMIGetSkimInfo -skimId="{made["skimId"]}"', "skim")

    assert made == read
    assert (made["name"], made["owner"], made["state"]) == ("dimuon", "phil", "defined")
    assert made["runRequested"]  # AMICreateSkim runs it by default
    assert (made["logicalDatasetName"], made["select"]) == (DATASET, DIMUON)
    assert surface.skim(int(made["skimId"])).branches == '["MET", "mu_pt"]'


def test_a_skim_created_with_no_run_runs_on_request(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="later" -noRun'
    )
    [made] = rows(surface, create, "skim", login="phil")
    run = f'AMIRunSkim -skimId="{made["skimId"]}"'

    refused = error(surface, run, login="paula")
    [ran] = rows(surface, run, "skim", login="phil")

    assert (made["state"], made["runRequested"]) == ("defined", "NULL")
    assert refused[0] == "PermissionDenied"
    assert ran["state"] == "defined" and ran["runRequested"]
    assert surface.skim(int(made["skimId"])).run_requested is not None


def test_requesting_a_skim_needs_a_physicists_credentials(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="dimuon"'
    )

    anonymous = error(surface, create)
    reader = error(surface, create, login="rita")

    assert anonymous[0] == "AuthenticationFailed"
    assert reader[0] == "PermissionDenied"
    assert "requesting a skim needs the role 'physicist'" in reader[1]


def test_skims_are_listed_newest_first(surface):
    first = surface.request("phil", "first")
    second = surface.request("paula", "second", selection="MET > 50")

    everything = rows(surface, "AMIListSkims", "skims")
    of_paula = rows(surface, 'AMIListSkims -owner="paula"', "skims")
    one = rows(surface, 'AMIListSkims -limit="1,1"', "skims")

    assert [int(row["skimId"]) for row in everything] == [second, first]
    assert [row["name"] for row in of_paula] == ["second"]
    assert [int(row["skimId"]) for row in one] == [first]


def test_skims_are_listed_by_dataset(surface):
    skim_id = surface.request("phil", "first")

    of_dataset = rows(surface, f'AMIListSkims -logicalDatasetName="{DATASET}"', "skims")
    of_other = rows(surface, f'AMIListSkims -logicalDatasetName="{UNTAGGED}"', "skims")
    unknown = error(surface, 'AMIListSkims -logicalDatasetName="data15_13TeV.nothing"')

    assert [int(row["skimId"]) for row in of_dataset] == [skim_id]
    assert of_other == []
    assert unknown[0] == "DatasetNotFound" and "data15_13TeV.nothing" in unknown[1]


def test_only_the_owner_cancels_a_skim(surface):
    skim_id = surface.request("phil")
    cancel = f'AMICancelSkim -skimId="{skim_id}"'

    refused = error(surface, cancel, login="paula")
    [cancelled] = rows(surface, cancel, "skim", login="phil")
    again = error(surface, cancel, login="phil")
    unknown = error(surface, 'AMIGetSkimInfo -skimId="x1"')

    assert refused[0] == "PermissionDenied"
    assert cancelled["state"] == "cancelled"
    assert again == (
        "InvalidInput",
        f"skim {skim_id} is cancelled: only a skim in progress can be cancelled",
    )
    assert unknown == ("InvalidInput", "-skimId must be a whole number, got 'x1'")
