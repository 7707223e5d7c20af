"""The index of the AMI tags each tag chain holds (``version_tag``), through
which a new or changed tag finds the datasets it configures: kept as
datasets are written, added by migration 0011 for those already there, and
checked and repaired by ``derive --check``. On SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic import command
from conftest import written_apart
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

import migrations
from catalog.chains import add_chains
from catalog.consistency import check_derived
from catalog.datasets import add_dataset
from catalog.db import session_factory
from catalog.derived import mark_tagged
from catalog.models import AmiTag, Dataset, VersionTag
from catalog.nomenclature import name_columns
from ingest.seed import seed_catalog
from ingest.world import World, build_world

USER_SKIM = "user.jdoe.Zee.skim1"


@pytest.fixture
def world() -> World:
    return build_world(files_per_dataset=1)


def indexed(Session: sessionmaker[OrmSession]) -> set[tuple[str, str]]:  # noqa: N803
    with Session() as session:
        return set(session.execute(select(VersionTag.version, VersionTag.tag)).all())


def split_versions(Session: sessionmaker[OrmSession]) -> set[tuple[str, str]]:  # noqa: N803
    """What a physicist reads off the versions: each part between ``_``."""
    with Session() as session:
        versions = session.scalars(select(Dataset.version)).all()
    return {(v, tag) for v in versions if v for tag in v.split("_")}


@pytest.mark.parametrize("way", ["written", "ingested"])
def test_writing_datasets_indexes_every_tag_of_their_versions(
    request: pytest.FixtureRequest,
    Session: sessionmaker[OrmSession],  # noqa: N803
    world: World,
    way: str,
) -> None:
    if way == "written":
        with Session.begin() as session:
            seed_catalog(world, session=session)
    else:  # by the ingesters, which write datasets in bites
        sources = request.getfixturevalue("sources")
        sources.coma.add_world(world)
        sources.tier0.add_world(world)
        sources.prodsys.add_world(world)
        request.getfixturevalue("ingest")()
    with Session.begin() as session:
        add_dataset(USER_SKIM, "skim", session=session)

    rows = indexed(Session)

    assert rows == split_versions(Session)
    assert ("e3601_s3126_r10724_p4164", "r10724") in rows
    assert not [row for row in rows if USER_SKIM in row]


def test_a_new_tag_finds_the_datasets_written_before_it(
    Session: sessionmaker[OrmSession],  # noqa: N803
    world: World,
) -> None:
    with Session.begin() as session:
        seed_catalog(world, session=session)
    with Session() as session:
        names = dict(session.execute(select(Dataset.id, Dataset.name)).all())
        versions = dict(session.execute(select(Dataset.name, Dataset.version)).all())
    new = "r99999"
    # A dataset of a chain holding the new tag, written before the tag.
    holder = (
        "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.recon.AOD."
        "e3601_s3126_r99999"
    )
    with Session.begin() as session:
        add_dataset(holder, "prodsys", session=session)
        session.execute(
            insert(AmiTag), [{"tag": new, "tag_type": "r", "tag_number": 99999}]
        )

    with Session.begin() as session:
        marked = mark_tagged({new}, session=session)
        ids = dict(session.execute(select(Dataset.name, Dataset.id)).all())

    assert marked == {ids[holder]}
    assert not [n for n in names.values() if new in (versions[n] or "").split("_")]


def test_upgrading_indexes_the_versions_already_there(
    empty_engine: Engine, world: World, tmp_path: Path
) -> None:
    names = [spec.name for spec in world.datasets] + [USER_SKIM]
    migrations.upgrade(empty_engine, "0010")
    with empty_engine.begin() as connection:
        rows = [{**name_columns(name), "source": "prodsys"} for name in names]
        connection.execute(insert(Dataset), rows)

    migrations.upgrade(empty_engine)

    Session = session_factory(empty_engine)  # noqa: N806
    versions = [name_columns(name).get("version") for name in names]
    assert indexed(Session) == written_apart(
        tmp_path / "added.sqlite",
        lambda session: add_chains(versions, session=session),
        indexed,
    )
    assert indexed(Session) == split_versions(Session)
    with Session() as session:  # rows inserted raw: only the index is asked
        fields = {d.field for d in check_derived(session=session)}
    assert "versionTags" not in fields


def test_derive_check_reports_and_adds_a_version_missing_from_the_index(
    Session: sessionmaker[OrmSession],  # noqa: N803
    world: World,
) -> None:
    with Session.begin() as session:
        seed_catalog(world, session=session)
    expected = indexed(Session)
    version = "e3601_s3126_r10724_p4164"
    with Session.begin() as session:
        session.execute(delete(VersionTag).where(VersionTag.version == version))
        session.execute(
            delete(VersionTag).where(VersionTag.version == "e3601_s3126_r10724")
        )
        session.execute(
            insert(VersionTag), [{"version": "e3601_s3126_r10724", "tag": "e3601"}]
        )

    with Session.begin() as session:  # --fix: the differences are committed
        found = check_derived(session=session)

    chains = {(d.field, tuple(d.stored), tuple(d.recomputed)) for d in found}
    assert chains == {
        ("versionTags", (), ("e3601", "s3126", "r10724", "p4164")),
        ("versionTags", ("e3601",), ("e3601", "s3126", "r10724")),
    }
    assert indexed(Session) == expected
    with Session.begin() as session:
        assert check_derived(session=session) == []


def test_the_migration_compiles_for_oracle_both_ways() -> None:
    script = io.StringIO()
    config = migrations.alembic_config()
    config.set_main_option("sqlalchemy.url", "oracle+oracledb://")
    config.output_buffer = script

    command.upgrade(config, "0010:0011", sql=True)
    command.downgrade(config, "0011:0010", sql=True)

    sql = script.getvalue()
    assert "CREATE TABLE version_tag" in sql
    assert "CREATE INDEX ix_dataset_version ON dataset (version)" in sql
    assert "DROP TABLE version_tag" in sql
    assert "INSERT INTO version_tag" not in sql  # offline: derive --check adds them
