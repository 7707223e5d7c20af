"""Registering the output of a skim as a dataset of the catalogue.

The output dataset is in its owner's user scope, named by
:func:`skimengine.extract.output_dataset_name`, with source ``skim``. Its
files are the complete output files (LFN, a GUID derived from the dataset
and the LFN, size, events, adler32), it has a provenance edge (kind
``skim``) to the parent, and its ``physicsComment`` records the selection.
The files are also published into the file store (at their deterministic
paths under the storage root, hard links where the file system allows), so
that the output is a dataset like any other: a TAG can be built from it and
it can be skimmed in turn.

Everything is idempotent: datasets by name, files by GUID, the edge by its
two ends, so registering again after a crash gives the same catalogue. Only
the skim that made a dataset registers into it, and a file already at its
place in the file store must be the same file (size and adler32): two skims
are never merged into one dataset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.datasets import add_dataset
from catalog.derived import refresh_changed
from catalog.models import Dataset, File, ProvenanceEdge, Skim, inherit_columns
from catalog.models.datasets import SOURCE_SKIM
from catalog.upsert import upsert
from skimengine.extract import OutputFile, file_adler32
from skimengine.filestore import deterministic_path
from skimengine.skims import OutputCorrupt, OutputTaken, output_name, skim_making

#: Namespace of the GUIDs of skim output files (uuid5 of dataset:LFN).
GUID_NAMESPACE = uuid.UUID("5b0e4f3c-6a1d-4c3e-9d2b-8f7a1e0c4b6d")
PROVENANCE_KIND = "skim"
COMMENT_LENGTH = 1000


def output_guid(dataset: str, lfn: str) -> str:
    """The GUID of output file *lfn* of *dataset*: the same at every run."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{dataset}:{lfn}")).upper()


def selection_comment(skim: Skim) -> str:
    """What the output dataset says about how it was made."""
    if skim.collection_name:
        how = f"the events of the uploaded collection {skim.collection_name}"
    else:
        how = f"selection: {skim.selection}"
    text = f"skim {skim.id} of {skim.parent.name}, {how}"
    return text if len(text) <= COMMENT_LENGTH else text[: COMMENT_LENGTH - 3] + "..."


def publish_files(
    outputs: Sequence[OutputFile], scope: str, storage_root: Path | None
) -> None:
    """Put the *outputs* at their deterministic paths under *storage_root*
    (nothing without one): a hard link, or a copy across file systems. A
    file already there is kept when it is the same (a registration again).

    :raises OutputCorrupt: when a different file is already there.
    """
    if storage_root is None:
        return
    for output in outputs:
        target = deterministic_path(storage_root, scope, output.name)
        if target.is_file():
            _check_published(output, target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named after the file but short: a name of 255 characters has no
        # room for more, and a crashed attempt's leftover is found again.
        digest = hashlib.sha256(target.name.encode()).hexdigest()[:16]
        partial = target.with_name(f".{digest}.partial")
        partial.unlink(missing_ok=True)
        try:
            os.link(output.path, partial)
        except OSError:
            shutil.copyfile(output.path, partial)
        os.replace(partial, target)


def _check_published(output: OutputFile, target: Path) -> None:
    """:raises OutputCorrupt: when *target* is not the file *output*."""
    if target.samefile(output.path):
        return
    found = file_adler32(target)
    if found != (output.size, output.checksum):
        raise OutputCorrupt(
            f"the file store already holds another {output.name} at {target} "
            f"({found[0]} bytes, adler32 {found[1]}; this output has "
            f"{output.size} and {output.checksum}); it was left as it is"
        )


def register_output(
    skim: Skim,
    outputs: Sequence[OutputFile],
    *,
    session: Session,
    storage_root: Path | None = None,
) -> Dataset:
    """Register the *outputs* of *skim* as its output dataset (made, or
    found by name) and set ``skim.output``; derived quantities (``nFiles``,
    ``totalEvents``, ...) are refreshed in the same transaction.

    :raises OutputTaken: when the dataset exists and *skim* did not make it.
    :raises OutputCorrupt: when the file store holds other files of its name.
    """
    name = output_name(skim)
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is not None:
        _check_owned(skim, dataset, session=session)
    else:
        login = skim.owner.login if skim.owner is not None else None
        dataset = add_dataset(name, SOURCE_SKIM, session=session, requested_by=login)
        session.flush()
    dataset.physics_comment = selection_comment(skim)
    inherit_columns(dataset, skim.parent)
    publish_files(outputs, dataset.scope, storage_root)
    rows = [_file_row(dataset, output) for output in outputs]
    if rows:
        upsert(session, File.__table__, rows, ["guid"])  # type: ignore[arg-type]
    edge = {"parent_id": skim.parent_id, "child_id": dataset.id, "task_id": None}
    upsert(
        session,
        ProvenanceEdge.__table__,  # type: ignore[arg-type]
        [edge | {"kind": PROVENANCE_KIND}],
        ["parent_id", "child_id"],
    )
    skim.output = dataset
    refresh_changed({dataset.id}, {dataset.id}, session=session)
    return dataset


def _check_owned(skim: Skim, dataset: Dataset, *, session: Session) -> None:
    """:raises OutputTaken: when *dataset* is not *skim*'s output."""
    maker = skim_making(dataset, session=session)
    if maker is not None and maker.id == skim.id:
        return
    made_by = f"the output of skim {maker.id}" if maker else "not a skim's output"
    raise OutputTaken(
        f"skim {skim.id} cannot register its output: dataset {dataset.name} is "
        f"{made_by}; request the skim again under another name"
    )


def _file_row(dataset: Dataset, output: OutputFile) -> dict[str, object]:
    return {
        "dataset_id": dataset.id,
        "lfn": output.name,
        "guid": output_guid(dataset.name, output.name),
        "size": output.size,
        "checksum": output.checksum,
        "events": output.events,
        "status": "finished",
        "lost": False,
    }
