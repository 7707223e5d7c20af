"""ProdSys's rows mapped to the catalogue's: config tags, tasks, output
datasets and files (``ingest.prodsys`` writes them).

Touches no database and imports no more than the mapping needs: the process
that reads bites ahead (``ingest.readprocess``) imports this module before it
says it is ready, so a light module makes it ready sooner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from catalog.nomenclature import name_columns, parse_tag
from ingest.filerows import FileRow, source_file
from ingest.values import Unusable, integer, moment, text

# The source's name, in the catalogue's datasets and in quarantine.
SOURCE = "prodsys"


def tag_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """An AMI tag's row, from a ProdSys config tag; its parameters must be
    a JSON object.
    """
    tag = parse_tag(text(row, "tag", length=16) or "")
    parameters = text(row, "parameters", required=False, length=1_000_000)
    if parameters is not None:
        try:
            if not isinstance(json.loads(parameters), dict):
                raise Unusable("parameters is not a JSON object")
        except json.JSONDecodeError as err:
            raise Unusable(f"parameters is not JSON: {err}") from None
    return {
        "tag": str(tag),
        "tag_type": tag.letter,
        "tag_number": tag.number,
        "transformation": text(row, "transformation", required=False, length=64),
        "release": text(row, "release", required=False, length=64),
        "parameters": parameters,
        "description": text(row, "description", required=False, length=1000),
    }


def task_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A production task's row (its ``modified`` time is the bite's, set by
    the writer).
    """
    status = text(row, "status", length=16)
    return {
        "task_id": integer(row, "taskid"),
        "parent_task_id": integer(row, "parent_tid", required=False),
        "name": text(row, "taskname"),
        "project": text(row, "project", required=False, length=64),
        "step_name": text(row, "step_name", required=False, length=32),
        "status": (status or "").lower(),
        "ctag": text(row, "ctag", required=False, length=16),
        "input_dataset": text(row, "inputdataset", required=False),
        "phys_group": text(row, "phys_group", required=False, length=16),
        "campaign": text(row, "campaign", required=False, length=32),
        "username": text(row, "username", required=False, length=64),
        "total_events": integer(row, "total_events", required=False),
        "submit_time": moment(row, "submit_time"),
        "start_time": moment(row, "start_time"),
        "end_time": moment(row, "endtime"),
        "source_timestamp": moment(row, "timestamp"),
    }


def is_log(row: Mapping[str, Any]) -> bool:
    """Whether a ProdSys dataset row is a log dataset's (not catalogued, and
    nor are its files).
    """
    return (row.get("type") or "output") == "log"


def dataset_row(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """An output dataset's row (None for a log dataset: not catalogued)."""
    if is_log(row):
        return None
    name = text(row, "name") or ""
    return {
        **name_columns(name),
        "source": SOURCE,
        "task_id": integer(row, "taskid"),
    }


def file_row(row: Mapping[str, Any]) -> FileRow:
    """A file of an output dataset, its generator values included."""
    return source_file(
        row,
        dataset=text(row, "dataset") or "",
        status=(text(row, "status", length=16) or "").lower(),
        with_physics=True,
    )
