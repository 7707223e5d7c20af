"""Derived quantities of datasets, exactly as DESIGN.md defines them.

Each function recomputes one quantity of one dataset from the rows it depends
on. Ingesters call :func:`refresh_dataset` for the datasets a change touched;
``hepcat derive --check`` recomputes everything and reports differences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.lumiblocks import format_lumi_blocks, parse_lumi_blocks
from catalog.models import (
    AMI_TRASHED,
    AMI_VALID,
    Dataset,
    File,
    Period,
    PeriodRun,
    ProductionTask,
    ProvenanceEdge,
)
from catalog.models.datasets import SOURCE_TIER0
from catalog.provenance import descendants

DONE_TASK = {"done", "finished"}
FAILED_TASK = {"failed", "broken", "aborted"}
OBSOLETE_TASK = {"obsolete"}
TRASHING_TASK = {"aborted", "obsolete"}

ALL_EVENTS = "ALL EVENTS AVAILABLE"
SOME_EVENTS = "EVENTS PARTIALLY AVAILABLE"
NO_EVENTS = "NO EVENTS AVAILABLE"
TASK_FAILED = "TASK FAILED"
TASK_OBSOLETE = "TASK OBSOLETE"


def counted_files(dataset: Dataset) -> Any:
    """The condition selecting the files that count for *dataset*: ProdSys
    files with status ``finished`` (every Tier-0 file), less those DDM lost.
    """
    condition = (File.dataset_id == dataset.id) & (File.lost.is_(False))
    if dataset.source != SOURCE_TIER0:
        condition = condition & (File.status == "finished")
    return condition


def refresh_counts(dataset: Dataset, *, session: Session) -> None:
    """Set ``nFiles``, ``totalEvents`` and ``totalSize`` from the files."""
    query = select(
        func.count(File.id), func.sum(File.events), func.sum(File.size)
    ).where(counted_files(dataset))
    n_files, events, size = session.execute(query).one()
    dataset.n_files = int(n_files or 0)
    dataset.total_events = int(events or 0)
    dataset.total_size = int(size or 0)


def prodsys_status(task_status: str | None, n_files: int) -> str | None:
    """The ``prodsysStatus`` of a dataset made by a task in *task_status*."""
    status = (task_status or "").lower()
    if status in DONE_TASK:
        return ALL_EVENTS if n_files else NO_EVENTS
    if status in FAILED_TASK:
        return TASK_FAILED
    if status in OBSOLETE_TASK:
        return TASK_OBSOLETE
    if status:
        return SOME_EVENTS if n_files else NO_EVENTS
    return None


def refresh_status(dataset: Dataset, *, session: Session) -> None:
    """Set ``amiStatus``: ``TRASHED`` when DDM erased the dataset or its task
    was aborted or made obsolete, with why and when; ``VALID`` otherwise.
    """
    task = session.get(ProductionTask, dataset.task_id) if dataset.task_id else None
    task_status = (task.status or "").lower() if task is not None else ""
    if dataset.ddm_erased is not None:
        _trash(dataset, "erased in DDM", dataset.ddm_erased, "DDM")
    elif task is not None and task_status in TRASHING_TASK:
        when = task.source_timestamp or task.modified
        _trash(
            dataset, f"ProdSys task {task.task_id} is {task_status}", when, "ProdSys"
        )
    else:
        dataset.ami_status = AMI_VALID
        dataset.trash_annotation = dataset.trash_date = dataset.trash_trigger = None


def _trash(dataset: Dataset, annotation: str, when: Any, trigger: str) -> None:
    dataset.ami_status = AMI_TRASHED
    dataset.trash_annotation = annotation
    dataset.trash_date = when
    dataset.trash_trigger = trigger


def refresh_production(dataset: Dataset, *, session: Session) -> None:
    """Set ``prodsysStatus`` and ``completion`` from the producing task."""
    if dataset.source == SOURCE_TIER0:
        done = dataset.tier0_state == "DONE"
        dataset.prodsys_status = ALL_EVENTS if done else None
        return
    task = session.get(ProductionTask, dataset.task_id) if dataset.task_id else None
    if task is None:
        return
    dataset.prodsys_status = prodsys_status(task.status, dataset.n_files)
    if task.total_events:
        share = 100.0 * dataset.total_events / task.total_events
        dataset.completion = round(min(share, 100.0), 2)


@dataclass(frozen=True)
class CrossSection:
    mean: float | None
    minimum: float | None
    maximum: float | None
    filter_efficiency: float | None


def evnt_cross_section(dataset: Dataset, *, session: Session) -> CrossSection:
    """The cross-section of an EVNT dataset: mean, min and max over its
    counted files that carry one (nb), and the mean filter efficiency.
    """
    where = counted_files(dataset)
    sections = _values(session, File.cross_section, where)
    efficiencies = _values(session, File.gen_filt_eff, where)
    if not sections:
        return CrossSection(None, None, None, _mean(efficiencies))
    return CrossSection(
        fmean(sections), min(sections), max(sections), _mean(efficiencies)
    )


def _values(session: Session, column: Any, where: Any) -> list[float]:
    query = select(column).where(where, column.is_not(None))
    return [float(value) for value in session.scalars(query)]


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None


def nearest_evnt_ancestor(dataset: Dataset, *, session: Session) -> Dataset | None:
    """The nearest EVNT dataset among *dataset* and its ancestors."""
    frontier, seen = [dataset], {dataset.id}
    while frontier:
        evnt = sorted((d for d in frontier if d.data_type == "EVNT"), key=_name)
        if evnt:
            return evnt[0]
        frontier = [p for p in _parents(frontier, session=session) if p.id not in seen]
        seen.update(p.id for p in frontier)
    return None


def _name(dataset: Dataset) -> str:
    return dataset.name


def _parents(datasets: Iterable[Dataset], *, session: Session) -> list[Dataset]:
    ids = [d.id for d in datasets]
    query = (
        select(Dataset)
        .join(ProvenanceEdge, ProvenanceEdge.parent_id == Dataset.id)
        .where(ProvenanceEdge.child_id.in_(ids))
    )
    return list(session.scalars(query).unique())


def refresh_cross_section(dataset: Dataset, *, session: Session) -> None:
    """Set the cross-section fields from the nearest EVNT ancestor."""
    source = nearest_evnt_ancestor(dataset, session=session)
    values = (
        evnt_cross_section(source, session=session)
        if source is not None
        else CrossSection(None, None, None, None)
    )
    dataset.cross_section = values.mean
    dataset.cross_section_min = values.minimum
    dataset.cross_section_max = values.maximum
    dataset.gen_filt_eff = values.filter_efficiency
    has_values = values.mean is not None or values.filter_efficiency is not None
    dataset.cross_section_source_id = source.id if source and has_values else None


def refresh_period(dataset: Dataset, *, session: Session) -> None:
    """Set ``period``: the COMA periods (all levels, sorted) holding its run."""
    if dataset.run_number is None:
        dataset.period = None
        return
    query = (
        select(Period.name)
        .join(PeriodRun, PeriodRun.period_id == Period.id)
        .where(
            PeriodRun.run_number == dataset.run_number,
            Period.project == dataset.project_name,
        )
    )
    names = sorted(set(session.scalars(query)))
    dataset.period = ",".join(names) or None


def file_lumi_blocks(dataset: Dataset, *, session: Session) -> set[int]:
    """The lumi blocks present in the counted files of *dataset*."""
    query = select(File.lumi_blocks).where(counted_files(dataset))
    blocks: set[int] = set()
    for text in session.scalars(query):
        blocks |= parse_lumi_blocks(text)
    return blocks


def raw_dataset_of(dataset: Dataset, *, session: Session) -> Dataset | None:
    """The RAW dataset of the same run and stream as *dataset*."""
    query = select(Dataset).where(
        Dataset.run_number == dataset.run_number,
        Dataset.stream_name == dataset.stream_name,
        Dataset.project_name == dataset.project_name,
        Dataset.data_type == "RAW",
    )
    return session.scalars(query.order_by(Dataset.name)).first()


def refresh_lost_lumi_blocks(dataset: Dataset, *, session: Session) -> None:
    """Set the lumi blocks in the run's RAW files missing from this dataset."""
    raw = None
    if dataset.run_number is not None and dataset.data_type != "RAW":
        raw = raw_dataset_of(dataset, session=session)
    if raw is None:
        dataset.n_lost_lumi_blocks = None
        dataset.lost_lumi_blocks = None
        return
    lost = file_lumi_blocks(raw, session=session) - file_lumi_blocks(
        dataset, session=session
    )
    dataset.n_lost_lumi_blocks = len(lost)
    dataset.lost_lumi_blocks = format_lumi_blocks(lost) if lost else None


def refresh_dataset(dataset: Dataset, *, session: Session) -> None:
    """Recompute every derived quantity of *dataset* that depends on its own
    rows, its producing task, its runs and its ancestors.
    """
    session.flush()
    refresh_counts(dataset, session=session)
    refresh_production(dataset, session=session)
    refresh_status(dataset, session=session)
    refresh_cross_section(dataset, session=session)
    refresh_period(dataset, session=session)
    refresh_lost_lumi_blocks(dataset, session=session)


def affected(ids: Iterable[int], *, session: Session) -> set[int]:
    """The datasets whose derived values may change when the rows of the
    datasets *ids* change: themselves; the descendants of an EVNT dataset
    (its cross-section flows down) or of a dataset that gained a parent; and
    for a RAW dataset, the datasets of the same run and stream (their lost
    lumi blocks are measured against it).
    """
    ids = set(ids)
    if not ids:
        return set()
    datasets = session.scalars(select(Dataset).where(Dataset.id.in_(sorted(ids))))
    found = set(ids)
    for dataset in datasets:
        if dataset.data_type == "EVNT":
            found |= descendants([dataset.id], session=session)
        if dataset.data_type == "RAW":
            found |= _same_run(dataset, session=session)
    return found


def _same_run(raw: Dataset, *, session: Session) -> set[int]:
    query = select(Dataset.id).where(
        Dataset.run_number == raw.run_number,
        Dataset.stream_name == raw.stream_name,
        Dataset.project_name == raw.project_name,
    )
    return set(session.scalars(query))


def refresh_changed(
    changed: Iterable[int], gained: Iterable[int] = (), *, session: Session
) -> int:
    """Refresh what depends on the datasets *changed* (their rows changed)
    and on *gained* (they gained a parent): see :func:`affected`.
    """
    session.flush()
    gained = set(gained)
    ids = affected(set(changed) | gained, session=session)
    return refresh_datasets(ids | descendants(gained, session=session), session=session)


def refresh_datasets(ids: Iterable[int], *, session: Session) -> int:
    """Refresh every derived value of the datasets *ids*; return how many."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for dataset in session.scalars(select(Dataset).where(Dataset.id.in_(chunk))):
            refresh_dataset(dataset, session=session)
    return len(ordered)


def refresh_all(*, session: Session) -> int:
    """Recompute every derived quantity of every dataset; return how many.

    No order is needed: each quantity is computed from source rows (files,
    tasks, runs), never from another dataset's derived values.
    """
    datasets = session.scalars(select(Dataset).order_by(Dataset.id)).all()
    for dataset in datasets:
        refresh_dataset(dataset, session=session)
    return len(datasets)
