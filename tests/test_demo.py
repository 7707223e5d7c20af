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
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    output, _ = process.communicate(timeout=30)
    assert "Traceback" not in output, output


def test_the_demo_serves_the_simulated_datasets(demo):
    world = build_world()
    evnt = next(d.name for d in world.datasets if ".EVNT." in d.name)

    home = fetch(f"{demo}/")
    search = fetch(f"{demo}/datasets?q=%25.EVNT.%25&limit=100")

    assert "hepcat" in home
    assert evnt in search
    assert f"{sum('.EVNT.' in d.name for d in world.datasets)} datasets match" in search
