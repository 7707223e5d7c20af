"""The DDM simulator: Rucio's events for a :class:`~ingest.world.World`, and a
publisher that sends them to a STOMP destination as Rucio's hermes daemon
does (SOURCES.md).

:func:`ddm_scenario` tells the story DDM would tell of the world: every
dataset is created, most are closed with their counts, derivations go into
period containers, replicas are locked at a couple of storage elements, one
file is lost, one dataset is deleted, one dataset is reopened, and one close
carries a wrong count. It can also duplicate and reorder the events, as an
at-least-once delivery does. The scenario says what it did, so that tests
compute their expectations from it rather than from the catalogue.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.ddm import DdmEvent
from ingest.ddm import (
    DEFAULT_DESTINATION,
    Waiter,
    broker_address,
    connect,
    disconnect,
)
from ingest.world import DatasetSpec, World

RSES = (
    "CERN-PROD_DATADISK",
    "BNL-OSG2_DATADISK",
    "FZK-LCG2_DATADISK",
    "IN2P3-CC_DATADISK",
    "TRIUMF-LCG2_DATADISK",
)
_RULE_NAMESPACE = uuid.UUID("0d7c3a52-7f55-4e8e-a1f4-5b0cf1e6c9a1")


class DdmPublisher:
    """Publishes hermes-format messages to *destination* on the STOMP broker
    *broker_url*, with the headers ``persistent: true`` and ``event_type``.
    Connects on first use; use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, broker_url: str, destination: str = DEFAULT_DESTINATION) -> None:
        self.address = broker_address(broker_url)
        self.destination = destination
        self._listener = Waiter()
        self._connection: Any = None
        self._receipts = 0

    def __enter__(self) -> DdmPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish(self, event: DdmEvent, *, confirm: bool = False) -> None:
        """Send *event*; with *confirm*, wait until the broker has it (and
        every message sent before it).
        """
        self.publish_body(event.to_body(), event.event_type, confirm=confirm)

    def publish_body(
        self, body: str, event_type: str | None = None, *, confirm: bool = False
    ) -> None:
        """Send *body* as it is (also a malformed one)."""
        headers = {"persistent": "true"}
        if event_type is not None:
            headers["event_type"] = event_type
        waited = None
        if confirm:
            self._receipts += 1
            headers["receipt"] = f"hepcat-published-{self._receipts}"
            waited = self._listener.expect(headers["receipt"])
        self._connect().send(self.destination, body, headers=headers)
        if waited is not None and not self._listener.wait_for(waited, 30.0):
            raise TimeoutError(f"{self.address} did not confirm a message")

    def publish_all(self, events: Iterable[DdmEvent]) -> int:
        """Send *events* in order, confirmed at the end; return how many."""
        events = list(events)
        for index, event in enumerate(events):
            self.publish(event, confirm=index == len(events) - 1)
        return len(events)

    def close(self) -> None:
        if self._connection is not None:
            disconnect(self._connection, self._listener)
            self._connection = None

    def _connect(self) -> Any:
        if self._connection is None or self._listener.lost.is_set():
            self._listener = Waiter()
            self._connection = connect(self.address, self._listener)
        return self._connection


@dataclass
class DdmScenario:
    """The DDM events of a world, and what they say."""

    events: list[DdmEvent]
    wrong_count: str  # its close says one file more than it has
    erased: str  # deleted in DDM, with its replica's files
    reopened: str  # closed, then opened again
    lost_file: str
    lost_dataset: str
    detached: tuple[str, str]  # (container, dataset) registered, then removed
    containers: dict[str, list[str]] = field(default_factory=dict)
    replicas: dict[str, list[str]] = field(default_factory=dict)  # complete ones
    ignored: int = 0  # events of a type the catalogue ignores

    def closed(self) -> list[str]:
        """The datasets whose last open or close is a close."""
        last: dict[str, tuple[dt.datetime, str]] = {}
        for event in self.events:
            if event.event_type in ("create_dts", "open", "close"):
                name = event.payload["name"]
                seen = last.get(name)
                if seen is None or seen[0] < event.created_at:
                    last[name] = (event.created_at, event.event_type)
        return sorted(name for name, (_, kind) in last.items() if kind == "close")


def ddm_scenario(
    world: World,
    *,
    seed: int = 1,
    duplicates: float = 0.0,
    shuffle: bool = False,
) -> DdmScenario:
    """The events DDM publishes about *world*, in the order it would.

    :param duplicates: the share of events sent twice (0.2: one in five).
    :param shuffle: deliver the events in a random order (their
        ``created_at`` still tells the true order).
    """
    story = _Story(world, random.Random(seed))
    scenario = story.tell()
    scenario.events = messy(
        scenario.events, seed=seed, duplicates=duplicates, shuffle=shuffle
    )
    return scenario


def messy(
    events: Sequence[DdmEvent],
    *,
    seed: int = 1,
    duplicates: float = 0.0,
    shuffle: bool = False,
) -> list[DdmEvent]:
    """*events* with a share of them repeated and, with *shuffle*, reordered."""
    rng = random.Random(seed)
    result = list(events)
    count = round(duplicates * len(result))
    result += [result[i] for i in rng.sample(range(len(result)), count)]
    if shuffle:
        rng.shuffle(result)
    else:
        result.sort(key=lambda event: event.created_at)
    return result


class _Story:
    """Builds a :class:`DdmScenario`, one kind of event at a time."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.events: list[DdmEvent] = []
        self.status = {task.task_id: task.status for task in world.tasks}
        self.with_files = [spec for spec in world.datasets if spec.files]

    def tell(self) -> DdmScenario:
        erased = self._pick("recon.AOD.", lambda s: "_r9364" in s.name)
        lost_dataset = self._pick(".merge.AOD.", lambda s: s.source == "tier0")
        wrong = self._pick(".DAOD_PHYS.", lambda s: "410470" in s.name)
        reopened = self._pick(".recon.AOD.", self._running)
        lost_file = lost_dataset.files[0].lfn
        for spec in self.world.datasets:
            self.create(spec)
            lost = lost_file if spec is lost_dataset else None
            if lost is not None:
                self.lose(spec, lost)
            self.close(spec, lost, wrong=spec is wrong)
            if spec is reopened:
                self.add("open", _did(spec), spec.created + dt.timedelta(hours=9))
        replicas = {spec.name: self.lock(spec) for spec in self.with_files}
        self.erase(erased, replicas[erased.name])
        containers, detached = self.containers()
        ignored = self.noise()
        return DdmScenario(
            events=sorted(self.events, key=lambda event: event.created_at),
            wrong_count=wrong.name,
            erased=erased.name,
            reopened=reopened.name,
            lost_file=lost_file,
            lost_dataset=lost_dataset.name,
            detached=detached,
            containers=containers,
            replicas={name: rses for name, rses in replicas.items() if rses},
            ignored=ignored,
        )

    def _running(self, spec: DatasetSpec) -> bool:
        return self.status.get(spec.task_id or 0) == "running"

    def _pick(self, part: str, wanted: Callable[[DatasetSpec], bool]) -> DatasetSpec:
        """The first dataset with files whose name holds *part* and that is
        *wanted*; any dataset with files in a smaller world.
        """
        found = [s for s in self.with_files if part in s.name and wanted(s)]
        return (found or self.with_files)[0]

    def add(self, event_type: str, payload: dict[str, Any], when: dt.datetime) -> None:
        self.events.append(DdmEvent(event_type, payload, when))

    def create(self, spec: DatasetSpec) -> None:
        account = "tzero" if spec.source == "tier0" else "prodsys"
        payload = {**_did(spec), "account": account, "expired_at": None}
        self.add("create_dts", payload, spec.created)

    def lose(self, spec: DatasetSpec, lfn: str) -> None:
        """A file declared lost, and its dataset incomplete."""
        when = spec.created + dt.timedelta(hours=2)
        scope = spec.name.split(".")[0]
        payload = {
            "scope": scope,
            "name": lfn,
            "dataset_scope": scope,
            "dataset_name": spec.name,
        }
        self.add("lost", payload, when)
        incomplete = {**_did(spec), "did_type": "DATASET"}
        self.add("incomplete", incomplete, when + dt.timedelta(seconds=1))

    def close(self, spec: DatasetSpec, lost: str | None, *, wrong: bool) -> None:
        """Closed with DDM's counts (which no longer count a lost file)."""
        files = [f for f in spec.files if f.status == "finished" and f.lfn != lost]
        payload = {
            **_did(spec),
            "bytes": sum(f.size for f in files),
            "length": len(files) + (1 if wrong else 0),
            "events": sum(f.events for f in files),
        }
        self.add("close", payload, spec.created + dt.timedelta(hours=6))

    def lock(self, spec: DatasetSpec) -> list[str]:
        """Complete replicas: one for every dataset, a second one for the
        derivations that physicists read.
        """
        count = 2 if "DAOD" in spec.name else 1
        rses = sorted(self.rng.sample(RSES, count))
        for index, rse in enumerate(rses):
            payload = {
                **_did(spec),
                "rse": rse,
                "rse_id": uuid.uuid5(_RULE_NAMESPACE, rse).hex,
                "rule_id": uuid.uuid5(_RULE_NAMESPACE, f"{spec.name}@{rse}").hex,
            }
            when = spec.created + dt.timedelta(hours=8, minutes=index)
            self.add("datasetlock_ok", payload, when)
        return rses

    def erase(self, spec: DatasetSpec, rses: list[str]) -> None:
        """The dataset's files deleted from its replica, then the dataset."""
        when = spec.created + dt.timedelta(days=30)
        scope = spec.name.split(".")[0]
        for index, file in enumerate(spec.files):
            payload = {
                "scope": scope,
                "name": file.lfn,
                "rse": rses[0],
                "bytes": file.size,
                "protocol": "root",
                "url": f"root://eosatlas.cern.ch//eos/atlas/{scope}/{file.lfn}",
            }
            self.add("deletion-done", payload, when + dt.timedelta(seconds=index))
        payload = {**_did(spec), "account": "root"}
        self.add("erase", payload, when + dt.timedelta(hours=1))

    def containers(self) -> tuple[dict[str, list[str]], tuple[str, str]]:
        """A physics container per level-1 period holding its runs'
        derivations; the failed run's derivation is taken out again.
        """
        held: dict[str, list[str]] = {}
        detached = ("", "")
        for period in (p for p in self.world.periods if p.level == 1):
            members = [
                spec
                for spec in self.world.datasets
                if ".deriv.DAOD_PHYS." in spec.name
                and int(spec.name.split(".")[1]) in period.runs
            ]
            if not members:
                continue
            name = _container_name(period.project, period.period, members[0].name)
            when = max(spec.created for spec in members) + dt.timedelta(days=1)
            scope = period.project
            self.add(
                "create_cnt", {"scope": scope, "name": name, "account": "phys"}, when
            )
            held[name] = []
            for index, spec in enumerate(members):
                self.register(name, spec, when + dt.timedelta(minutes=1 + index))
                if spec.files:
                    held[name].append(spec.name)
                else:
                    self.detach(name, spec, when + dt.timedelta(days=20))
                    detached = (name, spec.name)
        return held, detached

    def register(self, container: str, spec: DatasetSpec, when: dt.datetime) -> None:
        payload = {
            "account": "phys",
            "scope": container.split(".")[0],
            "name": container,
            "childscope": spec.name.split(".")[0],
            "childname": spec.name,
            "childtype": "DATASET",
        }
        self.add("register_cnt", payload, when)

    def detach(self, container: str, spec: DatasetSpec, when: dt.datetime) -> None:
        # Newer Rucio spells the child fields with an underscore.
        payload = {
            "scope": container.split(".")[0],
            "name": container,
            "child_scope": spec.name.split(".")[0],
            "child_name": spec.name,
            "child_type": "DATASET",
        }
        self.add("erase_cnt", payload, when)

    def noise(self) -> int:
        """Transfers: hermes publishes them too, and hepcat ignores them."""
        chosen = self.rng.sample(self.with_files, min(3, len(self.with_files)))
        for spec in chosen:
            file = spec.files[-1]
            payload = {
                "scope": spec.name.split(".")[0],
                "name": file.lfn,
                "src-rse": RSES[0],
                "dst-rse": RSES[1],
                "bytes": file.size,
                "activity": "Data Consolidation",
            }
            self.add("transfer-done", payload, spec.created + dt.timedelta(hours=7))
        return len(chosen)


def _did(spec: DatasetSpec) -> dict[str, Any]:
    return {"scope": spec.name.split(".")[0], "name": spec.name}


def _container_name(project: str, period: str, member: str) -> str:
    """An ATLAS physics container name: ``data15_13TeV.periodA.physics_Main
    .PhysCont.DAOD_PHYS.grp15_v01_p4072``.
    """
    parts = member.split(".")
    stream, data_type, tags = parts[2], parts[4], parts[5]
    group = f"grp{project[4:6]}_v01_{tags.split('_')[-1]}"
    return f"{project}.period{period}.{stream}.PhysCont.{data_type}.{group}"
