"""The AMI command endpoint through Flask's test client, on SQLite,
PostgreSQL and MariaDB, with the simulated world seeded in the catalogue:
every command, every converter, and the errors, read back with pyAMI's own
parsers. Expected values are read from the catalogue with SQLAlchemy.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from pathlib import Path
from typing import Any

import pyAMI.client
import pyAMI.exception
import pyAMI.httpclient
import pyAMI.object
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from catalog.config import load_config
from catalog.fields import row_to_ami
from catalog.models import (
    AmiTag,
    Dataset,
    File,
    Period,
    Project,
    ProvenanceEdge,
    Run,
    SubDataType,
    SubProject,
)
from catalog.users import add_user
from ingest.seed import seed_catalog
from ingest.world import build_world
from web.ami.reply import text_of
from web.app import create_app

CATALOG = '-catalog="mc[0-9].*|data[0-9].*"'
ZEE_DAOD = (
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS."
    "e3601_s3126_r10724_p4164"
)
SQL_IN_MESSAGE = re.compile(r"SELECT\s.*\sFROM|dataset\.id|ILIKE|lower\(", re.I)

Rows = list[dict[str, str]]


@pytest.fixture
def app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.fixture
def client(app: Flask, Session: sessionmaker[OrmSession]) -> FlaskClient:  # noqa: N803
    with Session.begin() as session:
        seed_catalog(build_world(), session=session)
    return app.test_client()


def post(client: FlaskClient, command: str, converter: str = "") -> str:
    """Send *command*; check the answer is 200 and free of tracebacks."""
    response = client.post(
        "/AMI/FrontEnd", data={"Command": command, "Converter": converter}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "Traceback" not in body
    return body


def rows(client: FlaskClient, command: str, rowset: str | None = None) -> Rows:
    """The rows of *rowset* (all rowsets when None), as pyAMI reads them."""
    answer = pyAMI.object.DOMObject(post(client, command))
    return [dict(row) for row in answer.get_rows(rowset)]


def search(client: FlaskClient, entity: str, mql: str, *extra: str) -> Rows:
    command = " ".join(["SearchQuery", CATALOG, f'-entity="{entity}"'])
    return rows(client, f'{command} -mql="{mql}" {" ".join(extra)}'.strip())


def shown(value: Any) -> str:
    """A value as pyAMI shows it."""
    text = text_of(value)
    return "NULL" if text is None or text == "" else text


def test_a_float_is_shown_without_binary_noise() -> None:
    # The mean cross-section of three files, in nb, as the catalogue holds it.
    mean = (1.9101 + 1.8952 + 1.8976396187499998) / 3

    assert repr(mean) == "1.9009798729166665"
    assert text_of(mean) == "1.90097987291667"
    assert text_of(0.1 + 0.2) == "0.3"
    assert text_of(3.0) == "3"
    assert text_of(1e-7) == "1e-07"


def datasets(session: OrmSession) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


# --- SearchQuery ----------------------------------------------------------------


def test_the_real_clients_dataset_query(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    found = search(
        client,
        "dataset",
        "SELECT dataset.logicalDatasetName AS ldn, dataset.totalEvents AS events, "
        "dataset.nFiles AS nfiles, dataset.crossSection AS cross_section WHERE "
        "(dataset.logicalDatasetName like 'mc16_13TeV.%DAOD_PHYS%') AND "
        "((dataset.dataType = 'DAOD_PHYS') AND (dataset.amiStatus = 'VALID')) "
        "ORDER BY dataset.totalEvents, dataset.logicalDatasetName LIMIT 0,10",
    )

    with Session() as session:
        expected = sorted(
            (
                d
                for d in datasets(session)
                if d.name.startswith("mc16_13TeV.")
                and "DAOD_PHYS" in d.name
                and d.data_type == "DAOD_PHYS"
                and d.ami_status == "VALID"
            ),
            key=lambda d: (d.total_events, d.name),
        )[:10]
    assert expected
    assert found == [
        {
            "ldn": d.name,
            "events": shown(d.total_events),
            "nfiles": shown(d.n_files),
            "cross_section": shown(d.cross_section),
        }
        for d in expected
    ]


def test_foreign_fields_join_the_files_of_each_dataset(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    found = search(
        client,
        "dataset",
        "SELECT dataset.logicalDatasetName AS ldn, files.LFN AS files_lfn, "
        "files.events AS files_events WHERE (dataset.logicalDatasetName like "
        "'%Zee%') AND ((dataset.amiStatus = 'VALID')) ORDER BY "
        "dataset.logicalDatasetName, files.LFN, files.events LIMIT 5,10",
    )

    with Session() as session:
        query = (
            select(Dataset.name, File.lfn, File.events)
            .join(File, File.dataset_id == Dataset.id)
            .where(Dataset.ami_status == "VALID")
        )
        pairs = [row for row in session.execute(query) if "zee" in row[0].lower()]
    expected = sorted(pairs)[5:15]
    assert len(expected) == 10
    assert found == [
        {"ldn": n, "files_lfn": lfn, "files_events": shown(e)} for n, lfn, e in expected
    ]


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ("dataset.period = 'A'", lambda periods: "A" in periods),
        ("period = 'a1'", lambda periods: "A1" in periods),
        # A letter and % is a period and its sub-periods, as pyAMI means it.
        (
            "dataset.period like 'A%'",
            lambda p: any(re.fullmatch(r"A\d*", x) for x in p),
        ),
        ("dataset.period like 'Al%'", lambda p: any(x.startswith("Al") for x in p)),
        ("dataset.period IN ('B', 'A2')", lambda p: "B" in p or "A2" in p),
        ("dataset.period != 'A'", lambda periods: "A" not in periods),
        ("NOT dataset.period LIKE '%1'", lambda p: not any(x[-1] == "1" for x in p)),
    ],
)
def test_period_matches_one_period_of_the_list(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    condition: str,
    matches: Any,
) -> None:
    found = search(
        client,
        "dataset",
        f"SELECT logicalDatasetName AS ldn WHERE period IS NOT NULL AND {condition}",
    )

    with Session() as session:
        expected = [
            d.name
            for d in datasets(session)
            if d.period and d.ami_status == "VALID" and matches(d.period.split(","))
        ]
    assert expected
    assert sorted(row["ldn"] for row in found) == expected


def test_like_ignores_case_and_equality_does_not_on_every_database(
    client: FlaskClient,
) -> None:
    def names(condition: str) -> list[str]:
        mql = f"SELECT logicalDatasetName WHERE {condition}"
        return [row["logicalDatasetName"] for row in search(client, "dataset", mql)]

    upper, lower = (
        names("logicalDatasetName LIKE '%ZEE%'"),
        names("dataType LIKE 'daod%'"),
    )
    assert upper == names("logicalDatasetName like '%zee%'") and upper
    assert lower == names("dataType = 'DAOD_PHYS'") and lower
    assert names("dataType = 'daod_phys'") == []
    assert names("dataType IN ('daod_phys', 'aod')") == []
    assert names("amiStatus = 'valid'") == names("1 = 1")


def test_trashed_datasets_show_when_asked_for(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session.begin() as session:
        session.execute(
            update(Dataset).where(Dataset.name == ZEE_DAOD).values(ami_status="TRASHED")
        )
    mql = f"SELECT logicalDatasetName AS ldn WHERE logicalDatasetName = '{ZEE_DAOD}'"

    assert search(client, "dataset", mql) == []
    assert search(client, "dataset", mql, "-showArchived=true") == [{"ldn": ZEE_DAOD}]
    trashed = mql + " AND amiStatus = 'TRASHED'"
    assert search(client, "dataset", trashed) == [{"ldn": ZEE_DAOD}]


@pytest.mark.parametrize(
    ("entity", "model", "field"),
    [
        ("projects", Project, "projectTag"),
        ("subprojects", SubProject, "subProjectTag"),
        ("data_type", Any, "dataType"),
        ("subData_type", SubDataType, "subDataType"),
        ("productionStep", Any, "productionStepName"),
        ("files", File, "LFN"),
    ],
)
def test_every_entity_lists_its_rows(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    entity: str,
    model: Any,
    field: str,
) -> None:
    found = search(client, entity, f"SELECT * WHERE (1 = 1) ORDER BY {field}")

    assert found
    assert all(field in row for row in found)
    if model is not Any:
        with Session() as session:
            expected = [
                row_to_ami(obj)[field] for obj in session.scalars(select(model))
            ]
        assert [row[field] for row in found] == sorted(expected)


@pytest.mark.parametrize(
    "entity",
    # The nomenclature's templates are the migrations' (tests/test_reference.py).
    ["dataset_keywords", "HASHTAGS"],
)
def test_entities_without_rows_answer_an_empty_rowset(
    client: FlaskClient, entity: str
) -> None:
    assert search(client, entity, "SELECT * WHERE 1 = 1") == []


def test_a_value_is_never_read_as_sql(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    sneaky = "x' OR '1'='1 -- /* */"
    with Session.begin() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.name == ZEE_DAOD)
            .values(physics_comment=sneaky)
        )
    literal = sneaky.replace("'", "''")

    for op in ("=", "LIKE"):
        mql = f"SELECT logicalDatasetName AS ldn WHERE physicsComment {op} '{literal}'"
        assert search(client, "dataset", mql) == [{"ldn": ZEE_DAOD}]
    mql = "SELECT logicalDatasetName WHERE physicsComment = 'x'' OR ''1''=''1'"
    assert search(client, "dataset", mql) == []


# --- the converters ----------------------------------------------------------------

PROJECTS = (
    f'SearchQuery {CATALOG} -entity="projects" '
    '-mql="SELECT projects.projectTag AS tag, projects.description WHERE (1 = 1) '
    "AND ((projects.readStatus = 'VALID')) ORDER BY projects.projectTag\""
)


def test_every_converter_carries_the_same_rows(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session() as session:
        projects = list(session.scalars(select(Project).order_by(Project.tag)))
    expected = [{"tag": p.tag, "description": p.description} for p in projects]

    xml_rows = pyAMI.object.DOMObject(post(client, PROJECTS)).get_rows()
    json_rows = pyAMI.object.DICTObject(
        post(client, PROJECTS, "AMIXmlToJson.xsl")
    ).get_rows()
    text = post(client, PROJECTS, "AMIXmlToText.xsl")
    table = post(client, PROJECTS, "AMIXmlToCsv.xsl").splitlines()

    assert [dict(r) for r in xml_rows] == [dict(r) for r in json_rows] == expected
    assert text.startswith("#AMI Result\n") and "Rowset: projects\n" in text
    for project in projects:
        assert f'    -> tag = "{project.tag}"\n' in text
    assert table[0] == "#ROWSET projects"
    assert list(csv.DictReader(table[1:])) == expected


def test_json_has_the_shape_of_ami_xml_to_json(client: FlaskClient) -> None:
    message = json.loads(post(client, PROJECTS, "AMIXmlToJson.xsl"))["AMIMessage"][0]

    assert message["command"] == [{"$": "SearchQuery"}]
    assert {"@argName": "entity", "@argValue": "projects"} in message["commandArgs"][0][
        "args"
    ]
    first = message["Result"][0]["rowset"][0]
    assert first["@type"] == "projects"
    assert first["row"][0]["field"][0]["@name"] == "tag"


# --- datasets, files, provenance ---------------------------------------------------


def test_dataset_info_has_every_ami_field(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    (found,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}"')

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == ZEE_DAOD))
        assert dataset is not None and dataset.cross_section_source is not None
        expected = {k: shown(v) for k, v in row_to_ami(dataset).items()}
        expected["crossSectionSource"] = dataset.cross_section_source.name
        expected["inContainer"] = "NULL"
    assert found == expected
    assert found["nFiles"] != "0" and found["crossSection"] != "NULL"


def test_a_rucio_did_names_its_dataset(client: FlaskClient) -> None:
    # As rucio list-dids prints it: scope, a colon, the name.
    did = f"mc16_13TeV:{ZEE_DAOD}"

    (found,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{did}"')

    assert found["logicalDatasetName"] == ZEE_DAOD
    (bare,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}"')
    assert found == bare


def test_list_files_pages_and_totals(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    command = f'AMIListFiles -logicalDatasetName="{ZEE_DAOD}"'

    every = rows(client, command + " -total=no", "files")
    page = rows(client, command + " -total=no -limit=1,2", "files")
    (total,) = rows(client, command + " -total=yes", "total")

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == ZEE_DAOD))
        assert dataset is not None
        # A ProdSys dataset counts its finished files that are not lost.
        counted = [
            f.lfn for f in dataset.files if f.status == "finished" and not f.lost
        ]
    assert [row["LFN"] for row in every] == sorted(counted)
    assert page == every[1:3]
    assert len(every) == dataset.n_files
    assert sum(int(row["events"]) for row in every) == dataset.total_events
    assert total == {
        "LFN": f"TOTAL: {dataset.n_files} files",
        "fileGUID": "NULL",
        "fileSize": str(dataset.total_size),
        "events": str(dataset.total_events),
    }


def test_file_info_by_lfn_and_by_guid(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session() as session:
        file = session.scalars(select(File).order_by(File.lfn)).first()
        assert file is not None
        expected = {k: shown(v) for k, v in row_to_ami(file).items()}
        expected["logicalDatasetName"] = file.dataset.name

    assert rows(client, f'AMIGetFileInfo -LFN="{file.lfn}"') == [expected]
    assert rows(client, f'AMIGetFileInfo -GUID="{file.guid.upper()}"') == [expected]


def test_provenance_lists_ancestors_and_descendants_with_distances(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    aod = ZEE_DAOD.replace(".deriv.DAOD_PHYS.", ".recon.AOD.").rsplit("_", 1)[0]
    command = f'AMIGetDatasetProv -logicalDatasetName="{aod}"'

    nodes, edges = rows(client, command, "node"), rows(client, command, "edge")

    with Session() as session:
        names = dict(session.execute(select(Dataset.id, Dataset.name)).all())
        pairs = [
            (names[p], names[c])
            for p, c in session.execute(
                select(ProvenanceEdge.parent_id, ProvenanceEdge.child_id)
            )
        ]
    distances = {aod: 0}
    for step, forward in ((1, 1), (-1, 0)):
        frontier = deque([aod])
        while frontier:
            name = frontier.popleft()
            for pair in pairs:
                if pair[forward] == name and pair[1 - forward] not in distances:
                    distances[pair[1 - forward]] = distances[name] + step
                    frontier.append(pair[1 - forward])
    assert {n["logicalDatasetName"]: int(n["distance"]) for n in nodes} == distances
    assert min(distances.values()) < 0 < max(distances.values())
    expected_edges = {(p, c) for p, c in pairs if p in distances and c in distances}
    assert {(e["source"], e["destination"]) for e in edges} == expected_edges


# --- runs, periods, tags --------------------------------------------------------------


def test_list_runs_of_a_project_and_period(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    found = rows(client, 'AMIListRuns -projectName="data15%" -period="A"')

    with Session() as session:
        period = session.scalar(select(Period).where(Period.name == "A"))
        assert period is not None
        numbers = sorted(run.run_number for run in period.runs)
        every_run = session.scalars(select(Run)).all()
    assert sorted(int(row["runNumber"]) for row in found) == numbers
    assert all("A" in row["periods"].split(",") for row in found)
    assert len(rows(client, "AMIListRuns")) == len(every_run)
    # A period's name in another letter case, as MQL's period ignores case.
    lower = rows(client, 'AMIListRuns -projectName="data15%" -period="a"')
    assert sorted(int(row["runNumber"]) for row in lower) == numbers


def test_list_data_periods_of_a_level(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    found = rows(
        client,
        'AMIListDataPeriods -periodLevel="1" -createdSince="2009-01-01 00:00:00" '
        '-projectName="data15%"',
    )

    with Session() as session:
        periods = session.scalars(
            select(Period).where(Period.level == 1).order_by(Period.name)
        ).all()
        expected = [
            (p.name, len(p.runs)) for p in periods if p.project.startswith("data15")
        ]
    assert expected
    assert [(row["period"], int(row["nRuns"])) for row in found] == expected


def test_ami_tag_info_with_its_parameters(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    (found,) = rows(client, 'AMIGetAMITagInfo -amiTag="r10724"')

    with Session() as session:
        tag = session.get(AmiTag, "r10724")
        assert tag is not None
        parameters = json.loads(tag.parameters or "{}")
    assert found["tagType"] + found["tagNumber"] == "r10724"
    assert found["SWReleaseCache"] == tag.release
    assert found["transformation"] == tag.transformation
    for name, value in parameters.items():
        assert found[name] == str(value)


def test_list_commands_names_every_command_of_the_protocol(client: FlaskClient) -> None:
    found = {row["command"] for row in rows(client, "AMIListCommands")}

    assert found >= {
        "SearchQuery",
        "AMIGetDatasetInfo",
        "AMIListFiles",
        "AMIGetFileInfo",
        "AMIGetDatasetProv",
        "AMIListRuns",
        "AMIListDataPeriods",
        "AMIGetAMITagInfo",
        "AMIListCommands",
        "GetUserInfo",
    }


# --- users -------------------------------------------------------------------------


def test_user_info_for_a_user_with_credentials(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session.begin() as session:
        add_user(
            "jdoe",
            password="correct horse",
            roles=["reader"],
            full_name="Jane Doe",
            email="jane@example.org",
            session=session,
        )
    ask = 'GetUserInfo -amiLogin="jdoe"'

    found = rows(client, f'{ask} -AMIUser="jdoe" -AMIPass="correct horse"')
    refused = post(client, f'{ask} -AMIUser="jdoe" -AMIPass="wrong horse"')
    anonymous = post(client, ask)

    assert found == [
        {
            "AMIUser": "jdoe",
            "firstName": "Jane",
            "lastName": "Doe",
            "mail": "jane@example.org",
            "clientDN": "NULL",
            "roles": "reader",
        }
    ]
    assert '<error type="AuthenticationFailed">' in refused
    assert "correct horse" not in refused and "wrong horse" not in refused
    assert '<error type="PermissionDenied">' in anonymous


def test_closed_catalogue_needs_credentials(
    catalog_engine: Engine,
    tmp_path: Path,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    config = load_config(env={}, data_dir=str(tmp_path), anonymous_read=False)
    client = create_app(config, engine=catalog_engine).test_client()
    with Session.begin() as session:
        add_user(
            "reader1", password="a good password", roles=["reader"], session=session
        )

    anonymous = post(client, "AMIListCommands")
    logged_in = post(
        client, 'AMIListCommands -AMIUser="reader1" -AMIPass="a good password"'
    )

    assert '<error type="AuthenticationFailed">' in anonymous
    assert "<error" not in logged_in and "SearchQuery" in logged_in


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "kind", "fragment"),
    [
        ("AMIListFile", "InvalidInput", "did you mean AMIListFiles"),
        (
            'SearchQuery -entity="dataset" -mql="SELECT dataset.nfile"',
            "InvalidInput",
            "unknown field 'nfile' of entity dataset at position 8",
        ),
        (
            'SearchQuery -entity="dataset" -mql="SELECT nFiles WHERE (nFiles = 1"',
            "InvalidInput",
            "expected ')' at position 32",
        ),
        (
            'SearchQuery -entity="runs" -mql="SELECT x"',
            "InvalidInput",
            "unknown entity 'runs'",
        ),
        (
            f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}x"',
            "DatasetNotFound",
            "did you mean",
        ),
        (  # a Rucio DID whose scope is not the name's
            f'AMIGetDatasetInfo -logicalDatasetName="mc15_13TeV:{ZEE_DAOD}"',
            "DatasetNotFound",
            f"did you mean {ZEE_DAOD!r}",
        ),
        ("AMIGetDatasetInfo", "InvalidInput", "needs -logicalDatasetName"),
        (  # a misspelt argument would otherwise be ignored: every run listed
            'AMIListRuns -projectName="data15%" -peroid="A"',
            "InvalidInput",
            "AMIListRuns takes no argument -peroid; did you mean -period? "
            "it takes -projectName, -period",
        ),
        (
            'AMIListCommands -limit="1"',
            "InvalidInput",
            "AMIListCommands takes no argument -limit; it takes no argument",
        ),
        (
            'AMIGetFileInfo -LFN="a.root" -GUID="0123"',
            "InvalidInput",
            "takes -LFN or -GUID, not both: give one",
        ),
        ('AMIGetFileInfo -LFN="nothing.root"', "FileNotFound", "nothing.root"),
        ('AMIGetAMITagInfo -amiTag="r99999"', "AmiTagNotFound", "r99999"),
        (
            f'AMIListFiles -logicalDatasetName="{ZEE_DAOD}" -limit=a,b',
            "InvalidInput",
            "-limit",
        ),
        ('AMIListFiles -logicalDatasetName="open', "InvalidInput", "never closes"),
        ("", "InvalidInput", "must start with a command name"),
    ],
)
def test_errors_answer_an_error_element_that_pyami_raises(
    client: FlaskClient, command: str, kind: str, fragment: str
) -> None:
    body = post(client, command)

    match = re.search(r'<error type="(\w+)"><!\[CDATA\[(.*)\]\]></error>', body, re.S)
    assert match is not None, body
    assert match.group(1) == kind
    assert fragment in match.group(2)
    assert not SQL_IN_MESSAGE.search(match.group(2))
    with pytest.raises(pyAMI.exception.Error) as raised:
        pyAMI.object.DOMObject(body)
    assert match.group(2) in str(raised.value)


def test_an_unknown_converter_is_an_error_in_xml(client: FlaskClient) -> None:
    body = post(client, "AMIListCommands", "AMIXmlToPdf.xsl")

    assert '<error type="InvalidInput"><![CDATA[unknown Converter' in body


def test_errors_in_every_converter(client: FlaskClient) -> None:
    command = 'AMIGetDatasetInfo -logicalDatasetName="none"'

    as_json = json.loads(post(client, command, "AMIXmlToJson.xsl"))
    as_text = post(client, command, "AMIXmlToText.xsl")
    as_csv = post(client, command, "AMIXmlToCsv.xsl")

    (error,) = as_json["AMIMessage"][0]["error"]
    assert error == {"@type": "DatasetNotFound", "$": "no dataset named 'none'"}
    assert "Error: no dataset named 'none'" in as_text
    assert as_csv == "#ERROR DatasetNotFound: no dataset named 'none'\n"


def as_pyami_posts(client: FlaskClient, command: str, converter: str = "") -> Any:
    """Post *command* as pyAMI's ``Client.execute`` does: its own URL
    encoding (``Converter`` first) and headers.
    """
    data = pyAMI.client.urllib_parse_urlencode(
        {"Converter": converter, "Command": command}
    )
    headers = {k: v for k, v in pyAMI.httpclient.headers.items() if k != "Cookie"}
    return client.post("/AMI/FrontEnd", data=data, headers=headers)


def too_long(sent: int) -> str:
    """What the endpoint answers to a form of *sent* bytes, over its limit."""
    return (
        f"the command is too long: {sent:,} bytes as sent, over the AMI "
        "endpoint's limit of 500,000 bytes; send a large event collection "
        "(AMICreateSkim -collection) through the JSON API instead, POST "
        "/api/v1/skims with the collection in base64, or upload it on the page "
        "/skims/new"
    )


def test_a_command_over_the_form_limit_is_an_error_pyami_raises(app: Flask) -> None:
    events = "".join(
        f"284500,{n},1,,DAOD_PHYS.12345._000001.pool.root.1,{n}\n"
        for n in range(10_000)
    )
    collection = f"RunNumber,EventNumber,LumiBlock,GUID,LFN,Entry\n{events}"
    command = (
        f'AMICreateSkim -logicalDatasetName="{ZEE_DAOD}" -name="big" '
        f'-collection="{collection}" -AMIUser="jdoe" -AMIPass="secret"'
    )
    client = app.test_client()

    as_xml = as_pyami_posts(client, command)
    as_text = as_pyami_posts(client, command, "AMIXmlToText.xsl")

    sent = as_xml.request.content_length
    assert sent > 500_000
    assert as_xml.status_code == as_text.status_code == 200
    assert as_xml.mimetype == "text/xml" and as_text.mimetype == "text/plain"
    with pytest.raises(pyAMI.exception.Error) as raised:
        pyAMI.object.DOMObject(as_xml.text)
    assert str(raised.value) == f"pyAMI exception: {too_long(sent)}"
    assert '<error type="CommandTooLong">' in as_xml.text
    assert "<command>AMICreateSkim</command>" in as_xml.text
    assert "secret" not in as_xml.text
    text_sent = as_text.request.content_length
    assert as_text.text == f"#AMI Result\n\nError: {too_long(text_sent)}\n#\n"


def post_chunked(app: Flask, command: str) -> str:
    """Post *command* as a body sent in chunks: no Content-Length."""
    import io
    from urllib.parse import urlencode

    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Response

    body = urlencode({"Converter": "AMIXmlToText.xsl", "Command": command}).encode()
    environ = EnvironBuilder(
        path="/AMI/FrontEnd",
        method="POST",
        data=body,
        content_type="application/x-www-form-urlencoded",
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    environ["wsgi.input"] = io.BytesIO(body)
    return Response.from_app(app.wsgi_app, environ).get_data(as_text=True)


def test_a_command_sent_in_chunks_is_held_to_the_limit_too(app: Flask) -> None:
    long = post_chunked(app, f'AMIListCommands -x="{"a" * 600_000}"')
    short = post_chunked(app, "AMIListCommands")

    assert long.startswith("#AMI Result\n\nError: the command is too long: over the")
    assert "AMICreateSkim" in short and "Error" not in short


@pytest.mark.parametrize(
    "path",
    [
        "/AMI/FrontEnd",
        "/AMI2/FrontEnd",
        "/AMI/servlet/net.hep.atlas.Database.Bookkeeping.AMI.Servlet.FrontEnd",
    ],
)
def test_every_path_answers(client: FlaskClient, path: str) -> None:
    response = client.post(path, data={"Command": "AMIListCommands", "Converter": ""})

    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert '<rowset type="commands">' in response.get_data(as_text=True)


# --- credentials are never shown or logged --------------------------------------


def test_an_error_in_a_pyami_command_never_shows_its_credentials(app: Flask) -> None:
    # What pyAMI sends for execute('AMIGetDatasetInfo -logicalDatasetName="mc16_13T
    # eV.foo', AMIUser='rdr', AMIPass='readpass11'): a quote left open.
    command = (
        'AMIGetDatasetInfo -logicalDatasetName="mc16_13TeV.foo'
        ' -AMIUser="rdr" -AMIPass="readpass11"'
    )

    answer = as_pyami_posts(app.test_client(), command, "AMIXmlToText.xsl")

    assert "Error: the value of -logicalDatasetName opens a quote" in answer.text
    assert "rdr" not in answer.text and "readp" not in answer.text


@pytest.mark.parametrize(
    "command",
    [
        'AMIListCommands stray -AMIPass=readpass11 -AMIUser="rdr"',
        'AMIListCommands -x="a -AMIUser="rdr" -AMIPass="readpass11" -y=1',
        "AMIListCommands stray -AMIUser=rdr -AMIPass=readpass11",
    ],
)
def test_a_command_quoted_in_an_error_has_its_credentials_starred(
    app: Flask, command: str
) -> None:
    body = post(app.test_client(), command)

    assert "expected an argument -name=value" in body
    assert "rdr" not in body and "readp" not in body
    assert "*" in body


def test_credentials_pyami_appends_are_read_with_their_escapes(
    app: Flask,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session.begin() as session:
        add_user("jdoe", password='quote" and \\', roles=["reader"], session=session)
    # pyAMI escapes " and \ in the password it appends.
    appended = '-AMIUser="jdoe" -AMIPass="quote\\" and \\\\"'
    command = f'GetUserInfo -amiLogin="jdoe" {appended}'

    found = pyAMI.object.DOMObject(post(app.test_client(), command))

    assert [dict(row)["AMIUser"] for row in found.get_rows("User_Info")] == ["jdoe"]


@pytest.mark.parametrize("password", ["-AMIPass", "-amipass", "-AmiPass"])
def test_a_password_in_a_url_is_refused_unread(
    app: Flask,
    Session: sessionmaker[OrmSession],  # noqa: N803
    password: str,
) -> None:
    with Session.begin() as session:
        add_user("adm", password="correct horse", roles=["admin"], session=session)
    command = f'AMIListCommands -AMIUser=adm {password}="correct horse"'

    by_get = app.test_client().get("/AMI/FrontEnd", query_string={"Command": command})
    in_post_url = app.test_client().post(
        "/AMI/FrontEnd", query_string={"Command": command}
    )

    for answer in (by_get, in_post_url):
        assert '<error type="PasswordInUrl">' in answer.text
        assert "send -AMIPass in a POST body, never in a URL: URLs are logged" in (
            answer.text
        )
        assert '<rowset type="commands">' not in answer.text
    assert "<error" not in post(app.test_client(), command)  # in a POST body: fine
