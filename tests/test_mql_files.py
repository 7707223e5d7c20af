"""``SearchQuery`` on the files of a dataset: ``files.*`` on the ``dataset``
entity lists the files ``nFiles`` counts (DESIGN.md, "Files of a dataset"),
while the ``files`` entity lists every file, on SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import search

from catalog.config import load_config
from catalog.derived import refresh_datasets
from catalog.models import Dataset
from ingest.seed import seed_catalog
from ingest.world import build_world
from web.app import create_app

TTBAR_DAOD = (
    "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS."
    "e6337_s3126_r10724_p4164"
)
RAW = "data15_13TeV.00267073.physics_Main.daq.RAW"


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path) -> FlaskClient:
    app: Flask = create_app(
        load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine
    )
    return app.test_client()


@pytest.fixture
def failed_and_lost(Session: sessionmaker[OrmSession]) -> dict[str, str]:  # noqa: N803
    """The simulated world, where the ttbar DAOD's first file failed in
    ProdSys, its second and the RAW dataset's first were lost by DDM, its
    counts derived again: the LFNs of those three files.
    """
    with Session.begin() as session:
        seed_catalog(build_world(), session=session)
        daod, raw = (_dataset(name, session) for name in (TTBAR_DAOD, RAW))
        failed, lost = sorted(daod.files, key=lambda f: f.lfn)[:2]
        raw_lost = sorted(raw.files, key=lambda f: f.lfn)[0]
        failed.status = "failed"
        lost.lost = raw_lost.lost = True
        refresh_datasets([daod.id, raw.id], session=session)
        return {"failed": failed.lfn, "lost": lost.lfn, "raw lost": raw_lost.lfn}


def _dataset(name: str, session: OrmSession) -> Dataset:
    found = session.scalar(select(Dataset).where(Dataset.name == name))
    assert found is not None
    return found


@pytest.mark.parametrize("name", [TTBAR_DAOD, RAW])
def test_the_files_of_a_dataset_are_those_nfiles_counts(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    failed_and_lost: dict[str, str],
    name: str,
) -> None:
    found = search(
        client,
        "dataset",
        "SELECT dataset.nFiles, dataset.totalEvents, files.LFN, files.events "
        f"WHERE dataset.logicalDatasetName = '{name}' ORDER BY files.LFN",
    )

    with Session() as session:
        dataset = _dataset(name, session)
        # ProdSys files count once finished, Tier-0 files whatever their
        # status; no file DDM lost counts.
        tier0 = dataset.source == "tier0"
        counted = sorted(
            f.lfn
            for f in dataset.files
            if not f.lost and (tier0 or f.status == "finished")
        )
        n_files, total_events = dataset.n_files, dataset.total_events
    # pyAMI names a foreign entity's fields with the entity.
    listed = [row["files.LFN"] for row in found]
    assert listed == counted
    assert len(found) == n_files == int(found[0]["nFiles"])
    assert sum(int(row["files.events"]) for row in found) == total_events
    assert not set(failed_and_lost.values()) & set(listed)


def test_the_files_entity_lists_every_file(
    client: FlaskClient,
    failed_and_lost: dict[str, str],
) -> None:
    failed = search(client, "files", "SELECT files.LFN WHERE files.status = 'failed'")
    lost = search(
        client, "files", "SELECT files.LFN WHERE files.lost = 1 ORDER BY files.LFN"
    )

    assert [row["LFN"] for row in failed] == [failed_and_lost["failed"]]
    expected = sorted([failed_and_lost["lost"], failed_and_lost["raw lost"]])
    assert [row["LFN"] for row in lost] == expected


def test_a_condition_on_the_files_of_datasets_reads_their_counted_files(
    client: FlaskClient,
    failed_and_lost: dict[str, str],
) -> None:
    lfn = failed_and_lost["failed"]

    counted = search(
        client,
        "dataset",
        f"SELECT dataset.logicalDatasetName WHERE files.LFN = '{lfn}'",
    )
    owner = search(
        client,
        "files",
        f"SELECT dataset.logicalDatasetName WHERE files.LFN = '{lfn}'",
    )

    assert counted == []
    assert [row["dataset.logicalDatasetName"] for row in owner] == [TTBAR_DAOD]
