"""The JSON API of TAG databases and skims, on SQLite, PostgreSQL and
MariaDB: the TAGs and their live count (the same as the columnar store's
``TagTable.count``), requesting skims with a token, paging through them,
cancelling and retrying, and downloading a collection; every error in the
API's one shape.
"""

from __future__ import annotations

import base64
import io
import zlib
from typing import Any

import numpy as np
import pytest
import uproot
from test_skim_pages import (
    DATASET,
    DIMUON,
    UNTAGGED,
    SurfaceWorld,
    shown,
)

from catalog.config import load_config
from skimengine.collection import read_collection
from web.app import create_app

API = "/api/v1"


def assert_error(answer: Any, status: int, kind: str) -> dict[str, Any]:
    """Check that *answer* is the API's error of *kind*; return its body."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json["error"]
    assert set(error) == {"type", "message", "status", "details"}
    assert (error["type"], error["status"]) == (kind, status)
    return error


def post_skim(world: SurfaceWorld, login: str | None, **body: Any) -> Any:
    body = {"logicalDatasetName": DATASET, "name": "dimuon", **body}
    headers = world.bearer(login) if login else {}
    return world.app.test_client().post(f"{API}/skims", json=body, headers=headers)


# --- TAG databases ----------------------------------------------------------------


def test_the_tags_are_listed_with_their_events(surface):
    answer = surface.app.test_client().get(f"{API}/tags")

    assert answer.status_code == 200
    [item] = answer.json["items"]
    assert item["logicalDatasetName"] == DATASET
    assert item["nEvents"] == len(surface.tag)
    assert (item["store"], item["status"]) == ("npy+sql", "ready")


def test_a_tag_has_its_schema_and_distributions(surface):
    answer = surface.app.test_client().get(f"{API}/tags/{DATASET}")

    tag = answer.json
    names = [attribute["name"] for attribute in tag["attributes"]]
    assert answer.status_code == 200
    assert names[:3] == ["RunNumber", "EventNumber", "LumiBlock"]
    assert {"nJets", "MET", "triggerBits"} <= set(names)
    assert tag["triggers"][1] == "HLT_mu26_ivarmedium"
    assert tag["nFiles"] == 2
    units = {attribute["name"]: attribute["unit"] for attribute in tag["attributes"]}
    assert (units["MET"], units["jet_pt1"], units["nJets"]) == ("GeV", "GeV", "")
    met = surface.tag.columns["MET"]
    assert tag["distributions"]["MET"]["max"] == pytest.approx(float(met.max()))
    assert sum(tag["distributions"]["nMuons"]["counts"]) == len(surface.tag)


@pytest.mark.parametrize(
    "selection",
    [
        DIMUON,
        "nJets >= 2 and jet_pt1 > 50",
        'trigger("HLT_mu26_ivarmedium") && !(MET > 40)',
        "abs(mu_pt1 - 40) < 5 or el_pt1 in [25, 80)",
    ],
)
def test_the_live_count_is_the_tags_count(surface, selection):
    answer = surface.app.test_client().get(
        f"{API}/tags/{DATASET}/count", query_string={"select": selection}
    )

    assert answer.status_code == 200
    assert answer.json == {
        "logicalDatasetName": DATASET,
        "select": selection,
        "count": surface.tag.count(selection),
        "nEvents": len(surface.tag),
    }
    assert 0 < answer.json["count"] < len(surface.tag)


def test_a_wrong_selection_is_an_error_at_its_position(surface):
    answer = surface.app.test_client().get(
        f"{API}/tags/{DATASET}/count", query_string={"select": "nJets >= 2 && MET >"}
    )

    error = assert_error(answer, 400, "SelectionError")
    first, shown, caret = error["message"].splitlines()
    assert first.startswith("column 20: ")
    assert shown == "  nJets >= 2 && MET >"
    assert caret == "  " + " " * 19 + "^"
    assert error["details"] == [first]


def test_counting_needs_a_tag_and_a_selection(surface):
    client = surface.app.test_client()

    untagged = client.get(f"{API}/tags/{UNTAGGED}/count?select=MET>1")
    unknown = client.get(f"{API}/tags/{DATASET}x")
    missing = client.get(f"{API}/tags/{DATASET}/count")

    assert (
        "has no TAG database" in assert_error(untagged, 404, "TagNotFound")["message"]
    )
    assert "did you mean" in assert_error(unknown, 404, "DatasetNotFound")["message"]
    details = assert_error(missing, 400, "ValidationError")["details"]
    assert details == ["select: Missing data for required field."]


# --- requesting skims ---------------------------------------------------------------


def test_a_physicist_requests_a_skim_with_a_token(surface):
    answer = post_skim(
        surface, "phil", select=DIMUON, branches=["MET", "mu_pt"], compression="lz4"
    )

    skim = answer.json
    assert answer.status_code == 201, answer.text
    assert (skim["name"], skim["owner"], skim["state"]) == ("dimuon", "phil", "defined")
    assert (skim["logicalDatasetName"], skim["select"]) == (DATASET, DIMUON)
    # Stored as algorithm:level, the level defaulted.
    assert (skim["branches"], skim["compression"]) == (["MET", "mu_pt"], "lz4:1")
    assert (skim["progress"], skim["outputDatasetName"]) == (0.0, None)
    assert skim["runRequested"] is not None  # queued at once, by default
    assert surface.skim(skim["id"]).owner.login == "phil"


def test_a_skim_defined_without_run_runs_on_request(surface):
    defined = post_skim(surface, "phil", select=DIMUON, run=False).json
    client = surface.app.test_client()
    path = f"{API}/skims/{defined['id']}/run"

    by_paula = client.post(path, headers=surface.bearer("paula"))
    by_phil = client.post(path, headers=surface.bearer("phil"))
    again = client.post(path, headers=surface.bearer("phil"))
    done = surface.run_skims(defined["id"])
    finished = client.post(path, headers=surface.bearer("phil"))

    assert (defined["state"], defined["runRequested"]) == ("defined", None)
    assert_error(by_paula, 403, "PermissionDenied")
    assert by_phil.status_code == 200 and by_phil.json["runRequested"] is not None
    assert again.json["runRequested"] == by_phil.json["runRequested"]
    assert done.state == "done"
    message = assert_error(finished, 400, "InvalidInput")["message"]
    assert f"skim {defined['id']} is done: it cannot run again" in message


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"json": {"bogus": 1}}, "bogus: Unknown field."),
        ({"json": {"run": True}}, "run: Unknown field."),
        (
            {"data": "{", "content_type": "application/json"},
            "body: is not JSON that parses",
        ),
        ({"data": "x=1", "content_type": "text/plain"}, "body: must be JSON"),
    ],
)
def test_a_run_refuses_a_body_it_cannot_use(surface, body, said):
    defined = post_skim(surface, "phil", select=DIMUON, run=False).json
    path = f"{API}/skims/{defined['id']}/run"
    client = surface.app.test_client()

    refused = client.post(path, headers=surface.bearer("phil"), **body)
    after = client.get(f"{API}/skims/{defined['id']}").json
    empty = client.post(path, headers=surface.bearer("phil"), json={})

    assert assert_error(refused, 400, "ValidationError")["message"].startswith(said)
    assert after["runRequested"] is None  # refused: not queued
    assert empty.status_code == 200 and empty.json["runRequested"] is not None


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_cancel_and_retry_refuse_a_body_they_cannot_use_too(surface, action):
    skim_id = surface.request("phil")
    path = f"{API}/skims/{skim_id}/{action}"

    refused = surface.app.test_client().post(
        path, headers=surface.bearer("phil"), json={"bogus": 1}
    )

    details = assert_error(refused, 400, "ValidationError")["details"]
    assert details == ["bogus: Unknown field."]
    assert surface.skim(skim_id).state == "defined"


def test_requesting_a_skim_needs_a_physicist(surface):
    anonymous = post_skim(surface, None, select=DIMUON)
    reader = post_skim(surface, "rita", select=DIMUON)

    assert_error(anonymous, 401, "AuthenticationFailed")
    message = assert_error(reader, 403, "PermissionDenied")["message"]
    assert "requesting a skim needs the role 'physicist'" in message


def test_a_bad_request_says_what_is_wrong(surface):
    wrong_name = post_skim(surface, "phil", select=DIMUON, name="2fast")
    wrong_selection = post_skim(surface, "phil", select="nMuon >= 2")
    no_tag = post_skim(surface, "phil", select=DIMUON, logicalDatasetName=UNTAGGED)
    not_base64 = post_skim(surface, "phil", collection="**")

    assert (
        "'2fast' is not a usable skim name"
        in (assert_error(wrong_name, 400, "InvalidInput")["message"])
    )
    assert (
        "did you mean 'nMuons'"
        in (assert_error(wrong_selection, 400, "SelectionError")["message"])
    )
    assert_error(no_tag, 404, "TagNotFound")
    details = assert_error(not_base64, 400, "ValidationError")["details"]
    assert details == ["collection: must be base64"]


def test_an_uploaded_collection_is_checked_against_the_tag(surface):
    tag = surface.tag
    csv = tag.collection(tag.select("nJets >= 3")).to_csv()
    encoded = base64.b64encode(csv.encode()).decode()

    good = post_skim(surface, "phil", collection=encoded, collectionName="jets.csv")
    bad = post_skim(
        surface,
        "phil",
        name="broken",
        collection=base64.b64encode(b"RunNumber,Event\n1,2\n").decode(),
        collectionName="broken.csv",
    )

    assert good.status_code == 201, good.text
    assert (good.json["collectionName"], good.json["select"]) == ("jets.csv", "")
    assert (
        "no column 'EventNumber'"
        in assert_error(bad, 400, "CollectionError")["message"]
    )


def test_an_upload_over_the_limit_is_refused_before_it_is_read(surface, tmp_path):
    config = load_config(env={"HEPCAT_MAX_UPLOAD_MB": "0.002"}, data_dir=tmp_path)
    engine = surface.app.extensions["hepcat"].engine
    client = create_app(config, engine=engine).test_client()
    csv = surface.tag.collection(surface.tag.select("nJets >= 1")).to_csv()
    body = {"logicalDatasetName": DATASET, "name": "big", "collectionName": "a.csv"}
    body["collection"] = base64.b64encode(csv.encode()).decode()
    headers = surface.bearer("phil")

    big = client.post(f"{API}/skims", json=body, headers=headers)
    small = client.post(
        f"{API}/skims", json={**body, "collection": "AA=="}, headers=headers
    )
    # The AMI endpoint keeps its own limit (500 kB).
    ami = client.post(
        "/AMI/FrontEnd", data={"Command": "AMIListCommands " + "x" * 3000}
    )
    listed = client.get(f"{API}/skims")

    message = assert_error(big, 413, "RequestTooLarge")["message"]
    assert message.startswith(
        f"the request is too large: {big.request.content_length:,}"
    )
    assert "over the server's limit of 2,000 bytes (setting max_upload_mb)" in message
    assert_error(small, 400, "CollectionError")  # read, since under the limit
    assert ami.status_code == 200 and "RequestTooLarge" not in ami.text
    assert listed.json["items"] == []


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "the target file size must be positive, not 0"),
        (-5, "the target file size must be positive, not -5"),
        (
            2**62 + 1,
            f"the target file size must be at most {2**62} bytes, not {2**62 + 1}",
        ),
    ],
    ids=["zero", "negative", "too large"],
)
def test_a_target_size_out_of_range_is_refused_as_by_the_command_line(
    surface, size, message
):
    answer = post_skim(surface, "phil", select=DIMUON, targetSize=size)

    error = assert_error(answer, 400, "InvalidInput")
    assert (error["message"], error["details"]) == (message, [message])


@pytest.mark.parametrize("size", ["60000", 60000.0, 1.5, True])
def test_a_target_size_must_be_a_json_integer(surface, size):
    answer = post_skim(surface, "phil", select=DIMUON, targetSize=size)

    details = assert_error(answer, 400, "ValidationError")["details"]
    assert details == ["targetSize: Not a valid integer."]


@pytest.mark.parametrize("run", ["true", "false", 1, 0, "yes"])
def test_run_must_be_a_json_boolean(surface, run):
    answer = post_skim(surface, "phil", select=DIMUON, run=run)

    details = assert_error(answer, 400, "ValidationError")["details"]
    assert details == ["run: Not a valid boolean."]


def test_the_largest_target_size_is_taken_and_documented(surface):
    answer = post_skim(surface, "phil", select=DIMUON, targetSize=2**62)
    document = surface.app.test_client().get(f"{API}/openapi.json").json

    assert answer.status_code == 201, answer.text
    assert answer.json["targetSize"] == 2**62
    schema = document["components"]["schemas"]["SkimInput"]
    declared = schema["properties"]["targetSize"]
    assert (declared["minimum"], declared["maximum"]) == (1, 2**62)
    assert "400" in document["paths"][f"{API}/skims"]["post"]["responses"]


# --- reading skims ------------------------------------------------------------------


def test_skims_are_paged_newest_first_and_filtered(surface):
    made = [surface.request("phil", f"s{i}") for i in range(3)]
    pauls = surface.request("paula", "hers")
    client = surface.app.test_client()

    first = client.get(f"{API}/skims?limit=2")
    second = client.get(first.json["next"])
    of_phil = client.get(f"{API}/skims?owner=phil")
    defined = client.get(f"{API}/skims?state=defined&owner=paula")
    of_dataset = client.get(f"{API}/skims?dataset={DATASET}&owner=paula")
    of_other = client.get(f"{API}/skims?dataset={UNTAGGED}")
    bad_state = client.get(f"{API}/skims?state=sleeping")

    pages = [item["id"] for item in first.json["items"] + second.json["items"]]
    assert pages == [pauls, *reversed(made)]
    assert second.json["next"] is None
    assert [item["id"] for item in of_phil.json["items"]] == list(reversed(made))
    assert [item["name"] for item in defined.json["items"]] == ["hers"]
    assert [item["id"] for item in of_dataset.json["items"]] == [pauls]
    assert of_other.json["items"] == []
    assert_error(bad_state, 400, "ValidationError")


def test_an_unknown_owner_lists_no_skims_as_a_known_one_without_skims(surface):
    # The answer must not tell which logins exist (docs/access.md): "ada"
    # exists and has no skims, "nosuchuser" does not exist.
    surface.request("phil", "dimuon")
    client = surface.browser("phil")

    of_ada = client.get(f"{API}/skims?owner=ada")
    of_nobody = client.get(f"{API}/skims?owner=nosuchuser")
    page_of_ada = client.get("/skims?owner=ada")
    page_of_nobody = client.get("/skims?owner=nosuchuser")

    assert (of_ada.status_code, of_ada.json["items"]) == (200, [])
    assert (of_nobody.status_code, of_nobody.json) == (200, of_ada.json)
    for page in page_of_ada, page_of_nobody:
        assert page.status_code == 200
        assert "No skim matches these filters" in shown(page)


def test_an_unknown_skim_is_a_404(surface):
    client = surface.app.test_client()

    assert (
        "no skim 99"
        in assert_error(client.get(f"{API}/skims/99"), 404, "SkimNotFound")["message"]
    )


# Every route of one skim: its method and what follows the skim's number.
SKIM_ROUTES = [
    ("GET", ""),
    ("GET", "/collection"),
    ("GET", "/files"),
    ("GET", "/files/x.root"),
    ("POST", "/run"),
    ("POST", "/cancel"),
    ("POST", "/retry"),
]


def test_a_skim_number_that_is_no_whole_number_is_a_400_naming_it(surface):
    client = surface.app.test_client()

    for number in ("abc", "-1"):
        for method, rest in SKIM_ROUTES:
            answer = client.open(
                f"{API}/skims/{number}{rest}",
                method=method,
                headers=surface.bearer("phil"),
            )
            message = assert_error(answer, 400, "InvalidInput")["message"]
            assert message == f"skim id must be a whole number, got '{number}'"


# --- cancelling and retrying ----------------------------------------------------


def test_only_the_owner_or_an_admin_cancels_a_skim(surface):
    skim_id = surface.request("phil")
    client = surface.app.test_client()
    path = f"{API}/skims/{skim_id}/cancel"

    by_paula = client.post(path, headers=surface.bearer("paula"))
    by_phil = client.post(path, headers=surface.bearer("phil"))
    again = client.post(path, headers=surface.bearer("ada"))

    assert_error(by_paula, 403, "PermissionDenied")
    assert by_phil.status_code == 200 and by_phil.json["state"] == "cancelled"
    assert (
        "only a skim in progress can be cancelled"
        in (assert_error(again, 400, "InvalidInput")["message"])
    )


def test_only_a_failed_skim_is_retried(surface):
    skim_id = surface.request("phil")
    client = surface.app.test_client()
    path = f"{API}/skims/{skim_id}/retry"

    too_soon = client.post(path, headers=surface.bearer("phil"))

    message = assert_error(too_soon, 400, "InvalidInput")["message"]
    assert "only a failed skim can be retried" in message


def test_the_collection_waits_for_the_selection(surface):
    skim_id = surface.request("phil")

    answer = surface.app.test_client().get(f"{API}/skims/{skim_id}/collection")

    message = assert_error(answer, 404, "CollectionNotReady")["message"]
    assert f"skim {skim_id} has no event collection yet: it is defined" in message


def test_a_done_skim_gives_its_collection_and_output(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    surface.run_skims(skim_id)
    client = surface.app.test_client()
    expected = surface.tag.select(DIMUON)

    skim = client.get(f"{API}/skims/{skim_id}").json
    with client.get(f"{API}/skims/{skim_id}/collection") as as_root:
        root_data = as_root.data
    as_csv = client.get(f"{API}/skims/{skim_id}/collection?format=csv")
    bad = client.get(f"{API}/skims/{skim_id}/collection?format=parquet")

    assert (skim["state"], skim["progress"]) == ("done", 100.0)
    assert skim["nSelected"] == len(expected)
    assert skim["nEventsIn"] == len(surface.tag)
    assert skim["outputDatasetName"].startswith("user.phil.mc16_13TeV.361107.")
    for data in (root_data, as_csv.data):
        events = read_collection(data, "collection")
        assert np.array_equal(
            events.event_number, surface.tag.columns["EventNumber"][expected]
        )
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert_error(bad, 400, "ValidationError")


def test_a_done_skim_lists_and_gives_its_output_files(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    early = surface.app.test_client().get(f"{API}/skims/{skim_id}/files")
    surface.run_skims(skim_id)
    client = surface.app.test_client()
    output = surface.skim(skim_id).output

    listed = client.get(f"{API}/skims/{skim_id}/files").json
    events = 0
    for item in listed["items"]:
        with client.get(item["url"]) as download:
            assert download.status_code == 200
            assert item["checksum"] == f"ad:{zlib.adler32(download.data):08x}"
            assert item["fileSize"] == len(download.data)
            with uproot.open(io.BytesIO(download.data)) as opened:
                assert opened["CollectionTree"].num_entries == item["events"]
                events += item["events"]

    message = assert_error(early, 404, "OutputNotReady")["message"]
    assert f"skim {skim_id} has no output files yet: it is defined" in message
    assert listed["logicalDatasetName"] == output.name
    assert sorted(i["LFN"] for i in listed["items"]) == sorted(
        f.lfn for f in output.files
    )
    assert events == len(surface.tag.select(DIMUON))
