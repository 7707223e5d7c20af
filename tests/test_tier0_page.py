"""The Tier-0 section of a dataset's page says what is true of its counts:
that its files add up to Tier-0's, and, once DDM lost some of them, that
``nFiles`` leaves those out.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_pages import visible_text

from catalog.derived import refresh_datasets
from catalog.models import Dataset

RAW = "data15_13TeV.00267073.physics_Main.daq.RAW"


@pytest.fixture
def client(seeded_world: None, app: Flask) -> FlaskClient:
    """The checked client (no traceback nor SQL) on the simulated world."""
    return app.test_client()


def lose_files(Session: sessionmaker[OrmSession], count: int) -> None:  # noqa: N803
    """DDM reports *count* files of RAW lost; its counts are derived again."""
    with Session.begin() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == RAW))
        assert dataset is not None
        for file in sorted(dataset.files, key=lambda f: f.lfn)[:count]:
            file.lost = True
        refresh_datasets([dataset.id], session=session)


def test_a_done_dataset_says_its_files_add_up(client: FlaskClient) -> None:
    text = visible_text(client.get(f"/datasets/{RAW}"))

    assert "nFiles 4" in text and "tier0NFiles 4" in text
    assert "DONE Its files add up to Tier-0's counts." in text


def test_a_done_dataset_with_lost_files_says_nfiles_leaves_them_out(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    lose_files(Session, 1)

    text = visible_text(client.get(f"/datasets/{RAW}"))

    assert "nFiles 3" in text and "tier0NFiles 4" in text
    assert "add up to Tier-0's counts." not in text
    assert (
        "DONE Every file Tier-0 counts reached hepcat, but DDM has since lost "
        "1 of them: nFiles, totalEvents and totalSize leave them out, and fall "
        "short of Tier-0's counts."
    ) in text
