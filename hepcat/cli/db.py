"""``hepcat db``: the catalogue's schema (Alembic migrations)."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import Engine

import migrations
from hepcat.cli.base import Context, main, pass_context, safe_url


@main.group()
def db() -> None:
    """Manage the catalogue schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_context
def db_upgrade(context: Context, revision: str) -> None:
    """Bring the catalogue schema up to REVISION (default: the newest): a
    revision such as 0012, 'head', or a step such as +1. A failed upgrade of
    a SQLite or PostgreSQL catalogue changes nothing.
    """
    _migrate(context.engine(), migrations.upgrade, revision)


@db.command("downgrade")
@click.argument("revision")
@pass_context
def db_downgrade(context: Context, revision: str) -> None:
    """Take the catalogue schema back to REVISION ('base' empties it; a
    step back: 'hepcat db downgrade -- -1').
    """
    _migrate(context.engine(), migrations.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    before = migrations.current(engine)
    step(engine, revision)
    after = migrations.current(engine)
    shown = f"{before or 'empty'} -> {after or 'empty'}"
    click.echo(f"catalogue {safe_url(engine)}: schema {shown}")


@db.command("current")
@pass_context
def db_current(context: Context) -> None:
    """Print the catalogue's schema revision and the newest one."""
    engine = context.engine()
    click.echo(f"current: {migrations.current(engine) or 'empty'}")
    click.echo(f"newest:  {migrations.head()}")
