"""The ``hepcat`` command: one console script with subcommands.

This package is the composition root: it reads the configuration, opens the
catalogue and wires the parts together. :mod:`~hepcat.cli.base` holds the
command group, which renders errors in one place, and the context the
subcommands share; each other module holds a family of subcommands.
"""

from __future__ import annotations

# Each module registers its subcommands on main when it is imported.
from hepcat.cli import (  # noqa: F401
    ami,
    config,
    db,
    ingesting,
    quarantine,
    serving,
    skims,
    status,
    users,
)
from hepcat.cli.base import main
from hepcat.cli.config import settings_reference

__all__ = ["main", "run", "settings_reference"]


def run() -> None:
    """Entry point for ``python -m hepcat``."""
    main(prog_name="hepcat")
