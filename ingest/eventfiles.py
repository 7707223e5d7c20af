"""Simulated event data files for the AOD and DAOD datasets of a world.

Each file of a simulated AOD or DAOD dataset (:mod:`ingest.world`) becomes a
ROOT file holding one TTree, ``CollectionTree``, with one entry per event:

- ``RunNumber`` (int32): the run; for MC the campaign's run number;
- ``EventNumber`` (uint64): the event, unique in the dataset;
- ``LumiBlock`` (int32): the luminosity block;
- ``mcChannelNumber`` (int32): the MC dataset number, 0 for data;
- ``mcEventWeight``, ``averageInteractionsPerCrossing`` (float32): the
  generator weight (1 for data) and the pile-up <mu>;
- ``MET``, ``MET_phi`` (float32): missing transverse momentum (GeV), its phi;
- ``triggerBits`` (uint64): bit *i* is set when :data:`TRIGGERS` [*i*] fired;
- ``nJets`` (int32) and ``jet_pt``, ``jet_eta``, ``jet_phi``, ``jet_m``
  (float32 arrays, GeV): the jets, leading first;
- ``nElectrons`` and ``el_pt``, ``el_eta``, ``el_phi``, ``el_charge``;
- ``nMuons`` and ``mu_pt``, ``mu_eta``, ``mu_phi``, ``mu_charge``.

The counts are the jagged branches' count branches, as a ROOT file written by
ATLAS software would have them. The file also holds ``TriggerMenu``, a
TObjString listing ``bit:name`` pairs.

The files are laid out as the file store of SOURCES.md (Rucio's deterministic
paths under a storage root, the scope being the dataset's project) and can be
listed in a PoolFileCatalog.xml. Each file has the number of events the world
gives it; its bytes, and so its size and adler32, are those of the written
file, not the world's nominal figures (which describe full-size AOD files).
Everything is drawn from a numpy Generator seeded from the file's LFN, so the
same world always writes the same events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import awkward as ak
import numpy as np
import uproot

from catalog.lumiblocks import parse_lumi_blocks
from catalog.nomenclature import parse_dataset_name
from ingest.world import DatasetSpec, FileSpec, World
from skimengine.filestore import deterministic_path

TREE_NAME = "CollectionTree"
#: Trigger chains, in the order of their bit in ``triggerBits``.
TRIGGERS = (
    "HLT_e26_lhtight_nod0_ivarloose",
    "HLT_mu26_ivarmedium",
    "HLT_2e17_lhvloose_nod0",
    "HLT_2mu14",
    "HLT_xe110_pufit_L1XE55",
    "HLT_j420",
    "HLT_4j100",
    "HLT_noalg_zb_L1ZB",
)
#: Entries per basket: the smallest branch (4 bytes an entry) gets ~100 kB.
BASKET_ENTRIES = 25_000
#: The run number ATLAS MC carries for each reconstruction campaign tag.
MC_RUN_NUMBERS = {"r9364": 284500, "r10201": 300000, "r10724": 310000}
# The objects: the record name uproot writes, the count branch, the fields.
_OBJECTS = {
    "jet": ("nJets", ("pt", "eta", "phi", "m")),
    "el": ("nElectrons", ("pt", "eta", "phi", "charge")),
    "mu": ("nMuons", ("pt", "eta", "phi", "charge")),
}
_COUNTERS = {name: counter for name, (counter, _) in _OBJECTS.items()}


@dataclass(frozen=True)
class Profile:
    """What a physics sample looks like: mean numbers of jets and prompt
    leptons, the typical lepton transverse momentum and missing ET (GeV).
    """

    jets: float
    electrons: float
    muons: float
    lepton_pt: float
    met: float
    negative_weights: float = 0.0


# By MC dataset number (ingest.world.SAMPLES); real data uses DATA_PROFILE.
PROFILES = {
    361106: Profile(jets=1.2, electrons=2.0, muons=0.0, lepton_pt=40.0, met=12.0),
    361107: Profile(jets=1.2, electrons=0.0, muons=2.0, lepton_pt=40.0, met=12.0),
    410470: Profile(jets=5.5, electrons=0.5, muons=0.5, lepton_pt=45.0, met=55.0),
    364156: Profile(
        jets=1.5,
        electrons=0.0,
        muons=1.0,
        lepton_pt=38.0,
        met=35.0,
        negative_weights=0.1,
    ),
    345060: Profile(jets=1.0, electrons=2.0, muons=2.0, lepton_pt=25.0, met=10.0),
}
DATA_PROFILE = Profile(jets=2.5, electrons=0.15, muons=0.15, lepton_pt=30.0, met=20.0)


@dataclass(frozen=True)
class EventFileSpec:
    """Everything needed to write one event file."""

    scope: str
    lfn: str
    guid: str
    n_events: int
    run_number: int
    mc_channel_number: int
    lumi_blocks: tuple[int, ...]
    first_event: int
    profile: Profile
    seed: int


@dataclass(frozen=True)
class WrittenFile:
    """An event file on disk."""

    scope: str
    lfn: str
    guid: str
    path: Path
    events: int


def has_event_files(dataset: DatasetSpec) -> bool:
    """Whether *dataset* is an AOD or a DAOD, whose files hold events."""
    data_type = parse_dataset_name(dataset.name).data_type or ""
    return data_type == "AOD" or data_type.startswith("DAOD")


def file_spec(dataset: DatasetSpec, file: FileSpec) -> EventFileSpec:
    """The event file the world implies for *file* of *dataset*."""
    name = parse_dataset_name(dataset.name)
    serial = int(file.lfn.split(".")[1])
    if name.kind == "mc":
        recon = next((str(t) for t in name.tags if str(t) in MC_RUN_NUMBERS), "")
        run, channel = MC_RUN_NUMBERS.get(recon, 284500), name.dataset_number or 0
        profile = PROFILES.get(channel, DATA_PROFILE)
        blocks: tuple[int, ...] = tuple(range(1, 1 + max(1, file.events // 100)))
    else:
        run, channel, profile = name.run_number or 0, 0, DATA_PROFILE
        blocks = tuple(parse_lumi_blocks(file.lumi_blocks or "1"))
    return EventFileSpec(
        scope=name.scope,
        lfn=file.lfn,
        guid=file.guid,
        n_events=file.events,
        run_number=run,
        mc_channel_number=channel,
        lumi_blocks=blocks,
        first_event=serial * 10_000_000 + 1,
        profile=profile,
        seed=int.from_bytes(hashlib.sha256(file.lfn.encode()).digest()[:8], "big"),
    )


def write_dataset_files(
    dataset: DatasetSpec, root: Path, *, basket_entries: int = BASKET_ENTRIES
) -> list[WrittenFile]:
    """Write the event files of *dataset* (its ``finished`` files) under the
    storage *root*, at their deterministic paths. Files already there are
    written again, identically.
    """
    written = []
    for file in dataset.files:
        if file.status != "finished":
            continue
        spec = file_spec(dataset, file)
        path = deterministic_path(root, spec.scope, spec.lfn)
        write_event_file(path, spec, basket_entries=basket_entries)
        written.append(
            WrittenFile(spec.scope, spec.lfn, spec.guid, path, spec.n_events)
        )
    return written


def write_world_files(
    world: World,
    root: Path,
    *,
    pool_file_catalog: Path | None = None,
    basket_entries: int = BASKET_ENTRIES,
) -> list[WrittenFile]:
    """Write the event files of every AOD and DAOD dataset of *world* under
    the storage *root*; list them in *pool_file_catalog* when one is given.
    """
    written: list[WrittenFile] = []
    for dataset in world.datasets:
        if has_event_files(dataset):
            written += write_dataset_files(dataset, root, basket_entries=basket_entries)
    if pool_file_catalog is not None:
        write_pool_file_catalog(pool_file_catalog, written)
    return written


def write_event_file(
    path: Path,
    spec: EventFileSpec,
    *,
    basket_entries: int = BASKET_ENTRIES,
    compression: Any = None,
) -> Path:
    """Write the events of *spec* into a ROOT file at *path*.

    :param basket_entries: entries in each basket (one ``extend`` each);
        the default gives the smallest branch baskets of about 100 kB.
    :param compression: an uproot compression; default ``uproot.ZSTD(1)``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    events = generate_events(spec)
    with uproot.recreate(path, compression=compression or uproot.ZSTD(1)) as output:
        tree = output.mktree(
            TREE_NAME,
            {name: _branch_type(column) for name, column in events.items()},
            counter_name=_COUNTERS.__getitem__,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        for start in range(0, max(spec.n_events, 1), basket_entries):
            tree.extend(
                {k: v[start : start + basket_entries] for k, v in events.items()}
            )
        output["TriggerMenu"] = ",".join(f"{i}:{t}" for i, t in enumerate(TRIGGERS))
    return path


def _branch_type(column: Any) -> Any:
    return column.type.content if isinstance(column, ak.Array) else column.dtype


def write_pool_file_catalog(path: Path, files: Iterable[WrittenFile]) -> Path:
    """Write a PoolFileCatalog.xml listing *files* (GUID, ``file:`` PFN, LFN)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>',
        "<!-- Edited By POOL -->",
        '<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory">',
        "<POOLFILECATALOG>",
    ]
    for file in files:
        pfn = quoteattr(Path(file.path).resolve().as_uri())
        lines += [
            f"  <File ID={quoteattr(file.guid)}>",
            f'    <physical><pfn filetype="ROOT_All" name={pfn}/></physical>',
            f"    <logical><lfn name={quoteattr(file.lfn)}/></logical>",
            "  </File>",
        ]
    lines.append("</POOLFILECATALOG>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- The events -------------------------------------------------------------------


def generate_events(spec: EventFileSpec) -> dict[str, Any]:
    """The columns of the events of *spec*: numpy arrays for scalars and
    awkward records (``jet``, ``el``, ``mu``) for the objects.
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.n_events
    objects = {
        "jet": _jets(rng, n, spec.profile),
        "el": _leptons(rng, n, spec.profile.electrons, spec.profile, 2.47),
        "mu": _leptons(rng, n, spec.profile.muons, spec.profile, 2.5),
    }
    met = _met(rng, n, spec.profile)
    columns: dict[str, Any] = {
        "RunNumber": np.full(n, spec.run_number, np.int32),
        "EventNumber": np.arange(n, dtype=np.uint64) + np.uint64(spec.first_event),
        "LumiBlock": _lumi_blocks(n, spec.lumi_blocks),
        "mcChannelNumber": np.full(n, spec.mc_channel_number, np.int32),
        "mcEventWeight": _weights(rng, n, spec),
        "averageInteractionsPerCrossing": rng.gamma(8.0, 3.0, n).astype(np.float32),
        "MET": met,
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "triggerBits": _trigger_bits(rng, objects, met),
    }
    for name, (_, fields) in _OBJECTS.items():
        flat, counts = objects[name]
        columns[name] = ak.zip({f: ak.unflatten(flat[f], counts) for f in fields})
    return columns


def _lumi_blocks(n: int, blocks: Sequence[int]) -> np.ndarray:
    """Spread *n* events evenly, in order, over the lumi *blocks*."""
    index = (np.arange(n) * len(blocks)) // max(n, 1)
    return np.asarray(blocks, np.int32)[index]


def _weights(rng: np.random.Generator, n: int, spec: EventFileSpec) -> np.ndarray:
    if spec.mc_channel_number == 0:
        return np.ones(n, np.float32)
    weights = rng.normal(1.0, 0.1, n)
    negative = rng.random(n) < spec.profile.negative_weights
    return np.where(negative, -weights, weights).astype(np.float32)


def _jets(
    rng: np.random.Generator, n: int, profile: Profile
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Jets above 20 GeV with a falling spectrum, within |eta| < 4.5."""
    owner = np.repeat(np.arange(n), rng.poisson(profile.jets * 1.3, n))
    pt = 20.0 + rng.exponential(35.0, owner.size) * rng.exponential(1.0, owner.size)
    eta = rng.normal(0.0, 1.8, owner.size)
    keep = np.abs(eta) < 4.5
    mass = pt * rng.uniform(0.05, 0.2, owner.size)
    columns = {"pt": pt[keep], "eta": eta[keep], "m": mass[keep]}
    return _sorted_objects(rng, n, owner[keep], columns)


def _leptons(
    rng: np.random.Generator,
    n: int,
    prompt: float,
    profile: Profile,
    max_eta: float,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Prompt leptons (a fixed number per event when *prompt* is whole, else
    Poisson) plus a few soft non-prompt ones, within the detector's |eta|.
    """
    if prompt == int(prompt):
        counts = np.full(n, int(prompt))
    else:
        counts = rng.poisson(prompt, n)
    owner = np.repeat(np.arange(n), counts)
    pt = np.clip(rng.normal(profile.lepton_pt, 10.0, owner.size), 7.0, None)
    # Prompt leptons come in opposite-charge pairs (Z decays) after the first.
    sign = rng.choice(np.array([-1.0, 1.0]), n)[owner]
    charge = sign * (-1.0) ** (np.arange(owner.size) % 2)
    extra = np.repeat(np.arange(n), rng.poisson(0.05, n))
    owner = np.concatenate([owner, extra])
    pt = np.concatenate([pt, 7.0 + rng.exponential(10.0, extra.size)])
    charge = np.concatenate([charge, rng.choice(np.array([-1.0, 1.0]), extra.size)])
    eta = rng.normal(0.0, 1.4, owner.size)
    keep = np.abs(eta) < max_eta
    columns = {"pt": pt[keep], "eta": eta[keep], "charge": charge[keep]}
    return _sorted_objects(rng, n, owner[keep], columns)


def _sorted_objects(
    rng: np.random.Generator,
    n: int,
    owner: np.ndarray,
    columns: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Objects of the events *owner* names, grouped by event with the leading
    pt first, with a uniform phi added to their *columns*.
    """
    order = np.lexsort((-columns["pt"], owner))
    columns = {**columns, "phi": rng.uniform(-np.pi, np.pi, owner.size)}
    flat = {name: v[order].astype(np.float32) for name, v in columns.items()}
    return flat, np.bincount(owner, minlength=n).astype(np.int32)


def _met(rng: np.random.Generator, n: int, profile: Profile) -> np.ndarray:
    """Resolution (Rayleigh) plus, for samples with neutrinos, a real part."""
    resolution = rng.rayleigh(10.0, n)
    real = rng.exponential(max(profile.met - 10.0, 0.0), n) if profile.met > 12 else 0
    return (resolution + real).astype(np.float32)


def _nth_pt(flat: dict[str, np.ndarray], counts: np.ndarray, nth: int) -> np.ndarray:
    """The pt of each event's *nth* object (0: leading), 0 where there is none."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    has = counts > nth
    pt = np.zeros(counts.size, np.float32)
    pt[has] = flat["pt"][starts[has] + nth]
    return pt


def _trigger_bits(
    rng: np.random.Generator,
    objects: dict[str, tuple[dict[str, np.ndarray], np.ndarray]],
    met: np.ndarray,
) -> np.ndarray:
    """Each trigger fires above its offline threshold with 95% efficiency."""
    jets, electrons, muons = objects["jet"], objects["el"], objects["mu"]
    passed = (
        _nth_pt(*electrons, 0) > 27,
        _nth_pt(*muons, 0) > 27,
        _nth_pt(*electrons, 1) > 18,
        _nth_pt(*muons, 1) > 15,
        met > 120,
        _nth_pt(*jets, 0) > 430,
        _nth_pt(*jets, 3) > 110,
        np.zeros(met.size, bool),
    )
    bits = np.zeros(met.size, np.uint64)
    for bit, fired in enumerate(passed):
        efficient = rng.random(met.size) < (0.95 if bit != 7 else 0.01)
        chosen = (fired | (bit == 7)) & efficient
        bits |= chosen.astype(np.uint64) << np.uint64(bit)
    return bits
