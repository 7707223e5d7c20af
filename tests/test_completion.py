"""``completion``: a dataset short of its task's events never shows 100%
(DESIGN.md: ``totalEvents`` as a percentage of the task's ``total_events``,
at most 100), in AMI, in MQL and in ``derive --check``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import rows, search

from catalog.config import load_config
from catalog.consistency import check_derived
from catalog.datasets import get_dataset
from catalog.derived import refresh_changed
from catalog.models import File, ProductionTask
from ingest.seed import seed_catalog
from ingest.world import build_world
from web.app import create_app

ZEE_DAOD = (
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS."
    "e3601_s3126_r10724_p4164"
)


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path) -> FlaskClient:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine).test_client()


def make_events(
    Session: sessionmaker[OrmSession],  # noqa: N803
    events: int,
    requested: int,
) -> None:
    """Seed the world, then give ZEE_DAOD's files *events* in all and its
    task *requested* events, and derive it again.
    """
    with Session.begin() as session:
        seed_catalog(build_world(), session=session)
    with Session.begin() as session:
        dataset = get_dataset(ZEE_DAOD, session=session)
        first, *others = sorted(dataset.files, key=lambda f: f.lfn)
        counted = sum(f.events or 0 for f in others)
        session.execute(
            update(File).where(File.id == first.id).values(events=events - counted)
        )
        session.execute(
            update(ProductionTask)
            .where(ProductionTask.task_id == dataset.task_id)
            .values(total_events=requested)
        )
        refresh_changed([dataset.id], session=session)


def test_a_dataset_short_of_its_tasks_events_is_not_complete(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    make_events(Session, 99_996, 100_000)  # 99.996%

    (info,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}"')
    complete = search(
        client,
        "dataset",
        f"SELECT logicalDatasetName WHERE logicalDatasetName = '{ZEE_DAOD}' "
        "AND completion = 100",
    )

    assert info["totalEvents"] == "99996"
    assert info["completion"] == "99.99"
    assert complete == []
    with Session() as session:
        assert check_derived(session=session) == []


def test_a_dataset_with_all_its_tasks_events_is_complete(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    make_events(Session, 100_000, 100_000)

    (info,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}"')

    assert info["completion"] == "100"


def test_completion_is_at_most_100(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    make_events(Session, 100_001, 100_000)

    (info,) = rows(client, f'AMIGetDatasetInfo -logicalDatasetName="{ZEE_DAOD}"')

    assert info["completion"] == "100"


def test_completion_keeps_two_decimals_of_a_share(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    # 1/3 of the events: 33.333...%, shown to two decimals as before.
    make_events(Session, 1_000, 3_000)

    with Session() as session:
        dataset = get_dataset(ZEE_DAOD, session=session)
        assert dataset.completion == 33.33
