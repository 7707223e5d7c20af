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
