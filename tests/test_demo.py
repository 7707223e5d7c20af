"""README command 1: ``hepcat demo`` serves a page listing datasets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ingest.world import build_world


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, timeout: float = 60.0) -> str:
    """GET *url*, retrying while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    command = [sys.executable, "-m", "hepcat", "--data-dir", str(tmp_path), "demo"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--pace", "0.01"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    output, _ = process.communicate(timeout=30)
    assert "Traceback" not in output, output


def test_the_demo_serves_the_datasets_as_they_are_ingested(demo):
    world = build_world()
    evnt = [d.name for d in world.datasets if ".EVNT." in d.name]
    everything = f"{len(world.datasets)} datasets match"

    home = fetch(f"{demo}/")
    search = wait_for(f"{demo}/datasets?limit=100", everything)

    assert "hepcat" in home
    assert everything in search
    assert all(name in search for name in evnt)


def wait_for(url: str, text: str, timeout: float = 120.0) -> str:
    """GET *url* until its page shows *text* (data arrives while we watch)."""
    deadline = time.monotonic() + timeout
    while True:
        page = fetch(url)
        if text in page or time.monotonic() > deadline:
            return page
        time.sleep(0.5)


# --- the demo keeps to itself ----------------------------------------------------

PRODUCTION = {
    "HEPCAT_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:3306/x",
    "HEPCAT_PRODSYS_URL": "oracle+oracledb://atlas:pw@prodsys/?service_name=P",
    "HEPCAT_POOL_FILE_CATALOGS": "/cvmfs/atlas.cern.ch/PoolFileCatalog.xml",
    "HEPCAT_DDM_BROKER": "stomp://mq.cern.ch:61613",
    "HEPCAT_DDM_DESTINATION": "/topic/rucio.events",
    "HEPCAT_DDM_CLIENT_ID": "hepcat",
}


def test_the_demo_ignores_the_catalogue_and_ddm_destination_it_is_given(tmp_path):
    from catalog.config import load_config
    from hepcat.cli.serving import demo_config, ignored_note
    from hepcat.wiring import ddm_client_id

    given = load_config(env={**PRODUCTION, "HEPCAT_DATA_DIR": str(tmp_path)})

    config, ignored = demo_config(given)

    assert config.catalog_url == f"sqlite:///{tmp_path.resolve()}/catalog.sqlite"
    assert config.ddm_broker == "stomp://mq.cern.ch:61613"  # how DDM is asked for
    assert config.ddm_destination.startswith("/topic/hepcat.demo.")
    assert ddm_client_id(config).startswith("hepcat-demo-")
    assert config.ddm_subscription == "hepcat-demo-ddm"
    assert config.pool_file_catalogs == ()  # its event files are its own
    assert ignored == [
        "HEPCAT_DATABASE_URL",
        "HEPCAT_PRODSYS_URL",
        "HEPCAT_POOL_FILE_CATALOGS",
        "HEPCAT_DDM_DESTINATION",
        "HEPCAT_DDM_CLIENT_ID",
    ]
    assert ignored_note(config, ignored) == (
        "note: the demo ignores HEPCAT_DATABASE_URL, HEPCAT_PRODSYS_URL, "
        "HEPCAT_POOL_FILE_CATALOGS, HEPCAT_DDM_DESTINATION, HEPCAT_DDM_CLIENT_ID: "
        "it keeps to its own "
        "catalogue, sources, files, DDM destination and subscription in "
        f"{tmp_path.resolve()}"
    )


def test_the_demo_writes_into_its_own_catalogue_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hepcat.cli import main

    elsewhere = tmp_path / "production.sqlite"
    used: list[str] = []

    def instead(config, Session, *args):  # noqa: N803
        used.append(str(Session.kw["bind"].url))

    monkeypatch.setattr("hepcat.cli.serving._demo_once", instead)
    data = tmp_path / "demo"
    env = {"HEPCAT_DATABASE_URL": f"sqlite:///{elsewhere}"}

    result = CliRunner().invoke(
        main, ["--data-dir", str(data), "demo", "--no-serve"], env=env
    )

    assert result.exit_code == 0, result.output
    assert used == [f"sqlite:///{data.resolve()}/catalog.sqlite"]
    assert not elsewhere.exists()
    assert result.stderr.startswith(
        "note: the demo ignores HEPCAT_DATABASE_URL: it keeps to its own catalogue"
    )


# --- a demo stopped early -------------------------------------------------------


def test_a_demo_whose_port_is_busy_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from hepcat.cli import main

    data = tmp_path / "demo"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main, ["--data-dir", str(data), "demo", "--port", str(port)], env={}
        )

    assert result.exit_code == 1
    assert result.stderr.startswith(f"AddressInUse: port {port} on 127.0.0.1")
    assert not (data / "sources").exists()


def test_a_demo_stopped_early_writes_its_world_whole_when_run_again(tmp_path):
    from click.testing import CliRunner

    from catalog.config import load_config
    from hepcat.cli import main
    from hepcat.cli.serving import _demo_sources, demo_config

    data = tmp_path / "demo"
    config, _ = demo_config(load_config(env={}, data_dir=str(data)))
    _, _, steps = _demo_sources(config)
    for step in steps[:5]:  # then the demo was stopped
        step()

    result = CliRunner().invoke(
        main, ["--data-dir", str(data), "demo", "--no-serve", "--pace", "0"], env={}
    )

    assert result.exit_code == 0, result.output
    assert "not written whole (the demo stopped early)" in result.stderr
    assert sqlite_count(data / "catalog.sqlite", "dataset") == len(
        build_world().datasets
    )


def sqlite_count(path, table: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as connection:
        return int(connection.execute(f"select count(*) from {table}").fetchone()[0])
