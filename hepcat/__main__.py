"""``python -m hepcat`` runs the command line."""

from __future__ import annotations

from hepcat.cli import run

run()
