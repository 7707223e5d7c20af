"""Derived quantities of datasets, exactly as DESIGN.md defines them.

Each quantity is recomputed from the rows it depends on, for a batch of
datasets at a time. Ingesters mark stale the datasets a change touched
(:func:`mark_changed`) and recompute them (:func:`refresh_stale`,
:func:`refresh_changed`); ``hepcat derive --check`` recomputes everything and
reports differences.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from catalog.datasets import counted_files, file_totals
from catalog.db import among, chunked, has_skip_locked
from catalog.ddm import refresh_ddm_batch, spoken_of
from catalog.errors import InvalidName
from catalog.lumiblocks import format_lumi_blocks, parse_lumi_blocks
from catalog.models import (
    AMI_TRASHED,
    AMI_VALID,
    AmiTag,
    Dataset,
    DatasetAmiTag,
    DatasetStale,
    File,
    Period,
    PeriodRun,
    ProductionTask,
    ProvenanceEdge,
)
from catalog.models.datasets import SOURCE_TIER0
from catalog.nomenclature import parse_tag_chain
from catalog.provenance import descendants
from catalog.tier0 import DONE, refresh_tier0_batch
from catalog.upsert import update_same, update_values

logger = logging.getLogger(__name__)

DONE_TASK = {"done", "finished"}
FAILED_TASK = {"failed", "broken", "aborted"}
OBSOLETE_TASK = {"obsolete"}
TRASHING_TASK = {"aborted", "obsolete"}

ALL_EVENTS = "ALL EVENTS AVAILABLE"
SOME_EVENTS = "EVENTS PARTIALLY AVAILABLE"
NO_EVENTS = "NO EVENTS AVAILABLE"
TASK_FAILED = "TASK FAILED"
TASK_OBSOLETE = "TASK OBSOLETE"


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


def _set_status(dataset: Dataset, task: ProductionTask | None) -> None:
    """Set ``amiStatus``: ``TRASHED`` when DDM erased the dataset or its task
    was aborted or made obsolete, with why and when; ``VALID`` otherwise.
    """
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


def _set_production(dataset: Dataset, task: ProductionTask | None) -> None:
    """Set ``prodsysStatus`` and ``completion`` from the producing task:
    ``completion`` in percent, rounded down to two decimals, none when the
    task says no number of events (NULL or 0).
    """
    if dataset.source == SOURCE_TIER0:
        # DONE: its files add up to Tier-0's counts (catalog.tier0); READY:
        # some are missing yet, as from a task still running.
        if dataset.tier0_state == DONE:
            dataset.prodsys_status = ALL_EVENTS
        else:
            dataset.prodsys_status = SOME_EVENTS if dataset.n_files else NO_EVENTS
        return
    if task is None:
        return
    dataset.prodsys_status = prodsys_status(task.status, dataset.n_files)
    if task.total_events:
        # Rounded down, in whole hundredths of a percent: a dataset short of
        # its task's events by however little never shows 100.
        hundredths = 10_000 * dataset.total_events // task.total_events
        dataset.completion = min(hundredths, 10_000) / 100
    else:
        dataset.completion = None


@dataclass(frozen=True)
class CrossSection:
    mean: float | None
    minimum: float | None
    maximum: float | None
    filter_efficiency: float | None


NO_CROSS_SECTION = CrossSection(None, None, None, None)
# Provenance chains are a handful of steps; a deeper walk means a cycle.
MAX_DEPTH = 30
# Datasets refreshed together, with one query per quantity.
BATCH = 1000
# The columns of a producing task that derived quantities depend on.
TASK_COLUMNS = ("task_id", "status", "total_events", "username")
# And of a task that trashed its datasets (aborted or obsolete): when.
TRASH_TIME_COLUMNS = ("source_timestamp", "modified")
# Datasets changed alike from which one statement writes them all.
SAME_CHANGE = 20
# The columns derived quantities set, but for DDM's and Tier-0's (which only
# Tier-0 datasets have: never a new dataset of ProdSys).
DERIVED_COLUMNS = (
    "n_files",
    "total_events",
    "total_size",
    "prodsys_status",
    "completion",
    "ami_status",
    "trash_annotation",
    "trash_date",
    "trash_trigger",
    "cross_section",
    "cross_section_min",
    "cross_section_max",
    "gen_filt_eff",
    "cross_section_source_id",
    "period",
    "n_lost_lumi_blocks",
    "lost_lumi_blocks",
    "atlas_release",
    "conditions_tag",
    "geometry_version",
    "requested_by",
    "tags_pending",
)
# The tables of datasets and of their stale marks, for statements that
# bypass the ORM's bookkeeping.
DATASET: Table = Dataset.__table__  # type: ignore[assignment]
STALE: Table = DatasetStale.__table__  # type: ignore[assignment]


def _cross_sections(ids: Sequence[int], *, session: Session) -> dict[int, CrossSection]:
    """The cross-section of each EVNT dataset *ids*: mean, min and max over
    its counted files that carry one (nb), and the mean filter efficiency.

    The means are taken here, with sums rounded once (:func:`math.fsum`): a
    database's ``AVG`` adds in the order it reads the rows, which an update
    can change, and a replayed source would move the last digit.
    """
    if not ids:
        return {}
    query = (
        select(File.dataset_id, File.cross_section, File.gen_filt_eff)
        .join(Dataset, Dataset.id == File.dataset_id)
        .where(counted_files(ids))
    )
    files: dict[int, list[tuple[Any, Any]]] = {}
    for dataset_id, section, efficiency in session.execute(query):
        files.setdefault(dataset_id, []).append((section, efficiency))
    return {dataset_id: _cross_section(pairs) for dataset_id, pairs in files.items()}


def _cross_section(files: Sequence[tuple[Any, Any]]) -> CrossSection:
    """The cross-section of a dataset whose counted *files* carry these
    (cross-section, filter efficiency) values, None where they carry none.
    """
    sections = [float(s) for s, _ in files if s is not None]
    efficiencies = [float(e) for _, e in files if e is not None]
    return CrossSection(
        _mean(sections),
        min(sections, default=None),
        max(sections, default=None),
        _mean(efficiencies),
    )


def _mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean of *values*, whatever their order (None for none)."""
    return math.fsum(values) / len(values) if values else None


def _evnt_sources(datasets: Sequence[Dataset], *, session: Session) -> dict[int, int]:
    """The nearest EVNT dataset among each dataset and its ancestors (by id;
    among EVNT ancestors at the same distance, the first by name).
    """
    found = {d.id: d.id for d in datasets if d.data_type == "EVNT"}
    reach = {d.id: {d.id} for d in datasets if d.data_type != "EVNT"}
    seen = {origin: set(nodes) for origin, nodes in reach.items()}
    for _ in range(MAX_DEPTH):
        if not reach:
            break
        parents = _parents_of(set().union(*reach.values()), session=session)
        info = {pid: v for level in parents.values() for pid, v in level.items()}
        next_reach: dict[int, set[int]] = {}
        for origin, nodes in reach.items():
            candidates = {p for n in nodes for p in parents.get(n, ())} - seen[origin]
            evnt = sorted((info[p][0], p) for p in candidates if info[p][1] == "EVNT")
            if evnt:
                found[origin] = evnt[0][1]
            elif candidates:
                next_reach[origin] = candidates
                seen[origin] |= candidates
        reach = next_reach
    return found


def _parents_of(
    ids: set[int], *, session: Session
) -> dict[int, dict[int, tuple[str, str | None]]]:
    """For each dataset of *ids*, its parents: id to (name, dataType)."""
    query = (
        select(ProvenanceEdge.child_id, Dataset.id, Dataset.name, Dataset.data_type)
        .join(Dataset, Dataset.id == ProvenanceEdge.parent_id)
        .where(among(ProvenanceEdge.child_id, sorted(ids)))
    )
    parents: dict[int, dict[int, tuple[str, str | None]]] = {}
    for child, parent, name, kind in session.execute(query):
        parents.setdefault(child, {})[parent] = (name, kind)
    return parents


def _set_cross_section(
    dataset: Dataset, source: int | None, sections: dict[int, CrossSection]
) -> None:
    values = sections.get(source, NO_CROSS_SECTION) if source else NO_CROSS_SECTION
    dataset.cross_section = values.mean
    dataset.cross_section_min = values.minimum
    dataset.cross_section_max = values.maximum
    dataset.gen_filt_eff = values.filter_efficiency
    has_values = values.mean is not None or values.filter_efficiency is not None
    dataset.cross_section_source_id = source if has_values else None


def _periods(
    datasets: Sequence[Dataset], *, session: Session
) -> dict[tuple[str, int], str]:
    """``period`` of each (project, run): the COMA periods (all levels,
    sorted) holding the run.
    """
    runs = sorted({d.run_number for d in datasets if d.run_number is not None})
    if not runs:
        return {}
    query = (
        select(Period.project, PeriodRun.run_number, Period.name)
        .join(PeriodRun, PeriodRun.period_id == Period.id)
        .where(PeriodRun.run_number.in_(runs))
    )
    names: dict[tuple[str, int], set[str]] = {}
    for project, run, name in session.execute(query):
        names.setdefault((project, run), set()).add(name)
    return {key: ",".join(sorted(found)) for key, found in names.items()}


@dataclass(frozen=True)
class Configuration:
    """What a dataset's tag chain says of how it was made: the release of
    its last tag [``AtlasRelease``], and the conditions tag and geometry
    version [``conditionsTag``, ``geometryVersion``] of the last tag whose
    parameters give them; and whether a tag of the chain is not catalogued
    yet (*pending*: it may change when the tag arrives).
    """

    release: str | None
    conditions_tag: str | None
    geometry_version: str | None
    pending: bool = False


NO_CONFIGURATION = Configuration(None, None, None)
# A version none of whose tags is catalogued (none of them parsed).
WAITING = Configuration(None, None, None, pending=True)
# The parameters of a tag that give the dataset's columns, by column.
CONFIGURATION_PARAMETERS = {
    "conditions_tag": "conditionsTag",
    "geometry_version": "geometryVersion",
}


def _configurations(
    datasets: Sequence[Dataset], *, session: Session
) -> dict[str, Configuration]:
    """The configuration of each version (tag chain) of *datasets*, from
    the AMI tags of all their chains, read in one query. A version none of
    whose tags is catalogued gives none, and is not parsed: a bite of new
    datasets may hold thousands of versions (:func:`_set_configuration`
    takes such a version as waiting for its tags).
    """
    versions = {d.version for d in datasets if d.version}
    parts = {version: version.split("_") for version in versions}
    tags = sorted({tag for found in parts.values() for tag in found})
    held = _tag_configurations(tags, session=session) if tags else {}
    if not held:
        return {}
    known = held.keys()
    chains = {v: _chain(v) for v, found in parts.items() if not known.isdisjoint(found)}
    return {
        v: _configuration(chain, held, pending=not known >= set(chain))
        for v, chain in chains.items()
        if chain
    }


def _tag_configurations(
    tags: Sequence[str], *, session: Session
) -> dict[str, tuple[str | None, dict[str, str]]]:
    """The catalogued tags among *tags*: each one's release, and the values
    of :data:`CONFIGURATION_PARAMETERS` its parameters give, by column.
    """
    query = select(AmiTag.tag, AmiTag.release, AmiTag.parameters).where(
        among(AmiTag.tag, tags)
    )
    held = {}
    for tag, release, text in session.execute(query):
        parameters = _parameters(text)
        given = {
            column: parameters[name]
            for column, name in CONFIGURATION_PARAMETERS.items()
            if _fits(parameters.get(name), column)
        }
        held[tag] = (release, given)
    return held


def _chain(version: str) -> tuple[str, ...]:
    """The tags of the chain *version*, as the catalogue keys them (none
    when it does not parse: the dataset then has no configuration).
    """
    try:
        return tuple(str(tag) for tag in parse_tag_chain(version))
    except InvalidName:
        return ()


def _parameters(text: str | None) -> dict[str, Any]:
    """A tag's parameters (a JSON object; anything else gives none)."""
    try:
        parameters = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return parameters if isinstance(parameters, dict) else {}


def _configuration(
    chain: Sequence[str],
    held: dict[str, tuple[str | None, dict[str, str]]],
    *,
    pending: bool,
) -> Configuration:
    """The configuration of a dataset made through *chain*, from the tags
    *held* (tag to release and the values its parameters give; a tag
    missing gives nothing, and the configuration is then *pending*).
    """
    release = held[chain[-1]][0] if chain[-1] in held else None
    found: dict[str, str | None] = dict.fromkeys(CONFIGURATION_PARAMETERS)
    for tag in reversed(chain):
        given = held[tag][1] if tag in held else {}
        for column, value in given.items():
            if found[column] is None:
                found[column] = value
    conditions, geometry = found["conditions_tag"], found["geometry_version"]
    return Configuration(release, conditions, geometry, pending)


def _fits(value: Any, column: str) -> bool:
    """Whether *value* is text that the dataset's *column* can hold: a tag
    whose parameter is anything else does not give it.
    """
    length = DATASET.c[column].type.length  # type: ignore[attr-defined]
    return isinstance(value, str) and bool(value) and len(value) <= length


def _set_configuration(
    dataset: Dataset,
    configurations: dict[str, Configuration],
    task: ProductionTask | None,
) -> None:
    """Set the configuration the dataset's tag chain gives, whether it
    waits for a tag, and who asked for it: its producing task's requester.
    A dataset without a task keeps its requester (a skim's output is
    registered with the physicist's). A version :func:`_configurations`
    found no tag of waits for them all (one that does not parse as a chain
    too: it is only looked at in vain when a tag arrives).
    """
    version = dataset.version
    values = configurations.get(version or "", WAITING if version else NO_CONFIGURATION)
    dataset.tags_pending = values.pending
    dataset.atlas_release = values.release
    dataset.conditions_tag = values.conditions_tag
    dataset.geometry_version = values.geometry_version
    if task is not None:
        dataset.requested_by = task.username


def file_lumi_blocks(dataset: Dataset, *, session: Session) -> set[int]:
    """The lumi blocks present in the counted files of *dataset*."""
    return _file_lumi_blocks([dataset.id], session=session).get(dataset.id, set())


def _file_lumi_blocks(ids: Sequence[int], *, session: Session) -> dict[int, set[int]]:
    """The lumi blocks present in the counted files of each dataset *ids*
    (one query; a dataset without any is absent).
    """
    blocks: dict[int, set[int]] = {}
    if not ids:
        return blocks
    query = (
        select(File.dataset_id, File.lumi_blocks)
        .join(Dataset, Dataset.id == File.dataset_id)
        .where(counted_files(sorted(ids)))
    )
    for dataset_id, text in session.execute(query):
        blocks.setdefault(dataset_id, set()).update(parse_lumi_blocks(text))
    return blocks


def raw_dataset_of(dataset: Dataset, *, session: Session) -> Dataset | None:
    """The RAW dataset of the same run and stream as *dataset*."""
    raw = _raw_datasets([dataset], session=session).get(_run_key(dataset))
    return session.get(Dataset, raw) if raw is not None else None


# What pairs a dataset with its run's RAW dataset.
RUN_KEY = (Dataset.project_name, Dataset.run_number, Dataset.stream_name)


def _run_key(dataset: Dataset) -> tuple[Any, ...]:
    return dataset.project_name, dataset.run_number, dataset.stream_name


def _raw_datasets(
    datasets: Sequence[Dataset], *, session: Session
) -> dict[tuple[Any, ...], int]:
    """The RAW dataset (its id) of each (project, run, stream) of *datasets*
    that has one: the first by name (one query for all their runs).
    """
    keys = {_run_key(d) for d in datasets if d.run_number is not None}
    if not keys:
        return {}
    runs = sorted({run for _, run, _ in keys})
    query = (
        select(Dataset.id, *RUN_KEY)
        .where(Dataset.data_type == "RAW", among(Dataset.run_number, runs))
        .order_by(Dataset.name)
    )
    raws: dict[tuple[Any, ...], int] = {}
    for id_, project, run, stream in session.execute(query):
        if (project, run, stream) in keys:
            raws.setdefault((project, run, stream), id_)
    return raws


def refresh_lost_lumi_blocks(dataset: Dataset, *, session: Session) -> None:
    """Set the lumi blocks in the run's RAW files missing from this dataset
    (all of them for a dataset not yet inserted: it has no files).
    """
    refresh_lost_lumi_blocks_batch([dataset], session=session)


def refresh_lost_lumi_blocks_batch(
    datasets: Sequence[Dataset], *, session: Session
) -> None:
    """:func:`refresh_lost_lumi_blocks` for each of *datasets*, with two
    queries for them all (their runs' RAW datasets, then the lumi blocks of
    those and of the datasets): one per dataset took most of the time of
    ``derive --check``.
    """
    measured = [d for d in datasets if d.data_type != "RAW"]
    raws = _raw_datasets(measured, session=session)
    held = [d.id for d in measured if d.id is not None and _run_key(d) in raws]
    blocks = _file_lumi_blocks([*set(raws.values()), *held], session=session)
    for dataset in datasets:
        raw = raws.get(_run_key(dataset)) if dataset.data_type != "RAW" else None
        if raw is None:
            dataset.n_lost_lumi_blocks = None
            dataset.lost_lumi_blocks = None
            continue
        lost = blocks.get(raw, set())
        if dataset.id is not None:
            lost = lost - blocks.get(dataset.id, set())
        dataset.n_lost_lumi_blocks = len(lost)
        dataset.lost_lumi_blocks = format_lumi_blocks(lost) if lost else None


def _refresh_batch(datasets: Sequence[Dataset], *, session: Session) -> None:
    """Recompute the datasets *datasets*, with one query per quantity for
    the whole batch where the quantity allows it.
    """
    ids = [d.id for d in datasets]
    counts = file_totals(counted_files(ids), session=session)
    tasks = _tasks(datasets, session=session)
    sources = _evnt_sources(datasets, session=session)
    sections = _cross_sections(sorted(set(sources.values())), session=session)
    periods = _periods(datasets, session=session)
    configurations = _configurations(datasets, session=session)
    # Before the counts: the production status of a Tier-0 dataset follows
    # from whether it holds every file Tier-0 counts.
    refresh_tier0_batch(datasets, session=session)
    _set_counts(datasets, counts, tasks)
    # After the counts (DDM's are compared with them) and before the status
    # (an erase DDM reported before the dataset arrived trashes it).
    refresh_ddm_batch(datasets, session=session)
    found = Found(sources, sections, periods, configurations)
    _set_rest(datasets, tasks, found, session=session)


def _set_counts(
    datasets: Sequence[Dataset],
    counts: dict[int, tuple[int, int, int]],
    tasks: dict[int, Any],
) -> None:
    """Set the counts, and the production status that follows from them."""
    for dataset in datasets:
        task = tasks.get(dataset.task_id) if dataset.task_id else None
        dataset.n_files, dataset.total_events, dataset.total_size = counts.get(
            dataset.id, (0, 0, 0)
        )
        _set_production(dataset, task)


class Found(NamedTuple):
    """What a batch's queries found: the EVNT source of each dataset (by
    id) and their cross-sections, the periods of each (project, run), the
    configuration of each version.
    """

    sources: dict[int, int]
    sections: dict[int, CrossSection]
    periods: dict[tuple[str, int], str]
    configurations: dict[str, Configuration]


def _set_rest(
    datasets: Sequence[Dataset],
    tasks: dict[int, Any],
    found: Found,
    *,
    session: Session,
) -> None:
    """Set the status, cross-section, period, lost lumi blocks, and the
    configuration and requester.
    """
    refresh_lost_lumi_blocks_batch(datasets, session=session)
    for dataset in datasets:
        task = tasks.get(dataset.task_id) if dataset.task_id else None
        _set_status(dataset, task)
        _set_cross_section(dataset, found.sources.get(dataset.id), found.sections)
        run = dataset.run_number
        key = (dataset.project_name, run or 0)
        dataset.period = found.periods.get(key) if run is not None else None
        _set_configuration(dataset, found.configurations, task)


def derive_new(
    rows: Sequence[dict[str, Any]],
    *,
    session: Session,
    tasks: dict[int, Any] | None = None,
) -> set[str]:
    """Fill in the derived values of datasets about to be inserted (*rows*:
    columns by name, all with the same keys, no id), so that they need not
    be marked stale, read back and written again.

    A new dataset has no files yet, no parent and no descendant (linking
    comes after the insert and marks those that gain one), so its values
    follow from its producing task, its run's periods and RAW dataset, and
    the AMI tags of its version. DDM may have spoken of it before it
    arrived: return the names DDM has messages about, which the caller
    marks stale after the insert.

    :param tasks: their producing tasks, when the caller has just read them
        (:func:`producing_tasks`).
    """
    datasets = [NewDataset(row) for row in rows]
    if tasks is None:
        tasks = _tasks(datasets, session=session)  # type: ignore[arg-type]
    periods = _periods(datasets, session=session)  # type: ignore[arg-type]
    configurations = _configurations(datasets, session=session)  # type: ignore[arg-type]
    _set_counts(datasets, {}, tasks)  # type: ignore[arg-type]
    found = Found({}, {}, periods, configurations)
    _set_rest(datasets, tasks, found, session=session)  # type: ignore[arg-type]
    return spoken_of([row["name"] for row in rows], session=session)


def _tasks(datasets: Sequence[Dataset], *, session: Session) -> dict[int, Any]:
    """The producing tasks of *datasets*: see :func:`producing_tasks`."""
    ids = {d.task_id for d in datasets if d.task_id is not None}
    return producing_tasks(ids, session=session)


def producing_tasks(ids: Collection[int], *, session: Session) -> dict[int, Any]:
    """The tasks *ids* that are catalogued, as rows of the columns derived
    quantities read, by task id.
    """
    ids = sorted(ids)
    if not ids:
        return {}
    table = ProductionTask.__table__
    columns = [table.c[name] for name in TASK_COLUMNS]
    query = select(*columns).where(among(table.c.task_id, ids))
    tasks: dict[int, Any] = {t.task_id: t for t in session.execute(query).all()}
    # When a task trashed its datasets is read only for the few that did.
    trashing = [
        i for i, t in tasks.items() if (t.status or "").lower() in TRASHING_TASK
    ]
    if trashing:
        columns = [table.c[name] for name in TASK_COLUMNS + TRASH_TIME_COLUMNS]
        query = select(*columns).where(among(table.c.task_id, trashing))
        tasks.update({t.task_id: t for t in session.execute(query).all()})
    return tasks


def affected(ids: Iterable[int], *, session: Session) -> set[int]:
    """The datasets whose derived values may change when the rows of the
    datasets *ids* change: themselves; the descendants of an EVNT dataset
    (its cross-section flows down) or of a dataset that gained a parent; and
    for a RAW dataset, the datasets of the same run and stream (their lost
    lumi blocks are measured against it).
    """
    found = set(ids)
    ordered = sorted(found)
    for chunk in chunked(ordered):
        query = select(
            Dataset.id,
            Dataset.data_type,
            Dataset.run_number,
            Dataset.stream_name,
            Dataset.project_name,
        ).where(among(Dataset.id, chunk), Dataset.data_type.in_(("EVNT", "RAW")))
        for id_, data_type, run, stream, project in session.execute(query).all():
            if data_type == "EVNT":
                found |= descendants([id_], session=session)
            else:
                found |= _same_run(run, stream, project, session=session)
    return found


def _same_run(
    run: int | None, stream: str | None, project: str, *, session: Session
) -> set[int]:
    query = select(Dataset.id).where(
        Dataset.run_number == run,
        Dataset.stream_name == stream,
        Dataset.project_name == project,
    )
    return set(session.scalars(query))


def mark_changed(
    changed: Iterable[int], gained: Iterable[int] = (), *, session: Session
) -> set[int]:
    """Mark stale what depends on the datasets *changed* (their rows changed)
    and on *gained* (they gained a parent), see :func:`affected`, in the
    caller's transaction; return the ids marked. :func:`refresh_stale`
    recomputes them later (a crash in between leaves them marked).
    """
    session.flush()
    gained = set(gained)
    ids = affected(set(changed) | gained, session=session)
    ids |= descendants(gained, session=session)
    _raise_marks(sorted(ids), session=session)
    return ids


def mark_tagged(
    changed: Collection[str], added: Collection[str] = (), *, session: Session
) -> set[int]:
    """Mark stale the datasets whose version (tag chain) holds one of the
    AMI tags *changed* (catalogued before, with other values now) or *added*
    (new to the catalogue), in the caller's transaction; return their ids.

    A dataset whose chain holds an added tag was derived without it, so it
    is flagged ``tags_pending``: an added tag is looked for among the
    flagged datasets only (an index holds them), a changed one among all.
    Only the datasets themselves are marked: the configuration of a dataset
    comes from its own chain alone.
    """
    ids = _holding(changed, session=session)
    ids |= _holding(added, session=session, pending=True)
    _raise_marks(sorted(ids), session=session)
    return ids


def _holding(
    tags: Collection[str], *, session: Session, pending: bool = False
) -> set[int]:
    """The datasets whose version holds one of the AMI *tags* (with
    *pending*, among those flagged ``tags_pending``): ranges of
    ``dataset_ami_tag``'s key, in one query whatever the number of tags
    (nothing at all for none).
    """
    if not tags:
        return set()
    query = select(DatasetAmiTag.dataset_id).where(
        among(DatasetAmiTag.tag, sorted(tags))
    )
    if pending:
        query = query.join(DATASET, DATASET.c.id == DatasetAmiTag.dataset_id)
        query = query.where(DATASET.c.tags_pending)
    return set(session.scalars(query.distinct()))


def _raise_marks(ids: Sequence[int], *, session: Session) -> None:
    """Raise the stale mark of the datasets *ids* by one (from none to 1)."""
    if not ids:
        return
    dialect = session.get_bind().dialect.name
    # A literal: pymysql's executemany cannot take a parameter after VALUES.
    raised = STALE.c.mark + literal_column("1")
    if dialect == "postgresql":
        # One statement over an array: thousands of marks per bite.
        listed = select(
            func.unnest(bindparam("ids", list(ids), type_=ARRAY(BigInteger))),
            literal_column("1"),
        )
        copied = postgresql.insert(STALE).from_select(["dataset_id", "mark"], listed)
        session.execute(
            copied.on_conflict_do_update(
                index_elements=["dataset_id"], set_={"mark": raised}
            )
        )
        return
    if dialect == "sqlite":
        # Likewise over a JSON array, the rows of json_each.
        each = func.json_each(bindparam("ids", json.dumps(list(ids)), type_=String()))
        values = each.table_valued("value")
        # "WHERE": else SQLite would read ON CONFLICT as the SELECT's join.
        listed = select(values.c.value, literal_column("1")).where(true())
        each_mark = sqlite.insert(STALE).from_select(["dataset_id", "mark"], listed)
        session.execute(
            each_mark.on_conflict_do_update(
                index_elements=["dataset_id"], set_={"mark": raised}
            )
        )
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(STALE).on_duplicate_key_update(mark=raised)
        session.execute(statement, [{"dataset_id": i, "mark": 1} for i in ids])
    else:
        _raise_marks_generic(ids, session=session)


def _raise_marks_generic(ids: Sequence[int], *, session: Session) -> None:
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        query = select(STALE.c.dataset_id).where(among(STALE.c.dataset_id, chunk))
        marked = set(session.scalars(query))
        if marked:
            raise_mark = update(STALE).where(among(STALE.c.dataset_id, marked))
            session.execute(raise_mark.values(mark=STALE.c.mark + 1))
        fresh = [{"dataset_id": i, "mark": 1} for i in chunk if i not in marked]
        if fresh:
            session.execute(STALE.insert(), fresh)


def refresh_changed(
    changed: Iterable[int], gained: Iterable[int] = (), *, session: Session
) -> int:
    """:func:`mark_changed`, then recompute the marked datasets at once."""
    return _refresh_marked(mark_changed(changed, gained, session=session), session)


def refresh_marking(ids: Iterable[int], *, session: Session) -> int:
    """Mark the datasets *ids* stale, then recompute them at once, in the
    caller's transaction; return how many. For a change whose datasets the
    caller knows (COMA's periods: :func:`refresh_changed` would look for
    more). Their rows locked, then their marks raised, they are held as
    :func:`_lock_stale` holds them: an ingester that changes one of their
    inputs meanwhile waits for this transaction to commit, and recomputes
    after it. The rows first: MariaDB's check of a mark's foreign key
    shares the dataset's row with an ingester raising that mark, which this
    transaction could then not write.
    """
    ordered = sorted(set(ids))
    for chunk in chunked(ordered):
        rows = select(DATASET.c.id).where(among(DATASET.c.id, chunk))
        session.execute(rows.order_by(DATASET.c.id).with_for_update())
    _raise_marks(ordered, session=session)
    return _refresh_marked(set(ordered), session)


def refresh_stale(*, session: Session, limit: int = 5000) -> int:
    """Recompute up to *limit* stale datasets; return how many (those
    another transaction holds wait for a later call: :func:`_lock_stale`).
    """
    return _refresh_marked(_lock_stale(limit, session=session), session)


def _lock_stale(limit: int, *, session: Session) -> set[int]:
    """Lock the marks of up to *limit* stale datasets, then their rows, in
    the order of their ids; return the ids of those locked both.

    An ingester that changes a dataset's input raises its mark afterwards,
    in the same transaction. Holding the mark before reading the inputs,
    this one reads every change whose mark was raised before, and any other
    waits to be raised until this one has committed (its mark then stays:
    it or a later call recomputes). Unlocked, that ingester could recompute
    the dataset and clear the mark meanwhile, and this transaction write
    the values of the old inputs over it, stale with no mark left.

    Marks and rows another transaction holds are skipped (it recomputes
    them or leaves them marked), so that this one waits for nothing once it
    holds a lock: an ingester that wrote a dataset's row, then waited for
    its mark, would wait for this one while this one waited for it.
    """
    skip = has_skip_locked(session.get_bind().dialect)
    query = select(STALE.c.dataset_id).order_by(STALE.c.dataset_id).limit(limit)
    marked = list(session.scalars(query.with_for_update(skip_locked=skip)))
    if not marked:
        return set()
    rows = select(DATASET.c.id).where(among(DATASET.c.id, marked))
    rows = rows.order_by(DATASET.c.id).with_for_update(skip_locked=skip)
    return set(session.scalars(rows))


def _refresh_marked(
    ids: set[int], session: Session, failed: list[NotRecomputed] | None = None
) -> int:
    marks: dict[int, int] = {}
    ordered = sorted(ids)
    for chunk in chunked(ordered):
        query = select(STALE.c.dataset_id, STALE.c.mark).where(
            among(STALE.c.dataset_id, chunk)
        )
        marks.update({i: m for i, m in session.execute(query)})
    refreshed = refresh_datasets(ordered, session=session, failed=failed)
    session.flush()
    _clear_marks(marks, session=session)
    return refreshed


def _clear_marks(marks: dict[int, int], *, session: Session) -> None:
    """Clear the stale marks of the datasets *marks* (ids to the marks read
    before recomputing them). A mark raised again since it was read means a
    change that may not have been seen: the dataset stays stale and is
    recomputed next time.
    """
    if not marks:
        return
    if session.get_bind().dialect.name == "postgresql":
        # One statement over two arrays (an executemany sends a statement
        # per dataset: a sixth of a second per 5,000).
        ids = bindparam("ids", list(marks), type_=ARRAY(BigInteger))
        read = bindparam("marks", list(marks.values()), type_=ARRAY(Integer))
        listed = select(func.unnest(ids).label("id"), func.unnest(read).label("mark"))
        pairs = listed.subquery()
        clear = delete(STALE).where(
            STALE.c.dataset_id == pairs.c.id, STALE.c.mark == pairs.c.mark
        )
        session.execute(clear)
        return
    clear = delete(STALE).where(
        and_(
            STALE.c.dataset_id == bindparam("id_"),
            STALE.c.mark == bindparam("mark_"),
        )
    )
    session.execute(clear, [{"id_": i, "mark_": m} for i, m in marks.items()])


def stale_count(*, session: Session) -> int:
    """How many datasets wait for their derived quantities."""
    query = select(func.count()).select_from(STALE)
    return int(session.scalar(query) or 0)


class NotRecomputed(NamedTuple):
    """A dataset whose derived values could not be recomputed (it keeps
    those it had), and why.
    """

    dataset_id: int
    name: str
    error: str


# The largest value of the catalogue's BIGINT columns (the totals).
BIGINT_MAX = 2**63 - 1


def refresh_datasets(
    ids: Iterable[int],
    *,
    session: Session,
    failed: list[NotRecomputed] | None = None,
) -> int:
    """Refresh every derived value of the datasets *ids*; return how many.

    Datasets are read as plain rows (:class:`DatasetValues`), recomputed,
    and the changed values written back in a few statements per batch
    (:func:`_write_back`): the ORM's bookkeeping would cost more than the
    recomputation. Dataset objects
    the session holds are expired, so that they show the new values.

    A dataset whose values cannot be recomputed (:func:`_recompute`) keeps
    those it had, is logged, and is added to *failed*; it holds back none of
    the others. It counts among those returned: its stale mark is cleared.
    """
    session.flush()
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start : start + BATCH]
        datasets, refused = _recompute(chunk, session=session)
        _write_back(datasets, session=session)
        for failure in refused:
            logger.error(
                "Dataset %s: derived values not recomputed, kept as they were: %s",
                failure.name,
                failure.error,
            )
        if failed is not None:
            failed.extend(refused)
    return len(ordered)


def _recompute(
    ids: Sequence[int], *, session: Session
) -> tuple[list[DatasetValues], list[NotRecomputed]]:
    """The datasets *ids* recomputed (nothing written yet), and those that
    could not be: a batch that fails on a value (:func:`_by_value`) is
    recomputed a dataset at a time, so that only the dataset at fault fails.
    """
    try:
        return _recomputed(ids, session=session), []
    except (ArithmeticError, ValueError, DBAPIError) as err:
        if not _by_value(err):
            raise
        if len(ids) == 1:
            return [], [_not_recomputed(ids[0], err, session=session)]
    datasets: list[DatasetValues] = []
    failed: list[NotRecomputed] = []
    for id_ in ids:
        done, refused = _recompute([id_], session=session)
        datasets += done
        failed += refused
    return datasets, failed


def _recomputed(ids: Sequence[int], *, session: Session) -> list[DatasetValues]:
    """The datasets *ids* with their derived values recomputed; raises
    :class:`OverflowError` for a total the catalogue's column cannot hold.
    """
    rows = session.execute(select(DATASET).where(among(DATASET.c.id, ids)))
    datasets = [DatasetValues(row) for row in rows]
    _refresh_batch(datasets, session=session)  # type: ignore[arg-type]
    for dataset in datasets:
        for column in ("total_events", "total_size"):
            value = getattr(dataset, column)
            if value > BIGINT_MAX:
                raise OverflowError(f"{column} = {value} is more than {BIGINT_MAX}")
    return datasets


def _by_value(err: BaseException) -> bool:
    """Whether *err* is a stored value's doing, which no retry mends: an
    overflow (a float sum past a double; SQLite's integer sum past BIGINT)
    or a value out of range, not a database failing.
    """
    if not isinstance(err, DBAPIError):
        return True
    message = str(err.orig).lower()
    return "overflow" in message or "out of range" in message


def _not_recomputed(
    dataset_id: int, err: BaseException, *, session: Session
) -> NotRecomputed:
    name = session.scalar(select(DATASET.c.name).where(DATASET.c.id == dataset_id))
    cause = err.orig if isinstance(err, DBAPIError) else err
    return NotRecomputed(dataset_id, str(name), f"{type(cause).__name__}: {cause}")


def _insert_values(cls: type) -> type:
    """Give *cls* the value an insert gives each dataset column that it is
    not given (its scalar default, or None), as class attributes.
    """
    for column in DATASET.columns:
        default = column.default
        scalar = default is not None and default.is_scalar
        setattr(cls, column.name, default.arg if scalar else None)  # type: ignore[union-attr]
    return cls


@_insert_values
class NewDataset:
    """A dataset not yet inserted, as plain attributes named as the model's:
    the values of *row*, and for the other columns the values an insert
    would give them. *row* is the object's own dictionary: the derived values
    set on the object are set in the row (each of :data:`DERIVED_COLUMNS`,
    given its insert value first, so that every row has them all).
    """

    def __init__(self, row: dict[str, Any]) -> None:
        row.update(_DERIVED_INSERT_VALUES)
        self.__dict__ = row


_DERIVED_INSERT_VALUES = {name: getattr(NewDataset, name) for name in DERIVED_COLUMNS}


class DatasetValues:
    """A dataset's row as plain attributes, named as the model's, remembering
    the values it was read with.
    """

    def __init__(self, row: Any) -> None:
        self._read = row._asdict()
        self.__dict__.update(self._read)

    def changes(self) -> dict[str, Any]:
        """The columns whose values changed since the row was read."""
        read = self._read
        return {
            name: value
            for name, value in vars(self).items()
            if name in read and value != read[name]
        }


def _write_back(datasets: Sequence[DatasetValues], *, session: Session) -> None:
    """Write the changed values of *datasets* (``lastModified`` moves): the
    datasets that changed alike (new datasets of one kind, say) in one
    statement per kind of change, the others in one executemany.
    """
    changed = {d.id: d.changes() for d in datasets}  # type: ignore[attr-defined]
    changed = {id_: values for id_, values in changed.items() if values}
    if not changed:
        return
    by_id = {d.id: d for d in datasets}  # type: ignore[attr-defined]
    alike: dict[tuple[Any, ...], list[int]] = {}
    for id_, values in changed.items():
        alike.setdefault(_change_key(values), []).append(id_)
    single = []
    for ids in alike.values():
        if len(ids) >= SAME_CHANGE:
            update_same(session, DATASET, "id", ids, changed[ids[0]])
        else:
            single.extend(ids)
    if single:
        _write_each([by_id[id_] for id_ in single], changed, session=session)
    _expire_held(changed, session=session)


def _expire_held(ids: Collection[int], *, session: Session) -> None:
    """Expire the Dataset objects *session* holds among *ids* (they show the
    values written behind the ORM's back once reloaded).
    """
    held = session.identity_map
    for key in list(held.keys()):
        if key[0] is Dataset and key[1][0] in ids:
            session.expire(held[key])


def _change_key(values: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two changes apart: each column, its value and its type
    (``0`` is not written as ``0.0``).
    """
    return tuple(sorted((name, type(v).__name__, v) for name, v in values.items()))


def _write_each(
    datasets: Sequence[Any], changed: dict[int, dict[str, Any]], *, session: Session
) -> None:
    """Write the columns any of *datasets* changed (*changed*, by id), for
    each of them, in one executemany.
    """
    columns = sorted(set().union(*(changed[d.id] for d in datasets)))
    rows = [(d.id, *(getattr(d, c) for c in columns)) for d in datasets]
    update_values(session, DATASET, "id", columns, rows)


def refresh_all(
    *,
    session: Session,
    ids: Collection[int] | None = None,
    failed: list[NotRecomputed] | None = None,
) -> int:
    """Recompute every derived quantity of every dataset (or of the datasets
    *ids*), clearing their stale marks; return how many. Those that cannot be
    recomputed are added to *failed* (:func:`refresh_datasets`).

    No order is needed: each quantity is computed from source rows (files,
    tasks, runs), never from another dataset's derived values.
    """
    if ids is None:
        ids = set(session.scalars(select(Dataset.id)))
    return _refresh_marked(set(ids), session, failed)
