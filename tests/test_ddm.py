"""DDM: Rucio's events published to a real ActiveMQ broker, consumed by the
DDM ingester and applied to the catalogue.

The broker is at ``HEPCAT_TEST_STOMP`` (default ``stomp://127.0.0.1:61613``);
each test uses a destination and a durable subscription of its own, since the
broker keeps its data. The tests that go through the broker run on SQLite; the
order-independence of the catalogue is checked on every database, in process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import unavailable
from live import free_port
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from test_pages import status_badges, visible_text

import migrations
from catalog.config import load_config
from catalog.consistency import check_derived
from catalog.datasets import get_dataset
from catalog.db import create_catalog_engine, session_factory
from catalog.ddm import DdmEvent, containers_of, ddm_statistics
from catalog.errors import ConfigError
from catalog.fields import row_to_ami
from catalog.models import Container, Dataset, File, Quarantine, Replica
from catalog.models.operations import TaskRun
from catalog.operations import quarantine_count
from catalog.reconciliation import open_reconciliations
from hepcat.cli import main
from hepcat.wiring import configured_ingesters, ddm_client_id
from ingest.ddm import (
    ClientIdInUse,
    DdmIngester,
    Waiter,
    broker_address,
    catalogue_identity,
    connect,
    default_client_id,
    ingest_messages,
    remove_subscription,
    settle_client_id,
)
from ingest.seed import seed_catalog
from ingest.simulate import Tier0Source
from ingest.simulate_ddm import DdmPublisher, DdmScenario, ddm_scenario, messy
from ingest.tier0 import Tier0Ingester
from ingest.world import World, build_world
from taskserver.base import RunContext
from taskserver.errors import DrainFailed
from taskserver.runner import run_until_drained
from taskserver.server import TaskServer
from web.app import create_app

ACTIVEMQ_SCRIPT = Path(__file__).parents[1] / ".ci" / "activemq.sh"
on_sqlite = pytest.mark.parametrize("catalog_engine", ["sqlite"], indirect=True)


def through_broker(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that needs ActiveMQ; it runs on a SQLite catalogue."""
    return pytest.mark.external_service(on_sqlite(test))


# A column that says when a row was written, not what DDM said.
WHEN = {"lastModified"}


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
def destination() -> str:
    return f"/topic/hepcat.test.{uuid.uuid4().hex}"


@pytest.fixture
def ddm_ingester(broker: str, destination: str) -> Iterator[Callable[..., Any]]:
    """Make a DDM ingester on the test's destination, all with one durable
    subscription; the subscription is removed at the end.
    """
    client_id = f"hepcat-test-{uuid.uuid4().hex[:12]}"
    made: list[DdmIngester] = []

    def make(**options: Any) -> DdmIngester:
        options = {"quiet_seconds": 0.5, "heartbeats": (2000, 2000), **options}
        ingester = DdmIngester(
            broker, destination, client_id=client_id, subscription="ddm", **options
        )
        made.append(ingester)
        return ingester

    yield make
    for ingester in made:
        ingester.close()
    if made:
        _remove_subscription(broker, destination, client_id)


def _remove_subscription(
    broker: str, destination: str, client_id: str, subscription: str = "ddm"
) -> None:
    for attempt in range(5):
        try:
            remove_subscription(
                broker, destination, client_id=client_id, subscription=subscription
            )
            return
        except Exception:
            if attempt == 4:
                raise
            time.sleep(0.5)


@pytest.fixture
def world() -> World:
    return build_world(seed=7, files_per_dataset=4)


@pytest.fixture
def seeded(Session: sessionmaker[Any], world: World) -> sessionmaker[Any]:
    with Session.begin() as session:
        seed_catalog(world, session=session)
    return Session


@pytest.fixture
def reference(tmp_path: Path, world: World) -> Iterator[sessionmaker[Any]]:
    """A second catalogue (SQLite) holding the same world."""
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'reference.sqlite'}")
    migrations.upgrade(engine)
    Session = session_factory(engine)
    with Session.begin() as session:
        seed_catalog(world, session=session)
    yield Session
    engine.dispose()


@pytest.fixture
def scenario(world: World) -> DdmScenario:
    """The world's DDM events, a fifth of them twice, in a random order."""
    return ddm_scenario(world, duplicates=0.2, shuffle=True)


def publish(broker: str, destination: str, events: list[DdmEvent]) -> None:
    with DdmPublisher(broker, destination) as publisher:
        publisher.publish_all(events)


def drain(ingester: DdmIngester, Session: sessionmaker[Any]) -> int:
    """Run *ingester* as ``hepcat ingest --once`` does; return the items."""
    return run_until_drained([ingester], Session, max_seconds=60)["ddm"]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def event(kind: str, when: str = "2026-03-01 10:00:00", **payload: Any) -> DdmEvent:
    return DdmEvent(kind, payload, at(when))


def snapshot(Session: sessionmaker[Any]) -> dict[str, Any]:
    """What a user sees of DDM in the catalogue: every dataset's AMI fields,
    containers, replicas, lost files and open reconciliations.
    """
    with Session() as session:
        datasets = {}
        for dataset in session.scalars(select(Dataset)):
            fields = {k: v for k, v in row_to_ami(dataset).items() if k not in WHEN}
            source = dataset.cross_section_source
            fields["crossSectionSource"] = source.name if source else None
            datasets[dataset.name] = fields
        containers = {
            c.name: (
                c.scope,
                c.created,
                c.erased,
                sorted(m.child_name for m in c.members),
            )
            for c in session.scalars(select(Container))
        }
        replicas = {
            (r.dataset_name, r.rse): (
                r.complete,
                r.rule_id,
                r.deleted_files,
                r.deleted_bytes,
            )
            for r in session.scalars(select(Replica))
        }
        lost = sorted(session.scalars(select(File.lfn).where(File.lost.is_(True))))
        differences = sorted(
            (r.quantity, r.catalog_value, r.source_value)
            for r in open_reconciliations(session=session)
        )
    return {
        "datasets": datasets,
        "containers": containers,
        "replicas": replicas,
        "lost": lost,
        "reconciliations": differences,
    }


def with_ids(events: list[DdmEvent]) -> list[tuple[str, str]]:
    return [(f"ID:test-{uuid.uuid4().hex}", e.to_body()) for e in events]


# --- what each event does -------------------------------------------------------


@pytest.fixture
def ingested(
    seeded: sessionmaker[Any],
    scenario: DdmScenario,
    broker: str,
    destination: str,
    ddm_ingester: Callable[..., DdmIngester],
) -> DdmScenario:
    """The world in the catalogue, and its DDM events through the broker."""
    ingester = ddm_ingester()
    ingester.open(seeded)
    _wait_connected(ingester)
    publish(broker, destination, scenario.events)
    drain(ingester, seeded)
    return scenario


def _wait_connected(ingester: DdmIngester, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ingester.connected:
        assert time.monotonic() < deadline, "the ingester did not subscribe"
        time.sleep(0.02)


@through_broker
def test_an_erased_dataset_is_trashed_and_its_replica_emptied(seeded, ingested):
    erase = next(e for e in ingested.events if e.event_type == "erase")
    with seeded() as session:
        dataset = get_dataset(ingested.erased, session=session)
        replicas = session.scalars(
            select(Replica).where(Replica.dataset_name == ingested.erased)
        ).all()

        assert dataset.ami_status == "TRASHED"
        assert dataset.trash_annotation == "erased in DDM"
        assert dataset.trash_date == erase.created_at
        # Its files deleted, the replica is no longer complete.
        assert [(r.complete, r.deleted_files) for r in replicas] == [(False, 4)]
        assert replicas[0].deleted_bytes == sum(
            f.size
            for f in session.scalars(select(File).where(File.dataset_id == dataset.id))
        )


@through_broker
def test_a_lost_file_leaves_the_counts_of_its_dataset(seeded, ingested, world):
    spec = world.dataset(ingested.lost_dataset)
    kept = [f for f in spec.files if f.lfn != ingested.lost_file]
    lost = spec.files[0]

    with seeded() as session:
        dataset = get_dataset(ingested.lost_dataset, session=session)

        assert dataset.n_files == len(kept) == 3
        assert dataset.total_events == sum(f.events for f in kept)
        assert dataset.total_size == sum(f.size for f in kept)
        assert dataset.ddm_incomplete is True
        assert dataset.lost_lumi_blocks == lost.lumi_blocks  # its RAW still has them
        assert dataset.ddm_consistent is True  # DDM's close no longer counts it


@through_broker
def test_a_wrong_close_count_is_reported_for_reconciliation(seeded, ingested):
    with seeded() as session:
        wrong = get_dataset(ingested.wrong_count, session=session)
        reopened = get_dataset(ingested.reopened, session=session)
        differences = open_reconciliations(session=session)
        consistent = [
            get_dataset(name, session=session).ddm_consistent
            for name in ingested.closed()
            if name != ingested.wrong_count
        ]

        assert (wrong.ddm_consistent, wrong.ddm_open) == (False, False)
        assert wrong.ddm_n_files == wrong.n_files + 1
        assert [(r.dataset_id, r.quantity) for r in differences] == [
            (wrong.id, "nFiles")
        ]
        assert (differences[0].catalog_value, differences[0].source_value) == (4, 5)
        assert consistent and all(consistent)
        assert (reopened.ddm_open, reopened.ddm_consistent) == (True, None)


@through_broker
def test_containers_replicas_and_ignored_events(seeded, ingested):
    container, detached = ingested.detached

    with seeded() as session:
        held = {
            c.name: sorted(m.child_name for m in c.members)
            for c in session.scalars(select(Container))
        }
        replicas = {
            name: sorted(
                session.scalars(
                    select(Replica.rse).where(
                        Replica.dataset_name == name, Replica.complete.is_(True)
                    )
                )
            )
            for name in ingested.replicas
        }
        statistics = ddm_statistics(session=session)

        assert held == {k: sorted(v) for k, v in ingested.containers.items()}
        assert containers_of(detached, session=session) == []
        assert detached not in held[container]
        assert replicas == complete_replicas(ingested)
        assert statistics.ignored == ingested.ignored == 3
        assert statistics.quarantined == 0


def complete_replicas(scenario: DdmScenario) -> dict[str, list[str]]:
    """The scenario's locked replicas, but those its erased dataset's files
    were deleted from.
    """
    emptied = {
        e.payload["rse"] for e in scenario.events if e.event_type == "deletion-done"
    }
    return {
        name: [rse for rse in rses if name != scenario.erased or rse not in emptied]
        for name, rses in scenario.replicas.items()
    }


# --- order, repeats and late arrivals -------------------------------------------


def test_duplicated_and_reordered_messages_give_the_same_catalogue(
    Session, seeded, reference, world
):
    clean = ddm_scenario(world)
    ingest_messages(with_ids(clean.events), reference)
    shuffled = with_ids(messy(clean.events, seed=3, duplicates=0.3, shuffle=True))
    # The broker also redelivers messages it sent already (same ids).
    redelivered = random.Random(4).sample(shuffled, 40)

    ingest_messages(shuffled + redelivered, seeded, batch_size=17)

    assert snapshot(seeded) == snapshot(reference)
    with seeded() as session:
        assert check_derived(session=session) == []
        assert ddm_statistics(session=session).messages == len(shuffled)


def test_container_membership_follows_the_latest_event_in_any_order(Session):
    container = "data15_13TeV.periodB.physics_Main.PhysCont.AOD.grp15_v01_f629"
    child = "data15_13TeV.00271421.physics_Main.merge.AOD.f629_m1504"
    other = "data15_13TeV.00271516.physics_Main.merge.AOD.f629_m1504"
    parent = {"scope": "data15_13TeV", "name": container}
    old_style = {"childscope": "data15_13TeV", "childname": child}
    new_style = {"child_scope": "data15_13TeV", "child_name": child}  # newer Rucio
    story = [
        event("create_cnt", "2026-03-01 09:00:00", account="phys", **parent),
        event("register_cnt", "2026-03-01 10:00:00", **parent, **old_style),
        event("detach", "2026-03-02 10:00:00", **parent, **new_style),
        event(
            "register_cnt",
            "2026-03-03 10:00:00",
            **parent,
            childscope="data15_13TeV",
            childname=other,
        ),
        event("erase", "2026-03-04 10:00:00", **parent),
    ]
    arrival = [story[i] for i in (4, 2, 3, 1, 0)]  # newest first

    ingest_messages(with_ids(arrival), Session, batch_size=1)

    with Session() as session:
        found = session.scalar(select(Container))
        assert found is not None
        assert (found.name, found.created) == (container, at("2026-03-01 09:00:00"))
        assert found.erased == at("2026-03-04 10:00:00")
        assert [m.child_name for m in found.members] == [other]
        assert containers_of(child, session=session) == []
        assert quarantine_count(source="ddm", session=session) == 0


def test_hostile_messages_never_stop_ingestion(Session, dataset_factory):
    name = "data15_13TeV.00267073.physics_Main.merge.AOD.f629_m1504"
    dataset_factory(name, "tier0")
    scope = {"scope": "data15_13TeV"}
    hostile = [
        event("erase", name="data15_13TeV.bad\x00name", **scope),
        event("close", name=name, length=10**30, bytes=1, **scope),
        event("open", name="x" * 300, **scope),
        event("lost", name="f", dataset_name=name, junk="y" * 70_000, **scope),
        event("open", "0001-01-01 00:00:00", name="data15_13TeV.ancient", **scope),
        event("erase", name=name, **scope),
    ]
    messages = [("ID:nul", "\x00{not json"), *with_ids(hostile)]

    statuses = ingest_messages(messages, Session, batch_size=100)

    with Session() as session:
        assert statuses[:5] == ["quarantined"] * 5
        assert statuses[-1] == "applied"
        assert get_dataset(name, session=session).ami_status == "TRASHED"
        assert quarantine_count(source="ddm", session=session) >= 5


def test_a_message_of_another_scope_touches_no_dataset_of_ours(
    Session, dataset_factory  # noqa: N803
):
    name = "data15_13TeV.00267073.physics_Main.merge.AOD.f629_m1504"
    other = "data15_13TeV.00267073.physics_Main.merge.AOD.f629_m1505"
    lfns = catalogued_with_files(Session, dataset_factory, name)
    catalogued_with_files(Session, dataset_factory, other, count=1)
    bob = {"scope": "user.bob"}
    messages = [
        event("erase", name=name, **bob),  # user.bob:data15_13TeV...: not ours
        event("lost", name=lfns[0], dataset_name=name, **bob),  # bob's file
        event("lost", name=lfns[1], dataset_name=other, scope="data15_13TeV"),
        event("lost", name=lfns[2], dataset_name=name, scope="data15_13TeV"),
    ]

    statuses = ingest_messages(with_ids(messages), Session, batch_size=100)

    with Session() as session:
        held = session.scalars(select(Quarantine.reason)).all()
        lost = session.scalars(select(File.lfn).where(File.lost.is_(True))).all()
        dataset = get_dataset(name, session=session)
        assert statuses[0] == "quarantined" and held == [
            f"the name {name!r} is not one of scope 'user.bob': a dataset's or a "
            "container's name starts with its scope"
        ]
        assert dataset.ami_status != "TRASHED"
        assert lost == [lfns[2]] and dataset.n_files == 3


# --- replicas, as the pages and the JSON API show them --------------------------

ZEE_AOD = (
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.recon.AOD.e3601_s3126_r9364"
)


@pytest.fixture
def client(catalog_engine, tmp_path):
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine).test_client()


def catalogued_with_files(Session, dataset_factory, name, count=4):
    """Catalogue *name* with *count* files of 1 MB; return their LFNs."""
    dataset = dataset_factory(name, n_files=count, total_size=count * 10**6)
    lfns = [f"{name}._{index:06d}.pool.root.1" for index in range(1, count + 1)]
    with Session.begin() as session:
        for index, lfn in enumerate(lfns):
            guid = str(uuid.UUID(int=dataset.id * 100 + index))
            kept = {"size": 10**6, "status": "finished"}
            session.add(File(dataset_id=dataset.id, lfn=lfn, guid=guid, **kept))
    return lfns


def locked(name, rse, when):
    payload = {"scope": "mc16_13TeV", "name": name, "rse": rse, "rule_id": "r1"}
    return event("datasetlock_ok", when, **payload)


def deleted(lfn, rse, when):
    return event(
        "deletion-done", when, scope="mc16_13TeV", name=lfn, rse=rse, bytes=10**6
    )


def test_a_replica_whose_files_were_deleted_is_no_replica_of_an_erased_dataset(
    Session, dataset_factory, client
):
    lfns = catalogued_with_files(Session, dataset_factory, ZEE_AOD)
    story = [locked(ZEE_AOD, "CERN-PROD_DATADISK", "2026-03-01 08:00:00")]
    story += [deleted(lfn, "CERN-PROD_DATADISK", "2026-03-31 10:00:00") for lfn in lfns]
    story.append(
        event("erase", "2026-03-31 11:00:00", scope="mc16_13TeV", name=ZEE_AOD)
    )

    ingest_messages(with_ids(story), Session)

    shown = client.get(f"/api/v1/datasets/{ZEE_AOD}").json
    page = visible_text(client.get(f"/datasets/{ZEE_AOD}"))
    assert shown["amiStatus"] == "TRASHED"
    assert [(r["rse"], r["complete"]) for r in shown["replicas"]] == [
        ("CERN-PROD_DATADISK", False)
    ]
    assert "DDM erased" in page and "DDM erased, 1 replica" not in page
    assert "CERN-PROD_DATADISK no r1 4 4.0 MB" in page
    assert list(status_badges(client.get("/"))) == ["no production status · DDM erased"]


@pytest.mark.parametrize("deletions", ["after the erase", "never"])
def test_an_erased_dataset_has_no_complete_replica_before_its_deletions(
    Session, dataset_factory, client, deletions
):
    lfns = catalogued_with_files(Session, dataset_factory, ZEE_AOD)
    story = [
        locked(ZEE_AOD, "CERN-PROD_DATADISK", "2026-03-01 08:00:00"),
        event("erase", "2026-03-31 11:00:00", scope="mc16_13TeV", name=ZEE_AOD),
    ]
    ingest_messages(with_ids(story), Session)
    if deletions != "never":
        later = [
            deleted(lfn, "CERN-PROD_DATADISK", "2026-04-02 10:00:00") for lfn in lfns
        ]
        ingest_messages(with_ids(later), Session)

    shown = client.get(f"/api/v1/datasets/{ZEE_AOD}").json
    page = visible_text(client.get(f"/datasets/{ZEE_AOD}"))
    assert [(r["rse"], r["complete"]) for r in shown["replicas"]] == [
        ("CERN-PROD_DATADISK", False)
    ]
    assert "DDM erased" in page and "DDM erased, 1 replica" not in page


def test_a_replica_is_complete_from_its_last_lock_to_a_deletion_in_any_order(
    Session, dataset_factory, client
):
    lfns = catalogued_with_files(Session, dataset_factory, ZEE_AOD)
    story = [
        # Locked, then a file deleted: incomplete.
        locked(ZEE_AOD, "CERN-PROD_DATADISK", "2026-03-01 08:00:00"),
        deleted(lfns[0], "CERN-PROD_DATADISK", "2026-03-02 08:00:00"),
        # A file deleted, then locked again (replicated anew): complete.
        deleted(lfns[1], "BNL-OSG2_DATADISK", "2026-03-01 08:00:00"),
        locked(ZEE_AOD, "BNL-OSG2_DATADISK", "2026-03-02 08:00:00"),
    ]

    ingest_messages(with_ids(story[::-1]), Session, batch_size=1)

    shown = client.get(f"/api/v1/datasets/{ZEE_AOD}").json
    page = visible_text(client.get(f"/datasets/{ZEE_AOD}"))
    assert [(r["rse"], r["complete"]) for r in shown["replicas"]] == [
        ("BNL-OSG2_DATADISK", True),
        ("CERN-PROD_DATADISK", False),
    ]
    assert "DDM unknown, 1 replica" in page


@through_broker
@pytest.mark.parametrize("few_lost", [10_000, 0], ids=["reports read", "looked up"])
def test_facts_about_a_dataset_not_yet_catalogued_take_effect_when_it_arrives(
    Session, tmp_path, world, broker, destination, ddm_ingester, few_lost, monkeypatch
):
    monkeypatch.setattr("catalog.ddm.FEW_LOST", few_lost)
    raw, aod = [d for d in world.datasets if d.source == "tier0"][:2]
    lost = aod.files[1]
    scope = raw.name.split(".")[0]
    ingester = ddm_ingester()
    ingester.open(Session)
    _wait_connected(ingester)
    publish(
        broker,
        destination,
        [
            event("erase", scope=scope, name=raw.name, account="root"),
            event("lost", scope=scope, name=lost.lfn, dataset_name=aod.name),
            event(
                "close",
                scope=scope,
                name=aod.name,
                length=3,
                bytes=sum(f.size for f in aod.files if f is not lost),
                events=sum(f.events for f in aod.files if f is not lost),
            ),
        ],
    )
    drain(ingester, Session)
    tier0 = Tier0Source(f"sqlite:///{tmp_path / 'tier0.sqlite'}").create()
    tier0.add_dataset(raw)
    tier0.add_dataset(aod)

    run_until_drained([Tier0Ingester(tier0.engine)], Session, max_seconds=60)

    tier0.engine.dispose()
    with Session() as session:
        trashed = get_dataset(raw.name, session=session)
        counted = get_dataset(aod.name, session=session)
        assert (trashed.ami_status, trashed.trash_annotation) == (
            "TRASHED",
            "erased in DDM",
        )
        assert trashed.trash_date == at("2026-03-01 10:00:00")
        assert counted.n_files == 3
        assert session.scalar(select(File.lost).where(File.lfn == lost.lfn)) is True
        assert (counted.ddm_consistent, counted.ddm_open) == (True, False)


# --- the broker: stops, restarts and bad messages --------------------------------


@through_broker
def test_messages_published_while_hepcat_is_stopped_arrive_when_it_starts(
    seeded, reference, scenario, broker, destination, ddm_ingester
):
    drain(ddm_ingester(), seeded)  # the durable subscription now exists
    publish(broker, destination, scenario.events)  # ... while no one listens
    ingest_messages(with_ids(scenario.events), reference)

    items = drain(ddm_ingester(), seeded)

    assert items == len(scenario.events)
    assert snapshot(seeded) == snapshot(reference)
    assert drain(ddm_ingester(), seeded) == 0  # all acknowledged: none again


@through_broker
def test_a_broker_restart_mid_stream_loses_nothing(
    seeded, reference, world, broker, destination, ddm_ingester
):
    status = subprocess.run(
        ["bash", str(ACTIVEMQ_SCRIPT), "status"], capture_output=True, text=True
    )
    if status.returncode != 0 or "running (pid" not in status.stdout:
        unavailable("an ActiveMQ that .ci/activemq.sh can restart", status.stdout)
    if os.geteuid() != 0:
        unavailable("restarting ActiveMQ", ".ci/activemq.sh needs root")
    events = ddm_scenario(world).events
    half = len(events) // 2
    ingest_messages(with_ids(events), reference)
    ingester = ddm_ingester(batch_size=10)
    ingester.open(seeded)
    _wait_connected(ingester)
    publish(broker, destination, events[:half])
    first = ingester.run(RunContext(seeded, time.monotonic() + 0.05))
    assert 0 < first.items < half and ingester.backlog()  # frames in flight

    restart = subprocess.run(
        ["bash", str(ACTIVEMQ_SCRIPT), "restart"], capture_output=True, text=True
    )
    assert restart.returncode == 0, restart.stderr
    publish(broker, destination, events[half:])
    drain(ingester, seeded)

    with seeded() as session:
        statistics = ddm_statistics(session=session)
    assert statistics.messages == len(events)  # each message recorded once
    assert statistics.quarantined == 0
    assert snapshot(seeded) == snapshot(reference)


@through_broker
def test_malformed_messages_go_to_quarantine_and_ingestion_carries_on(
    Session, dataset_factory, broker, destination, ddm_ingester
):
    name = "data15_13TeV.00267073.physics_Main.merge.AOD.f629_m1504"
    dataset_factory(name, "tier0")
    when = "2026-03-01 10:00:00.000000"
    did = {"scope": "data15_13TeV", "name": name}
    bodies = [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"payload": did, "created_at": when}),
        json.dumps(
            {"event_type": "close", "payload": {**did, "bytes": 10}, "created_at": when}
        ),
        json.dumps(
            {
                "event_type": "close",
                "payload": {**did, "length": "many", "bytes": 10},
                "created_at": when,
            }
        ),
        json.dumps({"event_type": "erase", "payload": list(did), "created_at": when}),
        json.dumps({"event_type": "open", "payload": did, "created_at": 42}),
        json.dumps(
            {"event_type": "transfer-queued", "payload": did, "created_at": when}
        ),
    ]
    ingester = ddm_ingester()
    ingester.open(Session)
    _wait_connected(ingester)
    with DdmPublisher(broker, destination) as publisher:
        for body in bodies:
            publisher.publish_body(body)
        publisher.publish(event("erase", scope="data15_13TeV", name=name), confirm=True)

    drain(ingester, Session)

    with Session() as session:
        reasons = sorted(
            q.reason
            for q in session.scalars(
                select(Quarantine).where(Quarantine.source == "ddm")
            )
        )
        statistics = ddm_statistics(session=session)
        dataset = get_dataset(name, session=session)
        assert quarantine_count(source="ddm", session=session) == 7
        assert any("not JSON" in reason for reason in reasons)
        assert any("length = 'many'" in reason for reason in reasons)
        assert any("length is missing" in reason for reason in reasons)
        assert any("created_at = 42" in reason for reason in reasons)
        assert statistics.ignored == 1
        assert dataset.ami_status == "TRASHED"  # the message after the bad ones


# --- a broker out of reach ----------------------------------------------------


@pytest.fixture
def unreachable() -> str:
    """The URL of a STOMP broker that is not there: a free local port."""
    return f"stomp://127.0.0.1:{free_port()}"


@on_sqlite
def test_an_unreachable_broker_fails_the_drain_and_says_why(Session, unreachable):
    ingester = DdmIngester(unreachable, patience=0.5, fail_unreachable=True)

    with pytest.raises(DrainFailed, match="'ddm' failed") as raised:
        run_until_drained([ingester], Session, max_seconds=60)

    [note] = raised.value.__notes__
    assert note.startswith(
        f"ddm: BrokerUnreachable: cannot reach the DDM broker {unreachable}"
    )
    assert "Connection refused" in note
    assert [run.outcome for run in task_runs(Session, "ddm")][-1] == "failed"


@on_sqlite
def test_the_task_server_keeps_trying_an_unreachable_broker(
    Session, unreachable, caplog
):
    ingester = DdmIngester(unreachable, patience=0.5)
    server = TaskServer([ingester], Session)

    with server:
        gave_up = server.wait(
            lambda s: (
                s.status["ddm"].runs > 1
                and s.status["ddm"].last is not None
                and s.status["ddm"].last.backlog is None
            ),
            30.0,
        )
        status = server.status["ddm"]

    assert gave_up
    assert status.failures == 0 and status.last is not None
    assert status.last.outcome == "ok"
    assert f"not connected to {unreachable}: [Errno 111] Connection refused" in (
        status.last.note
    )
    attempts = [m for m in caplog.messages if m.startswith("Cannot connect to the DDM")]
    assert len(attempts) > 1


def test_a_broker_url_of_the_wrong_form_hides_its_password():
    with pytest.raises(ConfigError) as raised:
        DdmIngester("stomp://atlas:s3cret@mq.cern.ch:61613/topic/x")

    assert str(raised.value) == (
        "setting ddm_broker = 'stomp://atlas:***@mq.cern.ch:61613/topic/x' is not "
        "usable: expected stomp://host:port"
    )


@on_sqlite
def test_the_broker_password_is_in_no_run_note_or_log(Session, caplog):
    port = free_port()
    ingester = DdmIngester(f"stomp://atlas:s3cret@127.0.0.1:{port}", patience=0.5)
    server = TaskServer([ingester], Session)

    with server:
        server.wait(lambda s: s.status["ddm"].runs > 1, 30.0)
        status = server.status["ddm"]

    assert status.last is not None
    assert f"not connected to stomp://127.0.0.1:{port}" in status.last.note
    assert f"Cannot connect to the DDM broker stomp://127.0.0.1:{port}" in caplog.text
    assert "s3cret" not in status.last.note + caplog.text


def task_runs(Session: sessionmaker[Any], name: str) -> list[TaskRun]:  # noqa: N803
    with Session() as session:
        query = select(TaskRun).where(TaskRun.task_name == name).order_by(TaskRun.id)
        return list(session.scalars(query))


# --- the durable subscription's identity -----------------------------------------


def test_each_catalogue_has_a_client_id_of_its_own(tmp_path):
    here = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    there = f"sqlite:///{tmp_path / 'staging' / 'catalog.sqlite'}"
    server = "postgresql+psycopg://hepcat:pw@db.cern.ch:5432/ami"

    assert default_client_id(here) != default_client_id(there)
    assert default_client_id(here).startswith("hepcat-")
    assert len(catalogue_identity(here)) == 12
    # The same database whoever logs in, with whichever driver.
    assert catalogue_identity(server) == catalogue_identity(
        "postgresql+psycopg2://reader:other@DB.cern.ch:5432/ami"
    )
    assert catalogue_identity(server) != catalogue_identity(
        "postgresql+psycopg://hepcat:pw@db.cern.ch:5432/ami_staging"
    )
    assert catalogue_identity(here) == catalogue_identity(
        f"sqlite+pysqlite:///{tmp_path / 'staging' / '..' / 'catalog.sqlite'}"
    )


def test_the_settings_name_the_subscription(tmp_path):
    env = {
        "HEPCAT_DATA_DIR": str(tmp_path),
        "HEPCAT_DDM_BROKER": "stomp://mq.cern.ch:61613",
    }
    derived = configured_ingesters(load_config(env=env))[0]
    legacy = configured_ingesters(
        load_config(env={**env, "HEPCAT_DDM_CLIENT_ID": "hepcat"})
    )[0]

    assert isinstance(derived, DdmIngester) and isinstance(legacy, DdmIngester)
    # Unset, the id is settled with the catalogue when the ingester opens.
    assert derived.client_id is None
    assert derived.catalog_url == f"sqlite:///{tmp_path}/catalog.sqlite"
    assert (legacy.client_id, legacy.subscription) == ("hepcat", "hepcat-ddm")
    with pytest.raises(ConfigError, match="expected letters, digits"):
        load_config(env={"HEPCAT_DDM_SUBSCRIPTION": "hepcat ddm"})


def _url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=False))


def test_a_catalogue_that_ingested_ddm_before_keeps_the_old_client_id(
    Session, catalog_engine, world
):
    """An upgraded deployment keeps the subscription the broker holds."""
    with Session.begin() as session:
        seed_catalog(world, session=session)
    ingest_messages(with_ids(ddm_scenario(world).events[:3]), Session)
    config = load_config(env={"HEPCAT_DATABASE_URL": _url(catalog_engine)})

    chosen = ddm_client_id(config, Session)

    assert chosen == "hepcat"
    # Stored: messages arriving later change nothing, nor does a new spelling.
    assert settle_client_id(Session, "sqlite:///elsewhere.sqlite") == "hepcat"


def test_a_subscribed_catalogue_without_messages_keeps_the_old_client_id(
    Session, catalog_engine
):
    with Session.begin() as session:
        session.add(TaskRun(task_name="ddm", outcome="ok"))

    assert settle_client_id(Session, _url(catalog_engine)) == "hepcat"


def test_a_new_catalogue_gets_a_derived_client_id(Session, catalog_engine):
    url = _url(catalog_engine)
    with Session.begin() as session:
        session.add(TaskRun(task_name="ddm", outcome="failed"))

    assert settle_client_id(Session, url) == default_client_id(url)


@on_sqlite
def test_two_spellings_of_one_sqlite_catalogue_agree_on_the_client_id(
    catalog_engine,
):
    """The same file as a path and as an SQLite URI, which the derived id
    tells apart: the id stored by the first process is the second's.
    """
    here = _url(catalog_engine)
    there = f"sqlite:///file:{catalog_engine.url.database}?mode=rw&uri=true"
    engine = create_catalog_engine(there)
    try:
        first = ddm_client_id(
            load_config(env={"HEPCAT_DATABASE_URL": here}),
            session_factory(catalog_engine),
        )
        second = ddm_client_id(
            load_config(env={"HEPCAT_DATABASE_URL": there}), session_factory(engine)
        )
    finally:
        engine.dispose()

    assert default_client_id(here) != default_client_id(there)
    assert first == second == default_client_id(here)


@pytest.mark.parametrize(
    "catalog_engine",
    [pytest.param("mariadb", marks=pytest.mark.external_service)],
    indirect=True,
)
def test_mysql_and_mariadb_spellings_of_one_catalogue_agree_on_the_client_id(
    catalog_engine,
):
    mysql = _url(catalog_engine)
    mariadb = catalog_engine.url.set(drivername="mariadb+pymysql")
    engine = create_catalog_engine(mariadb.render_as_string(hide_password=False))
    try:
        first = settle_client_id(session_factory(engine), _url(engine))
        second = settle_client_id(session_factory(catalog_engine), mysql)
    finally:
        engine.dispose()

    assert default_client_id(mysql) != default_client_id(_url(engine))
    assert first == second == default_client_id(_url(engine))


def test_the_client_id_setting_wins_and_a_difference_is_logged_once(
    Session, catalog_engine, caplog
):
    url = _url(catalog_engine)
    stored = settle_client_id(Session, url)
    config = load_config(
        env={"HEPCAT_DATABASE_URL": url, "HEPCAT_DDM_CLIENT_ID": "atlas-hepcat"}
    )

    with caplog.at_level("WARNING", logger="ingest.ddm"):
        chosen = ddm_client_id(config, Session)

    assert chosen == "atlas-hepcat"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        f"The DDM client id is 'atlas-hepcat' (setting ddm_client_id), not the "
        f"{stored!r} stored in the catalogue"
    )
    assert settle_client_id(Session, url) == stored  # the stored id stays


def test_a_client_id_setting_on_a_new_catalogue_is_stored(Session, catalog_engine):
    url = _url(catalog_engine)

    settle_client_id(Session, url, "atlas-hepcat")

    assert settle_client_id(Session, url) == "atlas-hepcat"


@on_sqlite
def test_an_ingester_settles_its_client_id_when_it_opens(tmp_path, Session):
    env = {
        "HEPCAT_DATA_DIR": str(tmp_path),
        "HEPCAT_DDM_BROKER": "stomp://127.0.0.1:9",
    }
    [ingester] = configured_ingesters(load_config(env=env))
    assert isinstance(ingester, DdmIngester)
    try:
        ingester.open(Session)
    finally:
        ingester.close(timeout=1.0)

    assert ingester.client_id == settle_client_id(Session, ingester.catalog_url or "")
    assert ingester.client_id.startswith("hepcat-")


def _catalogue_config(tmp_path: Path, name: str, broker: str, destination: str) -> Any:
    folder = tmp_path / name
    folder.mkdir()
    return load_config(
        env={
            "HEPCAT_DATA_DIR": str(folder),
            "HEPCAT_DDM_BROKER": broker,
            "HEPCAT_DDM_DESTINATION": destination,
        }
    )


@pytest.mark.external_service
def test_two_catalogues_on_one_broker_each_receive_every_message(
    tmp_path, broker, destination, world
):
    events = ddm_scenario(world).events
    half = len(events) // 2
    configs = [
        _catalogue_config(tmp_path, name, broker, destination)
        for name in ("production", "staging")
    ]
    engines = [create_catalog_engine(config.catalog_url) for config in configs]
    catalogues = []
    for engine in engines:
        migrations.upgrade(engine)
        catalogues.append(session_factory(engine))
    made: list[DdmIngester] = []

    def ingester(index: int) -> DdmIngester:
        [task] = configured_ingesters(configs[index], once=True)
        assert isinstance(task, DdmIngester)
        made.append(task)
        task.open(catalogues[index])
        _wait_connected(task)
        return task

    try:
        production, staging = ingester(0), ingester(1)
        publish(broker, destination, events[:half])
        drain(staging, catalogues[1])
        drain(production, catalogues[0])
        production.close()  # production stops; staging goes on
        publish(broker, destination, events[half:])
        drain(staging, catalogues[1])
        restarted = ingester(0)
        drain(restarted, catalogues[0])
    finally:
        for task in made:
            task.close()
        for task in made[:2]:
            _remove_subscription(broker, destination, task.client_id, "hepcat-ddm")
        for engine in engines:
            engine.dispose()

    assert production.client_id != staging.client_id
    for Session in catalogues:  # noqa: N806
        with Session() as session:
            assert ddm_statistics(session=session).messages == len(events)


@pytest.fixture
def holder(broker: str, destination: str) -> Iterator[DdmIngester]:
    """A DDM ingester subscribed, as a running task server's is."""
    client_id = f"hepcat-test-{uuid.uuid4().hex[:12]}"
    ingester = DdmIngester(broker, destination, client_id=client_id)
    ingester.open()
    try:
        _wait_connected(ingester)
        yield ingester
    finally:
        ingester.close()
        _remove_subscription(broker, destination, client_id, "hepcat-ddm")


@pytest.mark.external_service
def test_a_client_id_in_use_is_said_to_be_held_by_another_process(broker, holder):
    headers = {"client-id": holder.client_id}
    with pytest.raises(ClientIdInUse) as raised:
        connect(broker_address(broker), Waiter(), headers=headers)

    assert str(raised.value) == (
        f"the DDM broker {broker} has another connection with client id "
        f"'{holder.client_id}': another hepcat process (a task server of this "
        "catalogue) holds it and ingests DDM; stop that process first, or give "
        "this catalogue a client id of its own (HEPCAT_DDM_CLIENT_ID)"
    )


@through_broker
def test_ingest_once_beside_the_holder_skips_ddm_with_a_note(
    Session, broker, destination, holder
):
    ingester = DdmIngester(
        broker, destination, client_id=holder.client_id, fail_unreachable=True
    )
    items = run_until_drained([ingester], Session, max_seconds=60)

    assert items == {"ddm": 0} and items.undrained == []
    assert ingester.skipped is not None
    assert ingester.skipped.startswith(
        f"the DDM broker {broker} has another connection with client id "
        f"'{holder.client_id}': another hepcat process"
    )
    [run] = task_runs(Session, "ddm")
    assert (run.outcome, run.backlog) == ("ok", 0)
    assert holder.connected  # the holder was left alone


@pytest.mark.external_service
def test_the_ingest_command_beside_a_task_server_says_ddm_is_skipped(
    tmp_path, broker, destination, holder
):
    from click.testing import CliRunner

    env = {
        "HEPCAT_DDM_BROKER": broker,
        "HEPCAT_DDM_DESTINATION": destination,
        "HEPCAT_DDM_CLIENT_ID": holder.client_id,
    }
    runner = CliRunner()
    upgraded = runner.invoke(main, ["--data-dir", str(tmp_path), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output

    result = runner.invoke(
        main, ["--data-dir", str(tmp_path), "ingest", "--once"], env=env
    )

    assert result.exit_code == 0, result.output
    assert (
        f"ddm: 0 ingested (skipped: the DDM broker {broker} has another connection "
        f"with client id '{holder.client_id}': another hepcat process (a task "
        "server of this catalogue) holds it and ingests DDM;"
    ) in result.stdout
    assert "BrokerUnreachable" not in result.output


# --- the destination: a queue, or one the broker refuses -------------------------


@pytest.fixture
def queue() -> str:
    return f"/queue/hepcat.test.{uuid.uuid4().hex}"


@through_broker
def test_a_queue_keeps_what_was_sent_before_hepcat_first_subscribed(
    seeded, reference, scenario, broker, queue
):
    publish(broker, queue, scenario.events)  # no one has ever read the queue
    ingest_messages(with_ids(scenario.events), reference)
    client_id = f"hepcat-test-{uuid.uuid4().hex[:12]}"
    ingester = DdmIngester(
        broker, queue, client_id=client_id, quiet_seconds=0.5, fail_unreachable=True
    )

    try:
        items = run_until_drained([ingester], seeded, max_seconds=30)
    finally:
        ingester.close()

    assert items == {"ddm": len(scenario.events)} and items.undrained == []
    assert snapshot(seeded) == snapshot(reference)


@pytest.mark.external_service
def test_ingest_once_fails_on_a_subscription_the_broker_refuses(
    tmp_path, broker, monkeypatch
):
    from click.testing import CliRunner

    monkeypatch.setattr("ingest.ddm.PATIENCE", 1.0)
    # ActiveMQ keeps no durable subscription to its advisory topics.
    refused = f"/topic/ActiveMQ.Advisory.hepcat.test.{uuid.uuid4().hex}"
    env = {"HEPCAT_DDM_BROKER": broker, "HEPCAT_DDM_DESTINATION": refused}
    runner = CliRunner()
    upgraded = runner.invoke(main, ["--data-dir", str(tmp_path), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output

    result = runner.invoke(
        main,
        ["--data-dir", str(tmp_path), "ingest", "--once", "--max-seconds", "30"],
        env=env,
    )

    assert result.exit_code == 1, result.output
    assert "ddm: 0 ingested (failed)" in result.stdout
    assert (
        f"ddm: SubscriptionRefused: the DDM broker {broker} refuses the subscription "
        f"to {refused} (no subscription for "
    ) in result.stderr
    assert (
        " s): the broker said: Cannot create a durable subscription for an advisory "
        "Topic; check HEPCAT_DDM_DESTINATION"
    ) in result.stderr
