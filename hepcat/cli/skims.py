"""``hepcat skim`` and ``hepcat tag``: skims and TAG databases."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from catalog import users
from catalog.datasets import MAX_PAGE_SIZE
from catalog.errors import InvalidInput
from catalog.models import SKIM_STATES
from catalog.models.skims import MAX_TARGET_SIZE
from hepcat.cli.base import (
    Context,
    echo_empty,
    echo_header,
    header_option,
    main,
    pass_context,
)


@main.group()
def skim() -> None:
    """Request skims of datasets and follow them: a selection on a dataset's
    TAG, extracted into a new dataset in the requester's scope.
    """


@skim.command("create")
@click.option("--dataset", "dataset_name", required=True, help="The parent dataset.")
@click.option(
    "--select",
    "selection",
    help="The selection on the dataset's TAG (this or --collection is needed).",
)
@click.option(
    "--collection",
    type=click.Path(exists=True, dir_okay=False),
    help="An event collection (ROOT or CSV) to extract instead of a selection.",
)
@click.option("--name", required=True, help="The skim's name, the output's last field.")
@click.option(
    "--user", "login", help="The physicist asking for it (default: your login name)."
)
@click.option("--branches", help="Branches to keep, comma-separated (default all).")
@click.option("--compression", help="zstd, lz4 or zlib, with :level (default zstd:1).")
@click.option(
    "--target-size",
    type=click.IntRange(1, MAX_TARGET_SIZE),
    help="Bytes of an output file, about (default 2 GB).",
)
@click.option(
    "--run",
    is_flag=True,
    help="Also request its run, for the task server (default: only define it).",
)
@pass_context
def skim_create(
    context: Context,
    dataset_name: str,
    selection: str | None,
    collection: str | None,
    name: str,
    login: str | None,
    branches: str | None,
    compression: str | None,
    target_size: int | None,
    run: bool,
) -> None:
    """Define a skim of a dataset as the catalogued physicist --user (by
    default the login name you run it as); print its id. 'hepcat skim run
    ID --wait' runs it here; with --run, the task server runs it.
    """
    import getpass
    from pathlib import Path

    from skimengine.skims import request_skim

    upload = Path(collection).read_bytes() if collection else None
    with context.catalog().begin() as session:
        requested = request_skim(
            dataset_name,
            selection,
            name,
            owner=_requester(login or getpass.getuser(), login is None, session),
            session=session,
            branches=branches.split(",") if branches else None,
            compression=compression,
            target_size=target_size,
            collection=upload,
            collection_name=Path(collection).name if collection else None,
            run=run,
        )
        click.echo(requested.id)


def _requester(login: str, defaulted: bool, session: Any) -> Any:
    """The catalogued user *login* who requests a skim.

    :raises UserNotFound: when there is none; when *login* is the login name
        the command runs as (no ``--user``), the message says to pass one.
    """
    from catalog.errors import UserNotFound

    try:
        return users.get_user(login, session=session)
    except UserNotFound as err:
        if defaulted:
            hint = "pass --user LOGIN (the default is your login name)"
            err.args = (f"{err.message}; {hint}",)
        raise


@skim.command("run")
@click.argument("skim_id", type=int)
@click.option("--wait", is_flag=True, help="Run it to its end, with a progress bar.")
@click.option("--user", "login", help="Who asks for the run (default: its owner).")
@pass_context
def skim_run(context: Context, skim_id: int, wait: bool, login: str | None) -> None:
    """Request the run of skim SKIM_ID and run the skim task for it in this
    process: one step (selection, planning, or extraction with registration,
    which this command waits for), or with --wait until the skim is done,
    failed or cancelled (exit status 1 unless done).
    """
    from skimengine.skims import run_skim
    from skimengine.task import SkimTask

    Session = context.catalog()
    with Session.begin() as session:
        # An ended skim is refused as on every surface (a failed one is
        # retried instead).
        run_skim(skim_id, by=_acting(skim_id, login, session), session=session)
    task = SkimTask(context.config, only=skim_id)
    bar = SkimProgress()
    try:
        with _terminated_as_interrupted():
            state, error = _run_steps(Session, task, skim_id, bar, wait=wait)
    finally:
        bar.done()
        task.close()
    click.echo(f"skim {skim_id}: {state}" + (f": {error}" if error else ""))
    if wait and state != "done":
        raise SystemExit(1)


def _run_steps(
    Session: Any,  # noqa: N803
    task: Any,
    skim_id: int,
    bar: SkimProgress,
    *,
    wait: bool,
) -> tuple[str, str | None]:
    """Run *task* for skim *skim_id*: one step, or with *wait* until it is
    finished; return its state and error.
    """
    from skimengine.skims import FINISHED_STATES
    from taskserver.base import RunContext

    told = False
    while True:
        task.run(RunContext(Session, time.monotonic() + task.budget))
        # An extraction runs in the background of the task: a step is over
        # once it is (closing the task would cancel it).
        while not task.wait(skim_id, timeout=0.2):
            _show(Session, skim_id, bar)
        state, error = _show(Session, skim_id, bar)
        told = told or _tell_held(Session, task, skim_id)
        if not wait or state in FINISHED_STATES:
            return state, error
        time.sleep(0.2)


@contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """Within, SIGTERM (kill, timeout) is taken as Ctrl-C: the skim task is
    closed, which frees the skim for the next start at once, rather than
    holding it until its lease runs out. Only the main thread can.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _tell_held(Session: Any, task: Any, skim_id: int) -> bool:  # noqa: N803
    """Say, on stderr, when another worker holds skim *skim_id* (this
    process then takes no step); return whether it was said.
    """
    from skimengine.skims import get_skim

    with Session() as session:
        held = task.held_elsewhere(get_skim(skim_id, session=session))
    if held is not None:
        click.echo(held, err=True)
    return held is not None


def _show(Session: Any, skim_id: int, bar: SkimProgress) -> tuple[str, str | None]:  # noqa: N803
    """Show the progress of skim *skim_id*; return its state and error."""
    from skimengine.skims import FINISHED_STATES, get_skim, skim_progress

    with Session() as session:
        found = get_skim(skim_id, session=session)
        state, percent, error = found.state, skim_progress(found), found.error
    bar(skim_id, state, percent, final=state in FINISHED_STATES)
    return state, error


class SkimProgress:
    """A progress bar of a skim on the terminal (a line now and then elsewhere)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(
        self, skim_id: int, state: str, percent: float, *, final: bool = False
    ) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0) and not final:
            return
        self.last = now
        filled = int(percent // 5)
        line = f"skim {skim_id} [{'#' * filled:<20}] {percent:5.1f}% {state}"
        click.echo(f"\r{line:<70}" if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.last:
            click.echo(err=True)


@skim.command("show")
@click.argument("skim_id", type=int)
@pass_context
def skim_show(context: Context, skim_id: int) -> None:
    """Print a skim: what was asked, its state, progress and output."""
    from skimengine.skims import (
        get_skim,
        retryable,
        skim_progress,
        waiting_for_run,
    )

    with context.catalog()() as session:
        found = get_skim(skim_id, session=session)
        shown = {
            "skim": found.id,
            "name": found.name,
            "owner": found.owner.login if found.owner else "-",
            "dataset": found.parent.name,
            "selection": found.selection or f"collection {found.collection_name}",
            "state": found.state,
            "run": _run_line(found, waiting=waiting_for_run(found)),
            "progress": f"{skim_progress(found):.1f}%",
            "events": f"{found.n_selected} of {found.n_events_in}"
            if found.n_selected is not None
            else "-",
            "files": f"{found.units_done or 0} of {found.n_units}"
            if found.n_units
            else "-",
            "output": _output(found),
            "error": found.error or "-",
        }
        if retryable(found):
            shown["retry"] = f"'hepcat skim retry {found.id}' writes the missing files"
    for key, value in shown.items():
        click.echo(f"{key + ':':11}{value}")


def _run_line(found: Any, *, waiting: bool) -> str:
    """Whether the skim *found* was asked to run, and how to ask while it
    can be (a skim that ended cannot run again).
    """
    if found.run_requested:
        return f"requested {found.run_requested:%Y-%m-%d %H:%M:%S} UTC"
    if waiting:
        return f"not requested ('hepcat skim run {found.id}' runs it)"
    return "not requested"


def _output(skim: Any) -> str:
    """The output dataset of *skim* as ``skim show`` prints it: its name, and
    why it is not registered (as the skim's page says).
    """
    from skimengine.skims import output_note, shown_output_name

    note = output_note(skim)
    return shown_output_name(skim) + (f" ({note})" if note else "")


@skim.command("list")
@click.option("--user", "login", help="Only the skims of this user.")
@click.option(
    "--state", type=click.Choice(SKIM_STATES), help="Only the skims in this state."
)
@click.option("--dataset", help="Only the skims of this dataset (LDN).")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=50,
    show_default=True,
    help="The most skims printed, newest first.",
)
@header_option
@pass_context
def skim_list(
    context: Context,
    login: str | None,
    state: str | None,
    dataset: str | None,
    limit: int,
    header: bool | None,
) -> None:
    """Print the skims, newest first: id, state, progress, owner, name and
    dataset.
    """
    from skimengine.skims import list_skims, skim_progress

    with context.catalog()() as session:
        page = list_skims(
            session=session, owner=login, state=state, parent=dataset, limit=limit
        )
        if not page.rows:
            echo_empty(_no_skims(login, state, dataset))
            return
        echo_header(
            header,
            f"{'ID':>5} {'STATE':12} {'DONE':>6} {'OWNER':12} {'NAME':20} DATASET",
        )
        for found in page.rows:
            owner = found.owner.login if found.owner else "-"
            click.echo(
                f"{found.id:>5} {found.state:12} {skim_progress(found):5.1f}% "
                f"{owner:12} {found.name:20} {found.parent.name}"
            )


def _no_skims(login: str | None, state: str | None, dataset: str | None) -> str:
    """What an empty skim list says: ``no skims`` and its filters."""
    filters = [
        f"of {login}" if login else "",
        f"in state {state}" if state else "",
        f"of {dataset}" if dataset else "",
    ]
    return " ".join(["no skims", *filter(None, filters)])


@skim.command("cancel")
@click.argument("skim_id", type=int)
@click.option("--user", "login", help="Who cancels it (default: its owner).")
@pass_context
def skim_cancel(context: Context, skim_id: int, login: str | None) -> None:
    """Cancel a skim in progress."""
    from skimengine.skims import cancel_skim

    _change(context, cancel_skim, skim_id, login)


@skim.command("retry")
@click.argument("skim_id", type=int)
@click.option("--user", "login", help="Who retries it (default: its owner).")
@pass_context
def skim_retry(context: Context, skim_id: int, login: str | None) -> None:
    """Run a failed skim again: only its missing output files are written."""
    from skimengine.skims import retry_skim

    _change(context, retry_skim, skim_id, login)


def _change(
    context: Context, change: Callable[..., Any], skim_id: int, login: str | None
) -> None:
    """Make *change* (``cancel_skim`` or ``retry_skim``) to the skim *skim_id*
    as the user *login* (default: its owner), and print its new state.
    """
    with context.catalog().begin() as session:
        by = _acting(skim_id, login, session)
        found = change(skim_id, by=by, session=session)
        click.echo(f"skim {found.id}: {found.state}")


def _acting(skim_id: int, login: str | None, session: Any) -> Any:
    """The user a command acts for: *login*, or the owner of the skim."""
    from skimengine.skims import get_skim

    if login:
        return users.get_user(login, session=session)
    return get_skim(skim_id, session=session).owner


@skim.command("files")
@click.argument("skim_id", type=int)
@click.option(
    "-o", "--output", type=click.Path(file_okay=False),
    help="Copy the files into this directory, each checked against its adler32.",
)  # fmt: skip
@pass_context
def skim_files(context: Context, skim_id: int, output: str | None) -> None:
    """List the files of a skim's output dataset, where each lies; with -o,
    copy them.
    """
    from pathlib import Path

    from skimengine.skims import copy_output, get_skim, output_files

    storage_root = context.config.storage_path
    with context.catalog()() as session:
        found = get_skim(skim_id, session=session)
        files = output_files(found, storage_root)
        for file, path in files:
            gone = "" if path.is_file() else " (missing on disk)"
            click.echo(
                f"{file.lfn}  {file.events or 0:>10,} events  {file.size or 0:>13,} B"
                f"  {file.checksum}  {path}{gone}"
            )
        if output is not None:
            with _writing(output):
                copies = copy_output(found, Path(output), storage_root)
            total = sum(copy.stat().st_size for copy in copies)
            click.echo(f"copied {len(copies)} file(s), {total:,} B, to {output}")


@skim.command("collection")
@click.argument("skim_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option(
    "--format", "kind", type=click.Choice(["root", "csv"]), default="root",
    show_default=True,
)  # fmt: skip
@pass_context
def skim_collection(context: Context, skim_id: int, output: str, kind: str) -> None:
    """Write a skim's event collection to a file, as ROOT or CSV."""
    import shutil

    from skimengine.collection import read_collection
    from skimengine.skims import collection_path, get_skim

    with context.catalog()() as session:
        path = collection_path(get_skim(skim_id, session=session))
    with _writing(output):
        if kind == "root":
            shutil.copyfile(path, output)
        else:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                read_collection(path).write_csv(stream)
    click.echo(f"wrote {output}")


@contextmanager
def _writing(output: str) -> Iterator[None]:
    """Turn a failure to write the file *output* into hepcat's error, which
    the command line renders in one place.
    """
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        raise InvalidInput(f"cannot write {output}: {reason}") from None


@main.group()
def tag() -> None:
    """Build, export and import the TAG databases (event-level metadata) of
    datasets.
    """


@tag.command("build")
@click.argument("dataset_name")
@pass_context
def tag_build(context: Context, dataset_name: str) -> None:
    """Build and register the TAG of a dataset from its event files, found
    in the file store (storage_root, pool_file_catalogs).
    """
    from skimengine.filestore import FileStore
    from skimengine.tags import build_tag, dataset_event_files, register_tag

    config = context.config
    with context.catalog().begin() as session:
        store = FileStore.from_config(config)
        files = dataset_event_files(dataset_name, store, session=session)
        table = build_tag(files)
        register_tag(dataset_name, table, data_dir=config.data_path, session=session)
    click.echo(f"TAG of {dataset_name}: {len(table)} events from {len(files)} files")


@tag.command("export")
@click.argument("dataset_name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@pass_context
def tag_export(context: Context, dataset_name: str, output: str) -> None:
    """Write the TAG of a dataset to a ROOT file: TTree TAG (an entry per
    event: attributes, FileIndex, Entry), Files and TriggerMenu.
    """
    from skimengine.tags import export_tag

    with context.catalog()() as session, _writing(output):
        table = export_tag(dataset_name, output, session=session)
    click.echo(f"wrote {output}: {len(table)} events")


@tag.command("import")
@click.argument("dataset_name")
@click.argument("path", type=click.Path(dir_okay=False))
@pass_context
def tag_import(context: Context, dataset_name: str, path: str) -> None:
    """Register a TAG ROOT file (as 'hepcat tag export' writes it) as the TAG
    of a dataset; every file it lists must be one of the dataset's.
    """
    from skimengine.tags import import_tag

    with context.catalog().begin() as session:
        tag = import_tag(
            dataset_name, path, data_dir=context.config.data_path, session=session
        )
        click.echo(f"TAG of {dataset_name}: {tag.n_events} events from {path}")
