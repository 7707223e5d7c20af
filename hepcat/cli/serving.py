"""``hepcat demo`` and ``hepcat serve``."""

from __future__ import annotations

import hashlib
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine

import migrations
from catalog.config import ENV_PREFIX, Config
from catalog.db import open_catalog, session_factory
from catalog.errors import BrokerUnavailable
from hepcat.cli.base import (
    PORT,
    Context,
    Seconds,
    check_free,
    main,
    pass_context,
)
from hepcat.wiring import configured_ingesters, skim_tasks
from taskserver.runner import run_until_drained
from taskserver.server import TaskServer

HOST_HELP = "Address to listen on (default: the host setting, $HEPCAT_HOST, 127.0.0.1)."
PORT_HELP = (
    "Port to listen on, 1-65535 (default: the port setting, $HEPCAT_PORT, 5000)."
)


@main.command()
@click.option("--host", default=None, help=HOST_HELP)
@click.option("--port", default=None, type=PORT, help=PORT_HELP)
@click.option(
    "--no-serve",
    is_flag=True,
    help="Write the whole simulated world into the sources, ingest it, then exit.",
)
@click.option(
    "--pace",
    default=0.3,
    type=Seconds(min=0),
    show_default=True,
    help="Seconds between two writes of the simulated sources.",
)
@pass_context
def demo(
    context: Context, host: str | None, port: int | None, no_serve: bool, pace: float
) -> None:
    """Run hepcat on the embedded default with a simulated world.

    Creates the data directory with its SQLite catalogue and simulated ProdSys,
    Tier-0 and COMA databases; settings naming another catalogue, sources,
    file store or DDM destination are ignored, with a note. The simulators
    write a small realistic world into the sources (Monte Carlo chains and
    real-data runs, with files) while the task server ingests it, and the
    pages are served at http://127.0.0.1:5000 so that data arrives while one
    watches. With
    HEPCAT_DDM_BROKER set (a STOMP broker such as ActiveMQ), DDM's events
    about the world are published there too, to a destination of the demo's
    own, and ingested. Run again on the same data directory, the demo writes
    the world again from the start when it was stopped before writing it
    whole; a busy port stops it before it writes anything.
    """
    config, ignored = demo_config(context.config)
    if ignored:
        click.echo(ignored_note(config, ignored), err=True)
    if not no_serve:  # before anything is written: a busy port stops it here
        check_free(host or config.host, port or config.port)
    config, fresh, steps = _demo_sources(config)
    engine = _demo_engine(config)
    migrations.upgrade(engine)
    Session = session_factory(engine)
    tasks = configured_ingesters(config)
    ddm = DemoDdm.of(config, tasks) if fresh else None
    if ddm is not None:
        steps += ddm.steps()
    elif not config.ddm_broker:
        click.echo(DDM_OFF)
    if fresh:
        steps.append(partial(_mark_written, config.data_path / "sources"))
    try:
        if no_serve:
            _demo_once(config, Session, tasks, steps, fresh, ddm)
        else:
            _demo_live(config, engine, tasks, steps, fresh, (host, port), pace)
    finally:
        if ddm is not None:
            ddm.close()


#: The settings the demo replaces with its own: it writes a simulated world
#: with realistic names, and publishes DDM erasures, so it never touches the
#: catalogue, sources, file store or DDM destination the environment names.
DEMO_OWN = (
    "database_url",
    "prodsys_url",
    "tier0_url",
    "coma_url",
    "storage_root",
    "pool_file_catalogs",
    "skim_dir",
    "ddm_destination",
    "ddm_client_id",
    "ddm_subscription",
)


def demo_config(config: Config) -> tuple[Config, list[str]]:
    """The demo's settings: *config* with its own SQLite catalogue, file
    store and skims in the data directory, and a DDM destination and durable
    subscription named after the data directory; and the settings of
    :data:`DEMO_OWN` that were set, and are ignored, as a note names them.
    The broker (``ddm_broker``) is kept: it is how DDM is asked for. The
    sources are the data directory's (:func:`_demo_sources`).
    """
    ignored = [
        _where_set(config, name)
        for name in DEMO_OWN
        if config.sources[name] != "default"
    ]
    tag = hashlib.sha256(str(config.data_path).encode()).hexdigest()[:12]
    own = config.replace(
        database_url=None,
        prodsys_url=None,
        tier0_url=None,
        coma_url=None,
        storage_root=None,
        pool_file_catalogs=(),
        skim_dir=None,
        ddm_destination=f"/topic/hepcat.demo.{tag}",
        ddm_client_id=f"hepcat-demo-{tag}",
        ddm_subscription="hepcat-demo-ddm",
    )
    return own, ignored


def _where_set(config: Config, name: str) -> str:
    """Setting *name* as a note names it: its variable when the environment
    set it, else its key and where it was set.
    """
    if config.sources[name].startswith("environment"):
        return f"{ENV_PREFIX}{name.upper()}"
    return f"{name} ({config.origin(name)})"


def ignored_note(config: Config, ignored: list[str]) -> str:
    """The one line saying which settings the demo ignores."""
    ddm = ", DDM destination and subscription" if config.ddm_broker else ""
    return (
        f"note: the demo ignores {', '.join(ignored)}: it keeps to its own "
        f"catalogue, sources, files{ddm} in {config.data_path}"
    )


DDM_OFF = (
    "DDM is off: set HEPCAT_DDM_BROKER=stomp://host:61613 (ActiveMQ) for the "
    "demo to publish DDM's events there and ingest them"
)


def _demo_engine(config: Config) -> Engine:
    """The engine of the demo's own SQLite catalogue, disposed of when the
    command ends.
    """
    engine = open_catalog(config)
    click.get_current_context().call_on_close(engine.dispose)
    return engine


def _demo_once(
    config: Config,
    Session: Any,  # noqa: N803
    tasks: list[Any],
    steps: list[Any],
    fresh: bool,
    ddm: DemoDdm | None,
) -> None:
    """Write the whole world into the sources, ingest it, build the TAGs."""
    from skimengine.task import TagBuildTask

    if ddm is not None:
        ddm.ingester.open(Session)  # the topic keeps messages for subscribers
    for step in steps:
        step()
    lease = config.taskserver_lease_seconds
    items = run_until_drained(tasks, Session, lease_seconds=lease)
    click.echo(", ".join(f"{name}: {count} ingested" for name, count in items.items()))
    if fresh:
        _demo_event_files(config)
    built = run_until_drained([TagBuildTask(config)], Session, lease_seconds=lease)
    click.echo(f"TAGs built: {sum(built.values())}")


def _demo_live(
    config: Config,
    engine: Engine,
    tasks: list[Any],
    steps: list[Any],
    fresh: bool,
    address: tuple[str | None, int | None],
    pace: float,
) -> None:
    """Feed the sources a step at a time while the task server ingests and
    the pages are served.
    """
    from ingest.simulate import Feeder

    feeder = Feeder(steps, pace=pace)
    tasks = tasks + skim_tasks(config, tags=True)
    server = TaskServer(
        tasks, session_factory(engine), workers=config.taskserver_workers
    )
    if fresh:  # the TAG task builds each derivation's TAG once its files are here
        threading.Thread(
            target=_demo_event_files, args=(config,), name="demo-files", daemon=True
        ).start()
    feeder.start()
    server.start()
    if fresh:
        click.echo(f"the simulators write {len(steps)} changes, one every {pace} s")
    try:
        _serve(config, engine, *address)
    finally:
        feeder.stop()
        server.stop()


class DemoDdm:
    """The demo's DDM: the world's events (:func:`ingest.simulate_ddm.ddm_scenario`)
    published to the configured broker a few at a time, after the other
    sources' writes, once the DDM ingester's durable subscription is active:
    a topic keeps messages only for the subscriptions it has.
    """

    EVENTS_PER_STEP = 5
    PATIENCE = 30.0  # seconds the subscription may take

    def __init__(self, config: Config, ingester: Any) -> None:
        from ingest.simulate_ddm import DdmPublisher

        self.ingester = ingester
        self.broker = config.ddm_broker
        self.publisher = DdmPublisher(config.ddm_broker, config.ddm_destination)

    @classmethod
    def of(cls, config: Config, tasks: list[Any]) -> DemoDdm | None:
        """The demo's DDM when *tasks* has a DDM ingester, else None."""
        from ingest.ddm import DdmIngester

        found = [task for task in tasks if isinstance(task, DdmIngester)]
        return cls(config, found[0]) if found else None

    def steps(self) -> list[Any]:
        from ingest.simulate_ddm import ddm_scenario
        from ingest.world import build_world

        events = ddm_scenario(build_world()).events
        size = self.EVENTS_PER_STEP
        chunks = [events[i : i + size] for i in range(0, len(events), size)]
        return [self._subscribed] + [partial(self._publish, c) for c in chunks]

    def close(self) -> None:
        self.publisher.close()

    def _subscribed(self) -> None:
        deadline = time.monotonic() + self.PATIENCE
        while not self.ingester.connected:
            if time.monotonic() > deadline:
                reason = f"no subscription after {self.PATIENCE:.0f} s"
                raise BrokerUnavailable(self.broker, reason)
            time.sleep(0.1)

    def _publish(self, events: list[Any]) -> None:
        for number, event in enumerate(events, 1):
            self.publisher.publish(event, confirm=number == len(events))


def _demo_sources(config: Config) -> tuple[Config, bool, list[Any]]:
    """The demo's source databases in the data directory; until the simulated
    world has been written into them whole (:data:`WORLD_WRITTEN`), the
    writes that fill them with it, from the start.
    """
    from ingest.simulate import ComaSource, ProdSysSource, Tier0Source, world_steps
    from ingest.world import build_world

    folder = config.data_path / "sources"
    urls = {name: f"sqlite:///{folder / f'{name}.sqlite'}" for name in DEMO_SOURCES}
    config = config.replace(**{f"{name}_url": url for name, url in urls.items()})
    if (folder / WORLD_WRITTEN).exists():
        return config, False, []
    if folder.exists():
        click.echo(f"{UNFINISHED} in {folder}: writing it again", err=True)
    folder.mkdir(parents=True, exist_ok=True)
    prodsys = _emptied(ProdSysSource(urls["prodsys"]))
    tier0 = _emptied(Tier0Source(urls["tier0"]))
    coma = _emptied(ComaSource(urls["coma"]))
    return config, True, world_steps(build_world(), prodsys, tier0, coma)


#: The file of the sources folder saying the simulated world has been written
#: into the sources whole; a demo stopped before has its sources written again.
WORLD_WRITTEN = "world-written"
UNFINISHED = "the simulated world was not written whole (the demo stopped early)"


def _emptied(source: Any) -> Any:
    """*source* with its tables made anew, empty: the world's writes insert,
    so a half-written world is written again from the start.
    """
    source.drop()
    return source.create()


def _mark_written(folder: Path) -> None:
    """The demo's last write: the world is whole in the sources of *folder*."""
    (folder / WORLD_WRITTEN).write_text("the simulated world is written whole\n")


DEMO_SOURCES = ("prodsys", "tier0", "coma")


def _demo_event_files(config: Config) -> None:
    """Write the event files of the simulated world's AOD and DAOD datasets
    into the file store (a few seconds).
    """
    from ingest.eventfiles import write_world_files
    from ingest.world import build_world

    write_world_files(build_world(), config.storage_path)


@main.command()
@click.option("--host", default=None, help=HOST_HELP)
@click.option("--port", default=None, type=PORT, help=PORT_HELP)
@pass_context
def serve(context: Context, host: str | None, port: int | None) -> None:
    """Serve the web pages, the JSON API and the AMI endpoint for the catalogue,
    on Flask's own server. In production, run web.wsgi:app under gunicorn
    (pip install 'hepcat[serve]'; see the README).
    """
    engine = context.engine()
    migrations.require_current(engine)
    _serve(context.config, engine, host, port)


def _serve(config: Config, engine: Engine, host: str | None, port: int | None) -> None:
    from web.app import create_app, settle

    app = create_app(config, engine=engine)
    settle()
    host = host or config.host
    port = port or config.port
    check_free(host, port)
    click.echo(f"hepcat is serving at http://{host}:{port}/  (Ctrl-C stops it)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)
