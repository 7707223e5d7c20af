"""Requests for one skim name at the same moment: one of them takes the
name, the others are told it is taken, as a request after it would be.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from test_skims import DATASET, DIMUON, SkimWorld

from catalog.models import Skim
from catalog.users import get_user
from skimengine import skims
from skimengine.skims import OutputTaken, request_skim

REQUESTS = 3


def test_one_of_simultaneous_requests_takes_the_name(
    skim_world: SkimWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between checking the name and adding the skim, each request waits
    # (two seconds at most) until all have checked it: requests that check
    # the name one at a time never meet there.
    checked = threading.Barrier(REQUESTS, timeout=2)
    compile_for = skims.compile_for

    def after_check(*args: Any) -> Any:
        try:
            checked.wait()
        except threading.BrokenBarrierError:
            pass
        return compile_for(*args)

    monkeypatch.setattr(skims, "compile_for", after_check)
    start = threading.Barrier(REQUESTS)

    def request(_: int) -> str | None:
        start.wait()
        with skim_world.Session.begin() as session:
            owner = get_user("jdoe", session=session)
            try:
                request_skim(DATASET, DIMUON, "dimuon", owner=owner, session=session)
            except OutputTaken as err:
                return str(err)
        return None

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(request, range(REQUESTS)))

    with skim_world.Session() as session:
        made = list(session.scalars(select(Skim.id)))
    assert len(made) == 1
    assert answers.count(None) == 1
    taken = f"skim {made[0]} of {DATASET} is already called 'dimuon'"
    assert all(taken in answer for answer in answers if answer is not None)
