"""Login, users and roles on the web (to be written: issue 4)."""

from __future__ import annotations

from flask import Blueprint

auth = Blueprint("auth", __name__)
