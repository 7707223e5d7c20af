"""The AMI commands of TAG databases and skims, on SQLite, PostgreSQL and
MariaDB, read back with pyAMI's own parser: listing TAGs, their schema, the
count of a selection (the columnar store's), and requesting (with the
options and the CSV collections of the other surfaces), reading, listing,
cancelling and retrying skims with ``-AMIUser``/``-AMIPass``.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

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

from catalog.errors import InvalidInput
from catalog.users import get_user
from skimengine.filestore import FileStore
from skimengine.skims import request_skim
from skimengine.tags import dataset_event_files
from web.ami import commands

NEW_COMMANDS = {
    "AMIListTagDatabases",
    "AMIGetTagInfo",
    "AMICountTagEvents",
    "AMICreateSkim",
    "AMIGetSkimInfo",
    "AMIListSkims",
    "AMICancelSkim",
    "AMIRunSkim",
    "AMIRetrySkim",
}
#: Bytes per output file: several output files from the two source files.
SMALL_FILES = 60_000


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
    assert (met["type"], met["kind"], met["unit"]) == ("float32", "float", "GeV")
    # pyAMI shows a field without text (no unit) as NULL.
    assert next(row for row in attributes if row["name"] == "nJets")["unit"] == "NULL"
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


def test_a_skim_list_cut_at_the_cap_says_so(surface, monkeypatch):
    monkeypatch.setattr(commands, "MAX_ROWS", 2)
    requested = [surface.request("phil", name) for name in ("a", "b", "c")]

    cut = post(surface, "AMIListSkims")
    whole = post(surface, 'AMIListSkims -limit="1,2"')

    assert re.findall(r'<field name="skimId">(\d+)</field>', cut) == [
        str(skim) for skim in requested[:0:-1]
    ]
    assert "<info>only the first 2 rows; use -limit=offset,count for more</info>" in cut
    assert "<info>" not in whole


def test_an_unknown_owner_lists_no_skims_as_a_known_one_without_skims(surface):
    # The answer must not tell which logins exist (docs/access.md).
    surface.request("phil", "first")

    of_ada = rows(surface, 'AMIListSkims -owner="ada"', "skims")
    of_nobody = rows(surface, 'AMIListSkims -owner="nosuchuser"', "skims")

    assert of_ada == of_nobody == []


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


# --- the options of a request, as the JSON API and the command line take them ------


def api_error(world: SurfaceWorld, login: str, **body: Any) -> tuple[str, str]:
    """The type and message of the error the JSON API answers to *body*."""
    body = {"logicalDatasetName": DATASET, "name": "dimuon", **body}
    answer = world.app.test_client().post(
        "/api/v1/skims", json=body, headers=world.bearer(login)
    )
    assert answer.status_code >= 400, answer.text
    return answer.json["error"]["type"], answer.json["error"]["message"]


def cli_error(world: SurfaceWorld, login: str, **options: Any) -> tuple[str, str]:
    """The type and message of the error ``hepcat skim create`` meets: the
    command hands its options to :func:`request_skim` as they are.
    """
    options.setdefault("selection", DIMUON)
    with pytest.raises(InvalidInput) as raised, world.Session() as session:
        request_skim(
            DATASET,
            options.pop("selection"),
            "dimuon",
            owner=get_user(login, session=session),
            session=session,
            **options,
        )
    return raised.value.type, raised.value.message


def events_per_file(world: SurfaceWorld, skim_id: int) -> list[int | None]:
    """The events of each output file of a done skim, in the files' order."""
    output = world.skim(skim_id).output
    assert output is not None
    return [f.events for f in sorted(output.files, key=lambda f: f.lfn)]


def test_a_target_size_cuts_the_output_as_the_apis_does(surface):
    create = f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
    [small] = rows(
        surface, create + f'-name="small" -targetSize={SMALL_FILES}', "skim", "phil"
    )
    [whole] = rows(surface, create + '-name="whole"', "skim", login="phil")
    by_api = surface.app.test_client().post(
        "/api/v1/skims",
        json={
            "logicalDatasetName": DATASET,
            "name": "by-api",
            "select": DIMUON,
            "targetSize": SMALL_FILES,
        },
        headers=surface.bearer("phil"),
    )

    for skim_id in (small["skimId"], whole["skimId"], by_api.json["id"]):
        assert surface.run_skims(int(skim_id)).state == "done"

    assert (small["targetSize"], whole["targetSize"]) == (str(SMALL_FILES), "NULL")
    assert by_api.json["targetSize"] == SMALL_FILES
    cut = events_per_file(surface, int(small["skimId"]))
    assert cut == events_per_file(surface, by_api.json["id"])
    assert len(cut) > 1 and len(events_per_file(surface, int(whole["skimId"]))) == 1
    assert sum(events or 0 for events in cut) == surface.tag.count(DIMUON)


def test_the_options_are_shown_as_they_were_asked_for(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="some" -branches="MET, mu_pt" -compression="lz4:4" '
        "-targetSize=123456 -noRun"
    )

    [made] = rows(surface, create, "skim", login="phil")
    [read] = rows(surface, f'AMIGetSkimInfo -skimId="{made["skimId"]}"', "skim")

    assert made == read
    shown = [made[key] for key in ("branches", "compression", "targetSize")]
    assert shown == ["MET,mu_pt", "lz4:4", "123456"]
    assert surface.skim(int(made["skimId"])).target_size == 123456


def test_bad_options_are_refused_as_the_api_refuses_them(surface):
    create = f'AMICreateSkim -logicalDatasetName="{DATASET}" -name="dimuon" '
    dimuon = f'-select="{DIMUON}" '
    unreadable = "RunNumber,Event\n1,2\n"
    encoded = base64.b64encode(unreadable.encode()).decode()

    compression = error(surface, create + dimuon + "-compression=brotli", "phil")
    branches = error(surface, create + dimuon + '-branches="MET,mu_ptt"', "phil")
    collection = error(surface, create + f'-collection="{unreadable}"', "phil")

    assert compression == api_error(
        surface, "phil", select=DIMUON, compression="brotli"
    )
    assert branches == api_error(
        surface, "phil", select=DIMUON, branches=["MET", "mu_ptt"]
    )
    assert collection == api_error(surface, "phil", collection=encoded)
    assert collection[0] == "CollectionError"
    assert "no column 'EventNumber'" in collection[1]


def test_a_bad_target_size_is_refused_as_the_command_line_refuses_it(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="dimuon" -targetSize='
    )

    words = error(surface, create + '"2 GB"', login="phil")
    zero = error(surface, create + "0", login="phil")
    negative = error(surface, create + "-5", login="phil")
    huge = error(surface, create + "9" * 30, login="phil")
    endless = error(surface, create + "9" * 5000, login="phil")

    assert words == (
        "InvalidInput",
        "-targetSize must be a whole number of bytes, got '2 GB'",
    )
    assert zero == cli_error(surface, "phil", target_size=0)
    assert zero[1] == "the target file size must be positive, not 0"
    assert negative == cli_error(surface, "phil", target_size=-5)
    assert huge == cli_error(surface, "phil", target_size=int("9" * 30))
    assert huge[1] == (
        f"the target file size must be at most {2**62} bytes, not {'9' * 30}"
    )
    assert endless[0] == "InvalidInput"
    assert endless[1].startswith(
        "-targetSize must be a whole number of bytes, got '999"
    )


def test_a_selection_or_a_collection_is_needed_not_both(surface):
    create = f'AMICreateSkim -logicalDatasetName="{DATASET}" -name="dimuon"'
    csv = surface.tag.collection(surface.tag.select(DIMUON)[:3]).to_csv()

    neither = error(surface, create, login="phil")
    both = error(surface, f'{create} -select="{DIMUON}" -collection="{csv}"', "phil")

    assert neither == cli_error(surface, "phil", selection=None)
    assert neither[1] == "a skim needs a selection, or an event collection upload"
    assert both == cli_error(surface, "phil", collection=csv.encode())
    assert both[1] == "give a selection or a collection to upload, not both"


def test_a_csv_collection_in_the_command_makes_a_skim(surface):
    tag = surface.tag
    chosen = tag.collection(tag.select("nJets >= 3"))
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -name="jets" '
        f'-collection="{chosen.to_csv()}" -collectionName="jets.csv"'
    )

    [made] = rows(surface, create, "skim", login="phil")
    done = surface.run_skims(int(made["skimId"]))

    assert (made["collectionName"], made["state"]) == ("jets.csv", "defined")
    assert surface.skim(done.id).selection == ""
    assert done.state == "done" and done.n_selected == len(chosen) > 0
    assert "jets.csv" in (done.output.physics_comment or "")


# --- retrying ---------------------------------------------------------------------


def event_paths(world: SurfaceWorld) -> list[Path]:
    with world.Session() as session:
        store = FileStore.from_config(world.config)
        found = dataset_event_files(DATASET, store, session=session)
        return [event_file.path for event_file in found]


def output_paths(world: SurfaceWorld, skim_id: int) -> list[Path]:
    return sorted(Path(world.skim(skim_id).output_dir or "").glob("*.root"))


def failed_skim(world: SurfaceWorld, login: str = "phil") -> int:
    """A skim of *login* that failed: its event files are gone."""
    skim_id = world.request(login)
    world.remove_event_files()
    assert world.run_skims(skim_id).state == "failed"
    return skim_id


def test_a_retry_redoes_the_failed_files_and_ends_done(surface):
    create = (
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        f'-name="dimuon" -targetSize={SMALL_FILES}'
    )
    skim_id = int(rows(surface, create, "skim", login="phil")[0]["skimId"])
    surface.run_skims(skim_id, until=("extracting",))  # planned
    broken = event_paths(surface)[1]
    kept = broken.with_name("kept")
    shutil.copyfile(broken, kept)
    broken.write_bytes(b"not a ROOT file" * 1000)
    failed = surface.run_skims(skim_id)
    written = {path.name: path.stat() for path in output_paths(surface, skim_id)}
    shutil.copyfile(kept, broken)

    [retried] = rows(surface, f'AMIRetrySkim -skimId="{skim_id}"', "skim", "phil")
    done = surface.run_skims(skim_id)

    assert failed.state == "failed" and failed.failed_units
    assert 0 < len(written) < failed.n_units
    assert (retried["state"], retried["error"]) == ("selected", "NULL")
    assert done.state == "done" and done.n_selected == surface.tag.count(DIMUON)
    assert len(output_paths(surface, skim_id)) == done.n_units
    for path in output_paths(surface, skim_id):
        if path.name in written:  # untouched by the retry
            before, after = written[path.name], path.stat()
            assert (after.st_ino, after.st_mtime_ns) == (
                before.st_ino,
                before.st_mtime_ns,
            )


def test_an_anonymous_retry_asks_for_credentials(surface):
    skim_id = failed_skim(surface)
    retry = f'AMIRetrySkim -skimId="{skim_id}"'

    anonymous = error(surface, retry)
    reader = error(surface, retry, login="rita")

    assert anonymous[0] == "AuthenticationFailed"
    assert "retrying a skim needs a logged-in user" in anonymous[1]
    assert "send -AMIUser and -AMIPass with the command" in anonymous[1]
    assert reader[0] == "PermissionDenied"
    assert surface.skim(skim_id).state == "failed"


def test_another_users_retry_is_refused_as_by_the_api(surface):
    skim_id = failed_skim(surface, "phil")
    retry = f'AMIRetrySkim -skimId="{skim_id}"'
    by_api = surface.app.test_client().post(
        f"/api/v1/skims/{skim_id}/retry", headers=surface.bearer("paula")
    )

    by_paula = error(surface, retry, login="paula")
    still = surface.skim(skim_id).state
    [by_admin] = rows(surface, retry, "skim", login="ada")

    assert by_api.status_code == 403
    assert by_paula == (by_api.json["error"]["type"], by_api.json["error"]["message"])
    assert by_paula == (
        "PermissionDenied",
        "retrying a skim of another user needs the role 'admin'; "
        "user 'paula' does not have it",
    )
    assert still == "failed"
    assert by_admin["state"] in ("selected", "defined")


def test_only_a_failed_skim_is_retried(surface):
    skim_id = surface.request("phil")

    too_soon = error(surface, f'AMIRetrySkim -skimId="{skim_id}"', login="phil")

    assert too_soon == (
        "InvalidInput",
        f"skim {skim_id} is defined: only a failed skim can be retried",
    )


def test_a_skim_id_out_of_every_range_is_not_found(surface):
    for command in ("AMIGetSkimInfo", "AMICancelSkim", "AMIRetrySkim"):
        found = error(surface, f'{command} -skimId="{"9" * 30}"', login="phil")
        assert found[0] == "SkimNotFound", found
        assert found[1].startswith(f"no skim {'9' * 30};")
