"""The JSON API under /api/v1 (to be written: issue 4)."""

from __future__ import annotations

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")
