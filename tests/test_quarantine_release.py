"""An operator's way out for a Tier-0 dataset held for a quarantined file:
fix the row in Tier-0, release the record with ``hepcat quarantine
release``, and the next ingest catalogues the dataset with all its files; on
SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select
from test_pages import visible_text
from test_tier0_reconcile import (  # noqa: F401 - raw is a fixture
    BAD_GUID,
    flags,
    ingest_with_a_bad_file,
    raw,
    spoil_file,
    standing,
    stored,
)

from catalog.config import load_config
from catalog.consistency import check_derived
from catalog.derived import ALL_EVENTS, SOME_EVENTS
from catalog.models import Quarantine
from catalog.operations import quarantine
from hepcat.cli import main
from web.app import create_app


def hepcat(tmp_path, catalog_engine, *args: str):
    """Run ``hepcat ARGS...`` on the test's catalogue."""
    env = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=env)


def test_released_through_the_command_the_fixed_dataset_is_catalogued(
    Session,  # noqa: N803
    catalog_engine,
    sources,
    ingest,
    raw,  # noqa: F811
    tmp_path,
):
    ingest_with_a_bad_file(sources, ingest, raw)
    spoil_file(sources, raw.files[0].lfn, raw.files[0].guid)  # fixed in Tier-0
    unreleased = ingest()  # fixed alone, it waits for the retry (5 minutes)
    listed = hepcat(tmp_path, catalog_engine, "quarantine", "list", "--source", "tier0")
    record_id = listed.stdout.split()[0]

    released = hepcat(
        tmp_path, catalog_engine, "quarantine", "release", record_id,
        "--reason", "GUID fixed in Tier-0",
    )  # fmt: skip
    counts = ingest()

    assert unreleased["tier0"] == 0
    assert listed.exit_code == 0, listed.output
    assert raw.files[0].lfn in listed.stdout and "held" in listed.stdout
    assert released.exit_code == 0, released.output
    assert released.stdout == f"released {record_id} (tier0 {raw.files[0].lfn})\n"
    assert counts["tier0"] == 1
    dataset = stored(Session, raw.name)
    assert dataset.n_files == len(raw.files)
    assert dataset.total_events == sum(f.events for f in raw.files)
    assert dataset.prodsys_status == ALL_EVENTS
    assert dataset.tier0_state == "DONE"
    assert flags(sources) == {"DONE"}
    assert standing(Session) == []
    with Session() as session:
        record = session.scalar(select(Quarantine))
        assert record.released
        assert record.reason.endswith(" UTC: GUID fixed in Tier-0")
        assert check_derived(session=session) == []
        session.rollback()


def test_released_but_not_fixed_the_dataset_stays_held_and_quarantined_anew(
    Session,  # noqa: N803
    catalog_engine,
    sources,
    ingest,
    raw,  # noqa: F811
    tmp_path,
):
    ingest_with_a_bad_file(sources, ingest, raw)
    with Session() as session:
        record_id = session.scalar(select(Quarantine.id))

    released = hepcat(tmp_path, catalog_engine, "quarantine", "release", str(record_id))
    ingest()  # reads the dataset again at once: its file is refused anew

    assert released.exit_code == 0, released.output
    assert stored(Session, raw.name).prodsys_status == SOME_EVENTS
    assert flags(sources) == {"READY"}
    with Session() as session:
        records = session.scalars(select(Quarantine).order_by(Quarantine.id)).all()
        assert [(r.released, BAD_GUID in r.payload) for r in records] == [
            (True, True),
            (False, True),
        ]


def test_an_operator_and_an_ingester_releasing_at_once_release_once(
    Session,  # noqa: N803
    catalog_engine,
):
    """The ingester's release waits for the operator's, then finds the
    record released: one note in its reason, not two.
    """
    import threading

    import pytest

    from catalog.operations import quarantine, release_quarantined, release_read

    if catalog_engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time: no two releases meet")
    with Session.begin() as session:
        record = quarantine(
            "tier0", "AOD.1._000001.pool.root.1", {}, "bad", session=session
        )
        session.flush()
        record_id = record.id
    released = []

    def ingester() -> None:
        with Session.begin() as session:
            released.append(
                release_read("tier0", ["AOD.1._000001.pool.root.1"], session=session)
            )

    with Session.begin() as operator:
        release_quarantined([record_id], by="ada", reason="fixed", session=operator)
        operator.flush()
        other = threading.Thread(target=ingester)
        other.start()
        other.join(timeout=1)  # a moment to meet the operator's lock
    other.join()

    with Session() as session:
        reason = session.get(Quarantine, record_id).reason
    assert released == [0]
    assert reason.count("; released") == 1 and "released by ada" in reason


def test_the_page_counts_each_source_as_it_lists_its_records(
    Session,  # noqa: N803
    catalog_engine,
    tmp_path,
):
    with Session.begin() as session:
        quarantine("tier0", "a", {}, "bad GUID", session=session)
        quarantine("tier0", "b", {}, "bad GUID", session=session).released = True
        quarantine("coma", "c", {}, "bad run", session=session).released = True
    config = load_config(env={}, data_dir=str(tmp_path))
    client = create_app(config, engine=catalog_engine).test_client()

    every = visible_text(client.get("/quarantine"))
    held = visible_text(client.get("/quarantine?held=1"))

    assert "tier0 (2)" in every and "coma (1)" in every
    assert "tier0 (1)" in held and "coma" not in held.split("held and released")[0]
