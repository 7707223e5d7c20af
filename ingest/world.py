"""A small, realistic, deterministic world of ATLAS-style data.

The world is plain data: Monte Carlo chains (evgen → simul → recon → deriv)
for several physics samples and campaigns, with per-file cross-sections, and
real-data runs in periods with their RAW, Tier-0 merge and derivation outputs.
The demo seeds the catalogue from it; the source simulators write the same
world into the source systems' own schemas.

Everything is derived from a seed, so two worlds built with the same seed are
identical: tests compute their expectations from the world, independently of
the catalogue.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
import zlib
from dataclasses import dataclass, field

from catalog.nomenclature import build_dataset_name

_GUID_NAMESPACE = uuid.UUID("6f1c55e2-3b8e-4c54-9a3e-7d1c1f0a2b44")
EPOCH = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Sample:
    """A Monte Carlo physics sample and its generator numbers."""

    dataset_number: int
    physics_short: str
    cross_section: float  # nb
    filter_efficiency: float
    generator: str


SAMPLES = (
    Sample(
        361106, "PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee", 1.9012, 1.0, "Powheg+Pythia8"
    ),
    Sample(
        361107, "PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu", 1.9012, 1.0, "Powheg+Pythia8"
    ),
    Sample(
        410470,
        "PhPy8EG_A14_ttbar_hdamp258p75_nonallhad",
        0.72977,
        0.5438,
        "Powheg+Pythia8",
    ),
    Sample(
        364156,
        "Sherpa_221_NNPDF30NNLO_Wmunu_MAXHTPTV0_70_CVetoBVeto",
        15.770,
        0.8244,
        "Sherpa",
    ),
    Sample(
        345060,
        "PowhegPythia8EvtGen_NNLOPS_nnlo_30_ggH125_ZZ4l",
        0.0000276,
        1.0,
        "Powheg+Pythia8",
    ),
)


@dataclass(frozen=True)
class Campaign:
    """An MC campaign: the reconstruction tag that marks it."""

    name: str
    recon_tag: str
    derivation_tag: str


CAMPAIGNS = (
    Campaign("MC16a", "r9364", "p4164"),
    Campaign("MC16d", "r10201", "p4164"),
    Campaign("MC16e", "r10724", "p4164"),
)


@dataclass(frozen=True)
class ConfigTag:
    """An AMI configuration tag."""

    tag: str
    transformation: str
    release: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class FileSpec:
    lfn: str
    guid: str
    size: int
    checksum: str
    events: int
    status: str = "finished"
    lumi_blocks: str | None = None
    cross_section: float | None = None
    gen_filt_eff: float | None = None


@dataclass
class DatasetSpec:
    name: str
    source: str  # "prodsys" or "tier0"
    task_id: int | None
    files: list[FileSpec]
    created: dt.datetime


@dataclass
class TaskSpec:
    task_id: int
    parent_task_id: int
    name: str
    project: str
    step_name: str
    status: str
    ctag: str
    input_dataset: str | None
    campaign: str | None
    total_events: int
    submit_time: dt.datetime
    outputs: list[str]
    username: str | None = None  # who requested it (AMI's requestedBy)


@dataclass(frozen=True)
class RunSpec:
    run_number: int
    project: str
    start_time: dt.datetime
    end_time: dt.datetime
    n_lumi_blocks: int
    stable_beams: bool


@dataclass(frozen=True)
class PeriodSpec:
    project: str
    period: str
    level: int
    description: str
    runs: tuple[int, ...]


@dataclass
class World:
    """Everything the sources know: tags, tasks, datasets, runs, periods."""

    tags: list[ConfigTag] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    runs: list[RunSpec] = field(default_factory=list)
    periods: list[PeriodSpec] = field(default_factory=list)

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)


def guid_for(lfn: str) -> str:
    """A stable GUID for the file *lfn*."""
    return str(uuid.uuid5(_GUID_NAMESPACE, lfn)).upper()


def adler32(text: str) -> str:
    """A checksum in the ``ad:`` + hex form of ProdSys and Rucio."""
    return f"ad:{zlib.adler32(text.encode()) & 0xFFFFFFFF:08x}"


CONFIG_TAGS = (
    ConfigTag("e3601", "Generate_tf.py", "MCProd,19.2.3.7", "Powheg Z evgen"),
    ConfigTag("e3668", "Generate_tf.py", "MCProd,19.2.4.9", "Powheg Higgs evgen"),
    ConfigTag("e5340", "Generate_tf.py", "MCProd,19.2.5.3", "Sherpa 2.2.1 evgen"),
    ConfigTag("e6337", "Generate_tf.py", "AthGeneration,21.6.12", "ttbar evgen"),
    ConfigTag(
        "s3126",
        "Sim_tf.py",
        "AtlasOffline,21.0.15",
        "ATLFAST-free full simulation, MC16",
        {"geometryVersion": "ATLAS-R2-2016-01-00-01", "physicsList": "FTFP_BERT_ATL"},
    ),
    ConfigTag(
        "r9364",
        "Reco_tf.py",
        "AtlasOffline,21.0.20",
        "MC16a reconstruction with pile-up",
        {"conditionsTag": "OFLCOND-MC16-SDR-16", "preExec": "all:rec.Commissioning"},
    ),
    ConfigTag(
        "r10201",
        "Reco_tf.py",
        "AtlasOffline,21.0.20",
        "MC16d reconstruction",
        {"conditionsTag": "OFLCOND-MC16-SDR-25"},
    ),
    ConfigTag(
        "r10724",
        "Reco_tf.py",
        "AtlasOffline,21.0.77",
        "MC16e reconstruction",
        {"conditionsTag": "OFLCOND-MC16-SDR-25"},
    ),
    ConfigTag("p4164", "Derivation_tf.py", "AthDerivation,21.2.94.0", "DAOD_PHYS"),
    ConfigTag("f629", "Reco_tf.py", "AtlasProduction,20.7.1.2", "Tier-0 2015"),
    ConfigTag("m1504", "AODMerge_tf.py", "AtlasProduction,20.7.1.2", "Tier-0 merge"),
    ConfigTag("r11969", "Reco_tf.py", "AtlasOffline,21.0.77", "Full Run-2 reproc."),
    ConfigTag("p4072", "Derivation_tf.py", "AthDerivation,21.2.90.0", "DAOD_PHYS"),
)

_EVGEN_TAG = {361106: "e3601", 361107: "e3601", 345060: "e3668", 364156: "e5340"}
# Who requests the tasks of each step: the production managers of each.
REQUESTERS = {
    "evgen": "mcgen",
    "simul": "mcprod",
    "recon": "mcprod",
    "deriv": "dpdprod",
}


def build_world(seed: int = 2015, files_per_dataset: int = 4) -> World:
    """Build the world from *seed*, with about *files_per_dataset* files in
    each dataset.
    """
    builder = _Builder(random.Random(seed), files_per_dataset)
    for index, sample in enumerate(SAMPLES):
        builder.mc_chain(sample, index)
    builder.real_data()
    return builder.world


class _Builder:
    """Adds tasks, datasets and files to a world, drawing numbers from *rng*."""

    def __init__(self, rng: random.Random, n_files: int) -> None:
        self.rng = rng
        self.n_files = n_files
        self.world = World(tags=list(CONFIG_TAGS))
        self._task_ids = iter(range(10_000_000, 20_000_000, 17))
        self._file_serial = iter(range(1, 10**9))

    # Monte Carlo.

    def mc_chain(self, sample: Sample, index: int) -> None:
        when = EPOCH + dt.timedelta(days=7 * index)
        evgen = _EVGEN_TAG.get(sample.dataset_number, "e6337")
        evnt = _mc_name(sample, "evgen", "EVNT", (evgen,))
        task = self.task(None, evnt, "evgen", evgen, None, "done", when)
        files = [self.evnt_file(sample, evnt) for _ in range(self.n_files)]
        self.world.datasets.append(
            DatasetSpec(evnt, "prodsys", task.task_id, files, when)
        )
        hits = _mc_name(sample, "simul", "HITS", (evgen, "s3126"))
        self.step(evnt, hits, "simul", "s3126", None, "done", when)
        for campaign in CAMPAIGNS if index < 2 else CAMPAIGNS[-1:]:
            self.campaign(sample, (evgen, "s3126"), hits, campaign, when)

    def campaign(
        self,
        sample: Sample,
        tags: tuple[str, ...],
        hits: str,
        campaign: Campaign,
        when: dt.datetime,
    ) -> None:
        tags = (*tags, campaign.recon_tag)
        aod = _mc_name(sample, "recon", "AOD", tags)
        # One reconstruction is still running, so one chain is incomplete: its
        # derivation runs too, over the AOD files written so far.
        running = campaign.name == "MC16e" and sample.dataset_number == 361107
        status = "running" if running else "done"
        recon, name = campaign.recon_tag, campaign.name
        self.step(hits, aod, "recon", recon, name, status, when, same_events=True)
        daod = _mc_name(sample, "deriv", "DAOD_PHYS", (*tags, campaign.derivation_tag))
        derivation = campaign.derivation_tag
        self.step(aod, daod, "deriv", derivation, name, status, when, same_events=True)

    def step(
        self,
        parent: str,
        child: str,
        step_name: str,
        ctag: str,
        campaign: str | None,
        status: str,
        when: dt.datetime,
        *,
        same_events: bool = False,
    ) -> None:
        """A task reading *parent* and writing *child*, with its files: a
        file per input file, each with the events of its input when
        *same_events* (reconstruction and DAOD_PHYS keep every event), else
        a share of them (simulation of part of the generated events).
        """
        when = when + dt.timedelta(days=1 + self.rng.randint(0, 3))
        task = self.task(parent, child, step_name, ctag, campaign, status, when)
        inputs = self.world.dataset(parent).files
        done = len(inputs) if status == "done" else len(inputs) // 2
        if same_events:
            events = [f.events for f in inputs[:done]]
        else:
            events = [self.rng.randint(900, 1100) for _ in range(done)]
        files = [self.file(child, n) for n in events]
        self.world.datasets.append(
            DatasetSpec(child, "prodsys", task.task_id, files, when)
        )

    def task(
        self,
        input_dataset: str | None,
        output: str,
        step_name: str,
        ctag: str,
        campaign: str | None,
        status: str,
        when: dt.datetime,
    ) -> TaskSpec:
        task_id = next(self._task_ids)
        parent_task = self._producer(input_dataset) or task_id
        requested = 1100 * self.n_files if step_name != "evgen" else 5000 * self.n_files
        task = TaskSpec(
            task_id=task_id,
            parent_task_id=parent_task,
            name=_task_name(output),
            project=output.split(".")[0],
            step_name=step_name,
            status=status,
            ctag=ctag,
            input_dataset=input_dataset,
            campaign=campaign,
            total_events=requested,
            submit_time=when,
            outputs=[output],
            username=REQUESTERS[step_name],
        )
        self.world.tasks.append(task)
        return task

    def _producer(self, dataset: str | None) -> int | None:
        return next((t.task_id for t in self.world.tasks if dataset in t.outputs), None)

    def evnt_file(self, sample: Sample, dataset: str) -> FileSpec:
        spec = self.file(dataset, 5000)
        spread = 1 + self.rng.uniform(-0.02, 0.02)
        spec.cross_section = round(sample.cross_section * spread, 9)
        spec.gen_filt_eff = sample.filter_efficiency
        return spec

    def file(
        self, dataset: str, events: int, lumi_blocks: str | None = None
    ) -> FileSpec:
        serial = next(self._file_serial)
        data_type = dataset.split(".")[4]
        lfn = f"{data_type}.{serial:08d}._{serial % 1000:06d}.pool.root.1"
        size = events * self.rng.randint(40_000, 60_000)
        return FileSpec(
            lfn, guid_for(lfn), size, adler32(lfn), events, "finished", lumi_blocks
        )

    # Real data.

    def real_data(self) -> None:
        for run in RUNS:
            self.world.runs.append(run)
            self.run_datasets(run)
        self.world.periods.extend(PERIODS)

    def run_datasets(self, run: RunSpec) -> None:
        stream = "physics_Main"
        raw = f"{run.project}.{run.run_number:08d}.{stream}.daq.RAW"
        blocks = _blocks(run.n_lumi_blocks, self.n_files)
        raw_files = [self.file(raw, 800 * len(b), _ranges(b)) for b in blocks]
        self.world.datasets.append(
            DatasetSpec(raw, "tier0", None, raw_files, run.end_time)
        )
        aod = f"{run.project}.{run.run_number:08d}.{stream}.merge.AOD.f629_m1504"
        aod_files = [self.file(aod, 800 * len(b), _ranges(b)) for b in blocks]
        self.world.datasets.append(
            DatasetSpec(aod, "tier0", None, aod_files, run.end_time)
        )
        self.reprocessing(run, aod, blocks)

    def reprocessing(self, run: RunSpec, aod: str, blocks: list[list[int]]) -> None:
        """A derivation that misses the lumi blocks of one input file."""
        prefix = f"{run.project}.{run.run_number:08d}.physics_Main"
        daod = f"{prefix}.deriv.DAOD_PHYS.r11969_p4072"
        when = run.end_time + dt.timedelta(days=30)
        status = "failed" if run.run_number == FAILED_RUN else "done"
        task = self.task(aod, daod, "deriv", "p4072", None, status, when)
        kept = blocks[:-1] if len(blocks) > 1 else blocks
        files = [self.file(daod, 300 * len(b), _ranges(b)) for b in kept]
        if status == "failed":
            files = []
        self.world.datasets.append(
            DatasetSpec(daod, "prodsys", task.task_id, files, when)
        )


def _mc_name(sample: Sample, step: str, data_type: str, tags: tuple[str, ...]) -> str:
    return build_dataset_name(
        project="mc16_13TeV",
        dataset_number=sample.dataset_number,
        physics_short=sample.physics_short,
        prod_step=step,
        data_type=data_type,
        version="_".join(tags),
    )


def _task_name(output: str) -> str:
    """ProdSys names a task after its output, without the data type."""
    parts = output.split(".")
    return ".".join(parts[:4] + parts[5:])


def _blocks(n_lumi_blocks: int, n_files: int) -> list[list[int]]:
    """Split lumi blocks 1..n into *n_files* contiguous groups."""
    size = max(1, n_lumi_blocks // n_files)
    numbers = list(range(1, n_lumi_blocks + 1))
    groups = [numbers[i : i + size] for i in range(0, len(numbers), size)]
    return groups[:n_files] if len(groups) > n_files else groups


def _ranges(blocks: list[int]) -> str:
    return f"{blocks[0]}-{blocks[-1]}" if len(blocks) > 1 else str(blocks[0])


def _run(number: int, day: int, hours: int, lumi_blocks: int) -> RunSpec:
    start = dt.datetime(2015, 6, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(days=day)
    end = start + dt.timedelta(hours=hours)
    return RunSpec(number, "data15_13TeV", start, end, lumi_blocks, True)


RUNS = (
    _run(267073, 0, 6, 12),
    _run(267639, 9, 8, 16),
    _run(276262, 60, 10, 20),
    _run(276329, 61, 12, 24),
    _run(284500, 150, 9, 16),
)
FAILED_RUN = 276329

PERIODS = (
    PeriodSpec(
        "data15_13TeV", "A", 1, "Period A: first 13 TeV collisions", (267073, 267639)
    ),
    PeriodSpec("data15_13TeV", "A1", 2, "Period A1", (267073,)),
    PeriodSpec("data15_13TeV", "A2", 2, "Period A2", (267639,)),
    PeriodSpec("data15_13TeV", "D", 1, "Period D: 50 ns run", (276262, 276329)),
    PeriodSpec("data15_13TeV", "D3", 2, "Period D3", (276262, 276329)),
    PeriodSpec("data15_13TeV", "J", 1, "Period J: end of proton run", (284500,)),
    PeriodSpec("data15_13TeV", "J6", 2, "Period J6", (284500,)),
    PeriodSpec(
        "data15_13TeV",
        "AllYear",
        3,
        "All runs of 2015",
        tuple(r.run_number for r in RUNS),
    ),
)
