"""``hepcat ingest``, ``hepcat derive`` and ``hepcat taskserver``."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import click

import migrations
from catalog.db import session_factory, utcnow
from catalog.errors import HepcatError
from catalog.operations import quarantine_sources
from hepcat.cli.base import (
    PORT,
    Context,
    Seconds,
    listen_error,
    main,
    pass_context,
)
from hepcat.wiring import configured_ingesters, skim_tasks
from taskserver.errors import DrainFailed
from taskserver.runner import run_until_drained, serve_forever
from taskserver.server import TaskServer

if TYPE_CHECKING:
    from catalog.consistency import Checked

#: The settings that turn an ingester on.
SOURCE_SETTINGS = (
    "HEPCAT_PRODSYS_URL, HEPCAT_TIER0_URL, HEPCAT_COMA_URL or HEPCAT_DDM_BROKER"
)


@main.command()
@click.option(
    "--once",
    is_flag=True,
    required=True,
    help="Run every configured ingester until its source is drained, then exit "
    "(DDM: until the destination is quiet).",
)
@click.option(
    "--max-seconds",
    type=Seconds(min=0),
    default=None,
    help="Give up after this many seconds, with exit status 1 when a source "
    "is not drained by then (default: no limit).",
)
@pass_context
def ingest(context: Context, once: bool, max_seconds: float | None) -> None:
    """Ingest from the configured sources (HEPCAT_PRODSYS_URL, HEPCAT_TIER0_URL,
    HEPCAT_COMA_URL, HEPCAT_DDM_BROKER) and print what each ingested and
    quarantined. Exit status 1 when an ingester failed, as DDM does when its
    broker stays out of reach for 30 s, or when --max-seconds ran out before
    every source was drained. DDM is skipped, with a note, while another
    hepcat process (a running task server) holds its client id.
    """
    engine = context.engine()
    migrations.require_current(engine)
    tasks = configured_ingesters(context.config, once=True)
    if not tasks:
        _no_sources()
    progress = Progress()
    Session = session_factory(engine)
    started = utcnow()
    try:
        items = run_until_drained(
            tasks,
            Session,
            max_seconds=max_seconds,
            progress=progress,
            lease_seconds=context.config.taskserver_lease_seconds,
        )
    except DrainFailed as err:
        progress.done()
        _print_items(
            err.items,
            _quarantined(Session, started),
            failed=err.failed,
            skipped=_skipped(tasks),
        )
        for note in getattr(err, "__notes__", []):
            click.echo(note, err=True)
        raise
    progress.done()
    _print_items(
        items, _quarantined(Session, started), items.undrained, skipped=_skipped(tasks)
    )
    if items.undrained:
        raise NotDrained(items.undrained, max_seconds)


class NotDrained(HepcatError, TimeoutError):
    """``hepcat ingest --once`` ran out of time before every source was drained."""

    def __init__(self, names: Sequence[str], seconds: float | None) -> None:
        limit = f" (--max-seconds {seconds:g})" if seconds is not None else ""
        super().__init__(
            f"the time ran out{limit} before {', '.join(map(repr, names))} "
            "drained their source; run again, or allow more time"
        )
        self.names = list(names)


def _quarantined(Session: Any, since: dt.datetime) -> dict[str, int]:  # noqa: N803
    """How many records each source put in quarantine since *since*."""
    with Session() as session:
        return quarantine_sources(since=since, session=session)


def _skipped(tasks: Sequence[Any]) -> dict[str, str]:
    """Why tasks left their source to another process (DDM, when a task
    server holds its client id), per task name.
    """
    return {task.name: task.skipped for task in tasks if getattr(task, "skipped", None)}


def _print_items(
    items: dict[str, int],
    quarantined: dict[str, int],
    undrained: Collection[str] = (),
    failed: Collection[str] = (),
    skipped: dict[str, str] | None = None,
) -> None:
    for name, count in items.items():
        held = quarantined.get(name, 0)
        note = f", {held} quarantined" if held else ""
        ending = " (failed)" if name in failed else ""
        ending += " (not drained)" if name in undrained else ""
        if skipped and name in skipped:
            ending += f" (skipped: {skipped[name]})"
        click.echo(f"{name}: {count} ingested{note}{ending}")


class Progress:
    """A one-line progress display of a draining backlog on the terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, task: str, items: int, backlog: int | None) -> None:
        left = "?" if backlog is None else f"{backlog:,}"
        self.show(f"{task}: {items:,} ingested, {left} left")

    def show(self, line: str) -> None:
        """Show *line*, unless the last was shown a moment ago."""
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        click.echo(f"\r{line:<70}" if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.last:
            click.echo(err=True)


@main.command()
@click.option("--check", is_flag=True, help="Only report differences (the default).")
@click.option("--fix", is_flag=True, help="Write the recomputed values.")
@pass_context
def derive(context: Context, check: bool, fix: bool) -> None:
    """Recompute every derived quantity from scratch and report differences
    from the stored values (exit status 1 when there are any, unless --fix),
    and the datasets whose values cannot be recomputed (exit status 1).
    Each batch of datasets is a transaction of its own, and its differences
    are printed when it is done.
    """
    from catalog.consistency import Unrecomputable, each_difference

    engine = context.engine()
    migrations.require_current(engine)
    Session = session_factory(engine)
    progress = DeriveProgress()
    count = failed = 0
    with Session() as session:
        for checked in each_difference(session=session, fix=fix):
            if checked.differences:
                progress.clear()
            for difference in checked.differences:
                click.echo(str(difference))
                failed += isinstance(difference, Unrecomputable)
            count += len(checked.differences)
            progress(checked, count)
    progress.done()
    verb = "fixed" if fix else "found"
    unrecomputed = f", {failed} datasets not recomputed" if failed else ""
    click.echo(f"{count - failed} differences {verb}{unrecomputed}")
    if (count and not fix) or failed:
        raise SystemExit(1)


class DeriveProgress:
    """The progress of ``derive`` on stderr (a :class:`Progress` line): the
    step, the datasets it checked and the differences found so far.
    """

    def __init__(self) -> None:
        self.line = Progress()
        # The first line after a while: a small catalogue shows none.
        self.started = self.line.last = time.monotonic()
        self.step = ""
        self.checked = 0

    def __call__(self, checked: Checked, count: int) -> None:
        if checked.step != self.step:
            self.step, self.checked = checked.step, 0
        self.checked += checked.datasets
        self.line.show(
            f"derive {self.step}: {self.checked:,} datasets, {count:,} differences"
        )

    def clear(self) -> None:
        """Clear the line on the terminal, for differences to be printed."""
        if self.line.tty and self.line.last != self.started:
            click.echo(f"\r{'':<70}\r", err=True, nl=False)

    def done(self) -> None:
        if self.line.last != self.started:
            self.line.done()


@main.command()
@click.option(
    "--metrics-port",
    type=PORT,
    default=None,
    help="Serve Prometheus metrics on this port, 1-65535 (default: none).",
)
@pass_context
def taskserver(context: Context, metrics_port: int | None) -> None:
    """Run the task server: every configured ingester and the skim task,
    time-shared, until SIGTERM or Ctrl-C; the TAG task too when the file
    store is configured (storage_root or pool_file_catalogs). Without any
    source it runs skims only. Several can share one catalogue database.
    """
    engine = context.engine()
    migrations.require_current(engine)
    config = context.config
    ingesters = configured_ingesters(config)
    if not ingesters:
        click.echo(
            "no source is configured: the task server runs no ingester; set "
            f"{SOURCE_SETTINGS} to ingest",
            err=True,
        )
    # The skim task is always there, so the server always has work to offer.
    tasks = ingesters + skim_tasks(config)
    server = TaskServer(
        tasks,
        session_factory(engine),
        workers=config.taskserver_workers,
        lease_seconds=config.taskserver_lease_seconds,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(
                metrics_port, addr=config.host, registry=server.metrics.registry
            )
        except OSError as err:
            raise listen_error(config.host, metrics_port, err) from None
    names = ", ".join(task.name for task in tasks)
    click.echo(f"task server {server.owner} runs: {names}")
    serve_forever(server, threading.Event())


def _no_sources() -> None:
    click.echo(f"no source is configured; set {SOURCE_SETTINGS}", err=True)
    raise SystemExit(1)
