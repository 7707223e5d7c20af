"""AMI commands that answer less than the whole say so, and say how to see
more: a list cut at the rows an answer holds (``AMIListFiles``,
``AMIListRuns``, as ``SearchQuery``), and a provenance graph capped by
``-depth`` or ``-limit`` (``AMIGetDatasetProv``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import ZEE_DAOD, post, rows
from test_provenance_cap import AOD, add_family

from catalog.config import load_config
from catalog.models import Dataset
from ingest.seed import seed_catalog
from ingest.world import build_world
from web.ami import commands
from web.app import create_app

# The rows an answer holds, in these tests.
CAP = 2


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path) -> FlaskClient:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine).test_client()


@pytest.fixture
def world(Session: sessionmaker[OrmSession]) -> None:  # noqa: N803
    with Session.begin() as session:
        seed_catalog(build_world(), session=session)


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(commands, "MAX_ROWS", CAP)
    return CAP


def infos(body: str) -> list[str]:
    return re.findall(r"<info>(.*?)</info>", body, re.S)


# --- lists -------------------------------------------------------------------------


def test_a_file_list_cut_at_the_cap_says_so(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    world: None,
    capped: int,
) -> None:
    command = f'AMIListFiles -logicalDatasetName="{ZEE_DAOD}"'

    body = post(client, command)
    found = rows(client, command, "files")

    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == ZEE_DAOD))
        assert dataset is not None and dataset.n_files > capped
    assert len(found) == capped
    assert infos(body) == [
        f"only the first {capped} rows; use -limit=offset,count for more"
    ]


def test_a_file_list_says_so_when_the_cap_cuts_the_asked_window(
    client: FlaskClient, world: None, capped: int
) -> None:
    command = f'AMIListFiles -logicalDatasetName="{ZEE_DAOD}"'

    more = post(client, f'{command} -limit="1,{capped + 1}"')
    asked = post(client, f'{command} -limit="1,{capped}"')

    assert infos(more) == [
        f"only the first {capped} rows; use -limit=offset,count for more"
    ]
    # What was asked for, whole: nothing to say.
    assert infos(asked) == []
    assert len(rows(client, f'{command} -limit="1,{capped}"', "files")) == capped


def test_a_run_list_cut_at_the_cap_says_so(
    client: FlaskClient, world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = 'AMIListRuns -projectName="data15%"'
    whole = rows(client, command, "runs")
    monkeypatch.setattr(commands, "MAX_ROWS", CAP)

    body = post(client, command)
    found = rows(client, command, "runs")

    assert len(whole) > CAP
    assert found == whole[:CAP]
    assert infos(body) == [
        f"only the first {CAP} rows; narrow the list with -projectName or -period"
    ]


def test_whole_lists_say_nothing(client: FlaskClient, world: None) -> None:
    files = post(client, f'AMIListFiles -logicalDatasetName="{ZEE_DAOD}"')
    runs = post(client, 'AMIListRuns -projectName="data15%"')

    assert infos(files) == infos(runs) == []


# --- provenance ----------------------------------------------------------------------


def test_a_graph_cut_by_depth_says_to_raise_depth(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=2, grandchildren=2)

    body = post(client, f'AMIGetDatasetProv -logicalDatasetName="{AOD}" -depth="1"')

    (note,) = infos(body)
    assert note == (
        "only 4 datasets; left out 1 more ancestors and 2 more descendants "
        "(the leftOut rowset counts them by dataType): -depth=1 cut the graph; "
        "a larger -depth shows more"
    )


def test_a_graph_cut_by_limit_says_to_raise_limit(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=2, grandchildren=2)

    body = post(client, f'AMIGetDatasetProv -logicalDatasetName="{AOD}" -limit="3"')

    (note,) = infos(body)
    assert note == (
        "only 3 datasets; left out 1 more ancestors and 3 more descendants "
        "(the leftOut rowset counts them by dataType): -limit=3 cut the graph; "
        "a larger -limit (up to 10,000) shows more"
    )


def test_a_graph_cut_by_both_says_to_raise_either(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    add_family(Session, phys=2, grandchildren=2)
    command = f'AMIGetDatasetProv -logicalDatasetName="{AOD}"'

    body = post(client, f'{command} -depth="1" -limit="4"')

    (note,) = infos(body)
    assert note.endswith(
        ": -limit=4 and -depth=1 cut the graph; "
        "a larger -limit (up to 10,000) or -depth shows more"
    )
