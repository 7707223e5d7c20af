"""The one place where the JSON API renders its errors.

Every error answers with the same shape and the error's HTTP status::

    {"error": {"type": "DatasetNotFound", "message": "no dataset named ...",
               "status": 404, "details": ["..."]}}

``type`` is the class name of a :class:`catalog.errors.HepcatError` (so a
client can raise the same class again), ``ValidationError`` for input that
fails a schema, ``NotFound`` and ``MethodNotAllowed`` for unknown routes and
methods, ``InternalError`` for anything unexpected: its message says only
that it happened, the details are in the server's log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from catalog.errors import HepcatError, InvalidInput

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE = "hepcat met an unexpected error, logged on the server; try again"


def render_api_error(error: Exception) -> tuple[Response, int]:
    """Render *error* as the API's error document, with its HTTP status."""
    kind, message, status, details = _describe(error)
    if status >= 500:
        _log(error, kind, message)
    body = {"type": kind, "message": message, "status": status, "details": details}
    response = jsonify(error=body)
    if isinstance(error, HTTPException) and status == 405:
        response.headers["Allow"] = ", ".join(getattr(error, "valid_methods", []))
    return response, status


def _describe(error: Exception) -> tuple[str, str, int, list[str]]:
    if isinstance(error, HepcatError):
        return error.type, error.message, error.status, _details(error)
    if isinstance(error, ValidationError):
        details = flatten(error.messages)
        return "ValidationError", "; ".join(details), 400, details
    if isinstance(error, HTTPException) and (error.code or 500) < 500:
        return _http(error)
    return "InternalError", INTERNAL_MESSAGE, 500, [INTERNAL_MESSAGE]


def _details(error: HepcatError) -> list[str]:
    if isinstance(error, InvalidInput):
        return list(error.errors)
    return [error.message]


def _http(error: HTTPException) -> tuple[str, str, int, list[str]]:
    status = error.code or 400
    if status == 404:
        message = f"no API route {request.path}; GET /api/v1/openapi.json lists them"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = error.description or error.name
    return type(error).__name__, message, status, [message]


def flatten(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error messages as ``"field: message"`` lines."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(flatten(value, name))
        return lines
    if isinstance(messages, list | tuple):
        return [line for item in messages for line in flatten(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def _log(error: Exception, kind: str, message: str) -> None:
    if isinstance(error, HepcatError | HTTPException):
        logger.warning("%s on %s: %s", kind, request.path, message)
    else:
        # Not raised on purpose: keep the traceback for the operator.
        logger.error("Unexpected error on %s", request.path, exc_info=error)
