"""Fill an empty catalogue with a :class:`~ingest.world.World` directly,
without the sources and the ingesters.

It writes the rows the ingesters would write, then derives every quantity:
the tests compare an ingested catalogue with one written this way, and use it
where a populated catalogue is all they need. The reference rows (projects,
types, steps) come with the datasets, through
:func:`~catalog.datasets.add_dataset`, as they do when ingesting.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from catalog.datasets import add_dataset
from catalog.derived import refresh_all
from catalog.lumiblocks import parse_lumi_blocks, ranges
from catalog.models import (
    AmiTag,
    Dataset,
    File,
    FileLumiRange,
    Period,
    PeriodRun,
    ProductionTask,
    ProvenanceEdge,
    Run,
)
from catalog.nomenclature import parse_tag
from catalog.provenance import link_tier0
from ingest.world import DatasetSpec, FileSpec, TaskSpec, World


def seed_catalog(world: World, *, session: Session) -> int:
    """Write *world* into the catalogue; return the number of datasets."""
    _tags(world, session=session)
    _runs(world, session=session)
    for task in world.tasks:
        session.add(_task(task))
    session.flush()
    datasets = {spec.name: _dataset(spec, session=session) for spec in world.datasets}
    session.flush()
    for task in world.tasks:
        _provenance(task, datasets, session=session)
    link_tier0(datasets.values(), session=session)
    refresh_all(session=session)
    return len(datasets)


def _tags(world: World, *, session: Session) -> None:
    for spec in world.tags:
        tag = parse_tag(spec.tag)
        session.add(
            AmiTag(
                tag=spec.tag,
                tag_type=tag.letter,
                tag_number=tag.number,
                transformation=spec.transformation,
                release=spec.release,
                description=spec.description,
                parameters=json.dumps(spec.parameters, sort_keys=True),
            )
        )


def _runs(world: World, *, session: Session) -> None:
    for run in world.runs:
        session.add(
            Run(
                run_number=run.run_number,
                project=run.project,
                start_time=run.start_time,
                end_time=run.end_time,
                n_lumi_blocks=run.n_lumi_blocks,
                stable_beams=run.stable_beams,
            )
        )
    for spec in world.periods:
        period = Period(
            project=spec.project,
            name=spec.period,
            level=spec.level,
            description=spec.description,
        )
        period.runs = [PeriodRun(run_number=number) for number in spec.runs]
        session.add(period)


def _task(task: TaskSpec) -> ProductionTask:
    return ProductionTask(
        task_id=task.task_id,
        parent_task_id=task.parent_task_id,
        name=task.name,
        project=task.project,
        step_name=task.step_name,
        status=task.status,
        ctag=task.ctag,
        input_dataset=task.input_dataset,
        campaign=task.campaign,
        username=task.username,
        total_events=task.total_events,
        submit_time=task.submit_time,
        source_timestamp=task.submit_time,
    )


def _dataset(spec: DatasetSpec, *, session: Session) -> Dataset:
    fields: dict[str, object] = {"created": spec.created, "task_id": spec.task_id}
    if spec.source == "tier0":
        fields["tier0_n_files"] = len(spec.files)
        fields["tier0_total_events"] = sum(f.events for f in spec.files)
        fields["tier0_total_size"] = sum(f.size for f in spec.files)
    dataset = add_dataset(spec.name, spec.source, session=session, **fields)
    session.flush()
    for file in spec.files:
        session.add(_file(file, dataset.id))
    return dataset


def _file(spec: FileSpec, dataset_id: int) -> File:
    file = File(
        dataset_id=dataset_id,
        lfn=spec.lfn,
        guid=spec.guid,
        size=spec.size,
        checksum=spec.checksum,
        events=spec.events,
        status=spec.status,
        lumi_blocks=spec.lumi_blocks,
        cross_section=spec.cross_section,
        gen_filt_eff=spec.gen_filt_eff,
    )
    blocks = parse_lumi_blocks(spec.lumi_blocks)
    file.lumi_ranges = [FileLumiRange(first=a, last=b) for a, b in ranges(blocks)]
    return file


def _provenance(
    task: TaskSpec, datasets: dict[str, Dataset], *, session: Session
) -> None:
    parent = datasets.get(task.input_dataset) if task.input_dataset else None
    if parent is None:
        return
    for output in task.outputs:
        child = datasets[output]
        session.add(
            ProvenanceEdge(parent_id=parent.id, child_id=child.id, task_id=task.task_id)
        )
