"""What every subcommand shares: the ``hepcat`` group, which renders
hepcat's errors in one place (``DatasetNotFound: no dataset named '...'`` on
stderr and exit status 1), and the :class:`Context` the subcommands get.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

import migrations
from catalog.config import Config, load_config
from catalog.db import open_catalog, session_factory
from catalog.errors import DatabaseUnavailable, HepcatError
from web.client import AmiError


class HepcatGroup(click.Group):
    """A command group that renders hepcat's errors in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (HepcatError, AmiError) as err:
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
    ctx.obj = Context(config_file, data_dir, verbose)


class Context:
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
            # APScheduler logs every tick of the task server's clock.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
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
            raise DatabaseUnavailable(safe_url(engine), reason) from None
        return engine

    def catalog(self) -> Any:
        """A session factory of the catalogue, whose schema must be current."""
        engine = self.engine()
        migrations.require_current(engine)
        return session_factory(engine)


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


pass_context = click.make_pass_decorator(Context)
