"""``hepcat demo`` and ``hepcat serve``."""

from __future__ import annotations

import threading
from typing import Any

import click
from sqlalchemy import Engine

import migrations
from catalog.config import Config
from catalog.db import session_factory
from hepcat.cli.base import Context, main, pass_context
from hepcat.wiring import configured_ingesters, skim_tasks
from taskserver.runner import run_until_drained
from taskserver.server import TaskServer


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@click.option(
    "--no-serve",
    is_flag=True,
    help="Write the whole simulated world into the sources, ingest it, then exit.",
)
@click.option(
    "--pace",
    default=0.3,
    type=float,
    show_default=True,
    help="Seconds between two writes of the simulated sources.",
)
@pass_context
def demo(
    context: Context, host: str | None, port: int | None, no_serve: bool, pace: float
) -> None:
    """Run hepcat on the embedded default with a simulated world.

    Creates the data directory with its SQLite catalogue and simulated ProdSys,
    Tier-0 and COMA databases. The simulators write a small realistic world
    into the sources (Monte Carlo chains and real-data runs, with files) while
    the task server ingests it, and the pages are served at
    http://127.0.0.1:5000 so that data arrives while one watches.
    """
    from ingest.simulate import Feeder
    from skimengine.task import TagBuildTask

    config, fresh, steps = _demo_sources(context.config)
    engine = context.engine()
    migrations.upgrade(engine)
    Session = session_factory(engine)
    tasks = configured_ingesters(config)
    if no_serve:
        for step in steps:
            step()
        items = run_until_drained(
            tasks, Session, lease_seconds=config.taskserver_lease_seconds
        )
        click.echo(
            ", ".join(f"{name}: {count} ingested" for name, count in items.items())
        )
        if fresh:
            _demo_event_files(config)
        built = run_until_drained(
            [TagBuildTask(config)],
            Session,
            lease_seconds=config.taskserver_lease_seconds,
        )
        click.echo(f"TAGs built: {sum(built.values())}")
        return
    feeder = Feeder(steps, pace=pace)
    tasks += skim_tasks(config, tags=True)
    server = TaskServer(tasks, Session, workers=config.taskserver_workers)
    if fresh:  # the TAG task builds each derivation's TAG once its files are here
        threading.Thread(
            target=_demo_event_files, args=(config,), name="demo-files", daemon=True
        ).start()
    feeder.start()
    server.start()
    if fresh:
        click.echo(f"the simulators write {len(steps)} changes, one every {pace} s")
    try:
        _serve(config, engine, host, port)
    finally:
        feeder.stop()
        server.stop()


def _demo_sources(config: Config) -> tuple[Config, bool, list[Any]]:
    """The demo's source databases in the data directory; on first use, the
    writes that fill them with the simulated world.
    """
    from ingest.simulate import ComaSource, ProdSysSource, Tier0Source, world_steps
    from ingest.world import build_world

    folder = config.data_path / "sources"
    fresh = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    urls = {name: f"sqlite:///{folder / f'{name}.sqlite'}" for name in DEMO_SOURCES}
    config = config.replace(**{f"{name}_url": url for name, url in urls.items()})
    if not fresh:
        return config, False, []
    prodsys = ProdSysSource(urls["prodsys"]).create()
    tier0 = Tier0Source(urls["tier0"]).create()
    coma = ComaSource(urls["coma"]).create()
    return config, True, world_steps(build_world(), prodsys, tier0, coma)


DEMO_SOURCES = ("prodsys", "tier0", "coma")


def _demo_event_files(config: Config) -> None:
    """Write the event files of the simulated world's AOD and DAOD datasets
    into the file store (a few seconds).
    """
    from ingest.eventfiles import write_world_files
    from ingest.world import build_world

    write_world_files(build_world(), config.storage_path)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@pass_context
def serve(context: Context, host: str | None, port: int | None) -> None:
    """Serve the web pages, the JSON API and the AMI endpoint for the catalogue."""
    engine = context.engine()
    migrations.require_current(engine)
    _serve(context.config, engine, host, port)


def _serve(config: Config, engine: Engine, host: str | None, port: int | None) -> None:
    from web.app import create_app, settle

    app = create_app(config, engine=engine)
    settle()
    host = host or config.host
    port = port or config.port
    click.echo(f"hepcat is serving at http://{host}:{port}/  (Ctrl-C stops it)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)
