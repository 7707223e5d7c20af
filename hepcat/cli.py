"""The ``hepcat`` command: one console script with subcommands.

This module is the composition root: it reads the configuration, opens the
catalogue and wires the parts together. Errors are rendered here, once:
``DatasetNotFound: no dataset named '...'`` on stderr and exit status 1.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

import migrations
from catalog.config import Config, declared, documented_default, load_config
from catalog.db import open_catalog, session_factory
from catalog.errors import DatabaseUnavailable, HepcatError
from catalog.models import Dataset


class HepcatGroup(click.Group):
    """A command group that renders hepcat's errors in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HepcatError as err:
            click.echo(f"{err.type}: {err.message}", err=True)
            ctx.exit(1)


@click.group(cls=HepcatGroup)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A TOML configuration file (default: $HEPCAT_CONFIG, or hepcat.toml "
    "in the data directory when it exists).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Where the embedded default keeps its files (default ./hepcat-data; "
    "$HEPCAT_DATA_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.version_option(package_name="hepcat")
@click.pass_context
def main(
    ctx: click.Context, config_file: str | None, data_dir: str | None, verbose: bool
) -> None:
    """hepcat: a metadata catalogue for high-energy-physics datasets.

    Settings come from defaults, then a TOML file, then HEPCAT_* environment
    variables; 'hepcat config show' lists them with where each came from.
    """
    ctx.obj = _Context(config_file, data_dir, verbose)


class _Context:
    """What the subcommands share: the configuration, read on first use."""

    def __init__(self, config_file: str | None, data_dir: str | None, verbose: bool):
        self._file = config_file
        self._data_dir = data_dir
        self._verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self._file, data_dir=self._data_dir)
            level = "DEBUG" if self._verbose else self._config.log_level
            logging.basicConfig(
                level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        return self._config

    def engine(self) -> Engine:
        config = self.config
        engine = open_catalog(config)
        click.get_current_context().call_on_close(engine.dispose)
        try:
            with engine.connect():
                pass
        except OperationalError as err:
            reason = str(err.orig).splitlines()[0] if err.orig else str(err)
            raise DatabaseUnavailable(_safe_url(engine), reason) from None
        return engine


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


pass_context = click.make_pass_decorator(_Context)


# --- db ------------------------------------------------------------------


@main.group()
def db() -> None:
    """Manage the catalogue schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_context
def db_upgrade(context: _Context, revision: str) -> None:
    """Bring the catalogue schema to REVISION (default: the newest)."""
    engine = context.engine()
    before = migrations.current(engine)
    migrations.upgrade(engine, revision)
    after = migrations.current(engine)
    click.echo(f"catalogue {_safe_url(engine)}: schema {before or 'empty'} -> {after}")


@db.command("downgrade")
@click.argument("revision")
@pass_context
def db_downgrade(context: _Context, revision: str) -> None:
    """Take the catalogue schema back to REVISION ('base' empties it)."""
    engine = context.engine()
    before = migrations.current(engine)
    migrations.downgrade(engine, revision)
    after = migrations.current(engine)
    click.echo(f"catalogue {_safe_url(engine)}: schema {before} -> {after or 'empty'}")


@db.command("current")
@pass_context
def db_current(context: _Context) -> None:
    """Print the catalogue's schema revision and the newest one."""
    engine = context.engine()
    click.echo(f"current: {migrations.current(engine) or 'empty'}")
    click.echo(f"newest:  {migrations.head()}")


# --- config --------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Show the settings."""


@config_group.command("show")
@pass_context
def config_show(context: _Context) -> None:
    """Print every setting, its value and where the value came from."""
    config = context.config
    for setting in declared():
        value = config.values[setting.name]
        shown = "(none)" if value in (None, ()) else value
        source = config.sources[setting.name]
        click.echo(f"{setting.env:28} {shown}    [{source}]")


@config_group.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) as Markdown."""
    click.echo(settings_reference(), nl=False)


def settings_reference() -> str:
    """The Markdown table of every declared setting."""
    lines = [
        "# Settings",
        "",
        "Generated by `hepcat config docs` from the declarations in",
        "`catalog/config.py`; a test keeps this page and the code in step.",
        "",
        "Values stack up as defaults, then a TOML file (`--config FILE`,",
        "`HEPCAT_CONFIG`, or `hepcat.toml` in the data directory; keys as in the",
        "*key* column, at the top level or under `[hepcat]`), then environment",
        "variables.",
        "",
        "| environment | key | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in declared():
        default = documented_default(setting)
        lines.append(
            f"| `{setting.env}` | `{setting.name}` | {default} | {setting.help} |"
        )
    return "\n".join(lines) + "\n"


# --- demo and serve ------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@click.option("--no-serve", is_flag=True, help="Prepare the demo catalogue, then exit.")
@pass_context
def demo(context: _Context, host: str | None, port: int | None, no_serve: bool) -> None:
    """Run hepcat on the embedded default with a simulated world.

    Creates the data directory and its SQLite catalogue, fills it with a small
    realistic set of datasets (Monte Carlo chains and real-data runs, with
    files), and serves the pages at http://127.0.0.1:5000.
    """
    from ingest.seed import seed_catalog
    from ingest.world import build_world

    config = context.config
    config.data_path.mkdir(parents=True, exist_ok=True)
    engine = context.engine()
    migrations.upgrade(engine)
    Session = session_factory(engine)
    with Session.begin() as session:
        if session.scalar(select(func.count()).select_from(Dataset)):
            click.echo(f"catalogue {_safe_url(engine)} already holds datasets")
        else:
            count = seed_catalog(build_world(), session=session)
            click.echo(f"catalogue {_safe_url(engine)}: {count} datasets added")
    if not no_serve:
        _serve(config, engine, host, port)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@pass_context
def serve(context: _Context, host: str | None, port: int | None) -> None:
    """Serve the web pages for the catalogue."""
    engine = context.engine()
    migrations.require_current(engine)
    _serve(context.config, engine, host, port)


def _serve(config: Config, engine: Engine, host: str | None, port: int | None) -> None:
    from web.app import create_app

    app = create_app(config, engine=engine)
    host = host or config.host
    port = port or config.port
    click.echo(f"hepcat is serving at http://{host}:{port}/  (Ctrl-C stops it)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def run() -> None:
    """Entry point for ``python -m hepcat``."""
    main(prog_name="hepcat")
