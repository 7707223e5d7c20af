"""Bulk upserts (catalog.upsert) and stale marks (catalog.derived), on every
backend: what a reader of the catalogue finds after them.

Each upsert test runs twice: with few rows (the executemany path) and with
more rows than ``COPY_THRESHOLD`` (PostgreSQL copies them into a temporary
table first; other databases take the executemany path again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from catalog import upsert as upsert_module
from catalog.db import utcnow
from catalog.derived import _clear_marks, mark_changed, refresh_stale, stale_count
from catalog.models import AmiTag, Dataset, DatasetStale, File
from catalog.upsert import update_same, update_values, upsert, upsert_values

SIZES = [3, upsert_module.COPY_THRESHOLD + 7]


def _file(dataset_id: int, number: int, **fields: Any) -> dict[str, Any]:
    values = {
        "dataset_id": dataset_id,
        "lfn": f"AOD.{number:06d}.pool.root.1",
        "guid": f"{number:08X}-0000-0000-0000-000000000000",
        "size": 1000 + number,
        "checksum": f"ad:{number:08x}",
        "events": number,
        "status": "finished",
        "modified": utcnow(),
    }
    return values | fields


def _files(Session: Any) -> dict[str, tuple]:  # noqa: N803
    with Session() as session:
        query = select(File.guid, File.lfn, File.size, File.events, File.created)
        return {row[0]: tuple(row[1:]) for row in session.execute(query)}


@pytest.mark.parametrize("count", SIZES)
def test_upsert_inserts_then_updates_in_place(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r3")
    rows = [_file(dataset.id, n) for n in range(count)]
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    first = _files(Session)
    assert len(first) == count
    assert first[rows[1]["guid"]][:3] == (rows[1]["lfn"], 1001, 1)
    # Every file again, with other sizes: updated, not duplicated, and the
    # time each was created (a default) is kept.
    changed = [_file(dataset.id, n, size=5, events=7) for n in range(count)]
    with Session.begin() as session:
        upsert(session, File.__table__, changed, ["guid"])
    second = _files(Session)
    assert len(second) == count
    assert {v[1:3] for v in second.values()} == {(5, 7)}
    assert all(second[g][3] == first[g][3] for g in first)


@pytest.mark.parametrize("count", SIZES)
def test_upsert_the_last_row_of_a_key_wins(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r4")
    rows = [_file(dataset.id, n) for n in range(count)]
    rows.append(_file(dataset.id, 0, size=99))
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    found = _files(Session)
    assert len(found) == count
    assert found[rows[0]["guid"]][1] == 99


@pytest.mark.parametrize("count", SIZES)
def test_upsert_values_takes_tuples_and_keeps_times_and_nulls(
    Session: Any,  # noqa: N803
    count: int,
) -> None:
    columns = ["tag", "tag_type", "tag_number", "transformation", "release"]
    rows = [(f"e{n}", "e", n, None, "21.0.1" if n % 2 else None) for n in range(count)]
    before = utcnow()
    with Session.begin() as session:
        upsert_values(session, AmiTag.__table__, columns, rows, ["tag"])
    with Session() as session:
        tags = {t.tag: t for t in session.scalars(select(AmiTag))}
    assert len(tags) == count
    assert tags["e1"].release == "21.0.1" and tags["e0"].release is None
    assert tags["e2"].transformation is None
    created = tags["e1"].created
    assert created.tzinfo is not None
    assert before - dt.timedelta(seconds=1) <= created <= utcnow()


def test_upsert_rolls_back_with_its_transaction(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r5")
    rows = [_file(dataset.id, n) for n in range(upsert_module.COPY_THRESHOLD + 1)]
    with pytest.raises(RuntimeError), Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
        raise RuntimeError("the bite fails after the write")
    assert _files(Session) == {}
    # The staging table went with the transaction: the next bite works.
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    assert len(_files(Session)) == len(rows)


def test_stale_marks_are_raised_and_cleared(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
) -> None:
    names = [f"mc16_13TeV.41000{n}.Stale.recon.AOD.e1_s2_r3" for n in range(3)]
    ids = [dataset_factory(name).id for name in names]
    with Session.begin() as session:
        mark_changed(ids[:2], session=session)
    with Session.begin() as session:
        mark_changed(ids[1:], session=session)
    with Session() as session:
        query = select(DatasetStale.dataset_id, DatasetStale.mark)
        marks = {id_: mark for id_, mark in session.execute(query)}
        assert marks == {ids[0]: 1, ids[1]: 2, ids[2]: 1}
        assert stale_count(session=session) == 3
    with Session.begin() as session:
        assert refresh_stale(session=session) == 3
    with Session() as session:
        assert stale_count(session=session) == 0
        assert session.scalar(select(Dataset.n_files).where(Dataset.id == ids[0])) == 0


def test_a_mark_raised_since_it_was_read_is_not_cleared(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
) -> None:
    """A refresh clears the marks it read; a dataset marked again meanwhile
    (its mark is higher now) stays stale, to be recomputed next time.
    """
    names = [f"mc16_13TeV.41100{n}.Stale.recon.AOD.e1_s2_r3" for n in range(3)]
    ids = [dataset_factory(name).id for name in names]
    with Session.begin() as session:
        mark_changed(ids, session=session)
        mark_changed(ids[1:2], session=session)
    with Session.begin() as session:
        _clear_marks({ids[0]: 1, ids[1]: 1, ids[2]: 1}, session=session)
    with Session() as session:
        query = select(DatasetStale.dataset_id, DatasetStale.mark)
        assert dict(session.execute(query).all()) == {ids[1]: 2}


@pytest.mark.parametrize("count", SIZES)
def test_a_value_every_row_shares_is_inserted_and_updated(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    """``same``: a column given once for every row, new or known."""
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r7")
    first, later = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), utcnow()
    rows = [_file(dataset.id, n) for n in range(count)]
    for row in rows:
        del row["modified"]
    with Session.begin() as session:
        upsert(session, File.__table__, rows[::2], ["guid"], same={"modified": first})
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"], same={"modified": later})

    with Session() as session:
        found = dict(session.execute(select(File.guid, File.modified)).all())
    assert len(found) == count
    assert set(found.values()) == {later}


@pytest.mark.parametrize("count", SIZES)
def test_upsert_mixes_new_and_known_rows(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r6")
    known = [_file(dataset.id, n) for n in range(0, count, 2)]
    with Session.begin() as session:
        upsert(session, File.__table__, known, ["guid"])
    # The known files take new LFNs; a new file takes the LFN one of them
    # gives up in the same call.
    renamed = [_file(dataset.id, n, lfn=f"renamed.{n}") for n in range(0, count, 2)]
    fresh = [_file(dataset.id, n) for n in range(1, count, 2)]
    fresh.append(_file(dataset.id, count + 1, lfn=known[0]["lfn"]))
    with Session.begin() as session:
        upsert(session, File.__table__, renamed + fresh, ["guid"])
    found = _files(Session)
    assert len(found) == len(renamed) + len(fresh)
    assert found[known[0]["guid"]][0] == "renamed.0"
    assert found[fresh[-1]["guid"]][0] == known[0]["lfn"]


@pytest.mark.parametrize("count", SIZES)
def test_update_values_sets_columns_by_key_and_moves_modified(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r7")
    old = utcnow() - dt.timedelta(days=1)
    rows = [_file(dataset.id, n, modified=old) for n in range(count + 2)]
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    changed = [(r["guid"], 7, None) for r in rows[:count]]
    with Session.begin() as session:
        update_values(session, File.__table__, "guid", ["size", "checksum"], changed)
    with Session() as session:
        query = select(File.guid, File.size, File.checksum, File.modified)
        found = {row[0]: tuple(row[1:]) for row in session.execute(query)}
    hour_ago = utcnow() - dt.timedelta(hours=1)
    untouched = {r["guid"] for r in rows[count:]}
    for guid, (size, checksum, modified) in found.items():
        if guid in untouched:
            assert size != 7 and modified < hour_ago
        else:
            assert (size, checksum) == (7, None) and modified > hour_ago


@pytest.mark.parametrize("count", SIZES)
def test_values_shared_by_every_row_and_values_of_each_row_are_written(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r9")
    shared = utcnow() - dt.timedelta(hours=2)
    own = [shared + dt.timedelta(seconds=n) for n in range(count)]
    columns = ["dataset_id", "lfn", "guid", "status", "cross_section", "modified"]
    shared_rows = [
        (
            dataset.id,
            f"a.{n}",
            f"{n:08X}-0000-0000-0000-00000000000A",
            "ok",
            None,
            shared,
        )
        for n in range(count)
    ]
    own_rows = [
        (
            dataset.id,
            f"b.{n}",
            f"{n:08X}-0000-0000-0000-00000000000B",
            "ok",
            n / 2,
            own[n],
        )
        for n in range(count)
    ]

    with Session.begin() as session:
        for rows in (shared_rows, own_rows):
            upsert_values(session, File.__table__, columns, rows, ["guid"])

    with Session() as session:
        query = select(File.lfn, File.cross_section, File.modified, File.lost)
        found = {lfn: rest for lfn, *rest in session.execute(query)}
    assert len(found) == 2 * count
    assert found["a.1"] == [None, shared, False]
    assert found[f"b.{count - 1}"] == [(count - 1) / 2, own[count - 1], False]
    assert {found[f"b.{n}"][1] for n in range(count)} == set(own)


def test_update_same_sets_one_value_in_every_keyed_row_and_moves_modified(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r10")
    old = utcnow() - dt.timedelta(days=1)
    rows = [_file(dataset.id, n, modified=old) for n in range(30)]
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    chosen = [r["guid"] for r in rows[:25]]
    with Session.begin() as session:
        values = {"size": 7, "checksum": None}
        update_same(session, File.__table__, "guid", chosen, values)
    with Session() as session:
        query = select(File.guid, File.size, File.checksum, File.modified)
        found = {row[0]: tuple(row[1:]) for row in session.execute(query)}
    hour_ago = utcnow() - dt.timedelta(hours=1)
    for guid, (size, checksum, modified) in found.items():
        if guid in chosen:
            assert (size, checksum) == (7, None) and modified > hour_ago
        else:
            assert size != 7 and checksum is not None and modified < hour_ago


@pytest.mark.parametrize("count", SIZES)
def test_times_of_any_zone_are_written_as_the_same_instants(
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    count: int,
) -> None:
    dataset = dataset_factory("mc16_13TeV.410000.Upsert.recon.AOD.e1_s2_r11")
    utc = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
    zones = [dt.UTC, ZoneInfo("Europe/Zurich"), dt.timezone(dt.timedelta(hours=-5))]
    times = [
        (utc + dt.timedelta(hours=n)).astimezone(zones[n % 3]) for n in range(count)
    ]
    rows = [_file(dataset.id, n, modified=times[n]) for n in range(count)]
    with Session.begin() as session:
        upsert(session, File.__table__, rows, ["guid"])
    with Session() as session:
        found = dict(session.execute(select(File.events, File.modified)).all())
    assert found == dict(enumerate(times))
    naive = [_file(dataset.id, count, modified=dt.datetime(2026, 3, 29))]
    with pytest.raises(Exception, match="naive datetime"), Session.begin() as session:
        upsert(session, File.__table__, naive, ["guid"])
