"""Derived quantities, checked against values computed in the test from the
simulated world itself, independently of the catalogue's code.
"""

from __future__ import annotations

import datetime as dt
import json
from statistics import fmean

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update
from statements import statements_of

from catalog.consistency import check_derived
from catalog.datasets import add_dataset, get_dataset, get_provenance
from catalog.ddm import DdmEvent, apply_messages
from catalog.derived import (
    mark_tagged,
    prodsys_status,
    refresh_all,
    refresh_changed,
    refresh_stale,
)
from catalog.lumiblocks import format_lumi_blocks, parse_lumi_blocks
from catalog.models import (
    AmiTag,
    Dataset,
    DatasetStale,
    File,
    ProductionTask,
    ProvenanceEdge,
)
from hepcat.cli import main
from ingest import schemas
from ingest.seed import seed_catalog
from ingest.simulate import now
from ingest.world import FAILED_RUN, ConfigTag, World, build_world

ZEE_DAOD = (
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS."
    "e3601_s3126_r10724_p4164"
)
ZEE_AOD = (
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.recon.AOD."
    "e3601_s3126_r10724"
)
ZEE_EVNT = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"


def blocks_of(files) -> set[int]:
    return set().union(*(parse_lumi_blocks(f.lumi_blocks) for f in files))


@pytest.fixture
def world() -> World:
    return build_world(seed=7, files_per_dataset=4)


@pytest.fixture(params=["written", "ingested"])
def seeded(request, Session, world):
    """The world in the catalogue: written directly, or ingested from the
    simulated sources by the ingesters.
    """
    if request.param == "written":
        with Session.begin() as session:
            seed_catalog(world, session=session)
        return Session
    sources = request.getfixturevalue("sources")
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)
    request.getfixturevalue("ingest")()
    return Session


def test_counts_are_the_sums_over_finished_files(seeded, world):
    with seeded() as session:
        for spec in world.datasets:
            dataset = get_dataset(spec.name, session=session)
            finished = [f for f in spec.files if f.status == "finished"]
            assert dataset.n_files == len(finished), spec.name
            assert dataset.total_events == sum(f.events for f in finished)
            assert dataset.total_size == sum(f.size for f in finished)


def test_every_descendant_shows_the_cross_section_of_its_evnt_ancestor(seeded, world):
    sections = [f.cross_section for f in world.dataset(ZEE_EVNT).files]

    with seeded() as session:
        daod = get_dataset(ZEE_DAOD, session=session)

        assert daod.cross_section == fmean(sections)
        assert daod.cross_section_min == pytest.approx(min(sections))
        assert daod.cross_section_max == pytest.approx(max(sections))
        assert daod.gen_filt_eff == pytest.approx(1.0)
        assert daod.cross_section_source.name == ZEE_EVNT


def test_real_data_shows_its_periods_of_every_level(seeded, world):
    run = world.runs[0].run_number
    expected = sorted(p.period for p in world.periods if run in p.runs)

    with seeded() as session:
        aod = get_dataset(
            f"data15_13TeV.{run:08d}.physics_Main.merge.AOD.f629_m1504",
            session=session,
        )

        assert aod.period == ",".join(expected)
        assert aod.period == "A,A1,AllYear"


def test_a_derivation_missing_a_file_reports_its_lost_lumi_blocks(seeded, world):
    run = world.runs[0]
    name = (
        f"data15_13TeV.{run.run_number:08d}.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
    )
    raw = world.dataset(f"data15_13TeV.{run.run_number:08d}.physics_Main.daq.RAW")
    own = world.dataset(name)
    lost = blocks_of(raw.files) - blocks_of(own.files)

    with seeded() as session:
        dataset = get_dataset(name, session=session)

        assert lost, "the world should lose lumi blocks here"
        assert dataset.n_lost_lumi_blocks == len(lost)
        assert dataset.lost_lumi_blocks == format_lumi_blocks(lost)


def test_raw_and_tier0_merge_lose_nothing(seeded, world):
    run = world.runs[1].run_number
    with seeded() as session:
        raw = get_dataset(
            f"data15_13TeV.{run:08d}.physics_Main.daq.RAW", session=session
        )
        aod = get_dataset(
            f"data15_13TeV.{run:08d}.physics_Main.merge.AOD.f629_m1504", session=session
        )

        assert raw.n_lost_lumi_blocks is None
        assert aod.n_lost_lumi_blocks == 0
        assert aod.prodsys_status == "ALL EVENTS AVAILABLE"


def test_production_status_follows_the_task(seeded, world):
    failed = f"data15_13TeV.{FAILED_RUN:08d}.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
    running = next(t for t in world.tasks if t.status == "running").outputs[0]

    with seeded() as session:
        assert get_dataset(failed, session=session).prodsys_status == "TASK FAILED"
        partial = get_dataset(running, session=session)
        assert partial.prodsys_status == "EVENTS PARTIALLY AVAILABLE"
        assert get_dataset(ZEE_DAOD, session=session).prodsys_status == (
            "ALL EVENTS AVAILABLE"
        )


def test_completion_is_the_share_of_requested_events_at_most_100(seeded, world):
    with seeded() as session:
        for task in world.tasks:
            spec = world.dataset(task.outputs[0])
            events = sum(f.events for f in spec.files)
            dataset = get_dataset(spec.name, session=session)
            expected = min(100.0, 100.0 * events / task.total_events)
            assert dataset.completion == pytest.approx(expected, abs=0.01)


def test_completion_goes_when_the_task_no_longer_says_its_events(Session, world):
    with Session.begin() as session:
        seed_catalog(world, session=session)
    with Session.begin() as session:
        dataset = get_dataset(ZEE_DAOD, session=session)
        assert dataset.completion is not None
        session.execute(
            update(ProductionTask)
            .where(ProductionTask.task_id == dataset.task_id)
            .values(total_events=None)
        )
        refresh_changed([dataset.id], session=session)

    with Session() as session:
        assert get_dataset(ZEE_DAOD, session=session).completion is None
        assert check_derived(session=session) == []


def test_provenance_lists_ancestors_and_descendants_by_distance(seeded):
    with seeded() as session:
        aod = get_dataset(ZEE_AOD, session=session)
        graph = get_provenance(aod, session=session)

        distances = {n.dataset.data_type: n.distance for n in graph.nodes}
        assert distances == {"EVNT": 2, "HITS": 1, "AOD": 0, "DAOD_PHYS": -1}
        assert (aod.name, ZEE_DAOD) in graph.edges


def test_a_real_data_derivation_descends_from_its_run_raw(seeded, world):
    run = world.runs[0].run_number
    prefix = f"data15_13TeV.{run:08d}.physics_Main"
    daod = f"{prefix}.deriv.DAOD_PHYS.r11969_p4072"

    with seeded() as session:
        graph = get_provenance(get_dataset(daod, session=session), session=session)
        distances = {n.dataset.name: n.distance for n in graph.nodes}

    assert distances == {
        f"{prefix}.daq.RAW": 2,
        f"{prefix}.merge.AOD.f629_m1504": 1,
        daod: 0,
    }


def test_derive_check_restores_a_tier0_edge(Session, world):
    with Session.begin() as session:
        seed_catalog(world, session=session)
    run = world.runs[0].run_number
    aod = f"data15_13TeV.{run:08d}.physics_Main.merge.AOD.f629_m1504"
    raw = f"data15_13TeV.{run:08d}.physics_Main.daq.RAW"
    with Session.begin() as session:
        child = get_dataset(aod, session=session)
        edge = ProvenanceEdge.child_id == child.id
        session.execute(delete(ProvenanceEdge).where(edge))

    with Session.begin() as session:
        found = check_derived(session=session)
    with Session() as session:
        again = check_derived(session=session)

    assert [(d.dataset, d.field, d.stored, d.recomputed) for d in found] == [
        (aod, "parents", [], [raw])
    ]
    assert again == []


def test_every_dataset_of_the_world_is_catalogued(seeded, world):
    with seeded() as session:
        names = set(session.scalars(select(Dataset.name)))

    assert names == {d.name for d in world.datasets}


@pytest.mark.parametrize(
    ("task_status", "n_files", "expected"),
    [
        ("done", 3, "ALL EVENTS AVAILABLE"),
        ("finished", 3, "ALL EVENTS AVAILABLE"),
        ("running", 3, "EVENTS PARTIALLY AVAILABLE"),
        ("running", 0, "NO EVENTS AVAILABLE"),
        ("submitted", 0, "NO EVENTS AVAILABLE"),
        ("failed", 3, "TASK FAILED"),
        ("broken", 0, "TASK FAILED"),
        ("aborted", 1, "TASK FAILED"),
        ("obsolete", 1, "TASK OBSOLETE"),
        ("someNewWord", 1, "EVENTS PARTIALLY AVAILABLE"),
    ],
)
def test_prodsys_status_table(task_status, n_files, expected):
    assert prodsys_status(task_status, n_files) == expected


def test_a_cross_section_does_not_depend_on_the_order_files_are_read(Session):
    """Two EVNT datasets whose files carry the same cross-sections, in
    opposite orders of their names (the order a database may add them up
    in), show the same mean to the last digit: the one of ``fmean``.
    """
    sections = [0.1, 0.2, 0.3, 1e-17, 7.7]
    names = [f"mc16_13TeV.{440000 + n}.Order.evgen.EVNT.e{n}" for n in (1, 2)]
    with Session.begin() as session:
        for values, name in zip((sections, sections[::-1]), names, strict=True):
            dataset = add_dataset(name, "prodsys", session=session)
            session.flush()
            for n, value in enumerate(values):
                lfn = f"EVNT.{dataset.id}._{n:06d}.pool.root.1"
                session.add(
                    File(
                        dataset_id=dataset.id,
                        lfn=lfn,
                        guid=f"g{dataset.id}-{n}",
                        status="finished",
                        events=10,
                        size=1,
                        cross_section=value,
                    )
                )
        session.flush()
        refresh_changed(
            [get_dataset(n, session=session).id for n in names], session=session
        )
    with Session() as session:
        shown = [get_dataset(n, session=session).cross_section for n in names]
    assert shown == [fmean(sections), fmean(sections)]


def test_many_datasets_changed_alike_are_refreshed_each_rightly(Session):
    """Datasets whose derived values change alike are written together (one
    statement), the others one by one: each ends with its own values, and
    a dataset object the session holds shows them.
    """
    names = [f"mc16_13TeV.{430000 + n}.Alike.recon.AOD.e{n}_r{n}" for n in range(31)]
    with Session.begin() as session:
        for n, name in enumerate(names):
            status = "failed" if n == 30 else "done"
            session.add(ProductionTask(task_id=700 + n, name=name, status=status))
            add_dataset(name, "prodsys", session=session, task_id=700 + n)
    with Session.begin() as session:
        held = get_dataset(names[0], session=session)
        before = held.last_modified
        ids = [get_dataset(name, session=session).id for name in names]
        refresh_changed(ids, session=session)

        assert held.prodsys_status == "NO EVENTS AVAILABLE"
        assert held.last_modified > before
    with Session() as session:
        query = select(Dataset.name, Dataset.prodsys_status)
        found = dict(session.execute(query).all())
    assert found == {
        name: "TASK FAILED" if n == 30 else "NO EVENTS AVAILABLE"
        for n, name in enumerate(names)
    }


def test_a_dataset_ddm_erased_before_prodsys_wrote_it_arrives_trashed(
    Session, sources, ingest
):
    """A new dataset's values are derived as it is written; what DDM said of
    it before it arrived still counts, even when nothing else (a file, a
    parent) brings it up to date later.
    """
    erased, kept = (
        f"mc16_13TeV.{n}.Alone.recon.AOD.e{n}_s1_r{n}" for n in (420001, 420002)
    )
    when = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    body = DdmEvent(
        "erase", {"scope": "mc16_13TeV", "name": erased, "account": "root"}, when
    ).to_body()
    with Session.begin() as session:
        apply_messages([("erase-1", body)], session=session)
    for task_id, name in enumerate((erased, kept), start=9001):
        task = {"taskid": task_id, "taskname": name, "status": "done"}
        sources.prodsys.insert(schemas.t_production_task, [task])
        dataset = {"name": name, "taskid": task_id, "type": "output"}
        sources.prodsys.insert(schemas.t_production_dataset, [dataset])

    ingest()

    with Session() as session:
        trashed, valid = (get_dataset(n, session=session) for n in (erased, kept))
        assert (trashed.ami_status, trashed.trash_annotation) == (
            "TRASHED",
            "erased in DDM",
        )
        assert trashed.trash_date == when
        assert (valid.ami_status, valid.prodsys_status) == (
            "VALID",
            "NO EVENTS AVAILABLE",
        )
        assert check_derived(session=session) == []


def test_derive_check_reports_task_edges_missing_and_extra_and_fix_repairs_them(
    Session, world
):
    """An edge no task gives (a ttbar EVNT planted above the Zee AOD) and one
    a task gives that is gone (the Zee DAOD's, from its AOD) are each
    reported as the child's parents, stored and recomputed; committing the
    check repairs both.
    """
    with Session.begin() as session:
        seed_catalog(world, session=session)
    hits = next(t.input_dataset for t in world.tasks if ZEE_AOD in t.outputs)
    ttbar = next(
        d.name for d in world.datasets if ".410470." in d.name and ".EVNT." in d.name
    )
    with Session.begin() as session:
        ids = dict(session.execute(select(Dataset.name, Dataset.id)).all())
        planted = ProvenanceEdge(parent_id=ids[ttbar], child_id=ids[ZEE_AOD], task_id=1)
        session.add(planted)
        gone = ProvenanceEdge.child_id == ids[ZEE_DAOD]
        session.execute(delete(ProvenanceEdge).where(gone))

    with Session() as session:
        found = check_derived(session=session)
        session.commit()
        fixed = check_derived(session=session)
        aod = get_dataset(ZEE_AOD, session=session)
        edges = get_provenance(aod, session=session).edges

    assert [(d.dataset, d.field, d.stored, d.recomputed) for d in found] == [
        (ZEE_DAOD, "parents", [], [ZEE_AOD]),
        (ZEE_AOD, "parents", [hits, ttbar], [hits]),
    ]
    assert fixed == []
    around = sorted(edge for edge in edges if ZEE_AOD in edge)
    assert around == sorted([(hits, ZEE_AOD), (ZEE_AOD, ZEE_DAOD)])
    assert str(found[0]) == f"{ZEE_DAOD}: parents is [], recomputed [{ZEE_AOD!r}]"


def config_tag(world: World, tag: str) -> ConfigTag:
    return next(spec for spec in world.tags if spec.tag == tag)


def tag_chain(name: str) -> list[str]:
    """The tags of the version that ends the dataset name *name*."""
    fields = name.split(".")
    return fields[5].split("_") if len(fields) > 5 else []


def test_a_derivation_shows_the_configuration_of_its_tag_chain(seeded, world):
    """``AtlasRelease`` is the release of the tag that made the dataset (the
    last of its chain); ``conditionsTag`` and ``geometryVersion`` come from
    the last tags whose parameters give them; ``requestedBy`` from its task.
    """
    evgen, simulation, reconstruction, derivation = (
        config_tag(world, tag) for tag in tag_chain(ZEE_DAOD)
    )
    task = next(t for t in world.tasks if ZEE_DAOD in t.outputs)

    with seeded() as session:
        daod = get_dataset(ZEE_DAOD, session=session)
        evnt = get_dataset(ZEE_EVNT, session=session)

        assert daod.atlas_release == derivation.release == "AthDerivation,21.2.94.0"
        assert daod.conditions_tag == reconstruction.parameters["conditionsTag"]
        assert daod.geometry_version == simulation.parameters["geometryVersion"]
        assert daod.requested_by == task.username == "dpdprod"
        assert (evnt.atlas_release, evnt.conditions_tag, evnt.geometry_version) == (
            evgen.release,
            None,
            None,
        )


def test_a_tag_changed_in_prodsys_changes_the_conditions_of_its_datasets(
    Session, sources, ingest, world
):
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)
    ingest()
    changed = {"conditionsTag": "OFLCOND-MC16-SDR-RR", "preExec": "all:x"}
    table = schemas.t_config_tag
    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.tag == "r10724")
            .values(parameters=json.dumps(changed), timestamp=now())
        )

    ingest()

    given = {t.tag: t.parameters.get("conditionsTag") for t in world.tags}
    given["r10724"] = changed["conditionsTag"]
    with Session() as session:
        shown = dict(
            session.execute(select(Dataset.name, Dataset.conditions_tag)).all()
        )
        versions = dict(session.execute(select(Dataset.name, Dataset.version)).all())
        assert check_derived(session=session) == []
    expected = {
        name: next((given[t] for t in reversed(chain) if given.get(t)), None)
        for name, chain in ((n, (v or "").split("_")) for n, v in versions.items())
    }
    assert shown == expected
    assert shown[ZEE_DAOD] == shown[ZEE_AOD] == "OFLCOND-MC16-SDR-RR"


def test_a_changed_tag_marks_the_datasets_whose_chain_holds_it_whole(Session, world):
    """``r1020`` is no tag of ``..._r10201_...``: only whole tags match."""
    with Session.begin() as session:
        seed_catalog(world, session=session)
    tags = {"r1020", "e3668", "p4072"}
    holding = {d.name for d in world.datasets if tags & set(tag_chain(d.name))}

    with Session.begin() as session:
        marked = mark_tagged(tags, session=session)

    with Session() as session:
        names = dict(session.execute(select(Dataset.id, Dataset.name)).all())
        stale = set(session.scalars(select(DatasetStale.dataset_id)))
    assert {names[i] for i in marked} == {names[i] for i in stale} == holding
    assert any("r10201" in tag_chain(name) for name in names.values())
    assert not any("r10201" in tag_chain(name) for name in holding)


def test_a_tag_that_arrives_after_its_datasets_gives_them_their_configuration(
    Session, sources, ingest, world
):
    """ProdSys may give a dataset before the tag that made it: the dataset
    waits for the tag (``tags_pending``), and takes its configuration when
    the tag arrives, among a million datasets as among these.
    """
    sources.coma.add_world(world)
    sources.tier0.add_world(world)
    sources.prodsys.add_world(world)
    table = schemas.t_config_tag
    with sources.prodsys.engine.begin() as connection:
        late = connection.execute(select(table).where(table.c.tag == "r10724")).one()
        connection.execute(delete(table).where(table.c.tag == "r10724"))
    ingest()

    with Session() as session:
        rows = session.execute(
            select(Dataset.name, Dataset.tags_pending, Dataset.conditions_tag)
        ).all()
    waiting = {name for name, pending, _ in rows if pending}
    assert waiting == {name for name, *_ in rows if "r10724" in tag_chain(name)}
    assert ZEE_DAOD in waiting
    assert dict((n, c) for n, _, c in rows)[ZEE_DAOD] is None

    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            table.insert().values(**{**late._asdict(), "timestamp": now()})
        )
    ingest()

    conditions = config_tag(world, "r10724").parameters["conditionsTag"]
    with Session() as session:
        daod = get_dataset(ZEE_DAOD, session=session)
        assert (daod.conditions_tag, daod.tags_pending) == (conditions, False)
        assert not session.scalars(
            select(Dataset.name).where(Dataset.tags_pending)
        ).all()
        assert check_derived(session=session) == []


def test_derive_check_reads_the_catalogue_in_batches_and_finds_the_same(Session, world):
    """``derive --check`` reads a few datasets at a time (memory stays flat
    on a large catalogue) and finds what one batch of all of them finds:
    a wrong count, a wrong name column and a missing edge.
    """
    with Session.begin() as session:
        seed_catalog(world, session=session)
        daod = get_dataset(ZEE_DAOD, session=session)
        evnt = get_dataset(ZEE_EVNT, session=session)
        daod.n_files += 1
        evnt.data_type = "EVGEN"
        aod = get_dataset(ZEE_AOD, session=session)
        session.execute(delete(ProvenanceEdge).where(ProvenanceEdge.child_id == aod.id))

    found = []
    for batch in (3, 10_000):
        with Session() as session:
            found.append(
                [
                    (d.dataset, d.field)
                    for d in check_derived(session=session, batch=batch)
                ]
            )
            session.rollback()

    assert found[0] == found[1]
    assert {(ZEE_DAOD, "nFiles"), (ZEE_EVNT, "dataType"), (ZEE_AOD, "parents")} <= set(
        found[0]
    )


def test_derive_check_finds_a_dataset_that_would_miss_its_tag(Session, world):
    """A dataset not flagged while a tag of its chain is missing would keep
    its configuration when the tag arrives: the check reports it.
    """
    with Session.begin() as session:
        seed_catalog(world, session=session)
        session.execute(delete(AmiTag).where(AmiTag.tag == "p4164"))
        refresh_all(session=session)
    with Session.begin() as session:
        assert get_dataset(ZEE_DAOD, session=session).tags_pending is True
        session.execute(
            update(Dataset).where(Dataset.name == ZEE_DAOD).values(tags_pending=False)
        )

    with Session() as session:
        differences = check_derived(session=session)

    assert [(d.dataset, d.field, d.stored, d.recomputed) for d in differences] == [
        (ZEE_DAOD, "tagsPending", False, True)
    ]


def test_a_version_that_is_no_tag_chain_gives_no_configuration(Session, world):
    with Session.begin() as session:
        seed_catalog(world, session=session)
        daod = get_dataset(ZEE_DAOD, session=session)
        assert daod.atlas_release is not None
        daod.version = "e3601_s3126_r10724_p4164-fix"
        session.flush()

        refresh_changed([daod.id], session=session)

    with Session() as session:
        daod = get_dataset(ZEE_DAOD, session=session)
        assert (daod.atlas_release, daod.conditions_tag, daod.geometry_version) == (
            None,
            None,
            None,
        )


def test_the_provenance_of_a_dataset_with_many_children_takes_few_queries(
    Session,  # noqa: N803
    catalog_engine,
):
    """Its children are read with their edges, not one query each (a
    dataset of thousands of descendants took tens of seconds)."""
    parent_name = "mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.evgen.EVNT.e3601"
    with Session.begin() as session:
        parent = add_dataset(parent_name, "prodsys", session=session)
        for number in range(40):
            child = add_dataset(
                f"mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.simul.HITS.e3601_s{number}",
                "prodsys",
                session=session,
            )
            session.add(ProvenanceEdge(parent=parent, child=child))
    with Session() as session:
        parent = get_dataset(parent_name, session=session)
        with statements_of(catalog_engine) as statements:
            graph = get_provenance(parent, session=session)

    assert len(graph.nodes) == 41 and len(graph.edges) == 40
    assert len(statements) <= 10, f"{len(statements)} queries for 41 datasets"


def _evnt_with_files(session, number: int, files: list[tuple[int, float]]) -> str:
    """An EVNT dataset whose finished files carry these (events,
    cross-section); its name.
    """
    name = f"mc16_13TeV.{450000 + number}.Range.evgen.EVNT.e{number}"
    dataset = add_dataset(name, "prodsys", session=session)
    session.flush()
    for n, (events, section) in enumerate(files):
        session.add(
            File(
                dataset_id=dataset.id,
                lfn=f"EVNT.{dataset.id}._{n:06d}.pool.root.1",
                guid=f"g{dataset.id}-{n}",
                status="finished",
                events=events,
                size=1,
                cross_section=section,
            )
        )
    return name


@pytest.fixture
def out_of_range(Session):
    """Three EVNT datasets, marked stale, as a catalogue written before
    ingestion bounded file values holds them: one whose events sum past
    BIGINT, one whose cross-sections sum past a double, one as usual.
    Return their names.
    """
    with Session.begin() as session:
        names = [
            _evnt_with_files(session, 1, [(2**62, 1.0), (2**62, 1.0)]),
            _evnt_with_files(session, 2, [(10, 1e308), (10, 1e308)]),
            _evnt_with_files(session, 3, [(10, 2.0), (20, 4.0)]),
        ]
        session.flush()
        ids = [get_dataset(name, session=session).id for name in names]
        session.add_all(DatasetStale(dataset_id=id_, mark=1) for id_ in ids)
    return names


def test_a_dataset_whose_sums_overflow_holds_back_no_other(
    Session,  # noqa: N803
    out_of_range,
    caplog,
):
    events, sections, usual = out_of_range

    with Session.begin() as session:
        refreshed = refresh_stale(session=session)

    with Session() as session:
        shown = {
            name: (d.n_files, d.total_events, d.cross_section)
            for name in out_of_range
            for d in [get_dataset(name, session=session)]
        }
        stale = session.scalars(select(DatasetStale.dataset_id)).all()
    assert refreshed == 3 and stale == []
    assert shown[usual] == (2, 30, 3.0)
    assert shown[events] == shown[sections] == (0, 0, None)  # as they were
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(events in line and "not recomputed" in line for line in logged)
    assert any(
        sections in line and "OverflowError: intermediate overflow in fsum" in line
        for line in logged
    )


def test_derive_check_reports_a_dataset_it_cannot_recompute(
    Session,  # noqa: N803
    catalog_engine,
    out_of_range,
    tmp_path,
):
    events, sections, usual = out_of_range
    url = catalog_engine.url.render_as_string(False)

    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "derive", "--check"],
        env={"HEPCAT_DATABASE_URL": url},
    )

    assert result.exit_code == 1, result.output
    assert f"{events}: derived values not recomputed: " in result.stdout
    assert (
        f"{sections}: derived values not recomputed: "
        "OverflowError: intermediate overflow in fsum"
    ) in result.stdout
    assert f"{usual}: totalEvents is 0, recomputed 30" in result.stdout
    assert result.stdout.endswith(", 2 datasets not recomputed\n")
    assert "Traceback" not in result.output
