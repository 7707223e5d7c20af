"""Skim requests: asking for a skim, finding, listing, cancelling and
retrying skims.

A skim selects events of a dataset through its TAG (a selection expression,
or an uploaded event collection) and copies them into a new dataset in its
owner's scope. Its lifecycle is a state in its :class:`catalog.models.Skim`
row::

    defined → selecting → selected → extracting → registering → done
                                       (or failed, or cancelled)

A skim is first *defined*: the request is saved and checked. It runs once
its owner asks for it (:func:`run_skim`, or ``run=True`` when requesting),
which records ``run_requested``; the task takes only such skims.

The functions here make and change requests; :class:`skimengine.task.SkimTask`
does the work. Both sides meet only in the row: its state, its progress in
percent and its error are all a surface needs to read.

Functions here take the session keyword-only and never commit: the edge (a
request, a command, a task) owns the transaction.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session, object_session

from catalog.config import Config
from catalog.datasets import Page, check_paging, get_dataset
from catalog.db import utcnow
from catalog.errors import (
    HepcatError,
    InvalidInput,
    InvalidName,
    NotFound,
    PermissionDenied,
)
from catalog.models import SKIM_STATES, Dataset, File, Skim, TagDatabase, User
from catalog.models.skims import MAX_TARGET_SIZE
from catalog.models.users import ROLE_ADMIN, ROLE_PHYSICIST
from catalog.users import has_role
from skimengine.collection import read_collection
from skimengine.extract import (
    check_branches,
    file_adler32,
    normal_compression,
    output_dataset_name,
)
from skimengine.filestore import deterministic_path
from skimengine.tags import (
    TagOutdated,
    check_collection,
    compile_for,
    get_tag,
    open_tag,
    tag_branches,
)

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "CollectionNotReady",
    "OutputCorrupt",
    "OutputNotReady",
    "OutputTaken",
    "SkimNotFound",
    "cancel_skim",
    "collection_path",
    "copy_output",
    "get_skim",
    "list_skims",
    "output_file",
    "output_files",
    "output_name",
    "output_note",
    "outdated",
    "shown_output_name",
    "request_skim",
    "retry_skim",
    "retryable",
    "run_skim",
    "selected_nothing",
    "skim_progress",
    "skims_root",
    "waiting_for_run",
]

#: States in which the skim task still has work to do.
ACTIVE_STATES = ("defined", "selecting", "selected", "extracting", "registering")
#: States a skim ends in.
FINISHED_STATES = ("done", "failed", "cancelled")
SKIM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


class SkimNotFound(NotFound):
    def __init__(self, skim_id: object) -> None:
        super().__init__(f"no skim {skim_id}; the list of skims gives their numbers")
        self.skim_id = skim_id


class CollectionNotReady(NotFound):
    """A skim's event collection is asked for before its selection ran."""

    def __init__(self, skim: Skim) -> None:
        super().__init__(
            f"skim {skim.id} has no event collection yet: it is {skim.state}"
        )
        self.skim_id = skim.id


class OutputNotReady(NotFound):
    """A skim's output file is asked for before its output is registered,
    or is not one of its files, or has gone from its directory.
    """

    def __init__(
        self, skim: Skim, lfn: str | None = None, *, missing: bool = False
    ) -> None:
        if lfn is None:
            reason = f"has no output files yet: it is {skim.state}"
        elif missing:
            reason = (
                f"lists the output file {lfn!r}, but it is missing on disk; "
                "an admin can restore it from the file store"
            )
        else:
            reason = f"has no output file {lfn!r}; the skim's file list names them"
        super().__init__(f"skim {skim.id} {reason}")
        self.skim_id = skim.id


class OutputCorrupt(HepcatError):
    """A copy of an output file is not the file the catalogue describes."""


class OutputTaken(InvalidInput):
    """The output dataset of a skim is, or is to be, another's: a skim or a
    dataset of that name.
    """


# -- requesting ----------------------------------------------------------------


def request_skim(
    dataset_name: str,
    selection: str | None,
    name: str,
    *,
    owner: User,
    session: Session,
    branches: Sequence[str] | None = None,
    compression: str | None = None,
    target_size: int | None = None,
    collection: bytes | None = None,
    collection_name: str | None = None,
    run: bool = False,
) -> Skim:
    """Ask for the skim *name* of dataset *dataset_name*: the events that
    pass *selection*, or those of the uploaded *collection* (the bytes of a
    ROOT or CSV event collection, named *collection_name*), copied into the
    dataset :func:`output_name` gives, in *owner*'s scope.

    :param branches: the branches to keep (default all of them).
    :param compression: ``zstd``, ``lz4`` or ``zlib`` with ``:level``
        (default ``zstd:1``).
    :param target_size: bytes of an output file, about (default 2 GB; at most
        :data:`MAX_TARGET_SIZE`).
    :param run: request its run at once (default: the skim is only
        defined, and :func:`run_skim` runs it).
    :raises PermissionDenied: when *owner* is not an active physicist.
    :raises DatasetNotFound, TagNotFound: for a dataset without a TAG.
    :raises SelectionError: for a selection that does not compile, pointing
        at the mistake.
    :raises CollectionError: for an upload that cannot be read or does not
        fit the dataset.
    :raises InvalidInput, InvalidName: for a bad name or option.
    :raises OutputTaken: for a name already used.
    """
    if not has_role(owner, ROLE_PHYSICIST):
        login = owner.login if owner is not None else None
        raise PermissionDenied(login, ROLE_PHYSICIST, "requesting a skim")
    check_name(name)
    parent = get_dataset(dataset_name, session=session)
    tag = get_tag(parent.name, session=session)
    _check_unused(parent, owner, name, session=session)
    selection = (selection or "").strip()
    if collection is not None:
        if selection:
            raise InvalidInput("give a selection or a collection to upload, not both")
        _check_length(collection_name, "collection_name", "the collection's file name")
        _check_upload(collection, collection_name, tag, parent.name)
    elif not selection:
        raise InvalidInput("a skim needs a selection, or an event collection upload")
    else:
        compile_for(tag, selection)
    skim = Skim(
        name=name,
        owner=owner,
        parent=parent,
        selection=selection,
        state="defined",
        progress=0.0,
        collection_name=(collection_name or "upload") if collection else None,
        upload=collection,
        run_requested=utcnow() if run else None,
        **_options(branches, compression, target_size, tag_branches(tag)),
    )
    session.add(skim)
    session.flush()
    return skim


def check_name(name: str) -> None:
    """:raises InvalidInput: when *name* cannot name a skim."""
    if not SKIM_NAME.fullmatch(name or ""):
        raise InvalidInput(
            f"{name!r} is not a usable skim name: start with a letter, then "
            "letters, digits, '_' or '-', at most 64 characters"
        )


def output_name(skim: Skim) -> str:
    """The name of the dataset *skim* registers."""
    login = skim.owner.login if skim.owner is not None else "unknown"
    return output_dataset_name(skim.parent.name, login, skim.name)


def shown_output_name(skim: Skim) -> str:
    """The name of *skim*'s output dataset, as a page or the command line
    shows it: the registered one, else the one it will register; for a skim
    requested before names were checked for length, why it has none.
    """
    if skim.output is not None:
        return skim.output.name
    try:
        return output_name(skim)
    except InvalidName as err:
        return f"none: {err}"


def output_note(skim: Skim) -> str | None:
    """Why the output dataset of *skim* (:func:`shown_output_name`) is not
    registered, as every surface says it beside the name; None once it is.
    """
    if skim.output is not None:
        return None
    if selected_nothing(skim):
        return "not registered: no event was selected"
    if skim.state == "cancelled":
        return "not registered: the skim was cancelled"
    if skim.state == "failed" and not retryable(skim):
        return "not registered: the skim failed, and a retry cannot mend it"
    return "registered when the skim is done"


def _check_length(value: str | None, column: str, what: str) -> None:
    """:raises InvalidInput: when *value*, *what* a request names, is longer
    than the skim's *column* keeps.
    """
    limit = getattr(Skim.__table__.c[column].type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidInput(
            f"{what} has {len(value)} characters; it may have at most {limit}"
        )


def _check_unused(
    parent: Dataset,
    owner: User,
    name: str,
    *,
    session: Session,
    skim: Skim | None = None,
) -> None:
    """:raises OutputTaken: when the output dataset of skim *name* of
    *parent* by *owner* is taken (:func:`_output_taken`).

    The owner's skims are read under :func:`_hold_skim_names`, so of two
    requests at once for one output name, the second sees the first's skim
    (on MariaDB too: the catalogue reads at READ COMMITTED there,
    :func:`catalog.db.create_catalog_engine`).
    """
    _hold_skim_names(owner, session=session)
    reason = _output_taken(parent, owner, name, session=session, skim=skim)
    if reason is not None:
        doing = f"skim {skim.id} cannot be retried: " if skim is not None else ""
        again = "request it again under another name" if skim else "choose another name"
        raise OutputTaken(f"{doing}{reason}; {again}")


def _output_taken(
    parent: Dataset,
    owner: User,
    name: str,
    *,
    session: Session,
    skim: Skim | None = None,
) -> str | None:
    """Why the output dataset of skim *name* of *parent* by *owner* is
    taken, or None: it is a dataset already, or another skim of *owner*
    (other than *skim*, being retried) that is not failed or cancelled
    would register it. Skims of two parents can: a name leaves out the
    parent's production step, and may shorten its physics short name.
    """
    wanted = output_dataset_name(parent.name, owner.login, name)
    if session.scalar(select(Dataset.id).where(Dataset.name == wanted)) is not None:
        return f"there is already a dataset {wanted}"
    query = (
        select(Skim.id, Dataset.name)
        .join(Dataset, Dataset.id == Skim.parent_id)
        .where(
            Skim.owner_id == owner.id,
            Skim.name == name,
            Skim.state.not_in(("failed", "cancelled")),
        )
        .order_by(Skim.id)
    )
    if skim is not None:
        query = query.where(Skim.id != skim.id)
    for other, other_parent in session.execute(query):
        if other_parent == parent.name:
            return f"skim {other} of {parent.name} is already called {name!r}"
        if output_dataset_name(other_parent, owner.login, name) == wanted:
            return (
                f"skim {other} of {other_parent}, also called {name!r}, will "
                f"register the same dataset {wanted}"
            )
    return None


def _hold_skim_names(owner: User, *, session: Session) -> None:
    """Lock *owner*'s row until the transaction ends, so that requests for
    skims of *owner* (whose outputs are all in the owner's scope) check and
    take their names one at a time (a failed or cancelled skim's name may be
    taken again, so no unique index can say which names are taken). SQLite
    has no row locks: there, a write that changes nothing takes the
    database's write lock, before the reads.
    """
    row = User.id == owner.id
    if session.get_bind().dialect.name == "sqlite":
        unchanged = update(User).where(row).values(login=User.login)
        session.execute(unchanged, execution_options={"synchronize_session": False})
    else:
        session.execute(select(User.id).where(row).with_for_update())


def _check_upload(
    data: bytes, collection_name: str | None, tag: TagDatabase, dataset: str
) -> None:
    events = read_collection(data, collection_name or "upload")
    check_collection(events, open_tag(tag), dataset)
    if len(events) == 0:
        raise InvalidInput(f"the collection {collection_name or 'upload'} is empty")


def _options(
    branches: Sequence[str] | None,
    compression: str | None,
    target_size: int | None,
    known: Sequence[str] = (),
) -> dict[str, object]:
    """The extraction options of a request, checked: the branches against
    the source tree's *known* branches (when the TAG knows them).
    """
    if isinstance(branches, str):
        branches = [b.strip() for b in branches.split(",")]
    chosen = [b.strip() for b in branches or () if b.strip()]
    if chosen and known:
        check_branches(chosen, known)
    if compression:
        compression = normal_compression(compression)
    if target_size is not None and target_size <= 0:
        raise InvalidInput(f"the target file size must be positive, not {target_size}")
    if target_size is not None and target_size > MAX_TARGET_SIZE:
        raise InvalidInput(
            f"the target file size must be at most {MAX_TARGET_SIZE} bytes, "
            f"not {target_size}"
        )
    return {
        "branches": json.dumps(chosen) if chosen else None,
        "compression": compression or None,
        "target_size": target_size,
    }


# -- finding ---------------------------------------------------------------------


def get_skim(skim_id: int | str, *, session: Session) -> Skim:
    """The skim *skim_id*.

    :raises SkimNotFound: when there is none.
    """
    try:
        number = int(skim_id)
    except (TypeError, ValueError):
        raise SkimNotFound(repr(skim_id)) from None
    if not 0 < number < 2**63:  # no id is; SQLite cannot even be asked
        raise SkimNotFound(number)
    skim = session.get(Skim, number)
    if skim is None:
        raise SkimNotFound(number)
    return skim


def list_skims(
    *,
    session: Session,
    owner: User | str | None = None,
    state: str | None = None,
    parent: Dataset | str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """A page of skims, newest first, of *owner* (a user or a login), in
    *state* and of the dataset *parent* (a dataset or its name), when given.

    An unknown login finds no skims, as a user without skims does: the
    answer must not tell which logins exist (docs/access.md).

    :raises InvalidInput: for an unknown state or a bad page.
    :raises DatasetNotFound: for an unknown dataset name.
    """
    check_paging(offset, limit)
    conditions = []
    if parent is not None:
        if isinstance(parent, str):
            parent = get_dataset(parent, session=session)
        conditions.append(Skim.parent_id == parent.id)
    if owner is not None:
        conditions.append(owned_by(owner))
    if state:
        if state not in SKIM_STATES:
            raise InvalidInput(
                f"no skim state {state!r}; the states are {', '.join(SKIM_STATES)}"
            )
        conditions.append(Skim.state == state)
    total = session.scalar(select(func.count()).select_from(Skim).where(*conditions))
    query = select(Skim).where(*conditions).order_by(Skim.id.desc())
    rows = session.scalars(query.offset(offset).limit(limit)).all()
    return Page(rows, total or 0, offset, limit)


def owned_by(owner: User | str) -> ColumnElement[bool]:
    """The condition that a skim's owner is *owner* (a user or a login). An
    unknown login matches no skim, without an error: a filter must not tell
    which logins exist.
    """
    if isinstance(owner, User):
        return Skim.owner_id == owner.id
    return Skim.owner_id.in_(select(User.id).where(User.login == owner))


def skim_making(dataset: Dataset, *, session: Session) -> Skim | None:
    """The skim whose output is *dataset*, or None when it is not a skim's."""
    return session.scalar(select(Skim).where(Skim.output_id == dataset.id))


# -- changing ------------------------------------------------------------------


def run_skim(skim_id: int | str, *, by: User, session: Session) -> Skim:
    """Ask for the defined skim *skim_id* to run: the task server takes it
    from now on. Asking again for a skim on its way changes nothing.

    :raises PermissionDenied: when *by* is neither its owner nor an admin.
    :raises InvalidInput: when the skim has ended (a failed one is retried
        instead).
    """
    skim = _changeable(skim_id, by, "running a skim of another user", session)
    if skim.state in FINISHED_STATES:
        hint = "; retry it instead" if skim.state == "failed" else ""
        raise InvalidInput(f"skim {skim.id} is {skim.state}: it cannot run again{hint}")
    if skim.run_requested is None:
        skim.run_requested = utcnow()
        session.flush()
    return skim


def waiting_for_run(skim: Skim) -> bool:
    """Whether *skim* is defined and nobody asked for it to run yet."""
    return skim.state == "defined" and skim.run_requested is None


def cancel_skim(skim_id: int | str, *, by: User, session: Session) -> Skim:
    """Cancel the skim *skim_id*: it is ``cancelled`` at once, and the task
    stops its extraction within a second. Files already written stay in the
    skim's directory; nothing is registered.

    :raises PermissionDenied: when *by* is neither its owner nor an admin.
    :raises InvalidInput: when the skim has ended.
    """
    skim = _changeable(skim_id, by, "cancelling a skim of another user", session)
    if skim.state in FINISHED_STATES:
        raise InvalidInput(
            f"skim {skim.id} is {skim.state}: only a skim in progress can be cancelled"
        )
    skim.state = "cancelled"
    skim.ended = utcnow()
    session.flush()
    return skim


def retry_skim(skim_id: int | str, *, by: User, session: Session) -> Skim:
    """Run the failed skim *skim_id* again from where it failed: with its
    collection and plan kept, only the output files that are missing are
    written.

    :raises PermissionDenied: when *by* is neither its owner nor an admin.
    :raises InvalidInput: when the skim has not failed, or failed because
        its selection kept no event (:func:`selected_nothing`).
    :raises OutputTaken: when, since it failed, another skim took its name
        or its output dataset's.
    """
    skim = _changeable(skim_id, by, "retrying a skim of another user", session)
    if skim.state != "failed":
        raise InvalidInput(
            f"skim {skim.id} is {skim.state}: only a failed skim can be retried"
        )
    if selected_nothing(skim):
        # A retry keeps the collection, so it would fail the same way.
        raise InvalidInput(
            f"skim {skim.id} selected no event: a retry would select none again; "
            "request a skim with another selection (the TAG page counts the "
            "events that pass one)"
        )
    if outdated(skim):
        raise InvalidInput(
            f"skim {skim.id} failed because its event collection lists a file "
            "its dataset no longer has: a retry keeps the collection; request "
            "the skim again once the dataset's TAG is built again"
        )
    if skim.owner is not None:
        _check_unused(skim.parent, skim.owner, skim.name, session=session, skim=skim)
    skim.state = "selected" if skim.collection_path else "defined"
    skim.error = None
    # The retry is a run of its own: its times are its own, not the
    # failed attempt's (a page would show a run of the time in between).
    skim.run_requested = utcnow()
    skim.started = None
    skim.ended = None
    skim.worker = None
    session.flush()
    return skim


def retryable(skim: Skim) -> bool:
    """Whether :func:`retry_skim` would take *skim* (its owner's or an
    admin's): it failed, not because its selection kept no event nor because
    its collection lists a file its dataset no longer has, and its output
    dataset is not taken since.
    """
    if skim.state != "failed" or selected_nothing(skim) or outdated(skim):
        return False
    session = object_session(skim)
    if skim.owner is None or session is None:
        return True
    owner, parent = skim.owner, skim.parent
    try:
        taken = _output_taken(parent, owner, skim.name, session=session, skim=skim)
    except InvalidName:  # its name no longer fits (requested under older rules)
        return False
    return taken is None


def outdated(skim: Skim) -> bool:
    """Whether *skim* failed because its event collection lists a file its
    dataset no longer has (:class:`~skimengine.tags.TagOutdated`): a retry
    keeps the collection, so it would fail the same way.
    """
    return skim.state == "failed" and (skim.error or "").startswith(
        f"{TagOutdated.__name__}: "
    )


def selected_nothing(skim: Skim) -> bool:
    """Whether *skim* failed because its selection kept no event: nothing
    to extract, which no retry mends (a retry keeps the collection).
    """
    return (
        skim.state == "failed"
        and skim.collection_path is not None
        and skim.n_selected == 0
    )


def _changeable(skim_id: int | str, by: User, action: str, session: Session) -> Skim:
    skim = get_skim(skim_id, session=session)
    mine = by is not None and skim.owner_id == by.id and has_role(by, ROLE_PHYSICIST)
    if not (mine or has_role(by, ROLE_ADMIN)):
        raise PermissionDenied(by.login if by else None, ROLE_ADMIN, action)
    return skim


# -- what a surface shows --------------------------------------------------------


def collection_path(skim: Skim) -> Path:
    """The ROOT file holding *skim*'s event collection.

    :raises CollectionNotReady: before its selection ran (or when the file
        has gone).
    """
    if not skim.collection_path or not Path(skim.collection_path).is_file():
        raise CollectionNotReady(skim)
    return Path(skim.collection_path)


def output_files(
    skim: Skim, storage_root: Path | None = None
) -> list[tuple[File, Path]]:
    """The files of *skim*'s output dataset, by LFN, each with the path of
    its copy: the one in the skim's output directory, or, when that one has
    gone, the one the registration published under *storage_root* (the
    setting ``storage_root``), when it is there.

    :raises OutputNotReady: before the output is registered.
    """
    if skim.output is None:
        raise OutputNotReady(skim)
    directory = Path(skim.output_dir or "")
    scope = skim.output.scope
    files = sorted(skim.output.files, key=lambda f: f.lfn)
    return [(f, _copy(directory / f.lfn, scope, storage_root)) for f in files]


def _copy(path: Path, scope: str, storage_root: Path | None) -> Path:
    """*path*, or the published copy of its file when only that one is there."""
    if path.is_file() or storage_root is None:
        return path
    published = deterministic_path(storage_root, scope, path.name)
    return published if published.is_file() else path


def output_file(
    skim: Skim, lfn: str, storage_root: Path | None = None
) -> tuple[File, Path]:
    """The output file *lfn* of *skim* and its path (:func:`output_files`).

    :raises OutputNotReady: when it is not one of the output's files, or its
        copies have gone.
    """
    for file, path in output_files(skim, storage_root):
        if file.lfn == lfn:
            if not path.is_file():
                raise OutputNotReady(skim, lfn, missing=True)
            return file, path
    raise OutputNotReady(skim, lfn)


def copy_output(
    skim: Skim, directory: Path, storage_root: Path | None = None
) -> list[Path]:
    """Copy the output files of *skim* (:func:`output_files`) into
    *directory* (made if need be), each checked against the catalogue's size
    and adler32; return the copies.

    :raises OutputNotReady: before the output is registered, or when a
        file has gone.
    :raises OutputCorrupt: when a copy differs; it is removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for file, path in output_files(skim, storage_root):
        if not path.is_file():
            raise OutputNotReady(skim, file.lfn, missing=True)
        copy = directory / file.lfn
        shutil.copyfile(path, copy)
        size, checksum = file_adler32(copy)
        if (size, checksum) != (file.size, file.checksum):
            copy.unlink()
            raise OutputCorrupt(
                f"the copy of {file.lfn} has {size} bytes and adler32 {checksum}, "
                f"the catalogue says {file.size} and {file.checksum}; it was removed"
            )
        copies.append(copy)
    return copies


def skim_progress(skim: Skim) -> float:
    """How far *skim* is, in percent (0 to 100)."""
    if skim.state == "done":
        return 100.0
    return min(100.0, max(0.0, float(skim.progress or 0.0)))


def skims_root(config: Config) -> Path:
    """Where skims keep their collections and output files: the setting
    ``skim_dir``, by default ``skims`` in the data directory.
    """
    configured = config.values.get("skim_dir")
    base = Path(configured).expanduser() if configured else config.data_path / "skims"
    return base.resolve()
