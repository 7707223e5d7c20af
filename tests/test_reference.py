"""The reference entities (projects, sub-projects, data types, sub data
types, production steps, nomenclature) of a catalogue filled by the
ingesters, as pyAMI's ``list_projects``, ``list_types``, ... see them: on
SQLite, PostgreSQL and MariaDB, and through ``hepcat demo`` and a live
``hepcat serve`` with the real client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyAMI.client
import pyAMI.config
import pyAMI.object
import pyAMI_atlas.api as atlas
import pytest
from conftest import written_apart
from flask.testing import FlaskClient
from sqlalchemy import Engine, MetaData, Table, event, insert, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import post
from test_demo import fetch, free_port
from worlds import oracle_sql

import migrations
from catalog import reference
from catalog.config import load_config
from catalog.datasets import add_dataset, upsert_datasets
from catalog.db import session_factory
from catalog.errors import InvalidName
from catalog.models import Dataset, Project
from catalog.nomenclature import name_columns, parse_dataset_name
from catalog.reference import add_references
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from web.app import create_app

TABLES = [table.name for table in reference.TABLES]
USER_SKIM = "user.jdoe.Zee.skim1"
GROUP_DATASET = "group.phys-higgs.Hgg.v2"
# The layouts of names, as catalog/nomenclature.py words them in its errors.
TEMPLATES = {
    ("mc", "project.datasetNumber.physicsShort.prodStep.dataType.version"),
    ("data", "project.runNumber.streamName.prodStep.dataType.version"),
    ("data", "project.runNumber.streamName.prodStep.dataType"),
    ("user", "user.login.freeText"),
    ("group", "group.group.freeText"),
}


@pytest.fixture
def world() -> World:
    return build_world(files_per_dataset=1)


def publish(sources: Any, world: World) -> None:
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)


def names_of(world: World) -> list[str]:
    return [spec.name for spec in world.datasets]


def expected(names: Iterable[str]) -> dict[str, set[tuple[str, ...]]]:
    """The reference keys a physicist reads off *names*: the first field,
    what follows its ``_``, the fifth field and what follows ``DAOD_``, the
    fourth field (twice: a step's tag is its name). A user or group name
    gives its first field alone.
    """
    fields = [name.split(".") for name in names]
    named = [f for f in fields if f[0] not in ("user", "group")]
    return {
        "project": {(f[0],) for f in fields},
        "sub_project": {(f[0].split("_", 1)[1],) for f in named},
        "data_type": {(f[4],) for f in named},
        "sub_data_type": {(f[4][5:],) for f in named if f[4].startswith("DAOD_")},
        "production_step": {(f[3], f[3]) for f in named},
    }


def held(Session: sessionmaker[OrmSession]) -> dict[str, set[tuple[str, ...]]]:  # noqa: N803
    """The primary keys of each reference table."""
    with Session() as session:
        return {
            table.name: {
                tuple(row) for row in session.execute(select(*table.primary_key))
            }
            for table in reference.TABLES
        }


def whole_rows(Session: sessionmaker[OrmSession]) -> dict[str, list[tuple[Any, ...]]]:  # noqa: N803
    """Every column of every row of each reference table."""
    with Session() as session:
        return {
            table.name: sorted(tuple(row) for row in session.execute(select(table)))
            for table in reference.TABLES
        }


class InProcessAmi:
    """The part of :class:`pyAMI.client.Client` that ``pyAMI_atlas.api``
    calls, carried by Flask's test client instead of HTTP: pyAMI builds the
    commands and reads the replies as it does against a server.
    """

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def execute(self, command: str | list[str], format: str = "dom_object") -> Any:
        assert format == "dom_object"
        line = command if isinstance(command, str) else " ".join(command)
        return pyAMI.object.DOMObject(post(self.client, line))


def ami_on(engine: Engine, tmp_path: Path) -> InProcessAmi:
    config = load_config(env={}, data_dir=str(tmp_path))
    return InProcessAmi(create_app(config, engine=engine).test_client())


def listed(rows: Any, *fields: str) -> list[tuple[str, ...]]:
    return [tuple(row[field] for field in fields) for row in rows]


# --- what the ingesters write ------------------------------------------------


def test_ingesting_adds_the_projects_types_and_steps_of_the_names(
    Session: sessionmaker[OrmSession],  # noqa: N803
    sources: Any,
    world: World,
    ingest: Callable[[], Any],
) -> None:
    publish(sources, world)

    ingest()

    assert held(Session) == expected(names_of(world))


def test_an_ingested_catalogue_holds_the_reference_rows_of_a_seeded_one(
    Session: sessionmaker[OrmSession],  # noqa: N803
    sources: Any,
    world: World,
    ingest: Callable[[], Any],
    tmp_path: Path,
) -> None:
    publish(sources, world)

    ingest()

    ingested = whole_rows(Session)
    assert all(ingested.values())
    assert ingested == seeded_rows(world, tmp_path)


def seeded_rows(world: World, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The reference rows of *world* written directly (:func:`seed_catalog`)."""
    return written_apart(
        tmp_path / "seeded.sqlite",
        lambda session: seed_catalog(world, session=session),
        whole_rows,
    )


def test_pyami_lists_the_ingested_projects_types_and_steps(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    sources: Any,
    world: World,
    ingest: Callable[[], Any],
    tmp_path: Path,
) -> None:
    publish(sources, world)
    ingest()
    ami = ami_on(catalog_engine, tmp_path)

    projects = atlas.list_projects(ami, fields="description")
    subprojects = atlas.list_subprojects(ami)
    types = atlas.list_types(ami)
    subtypes = atlas.list_subtypes(ami)
    steps = atlas.list_prodsteps(ami)

    want = {table: sorted(keys) for table, keys in expected(names_of(world)).items()}
    assert listed(projects, "tag") == want["project"]
    assert listed(projects, "tag", "description") == [
        ("data15_13TeV", "real data of 2015, 13TeV"),
        ("mc16_13TeV", "Monte Carlo, campaign mc16, 13TeV"),
    ]
    assert listed(subprojects, "tag") == want["sub_project"] == [("13TeV",)]
    assert listed(types, "name") == want["data_type"]
    assert ("DAOD_PHYS",) in want["data_type"]
    assert listed(subtypes, "name") == want["sub_data_type"] == [("PHYS",)]
    assert listed(steps, "name", "tag") == want["production_step"]


def test_a_user_or_group_dataset_adds_its_project_alone(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session.begin() as session:
        add_dataset(USER_SKIM, "skim", session=session)
        add_dataset(GROUP_DATASET, "prodsys", session=session)

    assert held(Session) == {
        "project": {("group",), ("user",)},
        "sub_project": set(),
        "data_type": set(),
        "sub_data_type": set(),
        "production_step": set(),
    }


# --- cost and races ----------------------------------------------------------


def mc_rows(count: int, campaign: str = "mc16_13TeV") -> list[dict[str, Any]]:
    """*count* new MC datasets in four data types, as an ingester's bite."""
    types = ["EVNT", "HITS", "AOD", "DAOD_PHYS"]
    return [
        {
            **name_columns(
                f"{campaign}.{100000 + i}.Sample{i}.recon.{types[i % 4]}.e{i}_s1_r2"
            ),
            "source": "prodsys",
        }
        for i in range(count)
    ]


class Statements:
    """The statements that reach the database while in a ``with`` block."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self.record)

    def record(self, *args: Any) -> None:
        self.seen.append(args[2])

    def on(self, table: str, verb: str) -> int:
        """How many *verb* statements (SELECT or INSERT) read or wrote *table*."""
        into = "FROM" if verb == "SELECT" else "INTO"
        pattern = re.compile(rf"\b{into}\s+[`\"]?{table}\b", re.IGNORECASE)
        return sum(
            s.lstrip().upper().startswith(verb) and bool(pattern.search(s))
            for s in self.seen
        )


def test_a_bite_of_thousands_costs_one_query_per_table(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    first, second = mc_rows(2000), mc_rows(2000, "mc20_13TeV")
    with Session.begin() as session:
        upsert_datasets(first, session=session)

    with Statements(catalog_engine) as statements, Session.begin() as session:
        upsert_datasets(second, session=session)  # one new project
        upsert_datasets(first, session=session)  # all catalogued

    assert [statements.on(table, "SELECT") for table in TABLES] == [1] * 5
    assert [statements.on(table, "INSERT") for table in TABLES] == [1, 0, 0, 0, 0]
    assert ("mc20_13TeV",) in held(Session)["project"]


def test_two_writers_adding_one_project_both_succeed(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    name = "mc23_13p6TeV.601229.PhPy8EG_A14_ttbar.deriv.DAOD_PHYSLITE.e8514_p5855"
    failures: list[BaseException] = []

    def second_writer() -> None:
        try:
            with Session.begin() as session:
                add_references([name], session=session)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    with Session.begin() as session:
        add_references([name], session=session)  # its insert holds the key
        other = threading.Thread(target=second_writer, name="second-writer")
        other.start()
        time.sleep(0.5)  # the other looks, finds nothing, and waits to insert
    other.join(timeout=60)

    assert not other.is_alive()
    assert failures == []
    assert ("mc23_13p6TeV",) in held(Session)["project"]
    assert ("PHYSLITE",) in held(Session)["sub_data_type"]


@pytest.mark.parametrize("how", ["ignoring duplicates", "one by one (Oracle)"])
def test_a_row_another_writer_added_since_the_lookup_stays_as_written(
    Session: sessionmaker[OrmSession],  # noqa: N803
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    with Session.begin() as session:
        session.add(Project(tag="mc16_13TeV", description="by hand", read_status="X"))
    # The lookup ran before the other writer's commit.
    monkeypatch.setattr(reference, "_present", lambda *args, **kwargs: set())
    if how.startswith("one by one"):
        monkeypatch.setattr(reference, "_insert_ignoring_duplicates", lambda *a: None)

    with Session.begin() as session:
        add_dataset(
            "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601",
            "prodsys",
            session=session,
        )

    with Session() as session:
        project = session.get(Project, "mc16_13TeV")
        assert project is not None
        assert (project.description, project.read_status) == ("by hand", "X")
        assert session.scalar(select(Dataset.name)) is not None
    assert held(Session)["data_type"] == {("EVNT",)}


def test_a_name_off_the_nomenclature_adds_nothing(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with pytest.raises(InvalidName), Session.begin() as session:
        add_references(["mc16_13TeV.361106.Zee.reco.AOD.e1"], session=session)

    assert held(Session) == {table: set() for table in TABLES}


# --- the migration -----------------------------------------------------------


def test_upgrading_adds_the_references_of_the_datasets_already_there(
    empty_engine: Engine, tmp_path: Path
) -> None:
    names = [*names_of(build_world(files_per_dataset=1)), USER_SKIM, GROUP_DATASET]
    migrations.upgrade(empty_engine, "0008")
    with empty_engine.begin() as connection:
        rows = [{**name_columns(name), "source": "prodsys"} for name in names]
        connection.execute(insert(dataset_table_at_0008()), rows)

    migrations.upgrade(empty_engine)

    assert held(session_factory(empty_engine)) == expected(names)
    assert whole_rows(session_factory(empty_engine)) == added_rows(names, tmp_path)


def dataset_table_at_0008() -> Table:
    """The dataset table as revision 0008 has it (the model's columns but
    those later revisions added), with the model's types and defaults."""
    later = {"tier0_n_files", "tier0_total_events", "tier0_total_size", "tags_pending"}
    table = Table("dataset", MetaData())
    for column in Dataset.__table__.columns:
        if column.name not in later:
            table.append_column(column._copy())
    return table


def added_rows(names: list[str], tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The reference rows that hepcat adds when it writes *names*."""
    return written_apart(
        tmp_path / "added.sqlite",
        lambda session: add_references(names, session=session),
        whole_rows,
    )


def test_the_nomenclature_lists_a_template_for_every_kind_of_name(
    empty_engine: Engine, tmp_path: Path
) -> None:
    migrations.upgrade(empty_engine)
    ami = ami_on(empty_engine, tmp_path)

    templates = atlas.list_nomenclature(ami, fields="template,description")

    assert set(listed(templates, "tag", "template")) == TEMPLATES
    for wrong in ["mc16_13TeV.361106", "data15_13TeV.00284500"]:
        with pytest.raises(InvalidName) as error:
            parse_dataset_name(wrong)
        layout = str(error.value).split(" fields ")[1].split()[0].rstrip(",")
        assert layout in [row["template"] for row in templates]
    for row in templates:  # each describes itself with a name it fits
        _, example = row["description"].split(" e.g. ")
        parsed = parse_dataset_name(example)
        assert row["tag"] == (parsed.project if parsed.kind == "user" else parsed.kind)
        assert len(example.split(".")) >= len(row["template"].split("."))


def test_the_migration_compiles_for_oracle_both_ways() -> None:
    sql = oracle_sql("0008", "0009")

    for table in ["nomenclature", *TABLES]:
        assert f"INSERT INTO {table} " in sql
    assert "DELETE FROM nomenclature" in sql
    assert "%" not in sql


# --- the real client against hepcat demo -------------------------------------


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``hepcat demo --no-serve`` (the simulated world written into the
    sources and ingested), then ``hepcat serve`` on its data directory: the
    base URL.
    """
    data_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    hepcat = [sys.executable, "-m", "hepcat", "--data-dir", str(data_dir)]
    demo = subprocess.run(
        [*hepcat, "demo", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    served = subprocess.Popen(
        [*hepcat, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        fetch(f"{url}/")
        yield url
    finally:
        served.terminate()
        served.wait(timeout=30)
        log.close()


@pytest.fixture
def real_client(
    served_demo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pyAMI.client.Client:
    host, port = served_demo.removeprefix("http://").split(":")
    descr = {"prot": "http", "host": host, "port": port, "path": "/AMI/FrontEnd"}
    monkeypatch.setitem(pyAMI.config.endpoint_descrs, "hepcat-demo", descr)
    monkeypatch.setattr(pyAMI.config, "config_path", str(tmp_path))
    monkeypatch.setattr(pyAMI.config, "config_file", str(tmp_path / "pyami.cfg"))
    return pyAMI.client.Client("hepcat-demo")


def test_after_hepcat_demo_pyami_lists_projects_types_steps_and_templates(
    real_client: pyAMI.client.Client,
) -> None:
    want = expected(names_of(build_world()))

    projects = atlas.list_projects(real_client)
    types = atlas.list_types(real_client)
    steps = atlas.list_prodsteps(real_client)
    templates = atlas.list_nomenclature(real_client)

    assert listed(projects, "tag") == sorted(want["project"])
    assert listed(types, "name") == sorted(want["data_type"])
    assert listed(steps, "name", "tag") == sorted(want["production_step"])
    assert set(listed(templates, "tag", "template")) == TEMPLATES
