"""``web.wsgi:app`` under a production WSGI server: gunicorn with two worker
processes, started as an operator would, on a catalogue seeded with the
simulated world.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from live import free_port, populate

from ingest.world import build_world


def gunicorn(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "web.wsgi:app",
    ]  # fmt: skip
    env = {"HEPCAT_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_gunicorn_serves_the_catalogue(tmp_path: Path) -> None:
    from live import _wait_until_up

    world = build_world()
    data_dir = tmp_path / "hepcat-data"
    populate(data_dir, world)
    port, log = free_port(), tmp_path / "gunicorn.log"
    process = gunicorn(data_dir, port, log)
    try:
        _wait_until_up(process, f"http://127.0.0.1:{port}/", log)
        name = world.datasets[0].name
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v1/datasets/{name}"
        ) as answer:
            found = json.load(answer)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/datasets") as page:
            text = page.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert found["logicalDatasetName"] == name
    assert found["nFiles"] == len(world.datasets[0].files)
    assert name in text
    assert "Booting worker" in log.read_text()


def test_a_catalogue_to_upgrade_stops_the_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "hepcat-data"
    data_dir.mkdir()
    (data_dir / "catalog.sqlite").touch()  # an empty database: no schema
    log = tmp_path / "gunicorn.log"

    process = gunicorn(data_dir, free_port(), log)
    code = process.wait(timeout=60)

    assert code != 0
    assert "hepcat db upgrade" in log.read_text()
