"""The AMI command endpoint for pyAMI clients (to be written: issue 4)."""

from __future__ import annotations

from flask import Blueprint

ami = Blueprint("ami", __name__)
