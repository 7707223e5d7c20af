"""The real pyAMI client (``pyami-core``, ``pyami-atlas``), unchanged,
against a live ``hepcat serve`` on the simulated world: every function of
``pyAMI_atlas.api`` that the issue names, and the ``ami_atlas`` command-line
tool run as a subprocess. Expected values are read from the served
catalogue with SQLAlchemy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyAMI.client
import pyAMI.config
import pyAMI.exception
import pyAMI_atlas.api as atlas
import pytest
from live import ServedCatalog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from test_containers import served_container_of

from catalog.db import utcnow
from catalog.fields import row_to_ami
from catalog.models import AmiTag, Dataset, File, Period, ProvenanceEdge, Skim
from catalog.users import add_user, get_user
from web.ami.reply import text_of

ENDPOINT = "hepcat"


@pytest.fixture(scope="module")
def client(
    served_catalog: ServedCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pyAMI.client.Client]:
    """A pyAMI client pointed at the served catalogue, as docs/ami.md says;
    its session file goes to a temporary directory, not to HOME.
    """
    config_dir = tmp_path_factory.mktemp("pyami")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(
            pyAMI.config.endpoint_descrs,
            ENDPOINT,
            {
                "prot": "http",
                "host": served_catalog.host,
                "port": str(served_catalog.port),
                "path": "/AMI/FrontEnd",
            },
        )
        patch.setattr(pyAMI.config, "config_path", str(config_dir))
        patch.setattr(pyAMI.config, "config_file", str(config_dir / "pyami.cfg"))
        yield pyAMI.client.Client(ENDPOINT)


@pytest.fixture
def session(served_engine: Engine) -> Iterator[Session]:
    with Session(served_engine) as opened:
        yield opened


def shown(value: Any) -> str:
    """A value as pyAMI shows it."""
    text = text_of(value)
    return "NULL" if text is None or text == "" else text


def valid_datasets(session: Session) -> list[Dataset]:
    query = select(Dataset).where(Dataset.ami_status == "VALID")
    return list(session.scalars(query.order_by(Dataset.name)))


def a_derivation(session: Session) -> Dataset:
    query = select(Dataset).where(Dataset.data_type == "DAOD_PHYS", Dataset.n_files > 1)
    found = session.scalars(query.order_by(Dataset.name)).first()
    assert found is not None
    return found


# --- pyAMI_atlas.api ---------------------------------------------------------------


def test_list_datasets_with_short_field_names(
    client: pyAMI.client.Client, session: Session
) -> None:
    found = atlas.list_datasets(
        client,
        patterns=["mc16_13TeV.%DAOD_PHYS%"],
        fields="events,nfiles,type,period,cross_section",
        type="DAOD_PHYS",
        order="events,ldn",
        limit=10,
    )

    expected = sorted(
        (
            d
            for d in valid_datasets(session)
            if d.name.startswith("mc16_13TeV.") and d.data_type == "DAOD_PHYS"
        ),
        key=lambda d: (d.total_events, d.name),
    )[:10]
    assert expected
    assert [dict(row) for row in found] == [
        {
            "ldn": d.name,
            "events": shown(d.total_events),
            "nfiles": shown(d.n_files),
            "type": d.data_type,
            "period": "NULL",
            "cross_section": shown(d.cross_section),
        }
        for d in expected
    ]


def test_list_datasets_of_a_period_and_stream(
    client: pyAMI.client.Client, session: Session
) -> None:
    found = atlas.list_datasets(
        client,
        patterns=["data15_13TeV.%"],
        fields="period,run_number",
        period="A",
        stream="physics_Main",
    )

    expected = [
        d
        for d in valid_datasets(session)
        if d.name.startswith("data15_13TeV.")
        and d.stream_name == "physics_Main"
        and "A" in (d.period or "").split(",")
    ]
    assert expected
    rows = sorted((row["ldn"], row["period"], row["run_number"]) for row in found)
    assert rows == [(d.name, d.period, str(d.run_number)) for d in expected]


def test_list_datasets_with_the_files_of_each(
    client: pyAMI.client.Client, session: Session
) -> None:
    found = atlas.list_datasets(
        client, patterns=["%Zee%DAOD_PHYS%"], fields="files.lfn,files.events"
    )

    query = (
        select(Dataset.name, File.lfn, File.events)
        .join(File, File.dataset_id == Dataset.id)
        .where(Dataset.ami_status == "VALID")
    )
    expected = sorted(
        (name, lfn, shown(events))
        for name, lfn, events in session.execute(query)
        if "zee" in name.lower() and "daod_phys" in name.lower()
    )
    assert expected
    assert [(r["ldn"], r["files_lfn"], r["files_events"]) for r in found] == expected


def test_get_dataset_info(client: pyAMI.client.Client, session: Session) -> None:
    dataset = a_derivation(session)

    (found,) = atlas.get_dataset_info(client, dataset.name)

    for name, value in row_to_ami(dataset).items():
        if name != "crossSectionSource":
            assert found[name] == shown(value), name
    source = dataset.cross_section_source
    assert found["crossSectionSource"] == (source.name if source else "NULL")


def test_get_dataset_info_of_a_ddm_container(
    client: pyAMI.client.Client, served_catalog: ServedCatalog
) -> None:
    name, members = served_container_of(served_catalog)

    (found,) = atlas.get_dataset_info(client, name)
    listed = atlas.list_datasets(client, in_container=name)

    assert (found["logicalDatasetName"], found["dataType"]) == (name, "CONTAINER")
    assert [row["ldn"] for row in listed] == [d.name for d in members]
    assert found["nDatasets"] == "2"
    assert found["nFiles"] == shown(sum(d.n_files for d in members))
    assert found["totalEvents"] == shown(sum(d.total_events for d in members))
    assert found["totalSize"] == shown(sum(d.total_size for d in members))


def test_list_files_with_a_total(client: pyAMI.client.Client, session: Session) -> None:
    dataset = a_derivation(session)

    found = atlas.list_files(client, dataset.name, total=True)
    first = atlas.list_files(client, dataset.name, limit=1)

    *files, total = found
    assert len(files) == dataset.n_files
    assert sum(int(row["events"]) for row in files) == dataset.total_events
    assert total["events"] == str(dataset.total_events)
    assert total["fileSize"] == str(dataset.total_size)
    assert [dict(row) for row in first] == [dict(files[0])]


def test_get_dataset_prov(client: pyAMI.client.Client, session: Session) -> None:
    dataset = a_derivation(session)

    found = atlas.get_dataset_prov(client, dataset.name)

    parents = dict(
        session.execute(select(ProvenanceEdge.child_id, ProvenanceEdge.parent_id)).all()
    )
    chain, distance, current = {}, 0, dataset.id
    while current is not None:
        chain[session.get(Dataset, current).name] = distance  # type: ignore[union-attr]
        current, distance = parents.get(current), distance + 1
    distances = {
        row["logicalDatasetName"]: int(row["distance"]) for row in found["node"]
    }
    assert {name: d for name, d in distances.items() if d >= 0} == chain
    assert len(chain) > 1 and len(found["edge"]) >= len(chain) - 1


def test_list_runs_of_a_year_and_period(
    client: pyAMI.client.Client, session: Session
) -> None:
    found = atlas.list_runs(client, year=2015, data_periods=["A", "B"])

    periods = session.scalars(
        select(Period).where(
            Period.project.like("data15%"), Period.name.in_(["A", "B"])
        )
    ).all()
    expected = sorted(run.run_number for period in periods for run in period.runs)
    assert expected
    assert sorted(int(row["runNumber"]) for row in found) == expected


def test_list_dataperiods(client: pyAMI.client.Client, session: Session) -> None:
    found = atlas.list_dataperiods(client, level=2, year=2015)

    periods = session.scalars(
        select(Period).where(Period.level == 2, Period.project.like("data15%"))
    ).all()
    expected = sorted((p.name, p.description, str(len(p.runs))) for p in periods)
    assert expected
    assert (
        sorted((r["period"], r["description"], r["nRuns"]) for r in found) == expected
    )


def test_get_ami_tag(client: pyAMI.client.Client, session: Session) -> None:
    tag = session.get(AmiTag, "r10724")
    assert tag is not None

    (found,) = atlas.get_ami_tag(client, "r10724")

    assert found["tagType"] + found["tagNumber"] == "r10724"
    assert found["transformation"] == tag.transformation
    assert found["SWReleaseCache"] == tag.release
    assert found["description"] == tag.description


def test_get_file_by_guid_and_by_lfn(
    client: pyAMI.client.Client, session: Session
) -> None:
    file = session.scalars(select(File).order_by(File.lfn)).first()
    assert file is not None

    (by_guid,) = atlas.get_file(client, file.guid)
    (by_lfn,) = atlas.get_file(client, file.lfn)

    assert dict(by_guid) == dict(by_lfn)
    assert by_guid["LFN"] == file.lfn and by_guid["fileGUID"] == file.guid
    assert by_guid["events"] == shown(file.events)
    assert by_guid["logicalDatasetName"] == file.dataset.name


def test_reference_lists(client: pyAMI.client.Client, session: Session) -> None:
    projects = [row["tag"] for row in atlas.list_projects(client)]
    types = [row["name"] for row in atlas.list_types(client)]

    names = [d.name.split(".") for d in session.scalars(select(Dataset))]
    assert projects == sorted({parts[0] for parts in names})
    assert types == sorted({parts[4] for parts in names})


def test_an_error_is_raised_by_pyami_with_hepcats_message(
    client: pyAMI.client.Client,
) -> None:
    with pytest.raises(
        pyAMI.exception.Error, match="no dataset named 'nothing.at.all'"
    ):
        atlas.get_dataset_info(client, "nothing.at.all")
    with pytest.raises(pyAMI.exception.Error, match="unknown field 'nofield'"):
        client.execute(
            'SearchQuery -entity="dataset" -mql="SELECT nofield"', format="dom_object"
        )


def test_an_error_never_shows_the_credentials_pyami_appends(
    client: pyAMI.client.Client,
) -> None:
    answer = client.execute(
        'AMIGetDatasetInfo -logicalDatasetName="mc16_13TeV.foo',
        AMIUser="rdr",
        AMIPass="readpass11",
        format="text",
    )

    assert "Error: the value of -logicalDatasetName opens a quote" in answer
    assert "rdr" not in answer and "readp" not in answer


# --- skims through pyAMI's generic command execution ---------------------------


@pytest.fixture
def failed_skim(served_engine: Engine) -> Iterator[tuple[int, str, str]]:
    """A skim that failed, as the skim task leaves one whose selection never
    ran, of a physicist of the served catalogue: its id, the physicist's
    login and password. Both are removed afterwards.
    """
    login, password = f"pyami{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Session(served_engine) as session, session.begin():
        owner = add_user(login, password=password, roles=["physicist"], session=session)
        skim = Skim(
            name="dimuon",
            owner=owner,
            parent=a_derivation(session),
            selection="nMuons >= 2",
            state="failed",
            error="EventFileNotFound: no event file of the dataset was found",
            run_requested=utcnow(),
            ended=utcnow(),
        )
        session.add(skim)
        session.flush()
        skim_id = skim.id
    yield skim_id, login, password
    with Session(served_engine) as session, session.begin():
        session.delete(session.get(Skim, skim_id))
        session.delete(get_user(login, session=session))


def test_a_failed_skim_is_retried_through_execute(
    client: pyAMI.client.Client, session: Session, failed_skim: tuple[int, str, str]
) -> None:
    skim_id, login, password = failed_skim

    found = client.execute(
        ["AMIRetrySkim", f'-skimId="{skim_id}"'],
        format="dom_object",
        AMIUser=login,
        AMIPass=password,
    )

    [row] = [dict(row) for row in found.get_rows("skim")]
    assert (row["skimId"], row["owner"], row["error"]) == (str(skim_id), login, "NULL")
    assert row["state"] == "defined"  # its selection never ran: it starts again
    retried = session.get(Skim, skim_id)
    assert retried is not None and (retried.state, retried.error) == ("defined", None)


def test_a_command_over_the_form_limit_is_an_ami_error(
    client: pyAMI.client.Client,
) -> None:
    events = "".join(
        f"284500,{n},1,,DAOD_PHYS.x._000001.pool.root.1,{n}\n" for n in range(9000)
    )
    command = [
        "AMICreateSkim",
        '-logicalDatasetName="mc16_13TeV.x"',
        '-name="big"',
        f'-collection="RunNumber,EventNumber,LumiBlock,GUID,LFN,Entry\n{events}"',
    ]

    as_text = client.execute(command, format="text")
    with pytest.raises(pyAMI.exception.Error) as raised:
        client.execute(command, format="dom_object")

    assert as_text.startswith("#AMI Result\n\nError: the command is too long: ")
    assert "over the AMI endpoint's limit of 500,000 bytes" in str(raised.value)
    assert "POST /api/v1/skims" in str(raised.value)


# --- the ami_atlas command ---------------------------------------------------------


@pytest.fixture(scope="module")
def ami_atlas(
    served_catalog: ServedCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Run ``ami_atlas -e hepcat ...``. The tool offers only the endpoints
    pyAMI knows (``-e``), so a ``sitecustomize`` on PYTHONPATH registers
    hepcat's, as docs/ami.md shows; HOME is a temporary directory.
    """
    program = shutil.which("ami_atlas", path=str(Path(sys.executable).parent))
    if program is None:
        pytest.fail("the ami_atlas command of pyami-atlas is not installed")
    home = tmp_path_factory.mktemp("home")
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(
        "import os\nimport pyAMI.config\n\n"
        "pyAMI.config.endpoint_descrs['hepcat'] = {\n"
        "    'prot': 'http',\n"
        "    'host': os.environ['HEPCAT_AMI_HOST'],\n"
        "    'port': os.environ['HEPCAT_AMI_PORT'],\n"
        "    'path': '/AMI/FrontEnd',\n"
        "}\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "PYAMI_CONFIG_DIR": str(home / ".pyami"),
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "HEPCAT_AMI_HOST": served_catalog.host,
        "HEPCAT_AMI_PORT": str(served_catalog.port),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [program, "-e", ENDPOINT, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    return run


def test_ami_atlas_lists_datasets(ami_atlas: Any, session: Session) -> None:
    # The table wraps long names; JSON (-f json) shows the same rows whole.
    output = ami_atlas(
        "-f", "json", "list", "datasets", "mc16_13TeV.%DAOD_PHYS%", "--fields", "events"
    )

    expected = [
        {"ldn": d.name, "events": str(d.total_events)}
        for d in valid_datasets(session)
        if d.name.startswith("mc16_13TeV.") and "DAOD_PHYS" in d.name
    ]
    assert expected
    assert sorted(json.loads(output), key=lambda row: row["ldn"]) == expected


def test_ami_atlas_shows_dataset_info(ami_atlas: Any, session: Session) -> None:
    dataset = a_derivation(session)

    output = ami_atlas("show", "dataset", "info", dataset.name)

    shown_fields = dict(
        (part.strip() for part in line.split(":", 1))
        for line in output.splitlines()
        if ":" in line
    )
    assert shown_fields["logicalDatasetName"] == dataset.name
    assert shown_fields["totalEvents"] == str(dataset.total_events)
    assert shown_fields["nFiles"] == str(dataset.n_files)


def test_ami_atlas_lists_projects_with_its_own_defaults(
    ami_atlas: Any, session: Session
) -> None:
    # The tool asks for readStatus = 'valid' (lower case) by default.
    output = ami_atlas("list", "projects")

    names = [d.name.split(".")[0] for d in session.scalars(select(Dataset))]
    assert output.split() == sorted(set(names))


def test_ami_atlas_runs_a_raw_command_in_text(ami_atlas: Any) -> None:
    output = ami_atlas("command", "AMIListCommands")

    assert output.startswith("#AMI Result")
    assert '-> command = "SearchQuery"' in output
