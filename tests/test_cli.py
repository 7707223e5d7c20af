"""The hepcat command: schema management, the demo, and how errors look."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from live import free_port
from sqlalchemy import insert, select, update

import migrations
from catalog.config import load_config
from catalog.db import create_catalog_engine
from catalog.errors import BrokerUnavailable
from catalog.models import Dataset, File, Quarantine
from catalog.operations import quarantine, quarantine_count
from hepcat.cli import main
from hepcat.cli.serving import DemoDdm
from hepcat.wiring import configured_ingesters
from ingest import schemas
from ingest.ddm import remove_subscription
from ingest.simulate_ddm import ddm_scenario
from ingest.world import build_world


@pytest.fixture
def hepcat(tmp_path):
    """Run ``hepcat ARGS...`` with a data directory of the test's own."""

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=env)

    return run


def test_db_upgrade_then_downgrade_on_every_database(hepcat, empty_engine):
    url = {"HEPCAT_DATABASE_URL": empty_engine.url.render_as_string(False)}

    upgraded = hepcat("db", "upgrade", env=url)
    current = hepcat("db", "current", env=url)
    downgraded = hepcat("db", "downgrade", "base", env=url)

    assert upgraded.exit_code == 0, upgraded.output
    assert f"schema empty -> {migrations.head()}" in upgraded.output
    assert f"current: {migrations.head()}" in current.output
    assert downgraded.exit_code == 0, downgraded.output
    assert migrations.current(empty_engine) is None


def test_an_unreachable_database_is_one_line_on_stderr(hepcat):
    env = {"HEPCAT_DATABASE_URL": "postgresql+psycopg://nobody:secret@127.0.0.1:9/x"}

    result = hepcat("db", "current", env=env)

    assert result.exit_code == 1
    assert result.stderr.startswith("DatabaseUnavailable: cannot reach the catalogue")
    assert "secret" not in result.stderr
    assert "Traceback" not in result.output


def test_a_database_password_given_as_a_query_parameter_is_hidden_too(hepcat):
    url = "postgresql+psycopg://nobody@127.0.0.1:9/x?password=secret"

    result = hepcat("db", "current", env={"HEPCAT_DATABASE_URL": url})

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "DatabaseUnavailable: cannot reach the catalogue database "
        "postgresql+psycopg://nobody@127.0.0.1:9/x?password=***: "
    )
    assert "secret" not in result.output


def test_serving_an_unmigrated_catalogue_says_what_to_run(hepcat):
    result = hepcat("serve")

    assert result.exit_code == 1
    assert "SchemaOutdated:" in result.stderr
    assert "run 'hepcat db upgrade'" in result.stderr


def test_a_misspelt_setting_stops_the_command_with_a_hint(hepcat):
    result = hepcat("config", "show", env={"HEPCAT_PROT": "80"})

    assert result.exit_code == 1
    assert "UnknownSetting: unknown setting 'prot'" in result.stderr
    assert "did you mean 'port'" in result.stderr


def test_demo_without_serving_ingests_the_simulated_world(hepcat, tmp_path):
    world = build_world()
    tier0 = sum(spec.source == "tier0" for spec in world.datasets)

    first = hepcat("demo", "--no-serve")
    second = hepcat("demo", "--no-serve")

    assert first.exit_code == 0, first.output
    assert f"tier0: {tier0} ingested" in first.output
    assert second.exit_code == 0, second.output
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.connect() as connection:
        names = set(connection.scalars(select(Dataset.name)))
    engine.dispose()
    assert names == {spec.name for spec in world.datasets}


def test_the_demo_says_how_to_turn_ddm_on(hepcat):
    result = hepcat("demo", "--no-serve")

    assert result.exit_code == 0, result.output
    assert "DDM is off: set HEPCAT_DDM_BROKER=stomp://" in result.output


@pytest.mark.external_service
def test_the_demo_publishes_and_ingests_ddm_events_with_a_broker(
    hepcat, tmp_path, broker
):
    from catalog.config import load_config
    from hepcat.cli.serving import demo_config
    from hepcat.wiring import ddm_client_id

    scenario = ddm_scenario(build_world())
    env = {"HEPCAT_DDM_BROKER": broker, "HEPCAT_DDM_DESTINATION": "/topic/rucio.events"}
    # The demo's own destination and subscription (hepcat.cli.serving), never
    # the one configured.
    given = load_config(env={"HEPCAT_DATA_DIR": str(tmp_path), **env})
    own, _ = demo_config(given)

    try:
        result = hepcat("demo", "--no-serve", env=env)
    finally:
        remove_subscription(
            broker,
            own.ddm_destination,
            client_id=ddm_client_id(own),
            subscription=own.ddm_subscription,
        )

    assert result.exit_code == 0, result.output
    assert f"ddm: {len(scenario.events)} ingested" in result.output
    assert "note: the demo ignores HEPCAT_DDM_DESTINATION" in result.stderr
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.connect() as connection:
        lost = set(connection.scalars(select(File.lfn).where(File.lost.is_(True))))
        erased = connection.scalar(
            select(Dataset.ddm_erased).where(Dataset.name == scenario.erased)
        )
    engine.dispose()
    assert lost == {scenario.lost_file}
    assert erased is not None


def test_ingest_once_without_sources_says_what_to_set(hepcat):
    hepcat("db", "upgrade")

    result = hepcat("ingest", "--once")

    assert result.exit_code == 1
    assert "no source is configured; set HEPCAT_PRODSYS_URL" in result.stderr


@pytest.mark.parametrize(
    ("env", "tags", "names"),
    [
        ({}, None, ["skim"]),
        ({"HEPCAT_STORAGE_ROOT": "."}, None, ["skim", "tags"]),
        ({}, True, ["skim", "tags"]),
    ],
    ids=["no file store", "a file store", "asked for"],
)
def test_the_task_server_builds_tags_only_with_a_file_store(env, tags, names):
    from catalog.config import load_config
    from hepcat.wiring import skim_tasks

    tasks = skim_tasks(load_config(env=env), tags=tags)
    assert [task.name for task in tasks] == names


# -- hepcat ingest --once and hepcat taskserver ---------------------------------


@pytest.fixture
def coma_env(catalog_engine, sources):
    """The environment of a hepcat whose only source is the simulated COMA,
    holding the world's runs and periods, on the test's catalogue.
    """
    sources.coma.add_world(build_world())
    return {
        "HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False),
        "HEPCAT_COMA_URL": sources.coma.engine.url.render_as_string(False),
    }


def test_ingest_once_counts_the_coma_rows_it_wrote_not_those_it_read(
    hepcat, coma_env, sources
):
    world = build_world()
    run = schemas.coma_run.c
    first = hepcat("ingest", "--once", env=coma_env)

    again = hepcat("ingest", "--once", env=coma_env)
    with sources.coma.engine.begin() as connection:
        connection.execute(
            update(schemas.coma_run)
            .where(run.runnumber == world.runs[0].run_number)
            .values(nlumiblocks=run.nlumiblocks + 1)
        )
    changed = hepcat("ingest", "--once", env=coma_env)

    assert first.exit_code == 0, first.output
    assert f"coma: {len(world.runs) + len(world.periods)} ingested" in first.output
    assert again.exit_code == 0, again.output
    assert "coma: 0 ingested" in again.output
    assert "coma: 1 ingested" in changed.output


def test_a_run_joining_a_period_counts_that_period_once(hepcat, coma_env, sources):
    hepcat("ingest", "--once", env=coma_env)
    with sources.coma.engine.begin() as connection:
        connection.execute(
            insert(schemas.coma_period_run).values(
                project="data15_13TeV", period="A", runnumber=284500
            )
        )

    result = hepcat("ingest", "--once", env=coma_env)

    assert result.exit_code == 0, result.output
    assert "coma: 1 ingested" in result.output


def test_ingest_once_fails_when_the_ddm_broker_is_unreachable(hepcat, monkeypatch):
    monkeypatch.setattr("ingest.ddm.PATIENCE", 1.0)
    broker = f"stomp://127.0.0.1:{free_port()}"
    hepcat("db", "upgrade")

    result = hepcat("ingest", "--once", env={"HEPCAT_DDM_BROKER": broker})

    assert result.exit_code == 1, result.output
    assert "ddm: 0 ingested (failed)" in result.stdout
    assert f"ddm: BrokerUnreachable: cannot reach the DDM broker {broker}" in (
        result.stderr
    )
    assert "Connection refused" in result.stderr
    assert "DrainFailed: task(s) 'ddm' failed" in result.stderr


def test_the_task_server_runs_skims_without_any_source(hepcat, tmp_path):
    hepcat("db", "upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    command = [sys.executable, "-m", "hepcat", "--data-dir", str(tmp_path)]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [*command, "taskserver"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=stdout,
            stderr=stderr,
        )
        try:
            started = _wait_for_text(out, "runs: skim", server)
        finally:
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=60)

    assert started, err.read_text()
    assert status == 0, err.read_text()
    assert "no source is configured: the task server runs no ingester" in (
        err.read_text()
    )
    assert "Traceback" not in err.read_text()


def _wait_for_text(path, text: str, process, timeout: float = 60.0) -> bool:
    """Wait until the file at *path* holds *text*; False if *process* ends
    or *timeout* seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in path.read_text():
            return True
        time.sleep(0.1)
    return text in path.read_text()


# -- errors an operator audit found: one line on stderr, exit status 1 ----------


@pytest.mark.parametrize(
    "command", [["serve"], ["ingest", "--once"], ["db", "upgrade"]]
)
def test_a_database_url_that_is_no_url_is_one_line_on_stderr(hepcat, command):
    result = hepcat(*command, env={"HEPCAT_DATABASE_URL": "notaurl"})

    assert result.exit_code == 1
    assert result.stderr.startswith("ConfigError: setting database_url = 'notaurl'")
    assert "HEPCAT_DATABASE_URL" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_missing_sqlite_source_is_refused_not_created(hepcat, tmp_path):
    hepcat("db", "upgrade")
    typo = tmp_path / "typo" / "prodsys.sqlite"

    result = hepcat("ingest", "--once", env={"HEPCAT_PRODSYS_URL": f"sqlite:///{typo}"})

    assert result.exit_code == 1
    assert f"ConfigError: setting prodsys_url = 'sqlite:///{typo}'" in result.stderr
    assert "a source database must exist" in result.stderr
    assert not typo.parent.exists()


def test_a_catalogue_in_a_missing_directory_is_refused(hepcat, tmp_path):
    url = f"sqlite:///{tmp_path / 'typo' / 'catalog.sqlite'}"

    result = hepcat("db", "upgrade", env={"HEPCAT_DATABASE_URL": url})

    assert result.exit_code == 1
    assert "ConfigError: setting database_url" in result.stderr
    assert f"the directory {tmp_path / 'typo'} does not exist" in result.stderr
    assert not (tmp_path / "typo").exists()


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    "command", [["serve", "--port"], ["taskserver", "--metrics-port"]]
)
def test_a_busy_port_is_one_line_on_stderr(hepcat, busy_port, command):
    hepcat("db", "upgrade")

    result = hepcat(*command, str(busy_port))

    assert result.exit_code == 1, result.output
    assert f"AddressInUse: port {busy_port} on 127.0.0.1 is in use" in result.stderr
    assert "serving at" not in result.stdout


@pytest.mark.parametrize(
    "command",
    [["serve", "--port"], ["demo", "--port"], ["taskserver", "--metrics-port"]],
)
def test_a_port_out_of_range_on_the_command_line_is_a_usage_error(hepcat, command):
    result = hepcat(*command, "99999")

    # Like any option value click refuses: its usage message, exit status 2.
    assert result.exit_code == 2
    assert f"Error: Invalid value for '{command[1]}': 99999 is not in the range" in (
        result.stderr
    )


def test_a_port_out_of_range_in_a_setting_is_a_config_error(hepcat):
    result = hepcat("serve", env={"HEPCAT_PORT": "99999"})

    assert result.exit_code == 1
    assert result.stderr == (
        "ConfigError: setting port = '99999' is not usable: expected a number at "
        "least 1 and at most 65535; set in the environment as HEPCAT_PORT\n"
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_port_option_says_what_it_overrides(hepcat, command):
    result = hepcat(command, "--help")

    assert "1-65535 (default: the port setting, $HEPCAT_PORT, 5000)" in (
        " ".join(result.output.split())
    )


def number_options(command=main, path=()):
    """The options of every hepcat command that take a number: (the words
    that name the command, the command, the option's name, whether it takes
    integers).
    """
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from number_options(sub, (*path, name))
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(
            param.type, click.types.IntParamType | click.types.FloatParamType
        ):
            whole = isinstance(param.type, click.types.IntParamType)
            yield path, command, param.opts[0], whole


NUMBER_OPTIONS = list(number_options())


@pytest.mark.parametrize(
    ("path", "command", "option", "whole"),
    NUMBER_OPTIONS,
    ids=[f"{' '.join(p)} {o}" for p, _, o, _ in NUMBER_OPTIONS],
)
def test_every_number_option_refuses_a_value_out_of_range_as_a_usage_error(
    hepcat, monkeypatch, path, command, option, whole
):
    # Only the command line is read: a value that passes runs nothing.
    monkeypatch.setattr(command, "callback", lambda **kwargs: None)
    bad = ["-1", "9" * 30] if whole else ["-1", "nan", "inf"]

    for value in bad:
        result = hepcat(*path, f"{option}={value}")

        # README: "an option's value out of its range ... is a usage error
        # ... with exit status 2, as for every option of every command".
        assert result.exit_code == 2, (value, result.output)
        assert f"Error: Invalid value for '{option}'" in result.stderr


def test_the_number_options_are_those_known():
    # Guards the test above against finding nothing to check.
    found = {(" ".join(path), option) for path, _, option, _ in NUMBER_OPTIONS}

    assert {("skim list", "--limit"), ("ami", "--timeout"), ("demo", "--pace")} <= (
        found
    )


def test_the_readme_says_which_errors_exit_2_and_which_1():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = " ".join(readme.split())

    assert "`--port 99999`" in text
    assert "exit status 2" in text


@pytest.mark.parametrize("command", [["taskserver"], ["ingest", "--once"]])
def test_a_ddm_broker_of_the_wrong_form_is_one_line_on_stderr(hepcat, command):
    env = {"HEPCAT_DDM_BROKER": "stomp+ssl://mq.invalid:61614"}

    result = hepcat(*command, env=env)

    assert result.exit_code == 1
    assert result.stderr == (
        "ConfigError: setting ddm_broker = 'stomp+ssl://mq.invalid:61614' is not "
        "usable: expected stomp://host:port; set in the environment as "
        "HEPCAT_DDM_BROKER\n"
    )


@pytest.mark.parametrize("command", [["taskserver"], ["ingest", "--once"]])
def test_a_ddm_broker_of_the_wrong_form_hides_its_password(hepcat, command):
    env = {"HEPCAT_DDM_BROKER": "stomp+ssl://atlas:s3cret@mq.invalid:61614"}

    result = hepcat(*command, env=env)

    assert result.exit_code == 1
    assert result.stderr == (
        "ConfigError: setting ddm_broker = 'stomp+ssl://atlas:***@mq.invalid:61614' "
        "is not usable: expected stomp://host:port; set in the environment as "
        "HEPCAT_DDM_BROKER\n"
    )


def test_an_unreachable_ddm_broker_never_shows_its_password(
    hepcat, monkeypatch, caplog
):
    monkeypatch.setattr("ingest.ddm.PATIENCE", 1.0)
    port = free_port()
    hepcat("db", "upgrade")
    env = {"HEPCAT_DDM_BROKER": f"stomp://atlas:s3cret@127.0.0.1:{port}"}

    result = hepcat("ingest", "--once", env=env)

    assert result.exit_code == 1, result.output
    assert f"cannot reach the DDM broker stomp://127.0.0.1:{port}" in result.stderr
    assert f"Cannot connect to the DDM broker stomp://127.0.0.1:{port}" in caplog.text
    assert "s3cret" not in result.output + caplog.text


def test_the_demo_hides_the_broker_password_when_it_cannot_subscribe(monkeypatch):
    monkeypatch.setattr(DemoDdm, "PATIENCE", 0.2)
    port = free_port()
    config = load_config(
        env={"HEPCAT_DDM_BROKER": f"stomp://atlas:s3cret@127.0.0.1:{port}"}
    )
    ddm = DemoDdm.of(config, configured_ingesters(config))
    assert ddm is not None
    subscribed = ddm.steps()[0]

    with pytest.raises(BrokerUnavailable) as raised:
        subscribed()

    assert str(raised.value).startswith(
        f"cannot subscribe at the DDM broker stomp://atlas:***@127.0.0.1:{port}: "
        "no subscription after 0 s"
    )


def test_ingest_once_out_of_time_says_so_and_fails(hepcat, coma_env):
    result = hepcat("ingest", "--once", "--max-seconds", "0", env=coma_env)

    assert result.exit_code == 1
    assert "coma: 0 ingested (not drained)" in result.stdout
    assert "NotDrained: the time ran out (--max-seconds 0) before 'coma'" in (
        result.stderr
    )


def test_ingest_once_says_how_many_records_it_quarantined(hepcat, coma_env, sources):
    with sources.coma.engine.begin() as connection:
        connection.execute(
            insert(schemas.coma_period).values(
                project="data15_13TeV", period="Z9", level=7
            )
        )

    result = hepcat("ingest", "--once", env=coma_env)

    assert result.exit_code == 0, result.output
    assert ", 1 quarantined" in result.stdout


def test_a_command_prints_what_it_found_and_nothing_else(hepcat, tmp_path):
    hepcat("db", "upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    command = [sys.executable, "-m", "hepcat", "--data-dir", str(tmp_path)]

    quiet = subprocess.run(
        [*command, "derive", "--check"], env=env, capture_output=True, text=True
    )
    verbose = subprocess.run(
        [*command, "--verbose", "derive", "--check"],
        env=env,
        capture_output=True,
        text=True,
    )

    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "0 differences found\n"
    assert quiet.stderr == ""  # no word of Alembic's checking the schema
    assert "alembic.runtime.migration" in verbose.stderr


# -- hepcat quarantine ------------------------------------------------------------


@pytest.fixture
def held_records(Session):
    """Two records held in quarantine (a Tier-0 file, a COMA period); their ids."""
    with Session.begin() as session:
        file = quarantine(
            "tier0",
            "data15_13TeV.00284500.physics_Main.daq.RAW._lb0001._0001.data",
            {"guid": "not-a-guid"},
            "guid = 'not-a-guid' is not a GUID",
            session=session,
        )
        period = quarantine(
            "coma", "Z9", {"period": "Z9", "level": 7}, "level = 7", session=session
        )
        session.flush()
        return file.id, period.id


def test_quarantine_release_releases_a_record_with_the_reason(
    hepcat, catalog_engine, Session, held_records
):
    env = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}
    file_id, period_id = held_records
    before = hepcat("quarantine", "list", env=env)

    released = hepcat(
        "quarantine", "release", str(file_id), "--reason", "GUID fixed", env=env
    )

    after = hepcat("quarantine", "list", env=env)
    everything = hepcat("quarantine", "list", "--all", env=env)
    assert before.exit_code == 0, before.output
    assert before.stderr == "2 held records in quarantine\n"
    assert released.exit_code == 0, released.output
    assert released.stdout == (
        f"released {file_id} (tier0 "
        "data15_13TeV.00284500.physics_Main.daq.RAW._lb0001._0001.data)\n"
    )
    assert after.stderr == "1 held record in quarantine\n"
    assert [line.split()[0] for line in after.stdout.splitlines()] == [str(period_id)]
    assert everything.stderr == "2 records in quarantine (1 held, 1 released)\n"
    with Session() as session:
        record = session.get(Quarantine, file_id)
        assert record.released
        assert re.search(
            r"; released by .+ on \d{4}-\d\d-\d\d \d\d:\d\d UTC: GUID fixed$",
            record.reason,
        )
        assert record.reason.startswith("guid = 'not-a-guid' is not a GUID; ")
        assert quarantine_count(released=False, session=session) == 1


def test_quarantine_release_of_an_unknown_or_released_record_says_so(
    hepcat, catalog_engine, Session, held_records
):
    env = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}
    file_id, period_id = held_records
    hepcat("quarantine", "release", str(file_id), env=env)

    unknown = hepcat("quarantine", "release", str(period_id), "999999", env=env)
    again = hepcat("quarantine", "release", str(file_id), env=env)
    no_id = hepcat("quarantine", "release", env=env)
    huge = hepcat("quarantine", "release", "9" * 20, env=env)

    assert unknown.exit_code == 1
    assert unknown.stderr.startswith(
        "QuarantineNotFound: no quarantined record with id 999999; "
    )
    assert "hepcat quarantine list" in unknown.stderr
    assert again.exit_code == 1
    assert again.stderr.startswith(
        f"AlreadyReleased: quarantined record {file_id} "
        "(data15_13TeV.00284500.physics_Main.daq.RAW._lb0001._0001.data) "
        "is released already"
    )
    assert "Traceback" not in unknown.output + again.output
    assert no_id.exit_code == 2  # a usage error
    assert huge.stderr.startswith(
        f"QuarantineNotFound: no quarantined record with id {'9' * 20};"
    )
    with Session() as session:
        # Either all or none: the known record stays held.
        assert not session.get(Quarantine, period_id).released


def test_the_quarantine_commands_are_in_the_readme_and_the_help(hepcat):
    readme = (Path(__file__).parents[1] / "README.md").read_text()

    result = hepcat("--help")

    assert "quarantine" in result.stdout
    assert "`hepcat quarantine release ID... [--reason TEXT]`" in readme
    assert "`hepcat quarantine list" in readme
