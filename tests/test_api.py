"""The JSON API under /api/v1, as a client uses it: search and page through
datasets, read every field of one, follow files, provenance, runs, periods
and AMI tags (one, or all of them page by page), annotate with a token, and
meet one error shape everywhere.

The catalogue is the simulated world (ingest.world), seeded directly; the
expectations are computed from the world or read from the catalogue.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_containers import put_in_container
from werkzeug.test import TestResponse
from worlds import make_app

from catalog.db import create_catalog_engine
from catalog.fields import ami_fields
from catalog.models import Dataset, Quarantine
from catalog.operations import quarantine
from catalog.users import add_user, create_token
from ingest.seed import seed_catalog
from ingest.world import World, build_world

API = "/api/v1"
ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZEE_AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"
ZEE_DAOD = f"{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"
ZEE_CONTAINER = f"{ZEE}.DAOD_PHYS"
FAILED_STATUSES = {"failed", "broken", "aborted"}


@pytest.fixture
def world(Session: sessionmaker[OrmSession]) -> World:  # noqa: N803
    """The simulated world, written into the test's catalogue."""
    built = build_world()
    with Session.begin() as session:
        seed_catalog(built, session=session)
    return built


@pytest.fixture
def tokens(Session: sessionmaker[OrmSession]) -> dict[str, str]:  # noqa: N803
    """API tokens of a reader (rita), two physicists (phil, paul) and an
    admin (ada).
    """
    users = {"rita": "reader", "phil": "physicist", "paul": "physicist", "ada": "admin"}
    with Session.begin() as session:
        for login, role in users.items():
            add_user(login, roles=[role], session=session)
        return {login: create_token(login, "tests", session=session) for login in users}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def walk(client: FlaskClient, url: str) -> Iterator[dict[str, Any]]:
    """Every page of a list, following ``next`` from *url*."""
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.json
        yield response.json
        url = response.json["next"]


def walked_items(client: FlaskClient, url: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in walk(client, url):
        assert len(page["items"]) <= limit
        assert (page["next"] is None) == (page["cursor"] is None)
        items.extend(page["items"])
    return items


def assert_error(response: TestResponse, status: int, kind: str) -> str:
    """Check the one error shape; return the message."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"type", "message", "status", "details"}
    assert error["type"] == kind
    assert error["status"] == status
    assert error["message"]
    assert error["details"] and all(isinstance(d, str) for d in error["details"])
    return str(error["message"])


def as_json(value: Any) -> Any:
    """A catalogue value as the API shows it."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def catalogue_datasets(Session: sessionmaker[OrmSession]) -> list[Dataset]:  # noqa: N803
    with Session.begin() as session:
        return list(session.scalars(select(Dataset)))


# --- datasets ----------------------------------------------------------------


def test_a_dataset_shows_every_ami_field_as_the_catalogue_has_it(
    client: FlaskClient,
    world: World,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    daod = next(
        d for d in world.datasets if ".DAOD_PHYS." in d.name and "mc16" in d.name
    )
    with Session.begin() as session:
        stored = session.scalar(select(Dataset).where(Dataset.name == daod.name))
        assert stored is not None
        source = stored.cross_section_source
        expected = {
            name: as_json(getattr(stored, str(column.key)))
            for name, column in ami_fields(Dataset).items()
        }

    response = client.get(f"{API}/datasets/{daod.name}")

    assert response.status_code == 200
    shown = response.json
    assert source is not None and ".EVNT." in source.name
    expected["crossSectionSource"] = source.name
    assert {name: shown[name] for name in expected} == expected
    assert shown["nFiles"] == len(daod.files)
    assert shown["totalEvents"] == sum(f.events for f in daod.files)
    assert shown["replicas"] == [] and shown["containers"] == []


def test_search_filters_on_ami_fields_and_name_patterns(
    client: FlaskClient, world: World
) -> None:
    url = f"{API}/datasets?name=%25Zee%25&dataType=DAOD_PHYS&projectName=mc16%25"

    items = walked_items(client, url + "&limit=2", 2)

    expected = sorted(
        d.name
        for d in world.datasets
        if "Zee" in d.name and ".DAOD_PHYS." in d.name and d.name.startswith("mc16")
    )
    assert len(expected) > 2
    assert sorted(item["logicalDatasetName"] for item in items) == expected
    assert all(item["dataType"] == "DAOD_PHYS" for item in items)


def test_a_repeated_filter_is_refused_saying_how_to_ask_for_several(
    client: FlaskClient, world: World
) -> None:
    response = client.get(f"{API}/datasets?dataType=AOD&dataType=RAW&limit=1000")

    message = assert_error(response, 400, "InvalidInput")
    assert "dataType is given 2 times ('AOD', 'RAW')" in message
    assert "dataType IN ('AOD', 'RAW')" in message


def test_a_repeated_control_argument_is_refused_too(client: FlaskClient) -> None:
    response = client.get(f"{API}/datasets?limit=5&limit=6")

    message = assert_error(response, 400, "InvalidInput")
    assert (
        message
        == "the query argument limit is given 2 times ('5', '6'); it takes one value"
    )


def test_a_container_filter_naming_no_container_is_a_404_naming_it(
    client: FlaskClient,
    world: World,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    put_in_container(Session, ZEE_CONTAINER, [ZEE_DAOD], scope="mc16_13TeV")

    known = client.get(f"{API}/datasets", query_string={"inContainer": ZEE_CONTAINER})
    misspelt = client.get(
        f"{API}/datasets", query_string={"inContainer": ZEE_CONTAINER + "x"}
    )
    pattern = client.get(f"{API}/datasets?inContainer=%25nothing%25")
    blanks = client.get(f"{API}/datasets?inContainer=%20%20&limit=1")

    assert [item["logicalDatasetName"] for item in known.json["items"]] == [ZEE_DAOD]
    message = assert_error(misspelt, 404, "ContainerNotFound")
    assert message.startswith(f"no DDM container named '{ZEE_CONTAINER}x'")
    assert f"did you mean '{ZEE_CONTAINER}'" in message
    # A pattern is a search: matching no container finds no dataset.
    assert (pattern.status_code, pattern.json["items"]) == (200, [])
    assert blanks.status_code == 200 and len(blanks.json["items"]) == 1


def test_search_by_a_number_and_a_time(client: FlaskClient, world: World) -> None:
    evnt = next(d for d in world.datasets if ".EVNT." in d.name)
    created = evnt.created.isoformat()

    by_number = client.get(f"{API}/datasets?nFiles={len(evnt.files)}&dataType=EVNT")
    by_time = client.get(f"{API}/datasets", query_string={"created": created})

    names = {item["logicalDatasetName"] for item in by_number.json["items"]}
    assert evnt.name in names
    expected = {d.name for d in world.datasets if d.created == evnt.created}
    assert {i["logicalDatasetName"] for i in by_time.json["items"]} == expected


NUMERIC_SORTS = ["-totalEvents", "crossSection", "-crossSection", "nLostLumiBlocks"]


@pytest.mark.parametrize("sort", NUMERIC_SORTS)
def test_paging_by_a_number_keeps_ties_and_puts_nulls_last(
    client: FlaskClient,
    world: World,
    Session: sessionmaker[OrmSession],  # noqa: N803
    sort: str,
) -> None:
    column = ami_fields(Dataset)[sort.lstrip("-")]
    datasets = catalogue_datasets(Session)
    rows = [(getattr(d, str(column.key)), d.id, d.name) for d in datasets]
    values = [value for value, _, _ in rows]
    # The world must give this test something to do: ties, and NULLs.
    assert len(set(values) - {None}) < len(values) - values.count(None)
    assert (None in values) == bool(column.nullable)
    sign = -1 if sort.startswith("-") else 1
    expected = [
        name
        for _, _, name in sorted(
            rows, key=lambda r: (r[0] is None, sign * (r[0] or 0), sign * r[1])
        )
    ]

    items = walked_items(client, f"{API}/datasets?sort={sort}&limit=3", 3)

    assert [item["logicalDatasetName"] for item in items] == expected


@pytest.mark.parametrize(
    "sort", ["logicalDatasetName", "-period,dataType", "prodsysStatus,-created"]
)
def test_paging_by_text_walks_the_same_rows_as_one_full_query(
    client: FlaskClient, world: World, sort: str
) -> None:
    full = client.get(f"{API}/datasets", query_string={"sort": sort, "limit": 1000})
    assert full.json["next"] is None

    items = walked_items(client, f"{API}/datasets?sort={sort}&limit=4", 4)

    names = [item["logicalDatasetName"] for item in items]
    assert names == [item["logicalDatasetName"] for item in full.json["items"]]
    assert sorted(names) == sorted(d.name for d in world.datasets)


def test_files_of_a_dataset_page_by_lfn(
    client: FlaskClient,
    world: World,
) -> None:
    evnt = next(d for d in world.datasets if ".EVNT." in d.name)
    url = f"{API}/datasets/{evnt.name}/files?limit=3"

    items = walked_items(client, url, 3)

    full = client.get(f"{API}/datasets/{evnt.name}/files?limit=1000").json["items"]
    assert items == full
    by_lfn = {f.lfn: f for f in evnt.files}
    assert sorted(item["LFN"] for item in items) == sorted(by_lfn)
    for item in items:
        spec = by_lfn[item["LFN"]]
        assert item["fileGUID"] == spec.guid
        assert item["fileSize"] == spec.size
        assert item["events"] == spec.events
        assert item["checksum"] == spec.checksum
        assert item["crossSection"] == spec.cross_section
        assert item["logicalDatasetName"] == evnt.name


def test_a_file_is_found_by_guid_in_any_case_and_by_lfn(
    client: FlaskClient, world: World
) -> None:
    dataset = world.datasets[3]
    spec = dataset.files[0]

    by_guid = client.get(f"{API}/files/{spec.guid.lower()}")
    by_lfn = client.get(f"{API}/files", query_string={"lfn": spec.lfn})

    assert by_guid.status_code == by_lfn.status_code == 200
    assert by_guid.json == by_lfn.json
    assert by_guid.json["fileGUID"] == spec.guid
    assert by_guid.json["LFN"] == spec.lfn
    assert by_guid.json["logicalDatasetName"] == dataset.name
    assert by_guid.json["lumiBlocks"] == spec.lumi_blocks


def test_provenance_lists_ancestors_and_descendants_by_distance(
    client: FlaskClient, world: World
) -> None:
    aod = next(d.name for d in world.datasets if ".recon.AOD." in d.name)
    parent = {o: t.input_dataset for t in world.tasks for o in t.outputs}
    expected = {aod: 0}
    name, distance = aod, 0
    while parent.get(name):
        name, distance = parent[name], distance + 1
        expected[name] = distance
    for child, up in parent.items():
        if up == aod:
            expected[child] = -1

    response = client.get(f"{API}/datasets/{aod}/provenance")

    nodes = response.json["nodes"]
    assert {n["logicalDatasetName"]: n["distance"] for n in nodes} == expected
    assert max(expected.values()) >= 2 and min(expected.values()) == -1
    edges = {(e["source"], e["destination"]) for e in response.json["edges"]}
    assert edges == {(parent[c], c) for c in expected if parent.get(c)}
    assert all(n["dataType"] == n["logicalDatasetName"].split(".")[4] for n in nodes)


# --- runs, periods, AMI tags ---------------------------------------------------


def test_runs_page_newest_first_with_their_periods(
    client: FlaskClient, world: World
) -> None:
    items = walked_items(client, f"{API}/runs?limit=2", 2)

    expected = sorted(world.runs, key=lambda run: -run.run_number)
    assert [item["runNumber"] for item in items] == [r.run_number for r in expected]
    for item, run in zip(items, expected, strict=True):
        periods = sorted(
            p.period
            for p in world.periods
            if p.project == run.project and run.run_number in p.runs
        )
        assert item["periods"] == periods
        assert item["nLumiBlocks"] == run.n_lumi_blocks
        assert dt.datetime.fromisoformat(item["startTime"]) == run.start_time


def test_a_run_lists_its_datasets(client: FlaskClient, world: World) -> None:
    run = world.runs[0]

    response = client.get(f"{API}/runs/{run.run_number}")

    assert response.json["runNumber"] == run.run_number
    number = f".{run.run_number:08d}."
    assert response.json["datasets"] == sorted(
        d.name for d in world.datasets if number in d.name
    )


def test_periods_count_their_runs_and_reprocessing_errors(
    client: FlaskClient, world: World
) -> None:
    failed_runs: dict[int, set[int]] = {}
    for task in world.tasks:
        if task.status in FAILED_STATUSES:
            for name in [task.input_dataset or "", *task.outputs]:
                if name.startswith("data"):
                    run = int(name.split(".")[1])
                    failed_runs.setdefault(run, set()).add(task.task_id)

    response = client.get(f"{API}/periods", query_string={"level": 1})

    shown = {item["period"]: item for item in response.json["items"]}
    level_one = [p for p in world.periods if p.level == 1]
    assert sorted(shown) == sorted(p.period for p in level_one)
    for spec in level_one:
        tasks = {t for run in spec.runs for t in failed_runs.get(run, set())}
        assert shown[spec.period]["nRuns"] == len(spec.runs)
        assert shown[spec.period]["reprocessingErrors"] == len(tasks)
    assert any(item["reprocessingErrors"] for item in shown.values())


def test_an_ami_tag_shows_its_transformation_and_parameters(
    client: FlaskClient, world: World
) -> None:
    tag = next(t for t in world.tags if t.parameters)

    response = client.get(f"{API}/amitags/{tag.tag}")

    assert response.json == {
        "tag": tag.tag,
        "tagType": tag.tag[0],
        "tagNumber": int(tag.tag[1:]),
        "transformation": tag.transformation,
        "SWReleaseCache": tag.release,
        "description": tag.description,
        "parameters": tag.parameters,
    }


def test_ami_tags_page_by_type_and_number(client: FlaskClient, world: World) -> None:
    def key(tag: str) -> tuple[str, int]:
        return tag[0], int(tag[1:])

    every = walked_items(client, f"{API}/amitags?limit=2", limit=2)
    recons = walked_items(client, f"{API}/amitags?type=r&limit=1", limit=1)

    assert [t["tag"] for t in every] == sorted((t.tag for t in world.tags), key=key)
    assert [t["tag"] for t in recons] == [
        t["tag"] for t in every if t["tagType"] == "r"
    ]
    assert len(recons) > 1
    assert_error(client.get(f"{API}/amitags?type=rr"), 400, "ValidationError")


def test_quarantine_pages_newest_first(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    moment = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    with Session.begin() as session:
        for index in range(7):
            entry = quarantine(
                "tier0", f"row {index}", {"n": index}, "bad", session=session
            )
            # Four records share the latest time: the id breaks the tie, the
            # newest first.
            entry.created = moment + dt.timedelta(minutes=min(index, 3))
    with Session.begin() as session:
        rows = session.scalars(select(Quarantine)).all()
        expected = [
            r.record_key
            for r in sorted(rows, key=lambda r: (-r.created.timestamp(), -r.id))
        ]

    items = walked_items(client, f"{API}/quarantine?limit=2&source=tier0", 2)

    assert [item["recordKey"] for item in items] == expected
    assert json.loads(items[0]["payload"]) == {"n": 6}


def test_quarantine_of_an_unknown_source_is_a_400_naming_the_sources(
    client: FlaskClient,
) -> None:
    answer = client.get(f"{API}/quarantine?source=tier-0")

    assert answer.status_code == 400
    error = answer.json["error"]
    assert error["type"] == "UnknownSource"
    assert error["message"] == (
        "no source named 'tier-0'; the sources are coma, ddm, prodsys, tier0"
    )


@pytest.fixture
def held(Session: sessionmaker[OrmSession]) -> int:  # noqa: N803
    """The id of a Tier-0 record held in quarantine."""
    with Session.begin() as session:
        entry = quarantine("tier0", "lfn 1", {"guid": "x"}, "bad GUID", session=session)
        session.flush()
        return entry.id


def test_an_admin_releases_a_quarantined_record(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    tokens: dict[str, str],
    held: int,
) -> None:
    url = f"{API}/quarantine/{held}/release"

    answer = client.post(
        url, json={"reason": "GUID fixed in Tier-0"}, headers=bearer(tokens["ada"])
    )

    assert answer.status_code == 200, answer.json
    assert answer.json["id"] == held
    assert answer.json["released"] is True
    assert answer.json["reason"].startswith("bad GUID; released by ada on ")
    assert answer.json["reason"].endswith(" UTC: GUID fixed in Tier-0")
    held_now = client.get(f"{API}/quarantine?released=false").json["items"]
    released = client.get(f"{API}/quarantine?released=true").json["items"]
    assert held_now == []
    assert [item["id"] for item in released] == [held]
    with Session() as session:
        assert session.get(Quarantine, held).released  # type: ignore[union-attr]


def test_releasing_from_quarantine_needs_an_admin_and_a_held_record(
    client: FlaskClient, tokens: dict[str, str], held: int
) -> None:
    url = f"{API}/quarantine/{held}/release"
    admin = bearer(tokens["ada"])

    anonymous = client.post(url, json={})
    physicist = client.post(url, json={}, headers=bearer(tokens["phil"]))
    client.post(url, json={}, headers=admin)
    again = client.post(url, json={}, headers=admin)
    unknown = client.post(
        f"{API}/quarantine/{held + 1000}/release", json={}, headers=admin
    )
    not_a_number = client.post(f"{API}/quarantine/x1/release", json={}, headers=admin)
    no_body = client.post(url, headers=admin)

    assert_error(anonymous, 401, "AuthenticationFailed")
    message = assert_error(physicist, 403, "PermissionDenied")
    assert message.startswith("releasing a record from quarantine needs the role")
    assert assert_error(again, 400, "AlreadyReleased") == (
        f"quarantined record {held} (lfn 1) is released already; nothing to do "
        "(a record found bad again is quarantined anew, with an id of its own)"
    )
    assert assert_error(unknown, 404, "QuarantineNotFound").startswith(
        f"no quarantined record with id {held + 1000}; "
    )
    assert assert_error(not_a_number, 400, "InvalidInput") == (
        "id must be a whole number, got 'x1'"
    )
    assert_error(no_body, 400, "ValidationError")


# --- annotations ---------------------------------------------------------------


def test_only_a_physicist_annotates(
    client: FlaskClient, world: World, tokens: dict[str, str]
) -> None:
    name = world.datasets[0].name
    url = f"{API}/datasets/{name}/annotations"
    body = {"name": "Zee_2015", "comment": "signal"}

    anonymous = client.post(url, json=body)
    reader = client.post(url, json=body, headers=bearer(tokens["rita"]))
    forged = client.post(url, json=body, headers=bearer("hepcat_not-a-token"))
    physicist = client.post(url, json=body, headers=bearer(tokens["phil"]))

    assert "physicist" in assert_error(anonymous, 401, "AuthenticationFailed")
    assert "rita" in assert_error(reader, 403, "PermissionDenied")
    assert_error(forged, 401, "AuthenticationFailed")
    assert physicist.status_code == 201
    assert physicist.json["author"] == "phil"
    listed = client.get(url).json["items"]
    assert [(a["scope"], a["name"], a["comment"]) for a in listed] == [
        ("PHYS", "Zee_2015", "signal")
    ]


def test_an_annotation_is_removed_by_its_author_or_an_admin(
    client: FlaskClient, world: World, tokens: dict[str, str]
) -> None:
    url = f"{API}/datasets/{world.datasets[0].name}/annotations"
    for tag in ("mine", "other"):
        client.post(url, json={"name": tag}, headers=bearer(tokens["phil"]))

    anonymous = client.delete(f"{url}/PHYS/mine")
    reader = client.delete(f"{url}/PHYS/mine", headers=bearer(tokens["rita"]))
    colleague = client.delete(f"{url}/PHYS/mine", headers=bearer(tokens["paul"]))
    author = client.delete(f"{url}/PHYS/mine", headers=bearer(tokens["phil"]))
    again = client.delete(f"{url}/PHYS/mine", headers=bearer(tokens["phil"]))
    admin = client.delete(f"{url}/phys/other", headers=bearer(tokens["ada"]))

    assert_error(anonymous, 401, "AuthenticationFailed")
    assert_error(reader, 403, "PermissionDenied")
    assert "paul" in assert_error(colleague, 403, "PermissionDenied")
    assert author.status_code == admin.status_code == 204
    assert_error(again, 404, "NotFound")
    assert client.get(url).json["items"] == []


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"name": ""}, {"name": "a b"}, {"name": "ok", "scope": 3}],
)
def test_a_bad_annotation_is_a_400(
    client: FlaskClient, dataset_factory: Any, tokens: dict[str, str], body: Any
) -> None:
    url = f"{API}/datasets/{dataset_factory(ZEE_EVNT).name}/annotations"

    response = client.post(url, json=body, headers=bearer(tokens["phil"]))

    assert response.status_code == 400
    assert_error(response, 400, response.json["error"]["type"])
    assert response.json["error"]["type"] in ("ValidationError", "InvalidInput")


SURROGATE = '"\\ud800"'  # JSON text: one half of a UTF-16 pair, no character
NOT_A_CHARACTER = "must not contain a lone UTF-16 surrogate (\\ud800-\\udfff)"


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        ("annotations", f'{{"name": "surr", "comment": {SURROGATE}}}', "comment: "),
        ("annotations", f'{{"name": {SURROGATE}}}', "name: "),
        (
            "skims",
            f'{{"logicalDatasetName": "{ZEE_EVNT}", "name": {SURROGATE}}}',
            "name: ",
        ),
        (
            "skims",
            f'{{"logicalDatasetName": "{ZEE_EVNT}", "name": "s", '
            f'"select": "nJets > 1", "branches": ["a", {SURROGATE}]}}',
            "branches.1: ",
        ),
    ],
    ids=["comment", "name", "skim name", "skim branch"],
)
def test_text_with_a_lone_surrogate_is_a_400(
    client: FlaskClient,
    dataset_factory: Any,
    tokens: dict[str, str],
    path: str,
    body: str,
    said: str,
) -> None:
    name = dataset_factory(ZEE_EVNT).name
    url = (
        f"{API}/datasets/{name}/annotations"
        if path == "annotations"
        else f"{API}/skims"
    )

    response = client.post(
        url, data=body, content_type="application/json", headers=bearer(tokens["phil"])
    )

    assert f"{said}{NOT_A_CHARACTER}" in assert_error(response, 400, "ValidationError")


@pytest.mark.parametrize(
    "path", ["datasets/{name}/annotations", "skims", "quarantine/1/release"]
)
def test_json_nested_too_deeply_is_a_400(
    client: FlaskClient, dataset_factory: Any, tokens: dict[str, str], path: str
) -> None:
    url = f"{API}/" + path.format(name=dataset_factory(ZEE_EVNT).name)
    body = "[" * 100_000 + "]" * 100_000

    response = client.post(
        url, data=body, content_type="application/json", headers=bearer(tokens["ada"])
    )

    message = assert_error(response, 400, "ValidationError")
    assert message == "body: is JSON nested too deeply"


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "kind", "said"),
    [
        ("/datasets/mc16_13TeV.361106.nothing", 404, "DatasetNotFound", "no dataset"),
        ("/datasets?sort=totalEvent", 400, "InvalidInput", "did you mean"),
        ("/datasets?nFiles=many", 400, "InvalidInput", "nFiles must be an integer"),
        ("/datasets?nFiles=%25", 400, "InvalidInput", "nFiles must be an integer"),
        # Python's int() would take these: underscores, other scripts' digits.
        ("/datasets?nFiles=1_000", 400, "InvalidInput", "nFiles must be an integer"),
        ("/datasets?nFiles=%D9%A3", 400, "InvalidInput", "nFiles must be an integer"),
        ("/datasets?datasetNumber=99999999999", 400, "InvalidInput", "out of range"),
        ("/datasets?created=soon", 400, "InvalidInput", "ISO 8601"),
        ("/datasets?colour=red", 400, "ValidationError", "colour: Unknown field"),
        ("/datasets?limit=1001", 400, "ValidationError", "limit"),
        ("/datasets?limit=x", 400, "ValidationError", "limit"),
        ("/datasets?name=a%00b", 400, "ValidationError", "NUL"),
        ("/datasets/a%00b", 400, "InvalidInput", "NUL"),
        ("/runs/99999999999", 400, "InvalidInput", "out of range"),
        ("/runs/abc", 400, "InvalidInput", "runNumber must be a whole number"),
        ("/runs/-1", 400, "InvalidInput", "runNumber must be a whole number"),
        ("/datasets?inContainer=nope", 404, "ContainerNotFound", "named 'nope'"),
        ("/runs/1", 404, "RunNotFound", "no run 1"),
        ("/files/0000", 404, "FileNotFound", "GUID '0000'"),
        ("/files", 400, "ValidationError", "lfn"),
        ("/amitags/x", 400, "InvalidName", "x"),
        ("/amitags/r1", 404, "AmiTagNotFound", "r1"),
        ("/periods?level=4", 400, "ValidationError", "level"),
        ("/no/such/route", 404, "NotFound", "no API route"),
        ("", 404, "NotFound", "no API route"),
    ],
)
def test_every_error_has_one_shape(
    client: FlaskClient, url: str, status: int, kind: str, said: str
) -> None:
    response = client.get(API + url)

    assert said in assert_error(response, status, kind)


def test_a_wrong_method_is_a_405_with_the_allowed_ones(client: FlaskClient) -> None:
    response = client.put(f"{API}/datasets")

    assert_error(response, 405, "MethodNotAllowed")
    assert "GET" in response.headers["Allow"]


def cursor_of(document: Any) -> str:
    text = json.dumps(document).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda real: "%%%",
        lambda real: real[:-6],
        lambda real: cursor_of("not a key"),
        lambda real: cursor_of({"o": "name", "k": ["x"]}),
        lambda real: cursor_of({"o": "name", "k": ["x", "seven"]}),
        lambda real: cursor_of({"o": "name", "k": ["x", 10**30]}),
        lambda real: cursor_of({"o": "name", "k": [["x"], 1]}),
        lambda real: cursor_of({"o": "-total_events", "k": [1, 1]}),
        lambda real: base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_tampered_cursor_is_a_400(
    client: FlaskClient, dataset_factory: Any, tamper: Any
) -> None:
    for name in (ZEE_EVNT, ZEE_AOD, ZEE_DAOD):
        dataset_factory(name)
    first = client.get(f"{API}/datasets?limit=2")
    real = first.json["cursor"]
    assert real

    response = client.get(f"{API}/datasets", query_string={"cursor": tamper(real)})

    assert "cursor is not valid" in assert_error(response, 400, "InvalidInput")


def test_an_unexpected_failure_says_nothing_of_its_insides(
    catalog_engine: Engine, tmp_path: Path
) -> None:
    app = make_app(catalog_engine, tmp_path)
    app.testing = False  # as served: Flask catches the failure

    def fail() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule(f"{API}/failing", view_func=fail)

    response = app.test_client().get(f"{API}/failing")

    message = assert_error(response, 500, "InternalError")
    assert "secret" not in response.get_data(as_text=True)
    assert "logged on the server" in message


def test_an_unreachable_database_is_a_503(tmp_path: Path) -> None:
    engine = create_catalog_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    try:
        response = make_app(engine, tmp_path).test_client().get(f"{API}/datasets")
    finally:
        engine.dispose()

    assert "cannot reach the catalogue database" in assert_error(
        response, 503, "DatabaseUnavailable"
    )


# --- reading without anonymous access ------------------------------------------


def test_a_closed_catalogue_needs_a_token_to_read(
    catalog_engine: Engine, tmp_path: Path, world: World, tokens: dict[str, str]
) -> None:
    client = make_app(catalog_engine, tmp_path, anonymous_read="false").test_client()

    anonymous = client.get(f"{API}/datasets")
    forged = client.get(f"{API}/datasets", headers=bearer("hepcat_forged"))
    reader = client.get(f"{API}/datasets?limit=1", headers=bearer(tokens["rita"]))

    assert_error(anonymous, 401, "AuthenticationFailed")
    assert_error(forged, 401, "AuthenticationFailed")
    assert reader.status_code == 200
    assert len(reader.json["items"]) == 1


# --- the OpenAPI document --------------------------------------------------------


def test_the_openapi_document_describes_every_route(app: Flask) -> None:
    document = app.test_client().get(f"{API}/openapi.json").json

    routes = {
        (rule.rule.replace("<int:", "<"), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert documented == routes
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation["summary"], (path, method)
            error = operation["responses"][
                "400" if "400" in operation["responses"] else "default"
            ]
            schema = error["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    search = document["paths"][f"{API}/datasets"]["get"]["parameters"]
    assert {p["name"] for p in search} >= {"name", "sort", "limit", "cursor", "nFiles"}


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/skims/{number}/collection", {"application/octet-stream", "text/csv"}),
        ("/skims/{number}/files/{lfn}", {"application/octet-stream"}),
        ("/tags/{name}/root", {"application/octet-stream"}),
    ],
)
def test_a_download_declares_its_media_types(
    app: Flask, path: str, media: set[str]
) -> None:
    document = app.test_client().get(f"{API}/openapi.json").json

    answer = document["paths"][API + path]["get"]["responses"]["200"]

    assert set(answer["content"]) == media
    for declared in answer["content"].values():
        assert declared["schema"] == {"type": "string", "format": "binary"}


def test_a_run_number_is_documented_as_an_integer(app: Flask) -> None:
    document = app.test_client().get(f"{API}/openapi.json").json

    (number,) = document["paths"][f"{API}/runs/{{number}}"]["parameters"]

    assert number["schema"]["type"] == "integer"


def test_every_route_is_in_the_documentation(app: Flask) -> None:
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()

    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = rule.rule.replace("<int:", "<")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert re.search(rf"`{method} {re.escape(path)}[`?]", text), (method, path)
