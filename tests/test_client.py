"""Our pyAMI-like client and ``hepcat ami``, against a live ``hepcat serve``.

Every expectation comes from the seeded world (``served_catalog.world``) or
from the served catalogue database, read with SQLAlchemy; nothing is a
constant copied from an answer.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pyAMI.config
import pyAMI_atlas.api
import pytest
from live import ServedCatalog, free_port
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import catalog.errors
import web.client
from catalog.db import Base, session_factory
from catalog.fields import ami_fields
from catalog.models import Dataset, File
from catalog.users import add_user, create_token
from ingest.world import World
from web.client import (
    AmiConnectionError,
    AmiError,
    AmiProtocolError,
    AuthenticationFailed,
    Client,
    DatasetNotFound,
    FileNotFound,
    InvalidInput,
    NotFound,
    command_line,
    dataset_search,
    get_ami_tag,
    get_dataset_info,
    get_dataset_prov,
    get_file,
    list_dataperiods,
    list_datasets,
    list_files,
    list_runs,
    parse_command_line,
)

# --- fixtures --------------------------------------------------------------


@pytest.fixture(scope="module")
def client(ami_url: str) -> Client:
    return Client(ami_url, timeout=30)


@pytest.fixture(scope="module")
def world(served_catalog: ServedCatalog) -> World:
    return served_catalog.world


@pytest.fixture
def catalog_db(served_engine: Engine) -> Iterator[Session]:
    """A read-only look at the served catalogue."""
    with session_factory(served_engine)() as session:
        yield session
        session.rollback()


@pytest.fixture
def daod(world: World) -> str:
    """A complete Monte Carlo derivation of the world."""
    return next(
        d.name
        for d in world.datasets
        if d.name.startswith("mc16_13TeV.361106.") and ".DAOD_PHYS." in d.name
    )


def _dataset(session: Session, name: str) -> Dataset:
    return session.scalars(select(Dataset).where(Dataset.name == name)).one()


def _counted_files(session: Session, name: str) -> list[File]:
    dataset = _dataset(session, name)
    query = select(File).where(File.dataset_id == dataset.id, File.lost.is_(False))
    return list(session.scalars(query.order_by(File.lfn)))


# --- the pyAMI_atlas functions ---------------------------------------------


def test_dataset_info_gives_the_catalogue_values(client, catalog_db, daod):
    stored = _dataset(catalog_db, daod)

    [info] = get_dataset_info(client, daod)

    assert info["logicalDatasetName"] == daod
    assert info["nFiles"] == stored.n_files
    assert info["totalEvents"] == stored.total_events
    assert info["totalSize"] == stored.total_size
    assert info["crossSection"] == pytest.approx(stored.cross_section)
    assert info["prodsysStatus"] == stored.prodsys_status
    assert info["amiStatus"] == stored.ami_status
    assert info["ddmIncomplete"] is stored.ddm_incomplete
    assert isinstance(info["totalEvents"], int)
    assert isinstance(info["crossSection"], float)


def test_list_datasets_searches_like_pyami(client, catalog_db):
    query = (
        select(Dataset)
        .where(Dataset.name.like("mc16_13TeV.%DAOD_PHYS%"))
        .where(Dataset.data_type == "DAOD_PHYS", Dataset.ami_status == "VALID")
    )
    stored = {d.name: d for d in catalog_db.scalars(query)}

    rows = list_datasets(
        client,
        patterns=["mc16_13TeV.%DAOD_PHYS%"],
        fields=["events", "nfiles", "cross_section", "prodsys_status"],
        order=["events"],
        type="DAOD_PHYS",
    )

    assert stored, "the world has MC derivations"
    assert {row["ldn"] for row in rows} == set(stored)
    for row in rows:
        dataset = stored[row["ldn"]]
        assert row["events"] == dataset.total_events
        assert row["nfiles"] == dataset.n_files
        assert row["cross_section"] == pytest.approx(dataset.cross_section)
        assert row["prodsys_status"] == dataset.prodsys_status
    events = [row["events"] for row in rows]
    assert events == sorted(events)


def test_list_datasets_limit_takes_a_page_of_the_order(client):
    every = list_datasets(client, patterns="mc16_13TeV.%", order="ldn")

    page = list_datasets(client, patterns="mc16_13TeV.%", order="ldn", limit=(2, 3))

    assert [row["ldn"] for row in page] == [row["ldn"] for row in every[2:5]]


def test_list_datasets_of_data_periods_and_a_stream(client, world):
    # "D" stands for D, D1, D2, ... as in pyAMI; "A1" ends in a digit: A1 only.
    periods = [p for p in world.periods if p.period.startswith("D") or p.period == "A1"]
    runs = {run for p in periods for run in p.runs}
    expected = {
        d.name
        for d in world.datasets
        if d.name.startswith("data15_13TeV.")
        and ".physics_Main." in d.name
        and int(d.name.split(".")[1]) in runs
    }

    rows = list_datasets(
        client,
        patterns="data15_13TeV.%",
        data_period=["D", "A1"],
        stream="physics_Main",
    )

    assert expected
    assert {row["ldn"] for row in rows} == expected


def test_data_period_a_is_not_every_period_starting_with_a(client, world):
    # Every run is in period AllYear: "A" must not reach it through "A%".
    runs = {run for p in world.periods if p.period == "A" for run in p.runs}
    every = {run for p in world.periods for run in p.runs}
    assert runs < every

    rows = list_datasets(client, patterns="data15_13TeV.%", data_period="A")

    assert rows
    assert {int(row["ldn"].split(".")[1]) for row in rows} <= runs


def test_list_datasets_reads_fields_of_the_files(client, catalog_db, daod):
    files = _counted_files(catalog_db, daod)

    rows = list_datasets(client, patterns=[daod], fields="files.lfn,files.events")

    found = {(_value(row, "files_lfn"), _value(row, "files_events")) for row in rows}
    assert found == {(f.lfn, f.events) for f in files}


def _value(row: dict[str, Any], alias: str) -> Any:
    """A foreign field, whether or not the server marked its table (pyAMI then
    reads it back as ``files.files_lfn``).
    """
    return row[alias] if alias in row else row[f"files.{alias}"]


def test_list_files_gives_the_counted_files(client, catalog_db, daod):
    files = _counted_files(catalog_db, daod)

    rows = list_files(client, daod)

    assert sorted(row["LFN"] for row in rows) == [f.lfn for f in files]
    by_lfn = {row["LFN"]: row for row in rows}
    for stored in files:
        row = by_lfn[stored.lfn]
        assert row["fileGUID"] == stored.guid
        assert row["fileSize"] == stored.size
        assert row["events"] == stored.events


def test_list_files_with_a_limit_and_a_total(client, catalog_db, daod):
    files = _counted_files(catalog_db, daod)

    page = list_files(client, daod, limit=(1, 2))
    with_total = list_files(client, daod, total=True)

    assert len(page) == 2
    assert {row["LFN"] for row in page} <= {f.lfn for f in files}
    assert len(with_total) == len(files) + 1


def test_provenance_walks_up_and_down_the_chain(client, world, daod):
    produced_from = {out: t.input_dataset for t in world.tasks for out in t.outputs}
    aod = produced_from[daod]
    hits = produced_from[aod]
    evnt = produced_from[hits]

    provenance = get_dataset_prov(client, aod)

    distances = {n["logicalDatasetName"]: n["distance"] for n in provenance["node"]}
    assert distances[aod] == 0
    assert distances[hits] == 1
    assert distances[evnt] == 2
    assert distances[daod] == -1
    edges = {(e["source"], e["destination"]) for e in provenance["edge"]}
    assert {(hits, aod), (aod, daod)} <= edges


def test_runs_of_a_year_and_of_periods(client, world):
    of_2015 = {r.run_number for r in world.runs if r.project.startswith("data15")}
    periods = {p.period: set(p.runs) for p in world.periods}

    runs = list_runs(client, year=2015)
    in_a1_and_d = list_runs(client, data_periods=["A1", "D"])

    assert {row["runNumber"] for row in runs} == of_2015
    assert {row["runNumber"] for row in in_a1_and_d} == periods["A1"] | periods["D"]
    spec = next(r for r in world.runs if r.run_number == runs[0]["runNumber"])
    assert runs[0]["nLumiBlocks"] == spec.n_lumi_blocks


def test_data_periods_of_a_level(client, world):
    expected = {
        p.period: len(p.runs)
        for p in world.periods
        if p.level == 2 and p.project.startswith("data15")
    }

    rows = list_dataperiods(client, 2, year=2015)

    assert {row["period"]: row["nRuns"] for row in rows} == expected


def test_ami_tag_with_its_parameters(client, world):
    spec = next(t for t in world.tags if t.tag == "r10724")

    [tag] = get_ami_tag(client, "r10724")

    assert tag["tagType"] + str(tag["tagNumber"]) == "r10724"
    assert tag["transformation"] == spec.transformation
    assert tag["SWReleaseCache"] == spec.release
    assert tag["description"] == spec.description
    for name, value in spec.parameters.items():
        assert tag[name] == value


def test_a_file_by_guid_and_by_lfn(client, world, daod):
    spec = world.dataset(daod).files[0]

    by_guid = get_file(client, spec.guid)
    by_lfn = get_file(client, spec.lfn)

    assert by_guid == by_lfn
    [row] = by_lfn
    assert row["LFN"] == spec.lfn
    assert row["fileGUID"] == spec.guid
    assert row["fileSize"] == spec.size
    assert row["events"] == spec.events
    assert row["logicalDatasetName"] == daod


# --- errors ----------------------------------------------------------------


def test_a_missing_dataset_raises_dataset_not_found(client, daod):
    missing = daod + "_nosuch"

    with pytest.raises(DatasetNotFound) as raised:
        get_dataset_info(client, missing)

    assert isinstance(raised.value, NotFound)
    assert isinstance(raised.value, LookupError)
    assert raised.value.type == "DatasetNotFound"
    assert repr(missing) in raised.value.message


def test_a_missing_file_raises_file_not_found(client):
    with pytest.raises(FileNotFound):
        get_file(client, "NOSUCH.00000000._000000.pool.root.1")


def test_an_unknown_mql_field_is_invalid_input(client):
    mql = "SELECT dataset.noSuchField AS x WHERE (1 = 1)"

    with pytest.raises(InvalidInput) as raised:
        client.execute("SearchQuery", entity="dataset", mql=mql)

    assert "noSuchField" in raised.value.message


def test_an_unknown_short_name_is_refused_before_sending(daod):
    nowhere = Client(f"http://127.0.0.1:{free_port()}/AMI/FrontEnd")

    with pytest.raises(InvalidInput, match="did you mean events"):
        list_datasets(nowhere, patterns=[daod], fields=["evnts"])


def test_an_unreachable_url_raises_a_connection_error_naming_it():
    url = f"http://127.0.0.1:{free_port()}/AMI/FrontEnd"

    with pytest.raises(AmiConnectionError) as raised:
        list_runs(Client(url))

    assert url in str(raised.value)
    assert isinstance(raised.value, ConnectionError)


def test_an_answer_that_is_not_ami_is_a_protocol_error(served_catalog):
    with pytest.raises(AmiProtocolError):
        list_runs(Client(served_catalog.url + "/no-such-page"))


# --- quoting -----------------------------------------------------------------

AWKWARD = ['say "hi"', "back\\slash", "end\\", '\\"', "it's", '-x="y" -z']


@pytest.mark.parametrize("value", AWKWARD)
def test_argument_values_reach_the_server_intact(client, value):
    result = client.execute("AMIListRuns", projectName=value)

    assert result.arguments["projectName"] == value
    assert result.rows() == []


@pytest.mark.parametrize("value", AWKWARD)
def test_a_command_line_reads_back_as_written(value):
    line = command_line("AMIListRuns", {"projectName": value, "flag": True})

    assert parse_command_line(line) == (
        "AMIListRuns",
        {"projectName": value, "flag": True},
    )


def test_a_quote_in_a_pattern_cannot_widen_the_search(client):
    rows = list_datasets(client, patterns=["x' OR '1'='1", "y'); --"])

    assert rows == []


def test_a_quoted_dataset_name_comes_back_in_the_error(client):
    name = 'mc16_13TeV.1.a"b\\c.deriv'

    with pytest.raises(DatasetNotFound) as raised:
        get_dataset_info(client, name)

    assert repr(name) in raised.value.message


# --- the same commands as the real client ------------------------------------


SEARCHES: list[dict[str, Any]] = [
    {
        "patterns": ["mc16_13TeV.%DAOD_PHYS%"],
        "fields": ["events", "nfiles", "cross_section", "prodsys_status"],
        "order": ["events"],
        "limit": 10,
        "type": "DAOD_PHYS",
    },
    {"patterns": "data15_13TeV.%", "period": "A%", "stream": "physics_Main"},
    {"patterns": ["%Zee%"], "fields": "files.lfn,files.events", "limit": (5, 10)},
    {"patterns": ["a", "b%"], "show_archived": True, "dataset_number": ["1", "2"]},
    {},
]


class _Recorder:
    """Stands in for pyAMI's HTTP client, to read the command pyAMI builds."""

    line = ""

    def execute(self, command: list[str] | str, format: str = "") -> _Recorder:
        self.line = " ".join(command) if isinstance(command, list) else command
        return self

    def get_rows(self, rowset_type: str | None = None) -> list[Any]:
        return []


@pytest.mark.parametrize("search", SEARCHES)
def test_list_datasets_sends_the_search_pyami_sends(search):
    recorder = _Recorder()
    pyAMI_atlas.api.list_datasets(recorder, **search)

    arguments, _ = dataset_search(**search)

    assert parse_command_line(command_line("SearchQuery", arguments)) == (
        parse_command_line(recorder.line)
    )


def _pyami_short_names() -> list[str]:
    """Every name ``ami list datasets --fields`` accepts."""
    tables = pyAMI.config.tables
    foreign = [t.strip() for t in tables["datasets"]["@foreign"].split(",")]
    return [
        f"{table}.{name}" if table != "datasets" else name
        for table in ["datasets", *foreign]
        for name in tables[table]
        if not name.startswith("@")
    ]


@pytest.mark.parametrize("name", _pyami_short_names())
def test_every_short_name_of_pyami_means_the_same_field(name):
    recorder = _Recorder()
    pyAMI_atlas.api.list_datasets(recorder, fields=[name], order=[name])

    arguments, _ = dataset_search(fields=[name], order=[name])

    assert command_line("SearchQuery", arguments) == recorder.line


# --- authentication ------------------------------------------------------------


@pytest.fixture(scope="module")
def reader(served_engine: Engine) -> tuple[str, str, str]:
    """A reader of the served catalogue: login, password and API token."""
    login = f"client{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with session_factory(served_engine).begin() as session:
        add_user(login, password=password, roles=["reader"], session=session)
        token = create_token(login, "client tests", session=session)
    return login, password, token


def test_a_user_with_the_right_password_is_served(ami_url, reader, daod):
    login, password, _ = reader

    [info] = get_dataset_info(Client(ami_url, user=login, password=password), daod)

    assert info["logicalDatasetName"] == daod


def test_a_wrong_password_raises_authentication_failed(ami_url, reader, daod):
    login, _, _ = reader

    with pytest.raises(AuthenticationFailed):
        get_dataset_info(Client(ami_url, user=login, password="wrong"), daod)


def test_a_token_is_accepted_and_a_forged_one_refused(ami_url, reader, daod):
    _, _, token = reader

    [info] = get_dataset_info(Client(ami_url, token=token), daod)
    with pytest.raises(AuthenticationFailed):
        get_dataset_info(Client(ami_url, token=token + "x"), daod)

    assert info["logicalDatasetName"] == daod


# --- hepcat ami ----------------------------------------------------------------


def _hepcat_ami(
    served: ServedCatalog,
    *args: str,
    env: dict[str, str] | None = None,
    typed: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``hepcat ami ARGS...``; *typed* is what the user types when asked.

    The command runs without a terminal (a session of its own), so that a
    password prompt reads *typed* from stdin.
    """
    return subprocess.run(
        [sys.executable, "-m", "hepcat", "ami", *args],
        env={**served.env(), **(env or {})},
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )


def test_hepcat_ami_prints_the_dataset(served_catalog, ami_url, catalog_db, daod):
    stored = _dataset(catalog_db, daod)

    done = _hepcat_ami(
        served_catalog,
        "AMIGetDatasetInfo",
        f"-logicalDatasetName={daod}",
        "--url",
        ami_url,
    )

    assert done.returncode == 0, done.stderr
    fields = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert fields["logicalDatasetName"] == daod
    assert fields["totalEvents"] == str(stored.total_events)
    assert fields["nFiles"] == str(stored.n_files)


def test_hepcat_ami_prints_a_table_of_files(served_catalog, catalog_db, daod):
    files = _counted_files(catalog_db, daod)
    port = {"HEPCAT_PORT": str(served_catalog.port)}  # the default URL

    done = _hepcat_ami(
        served_catalog, f'AMIListFiles -logicalDatasetName="{daod}"', env=port
    )

    assert done.returncode == 0, done.stderr
    header, rule, *lines = done.stdout.splitlines()
    assert header.split()[:2] == ["LFN", "fileGUID"]
    assert set(rule) <= {"-", " "}
    assert sorted(line.split()[0] for line in lines) == [f.lfn for f in files]


@pytest.mark.parametrize("form", ["json", "csv"])
def test_hepcat_ami_writes_json_and_csv(
    served_catalog, ami_url, catalog_db, daod, form
):
    files = _counted_files(catalog_db, daod)

    done = _hepcat_ami(
        served_catalog,
        "--format",
        form,
        "AMIListFiles",
        f"-logicalDatasetName={daod}",
        env={"HEPCAT_AMI_URL": ami_url},
    )

    assert done.returncode == 0, done.stderr
    if form == "json":
        rows = json.loads(done.stdout)["files"]
    else:
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sorted(row["LFN"] for row in rows) == [f.lfn for f in files]
    assert {str(row["events"]) for row in rows} == {str(f.events) for f in files}


def test_hepcat_ami_xml_is_the_answer_as_it_came(served_catalog, ami_url, daod):
    done = _hepcat_ami(
        served_catalog,
        "AMIGetDatasetInfo",
        f"-logicalDatasetName={daod}",
        "--format",
        "xml",
        "--url",
        ami_url,
    )

    assert done.returncode == 0, done.stderr
    assert "<AMIMessage" in done.stdout
    assert daod in done.stdout


def test_hepcat_ami_missing_dataset_fails_with_the_type(served_catalog, ami_url, daod):
    done = _hepcat_ami(
        served_catalog,
        "AMIGetDatasetInfo",
        f"-logicalDatasetName={daod}x",
        "--url",
        ami_url,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("DatasetNotFound: ")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_hepcat_ami_unreachable_names_the_url(served_catalog):
    url = f"http://127.0.0.1:{free_port()}/AMI/FrontEnd"

    done = _hepcat_ami(served_catalog, "AMIListRuns", "--url", url)

    assert done.returncode == 1
    assert done.stderr.startswith("AmiConnectionError: ")
    assert url in done.stderr


def test_hepcat_ami_sends_the_token_of_the_environment(served_catalog, ami_url, reader):
    _, _, token = reader

    forged = _hepcat_ami(
        served_catalog,
        "AMIListRuns",
        "--url",
        ami_url,
        env={"HEPCAT_TOKEN": token + "x"},
    )
    good = _hepcat_ami(
        served_catalog, "AMIListRuns", "--url", ami_url, env={"HEPCAT_TOKEN": token}
    )

    assert forged.returncode == 1
    assert forged.stderr.startswith("AuthenticationFailed: ")
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize("how", [["--password-stdin"], []])
def test_hepcat_ami_logs_the_user_in(served_catalog, ami_url, reader, world, how):
    login, password, _ = reader
    runs = {str(r.run_number) for r in world.runs}
    command = ["--user", login, *how, "AMIListRuns", "--url", ami_url]

    wrong = _hepcat_ami(served_catalog, *command, typed="no\n")
    right = _hepcat_ami(served_catalog, *command, typed=password + "\n")

    assert wrong.returncode == 1
    assert "AuthenticationFailed: " in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert {line.split()[0] for line in right.stdout.splitlines()[2:]} == runs


# --- keeping the client in step with the catalogue ------------------------------


def test_every_numeric_ami_field_is_typed_by_the_client():
    numeric = {
        name
        for mapper in Base.registry.mappers
        for name, column in ami_fields(mapper.class_).items()
        if _python_type(column) in (int, float) and not _links_a_row(column)
    }

    assert numeric <= web.client.NUMERIC_FIELDS


def test_every_boolean_ami_field_is_typed_by_the_client():
    boolean = {
        name
        for mapper in Base.registry.mappers
        for name, column in ami_fields(mapper.class_).items()
        if _python_type(column) is bool
    }

    assert boolean <= web.client.BOOLEAN_FIELDS


def _links_a_row(column: Any) -> bool:
    """A reference to another row's surrogate id, which AMI shows by name
    (``crossSectionSource``: the dataset the cross-section comes from).
    """
    return any(key.column.name == "id" for key in column.foreign_keys)


def _python_type(column: Any) -> type | None:
    try:
        return column.type.python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return None


def test_every_error_of_the_server_has_a_client_class():
    # Raised before serving, or by the demo's DDM publisher: never answered.
    startup_only = {"ConfigError", "UnknownSetting", "BrokerUnavailable"}
    server = {
        name
        for name, cls in inspect.getmembers(catalog.errors, inspect.isclass)
        if issubclass(cls, catalog.errors.HepcatError)
        and cls is not catalog.errors.HepcatError
        and name not in startup_only
    }

    for name in server:
        cls = getattr(web.client, name, None)
        assert isinstance(cls, type) and issubclass(cls, AmiError), name
        assert web.client.error_from(name, "m").type == name


def test_the_client_exports_its_public_names():
    public = {
        name
        for name, value in vars(web.client).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "web.client").startswith("web.client")
        and not inspect.ismodule(value)
        and name not in ("annotations",)
    }

    assert set(web.client.__all__) == public
