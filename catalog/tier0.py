"""Whether a Tier-0 dataset holds every file Tier-0 counts.

Tier-0 gives each dataset's ``nfiles``, ``nevents`` and ``totalsize``; the
catalogue keeps them (``tier0NFiles``, ``tier0TotalEvents``,
``tier0TotalSize``). A dataset whose files add up to them is ``DONE``: the
ingester marks it so in Tier-0, and it has all its events. One whose files
fall short — a file row refused into quarantine, say — is ``READY``: the
ingester leaves it so in Tier-0 and reads it again later, and each count
that differs stands on the reconciliation page until they agree.

Every file held counts here, lost ones too: DDM losing a file later does
not make what Tier-0 delivered incomplete (DDM's own counts say so).

Tier-0 is the authority for the files of its datasets: when it gives a
dataset again, the catalogue's files of it that Tier-0 no longer lists leave
the catalogue (:func:`drop_unlisted_files`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.datasets import file_totals
from catalog.db import among, chunked
from catalog.models import Dataset, File
from catalog.models.datasets import SOURCE_TIER0
from catalog.reconciliation import Differences, reconcile

READY = "READY"
DONE = "DONE"

# AMI name, the catalogue's count of the files held, Tier-0's count.
QUANTITIES = (
    ("nFiles", 0, "tier0_n_files"),
    ("totalEvents", 1, "tier0_total_events"),
    ("totalSize", 2, "tier0_total_size"),
)


def refresh_tier0_batch(datasets: Sequence[Dataset], *, session: Session) -> None:
    """Set ``tier0State`` of the Tier-0 datasets among *datasets*, and bring
    their standing differences with Tier-0 in line.
    """
    tier0 = [d for d in datasets if d.source == SOURCE_TIER0]
    if not tier0:
        return
    # Every file held, lost ones too.
    held = file_totals(among(File.dataset_id, [d.id for d in tier0]), session=session)
    differences = {}
    for dataset in tier0:
        differences[dataset.id] = _differences(dataset, held.get(dataset.id))
        dataset.tier0_state = READY if differences[dataset.id] else DONE
    reconcile(SOURCE_TIER0, differences, session=session)


def _differences(dataset: Dataset, held: tuple[int, int, int] | None) -> Differences:
    """Tier-0's counts of *dataset* that differ from those of the files
    held (*held*), as {quantity: (held, Tier-0's)}; a count Tier-0 does not
    give is not compared.
    """
    held = held or (0, 0, 0)
    found = {}
    for quantity, index, column in QUANTITIES:
        expected = getattr(dataset, column)
        if expected is not None and expected != held[index]:
            found[quantity] = (held[index], expected)
    return found


def held_ready(*, session: Session) -> dict[str, tuple[int | None, ...]]:
    """The Tier-0 datasets held ``READY``, by name, with the counts Tier-0
    gave when the ingester last read them.
    """
    columns = [getattr(Dataset, column) for _, _, column in QUANTITIES]
    query = select(Dataset.name, *columns).where(
        Dataset.source == SOURCE_TIER0, Dataset.tier0_state == READY
    )
    return {name: tuple(counts) for name, *counts in session.execute(query)}


def drop_unlisted_files(
    dataset_id: int,
    lfns: Collection[str],
    guids: Collection[str],
    *,
    session: Session,
) -> list[str]:
    """Delete the files of the Tier-0 dataset *dataset_id* that Tier-0 no
    longer lists: those neither of whose LFN and GUID is among *lfns* and
    *guids* (every file row Tier-0 gives, quarantined ones too); return
    their LFNs. Their lumi-block ranges go with them (``ON DELETE CASCADE``).

    Deleted rather than marked ``lost``: a lost file is one DDM lost, it
    still counts as delivered by Tier-0, and a file written again keeps its
    mark; a file Tier-0 withdrew was never delivered. A dataset for which
    Tier-0 lists no file at all (being rewritten, say) keeps its files: its
    counts then fall short of what it holds, and it stays held.
    """
    if not lfns and not guids:
        return []
    query = select(File.id, File.lfn, File.guid).where(File.dataset_id == dataset_id)
    gone = {
        id_: lfn
        for id_, lfn, guid in session.execute(query)
        if lfn not in lfns and guid not in guids
    }
    for chunk in chunked(sorted(gone)):
        session.execute(delete(File).where(among(File.id, chunk)))
    return sorted(gone.values())
