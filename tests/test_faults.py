"""Faults: an ingest process killed with SIGKILL at random moments, then
restarted, leaves the same catalogue as a clean run.
"""

from __future__ import annotations

import random

import crash
import pytest

TRIALS = 20


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    return folder, crash.prepare(folder)


@pytest.mark.parametrize("number", range(TRIALS))
def test_kill_9_then_restart_gives_the_clean_catalogue(prepared, number):
    folder, urls = prepared
    kill_after = random.Random(number).uniform(0.2, 3.0)

    assert crash.trial(folder, urls, number, kill_after), (
        f"killed after {kill_after:.2f} s"
    )
