"""A live ``hepcat serve`` on a populated catalogue, for the tests that need
a real HTTP server: the real pyAMI client, the browser, our own client; and
the browser those tests drive.

``served_catalog`` seeds a SQLite catalogue in a data directory with the
simulated world (:func:`ingest.seed.seed_catalog`), then runs the real
``hepcat serve`` on a free port as a separate process, as an operator would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import migrations
from catalog.db import create_catalog_engine, session_factory
from ingest.seed import seed_catalog
from ingest.world import World, build_world

STARTUP_SECONDS = 30
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; no browser is downloaded


@dataclass(frozen=True)
class ServedCatalog:
    """A running ``hepcat serve``: its base URL, data directory and world."""

    url: str
    host: str
    port: int
    data_dir: Path
    database_url: str
    world: World

    def env(self) -> dict[str, str]:
        """The environment under which ``hepcat`` commands see this catalogue."""
        return {**os.environ, "HEPCAT_DATA_DIR": str(self.data_dir)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def populate(data_dir: Path, world: World) -> str:
    """Create the catalogue of *data_dir* and write *world* into it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data_dir / 'catalog.sqlite'}"
    engine = create_catalog_engine(url)
    try:
        migrations.upgrade(engine)
        with session_factory(engine).begin() as session:
            seed_catalog(world, session=session)
    finally:
        engine.dispose()
    return url


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"hepcat serve exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(
        f"hepcat serve did not answer within {STARTUP_SECONDS}s:\n{log.read_text()}"
    )


@pytest.fixture(scope="session")
def served_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCatalog]:
    """The real ``hepcat serve`` on a catalogue seeded with the simulated world."""
    data_dir = tmp_path_factory.mktemp("served") / "hepcat-data"
    world = build_world()
    database_url = populate(data_dir, world)
    host, port = "127.0.0.1", free_port()
    served = ServedCatalog(
        f"http://{host}:{port}", host, port, data_dir, database_url, world
    )
    log = data_dir / "serve.log"
    command = [
        sys.executable,
        "-m",
        "hepcat",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=served.env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_up(process, served.url + "/", log)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Chromium from the Debian package, driven by Playwright."""
    from conftest import unavailable
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        unavailable(f"Chromium at {CHROMIUM}", "not installed (apt install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()
