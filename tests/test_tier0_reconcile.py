"""A Tier-0 dataset whose files fall short of Tier-0's counts (a file row
refused into quarantine) is held READY, without all its events, and the
difference stands on the reconciliation page until the file is read: on
SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from test_pages import CheckedClient, visible_text
from test_prodsys_faults import TASK, _ago, _file, _task
from worlds import oracle_sql

from catalog.config import load_config
from catalog.consistency import check_derived
from catalog.datasets import one_source
from catalog.derived import ALL_EVENTS, SOME_EVENTS, refresh_datasets
from catalog.lumiblocks import format_lumi_blocks, parse_lumi_blocks
from catalog.models import Dataset, File, Quarantine
from catalog.operations import list_quarantine, quarantine_count
from catalog.reconciliation import open_reconciliations
from ingest import schemas
from ingest.tier0 import Tier0Ingester
from ingest.world import build_world
from taskserver.base import RunContext, RunOutcome
from taskserver.runner import run_until_drained
from web.app import create_app

BAD_GUID = "not-a-guid"


@pytest.fixture
def raw():
    world = build_world(seed=11, files_per_dataset=3)
    return next(d for d in world.datasets if d.name.endswith(".daq.RAW"))


@pytest.fixture
def client(catalog_engine, tmp_path) -> FlaskClient:
    app: Flask = create_app(
        load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine
    )
    app.test_client_class = CheckedClient
    return app.test_client()


def spoil_file(sources, lfn: str, guid: str) -> None:
    """Give the Tier-0 file *lfn* the GUID *guid*."""
    table = schemas.t0_file
    with sources.tier0.engine.begin() as connection:
        connection.execute(update(table).where(table.c.lfn == lfn).values(guid=guid))


def flags(sources) -> set[str]:
    with sources.tier0.engine.connect() as connection:
        return set(connection.scalars(select(schemas.t0_dataset.c.ami_flag)))


def stored(Session, name: str) -> Dataset:  # noqa: N803
    with Session() as session:
        return session.scalar(select(Dataset).where(Dataset.name == name))


def standing(Session) -> list[tuple[str, str, int, int]]:  # noqa: N803
    with Session() as session:
        rows = open_reconciliations(session=session)
        return sorted(
            (r.source, r.quantity, r.catalog_value, r.source_value) for r in rows
        )


def ingest_with_a_bad_file(sources, ingest, raw):
    """Publish *raw* with its first file's GUID spoilt, and ingest."""
    sources.tier0.add_dataset(raw)
    spoil_file(sources, raw.files[0].lfn, BAD_GUID)
    return ingest()


def test_a_dataset_with_a_quarantined_file_is_held_ready_without_all_events(
    Session, sources, ingest, raw
):
    counts = ingest_with_a_bad_file(sources, ingest, raw)

    dataset = stored(Session, raw.name)
    assert dataset.n_files == len(raw.files) - 1
    assert dataset.prodsys_status == SOME_EVENTS
    assert dataset.tier0_state == "READY"
    assert flags(sources) == {"READY"}
    assert counts["tier0"] == 0  # nothing catalogued; drained: held is no backlog
    events, size = (sum(getattr(f, k) for f in raw.files) for k in ("events", "size"))
    first = raw.files[0]
    assert standing(Session) == [
        ("tier0", "nFiles", len(raw.files) - 1, len(raw.files)),
        ("tier0", "totalEvents", events - first.events, events),
        ("tier0", "totalSize", size - first.size, size),
    ]


def test_a_held_dataset_is_not_read_again_at_every_run(Session, sources, ingest, raw):
    ingest_with_a_bad_file(sources, ingest, raw)

    again = ingest()

    assert again["tier0"] == 0
    with Session() as session:
        assert len(session.scalars(select(Quarantine)).all()) == 1


def test_released_and_fixed_the_file_is_read_and_the_dataset_complete(
    Session, sources, ingest, raw
):
    ingest_with_a_bad_file(sources, ingest, raw)
    spoil_file(sources, raw.files[0].lfn, raw.files[0].guid)  # fixed in Tier-0
    with Session.begin() as session:
        session.execute(update(Quarantine).values(released=True))

    counts = ingest()

    dataset = stored(Session, raw.name)
    assert counts["tier0"] == 1
    assert dataset.n_files == len(raw.files)
    assert dataset.prodsys_status == ALL_EVENTS
    assert dataset.tier0_state == "DONE"
    assert flags(sources) == {"DONE"}
    assert standing(Session) == []
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()


def test_fixed_in_tier0_without_a_release_the_file_is_read_at_the_next_retry(
    Session, sources, raw
):
    tier0 = Tier0Ingester(sources.tier0.engine, held_retry=0.0)
    sources.tier0.add_dataset(raw)
    spoil_file(sources, raw.files[0].lfn, BAD_GUID)
    run_until_drained([tier0], Session, max_seconds=20)
    spoil_file(sources, raw.files[0].lfn, raw.files[0].guid)

    run_until_drained([tier0], Session, max_seconds=20)

    assert stored(Session, raw.name).prodsys_status == ALL_EVENTS
    assert flags(sources) == {"DONE"}


# -- corrected in Tier-0 without a release: the record is released on reading --

RELEASED = re.compile(
    r"; released automatically on \d{4}-\d\d-\d\d \d\d:\d\d UTC: "
    r"read again without error$"
)


def run_once(tier0: Tier0Ingester, Session) -> RunOutcome:  # noqa: N803
    """One run of *tier0*, as the task server makes it."""
    return tier0.run(RunContext(Session, time.monotonic() + 20))


def held_records(Session) -> list[Quarantine]:  # noqa: N803
    with Session() as session:
        return list(session.scalars(select(Quarantine).order_by(Quarantine.id)))


def test_a_file_corrected_in_tier0_releases_its_quarantine_record(
    Session, sources, raw
):
    tier0 = Tier0Ingester(sources.tier0.engine, held_retry=0.0)
    sources.tier0.add_dataset(raw)
    spoil_file(sources, raw.files[0].lfn, BAD_GUID)
    run_until_drained([tier0], Session, max_seconds=20)
    [held] = held_records(Session)
    spoil_file(sources, raw.files[0].lfn, raw.files[0].guid)

    run_until_drained([tier0], Session, max_seconds=20)

    [record] = held_records(Session)
    assert record.released is True
    assert record.reason.startswith(held.reason)
    assert RELEASED.search(record.reason), record.reason
    assert stored(Session, raw.name).tier0_state == "DONE"
    with Session() as session:
        assert quarantine_count(source="tier0", released=False, session=session) == 0


def test_a_file_still_wrong_keeps_its_record_held(Session, sources, raw):
    tier0 = Tier0Ingester(sources.tier0.engine, held_retry=0.0)
    sources.tier0.add_dataset(raw)
    spoil_file(sources, raw.files[0].lfn, BAD_GUID)
    spoil_file(sources, raw.files[1].lfn, "also-not-a-guid")
    run_until_drained([tier0], Session, max_seconds=20)
    spoil_file(sources, raw.files[0].lfn, raw.files[0].guid)

    run_until_drained([tier0], Session, max_seconds=20)

    records = {r.record_key: r for r in held_records(Session)}
    assert records[raw.files[0].lfn].released is True
    assert records[raw.files[1].lfn].released is False
    assert records[raw.files[1].lfn].reason == (
        "guid = 'also-not-a-guid' is not a GUID (8-4-4-4-12 hexadecimal digits)"
    )
    assert stored(Session, raw.name).tier0_state == "READY"


def test_a_dataset_row_corrected_in_tier0_releases_its_quarantine_record(
    Session, sources, ingest, raw
):
    sources.tier0.add_dataset(raw)
    table = schemas.t0_dataset
    with sources.tier0.engine.begin() as connection:
        connection.execute(update(table).values(runnumber=1))
    ingest()
    [held] = held_records(Session)
    assert (held.record_key, held.released) == (raw.name, False)
    run = int(raw.name.split(".")[1])
    with sources.tier0.engine.begin() as connection:  # corrected, READY again
        connection.execute(update(table).values(runnumber=run, ami_flag="READY"))

    ingest()

    [record] = held_records(Session)
    assert record.released is True
    assert RELEASED.search(record.reason), record.reason
    assert stored(Session, raw.name).prodsys_status == ALL_EVENTS


def test_a_record_released_on_reading_starts_no_retry_of_the_held_datasets(
    Session, sources
):
    world = build_world(seed=11, files_per_dataset=3)
    first, second = sorted(
        (d for d in world.datasets if d.source == "tier0"), key=lambda d: d.created
    )[:2]
    tier0 = Tier0Ingester(sources.tier0.engine)
    for spec in (first, second):
        sources.tier0.add_dataset(spec)
        spoil_file(sources, spec.files[0].lfn, BAD_GUID)
    run_until_drained([tier0], Session, max_seconds=20)
    spoil_file(sources, first.files[0].lfn, first.files[0].guid)
    tier0.held_retry = 0.0  # the held datasets are due to be read again
    retried = run_once(tier0, Session)
    tier0.held_retry = 3600.0

    again = run_once(tier0, Session)

    assert retried.items == 1  # the first catalogued, the second held again
    assert (
        retried.note
        == "1 dataset catalogued, 1 held READY, 1 waiting READY for a retry"
    )
    assert stored(Session, first.name).tier0_state == "DONE"
    # The second is not read again for that release.
    assert again.note == "0 datasets catalogued, 1 waiting READY for a retry"


def test_held_datasets_read_first_leave_room_for_newer_ones(Session, sources):
    world = build_world(seed=11, files_per_dataset=3)
    older, newer = sorted(
        (d for d in world.datasets if d.source == "tier0"), key=lambda d: d.created
    )[:2]
    tier0 = Tier0Ingester(sources.tier0.engine, bite=1)
    sources.tier0.add_dataset(older)
    spoil_file(sources, older.files[0].lfn, BAD_GUID)
    run_until_drained([tier0], Session, max_seconds=20)

    sources.tier0.add_dataset(newer)
    counts = run_until_drained([tier0], Session, max_seconds=20)

    assert (counts["tier0"], counts.undrained) == (1, [])
    assert stored(Session, newer.name).prodsys_status == ALL_EVENTS
    assert stored(Session, older.name).tier0_state == "READY"


def test_tier0_adding_the_missing_file_completes_a_held_dataset_at_once(
    Session, sources, ingest, raw
):
    sources.tier0.add_dataset(raw, raw.files[1:])
    table = schemas.t0_dataset
    with sources.tier0.engine.begin() as connection:  # Tier-0 counts one more
        connection.execute(update(table).values(nfiles=table.c.nfiles + 1))
    ingest()
    assert stored(Session, raw.name).tier0_state == "READY"

    sources.tier0.add_files(raw, raw.files[:1])  # READY again, with new counts
    with sources.tier0.engine.begin() as connection:
        connection.execute(update(table).values(nfiles=len(raw.files)))
    ingest()

    assert stored(Session, raw.name).prodsys_status == ALL_EVENTS
    assert flags(sources) == {"DONE"}


def test_the_reconciliation_and_dataset_pages_show_the_difference_with_tier0(
    Session, sources, ingest, raw, client
):
    ingest_with_a_bad_file(sources, ingest, raw)

    page = visible_text(client.get("/reconciliation"))
    only_tier0 = visible_text(client.get("/reconciliation?source=tier0"))
    only_ddm = visible_text(client.get("/reconciliation?source=ddm"))
    dataset = visible_text(client.get(f"/datasets/{raw.name}"))

    n = len(raw.files)
    assert "3 differences standing" in page
    assert f"tier0 {raw.name} nFiles {n} {n - 1} -1" in page
    assert "tier0 (3)" in page
    assert f"{raw.name} nFiles" in only_tier0
    assert raw.name not in only_ddm
    assert "READY Its files fall short of Tier-0's counts" in dataset
    differences = dataset.split("Differences with Tier-0 ")[1]
    assert differences.startswith("quantity catalogue Tier-0 detected resolved")
    assert f"nFiles {n - 1} {n} " in differences


def test_derive_check_finds_a_dataset_marked_done_with_a_file_short(
    Session, sources, ingest, raw
):
    ingest_with_a_bad_file(sources, ingest, raw)
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()
    with Session.begin() as session:
        held = Dataset.name == raw.name
        session.execute(
            update(Dataset)
            .where(held)
            .values(tier0_state="DONE", prodsys_status=ALL_EVENTS)
        )

    with Session() as session:
        found = {d.field: d.recomputed for d in check_derived(session=session)}
        session.rollback()

    assert found == {"tier0State": "READY", "prodsysStatus": SOME_EVENTS}


def test_a_file_ddm_lost_leaves_a_tier0_dataset_done(Session, sources, ingest, raw):
    sources.tier0.add_dataset(raw)
    ingest()
    with Session.begin() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == raw.name))
        session.execute(
            update(File).where(File.lfn == raw.files[0].lfn).values(lost=True)
        )
        refresh_datasets([dataset.id], session=session)

    dataset = stored(Session, raw.name)
    assert dataset.n_files == len(raw.files) - 1
    assert (dataset.tier0_state, dataset.prodsys_status) == ("DONE", ALL_EVENTS)
    assert standing(Session) == []


def test_the_migration_compiles_for_oracle_both_ways() -> None:
    sql = oracle_sql("0009", "0010")

    assert "ADD tier0_n_files NUMBER(19)" in sql
    assert "RENAME COLUMN ddm_value TO source_value" in sql
    assert "RENAME COLUMN source_value TO ddm_value" in sql


# -- a dataset row that cannot be understood stays READY -----------------------


def set_dataset_row(sources, name: str, **values) -> None:
    """Change the Tier-0 row of the dataset *name*, as Tier-0 would."""
    table = schemas.t0_dataset
    with sources.tier0.engine.begin() as connection:
        connection.execute(update(table).where(table.c.name == name).values(**values))


def release_all(Session) -> None:  # noqa: N803
    """Release every record held in quarantine, as an operator does."""
    with Session.begin() as session:
        session.execute(update(Quarantine).values(released=True))


def test_a_refused_dataset_row_is_left_ready_and_read_once_fixed_and_released(
    Session, sources, ingest, raw
):
    run = int(raw.name.split(".")[1])
    sources.tier0.add_dataset(raw)
    set_dataset_row(sources, raw.name, runnumber=run + 1)  # contradicts its name
    refused = ingest()
    [held] = held_records(Session)
    assert (held.record_key, held.released) == (raw.name, False)
    assert held.reason == f"runnumber {run + 1} differs from the name's {run}"
    assert (refused["tier0"], flags(sources)) == (0, {"READY"})
    assert stored(Session, raw.name) is None
    set_dataset_row(sources, raw.name, runnumber=run)  # fixed in Tier-0
    release_all(Session)

    counts = ingest()

    dataset = stored(Session, raw.name)
    assert counts["tier0"] == 1
    assert flags(sources) == {"DONE"}
    assert dataset.n_files == len(raw.files)
    assert (dataset.tier0_state, dataset.prodsys_status) == ("DONE", ALL_EVENTS)
    with Session() as session:
        assert check_derived(session=session) == []
        session.rollback()


def test_a_refused_dataset_row_is_not_read_again_at_every_run(Session, sources, raw):
    run = int(raw.name.split(".")[1])
    tier0 = Tier0Ingester(sources.tier0.engine)
    sources.tier0.add_dataset(raw)
    set_dataset_row(sources, raw.name, runnumber=run + 1)
    first = run_once(tier0, Session)

    again = run_once(tier0, Session)

    assert (first.items, first.backlog) == (0, 0)
    assert first.note == (
        "0 datasets catalogued, 1 refused into quarantine, 1 waiting READY for a retry"
    )
    assert (again.items, again.backlog) == (0, 0)
    assert again.note == "0 datasets catalogued, 1 waiting READY for a retry"
    assert flags(sources) == {"READY"}


def test_a_refused_dataset_row_fixed_in_tier0_is_read_at_once(
    Session, sources, ingest, raw
):
    run = int(raw.name.split(".")[1])
    sources.tier0.add_dataset(raw)
    set_dataset_row(sources, raw.name, runnumber=run + 1)
    ingest()
    set_dataset_row(sources, raw.name, runnumber=run)  # no release, no retry due

    counts = ingest()

    [record] = held_records(Session)
    assert counts["tier0"] == 1
    assert RELEASED.search(record.reason), record.reason
    assert flags(sources) == {"DONE"}


def test_the_run_note_says_apart_what_was_held_and_refused(Session, sources, raw):
    world = build_world(seed=11, files_per_dataset=3)
    good, short, bad = sorted(
        (d for d in world.datasets if d.source == "tier0"), key=lambda d: d.created
    )[:3]
    for spec in (good, short, bad):
        sources.tier0.add_dataset(spec)
    spoil_file(sources, short.files[0].lfn, BAD_GUID)
    set_dataset_row(sources, bad.name, runnumber=1)
    tier0 = Tier0Ingester(sources.tier0.engine)

    outcome = run_once(tier0, Session)

    assert (outcome.items, outcome.backlog) == (1, 0)
    assert outcome.note == (
        "1 dataset catalogued, 1 held READY, 1 refused into quarantine, "
        "2 waiting READY for a retry"
    )


# -- files Tier-0 no longer lists leave the catalogue ---------------------------


def test_a_file_removed_from_tier0_leaves_the_dataset(Session, sources, ingest):
    world = build_world(seed=11, files_per_dataset=3)
    aod = next(d for d in world.datasets if ".merge.AOD." in d.name)
    raw = next(
        d
        for d in world.datasets
        if d.name.split(".")[:3] == aod.name.split(".")[:3] and d.name.endswith("RAW")
    )
    sources.tier0.add_dataset(raw)
    sources.tier0.add_dataset(aod)
    ingest()
    gone, *kept = aod.files
    table = schemas.t0_file
    with sources.tier0.engine.begin() as connection:
        connection.execute(table.delete().where(table.c.lfn == gone.lfn))
    set_dataset_row(
        sources,
        aod.name,
        nfiles=len(kept),
        nevents=sum(f.events for f in kept),
        totalsize=sum(f.size for f in kept),
        ami_flag="READY",
    )

    counts = ingest()

    dataset = stored(Session, aod.name)
    assert counts["tier0"] == 1
    assert (dataset.n_files, dataset.total_events) == (
        len(kept),
        sum(f.events for f in kept),
    )
    blocks = parse_lumi_blocks(gone.lumi_blocks) - set().union(
        *(parse_lumi_blocks(f.lumi_blocks) for f in kept)
    )
    assert blocks, "the file removed should hold lumi blocks of its own"
    assert dataset.lost_lumi_blocks == format_lumi_blocks(blocks)
    assert dataset.n_lost_lumi_blocks == len(blocks)
    assert (dataset.tier0_state, dataset.prodsys_status) == ("DONE", ALL_EVENTS)
    assert flags(sources) == {"DONE"}
    assert standing(Session) == []
    with Session() as session:
        assert session.scalar(select(File).where(File.lfn == gone.lfn)) is None
        assert check_derived(session=session) == []
        session.rollback()


# -- two file rows giving one GUID: held, not released in the same breath -------


def held_in_list(Session) -> list[Quarantine]:  # noqa: N803
    """The Tier-0 records 'hepcat quarantine list' shows as held."""
    with Session() as session:
        page = list_quarantine(session=session, source="tier0", released=False)
        return list(page.rows)


def test_a_guid_given_to_two_files_of_a_dataset_is_held_until_fixed(
    Session, sources, raw
):
    tier0 = Tier0Ingester(sources.tier0.engine, held_retry=0.0)
    winner, loser = sorted(raw.files[:2], key=lambda f: f.lfn)  # read by LFN
    sources.tier0.add_dataset(raw)
    spoil_file(sources, loser.lfn, winner.guid)

    run_until_drained([tier0], Session, max_seconds=20)

    [record] = held_records(Session)
    assert (record.record_key, record.released) == (winner.guid.upper(), False)
    assert record.reason == (
        f"GUID {winner.guid.upper()} already belongs to {winner.lfn!r} in "
        f"{raw.name!r}; this row gives it to {loser.lfn!r}"
    )
    assert [r.id for r in held_in_list(Session)] == [record.id]
    assert stored(Session, raw.name).tier0_state == "READY"
    assert flags(sources) == {"READY"}

    run_once(tier0, Session)  # the retry reads it again, as it was

    [again] = held_records(Session)
    assert (again.id, again.released, again.reason) == (
        record.id,
        False,
        record.reason,
    )
    assert stored(Session, raw.name).tier0_state == "READY"

    spoil_file(sources, loser.lfn, loser.guid)  # fixed in Tier-0
    run_until_drained([tier0], Session, max_seconds=20)

    [fixed] = held_records(Session)
    assert fixed.released is True
    assert RELEASED.search(fixed.reason), fixed.reason
    assert held_in_list(Session) == []
    assert stored(Session, raw.name).tier0_state == "DONE"
    assert flags(sources) == {"DONE"}


def test_reading_a_guid_s_owner_again_leaves_the_refused_row_s_record_held(
    Session, sources
):
    world = build_world(seed=11, files_per_dataset=3)
    owner, other = sorted(
        (d for d in world.datasets if d.source == "tier0"), key=lambda d: d.created
    )[:2]
    tier0 = Tier0Ingester(sources.tier0.engine, held_retry=0.0)
    sources.tier0.add_dataset(owner)
    run_until_drained([tier0], Session, max_seconds=20)
    sources.tier0.add_dataset(other)
    spoil_file(sources, other.files[0].lfn, owner.files[0].guid)
    run_until_drained([tier0], Session, max_seconds=20)
    [record] = held_records(Session)
    assert record.record_key == owner.files[0].guid.upper()

    set_dataset_row(sources, owner.name, ami_flag="READY")  # the owner read again
    run_until_drained([tier0], Session, max_seconds=20)

    [still] = held_records(Session)
    assert (still.id, still.released, still.reason) == (
        record.id,
        False,
        record.reason,
    )
    assert stored(Session, owner.name).tier0_state == "DONE"
    assert stored(Session, other.name).tier0_state == "READY"


def test_a_dataset_tier0_lists_no_file_of_keeps_its_files(Session, sources, ingest):
    """Tier-0 rewriting a dataset's files may list none for a moment: the
    catalogue keeps them rather than dropping every one.
    """
    world = build_world(seed=11, files_per_dataset=3)
    aod = next(d for d in world.datasets if ".merge.AOD." in d.name)
    sources.tier0.add_dataset(aod)
    ingest()
    table = schemas.t0_file
    with sources.tier0.engine.begin() as connection:
        connection.execute(table.delete().where(table.c.dataset == aod.name))
    set_dataset_row(sources, aod.name, ami_flag="READY")

    ingest()

    dataset = stored(Session, aod.name)
    assert dataset.n_files == len(aod.files)
    with Session() as session:
        lfns = set(
            session.scalars(select(File.lfn).where(File.dataset_id == dataset.id))
        )
    assert lfns == {f.lfn for f in aod.files}


def test_a_file_tier0_moves_to_another_of_its_datasets_is_held_saying_why(
    Session, sources, ingest, client
):
    world = build_world(seed=11, files_per_dataset=3)
    older, newer = sorted(
        (d for d in world.datasets if d.source == "tier0"), key=lambda d: d.created
    )[:2]
    sources.tier0.add_dataset(older)
    sources.tier0.add_dataset(newer)
    ingest()
    moved = older.files[0]
    files, table = schemas.t0_file, schemas.t0_dataset
    with sources.tier0.engine.begin() as connection:  # into newer, READY again
        connection.execute(
            update(files).where(files.c.lfn == moved.lfn).values(dataset=newer.name)
        )
        connection.execute(
            update(table)
            .where(table.c.name == newer.name)
            .values(ami_flag="READY", nfiles=table.c.nfiles + 1)
        )

    ingest()

    text = visible_text(client.get("/quarantine"))
    assert (
        f"this row moves it to '{newer.name}': a Tier-0 file never moves between "
        "datasets"
    ) in text
    assert "ProdSys task" not in text
    assert stored(Session, newer.name).tier0_state == "READY"


# -- a dataset has one source -----------------------------------------------------


def test_a_prodsys_row_of_a_tier0_dataset_is_held_and_the_dataset_stays_tier0s(
    Session,  # noqa: N803
    sources,
    ingest,
    raw,
):
    sources.tier0.add_dataset(raw)
    ingest()
    when = _ago(1)
    sources.prodsys.insert(schemas.t_production_task, [_task("aborted", when)])
    dataset = {"name": raw.name, "taskid": TASK, "type": "output", "timestamp": when}
    sources.prodsys.insert(schemas.t_production_dataset, [dataset])
    sources.prodsys.insert(schemas.t_production_file, [_file(7001, raw.name, when)])

    ingest()

    found = stored(Session, raw.name)
    assert (found.source, found.n_files, found.ami_status) == (
        "tier0",
        len(raw.files),
        "VALID",
    )
    with Session() as session:
        held = {q.record_key: q.reason for q in session.scalars(select(Quarantine))}
    said = one_source(raw.name, "tier0")
    assert said.startswith(f"dataset {raw.name!r} is catalogued from tier0")
    assert held == {raw.name: said, "00000000-0000-0000-0000-000000007001": said}


def test_a_tier0_row_of_a_prodsys_dataset_is_held_and_left_ready(
    Session,  # noqa: N803
    sources,
    ingest,
    raw,
):
    when = _ago(1)
    sources.prodsys.insert(schemas.t_production_task, [_task("running", when)])
    dataset = {"name": raw.name, "taskid": TASK, "type": "output", "timestamp": when}
    sources.prodsys.insert(schemas.t_production_dataset, [dataset])
    ingest()
    sources.tier0.add_dataset(raw)

    ingest()

    assert stored(Session, raw.name).source == "prodsys"
    with Session() as session:
        held = {q.record_key: q.reason for q in session.scalars(select(Quarantine))}
    assert held == {raw.name: one_source(raw.name, "prodsys")}
    assert flags(sources) == {"READY"}
