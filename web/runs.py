"""The pages of runs and data periods: the list of runs (by project and
period), one run with its datasets and their lumi blocks, and the periods
with their runs and reprocessing errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template, request

from catalog.derived import file_lumi_blocks
from catalog.fields import whole_number
from catalog.lumiblocks import format_lumi_blocks
from catalog.models import Dataset
from catalog.runs import (
    PERIOD_LEVELS,
    get_run,
    list_periods,
    list_runs,
    periods_of_runs,
    run_datasets,
)
from web.app import catalog_session
from web.pages import arg, int_arg

runs = Blueprint("runs", __name__)

RUNS_PER_PAGE = 100


@dataclass(frozen=True)
class RunDataset:
    """A dataset of a run, with the lumi blocks present in its files."""

    dataset: Dataset
    lumi_blocks: str


@runs.get("/runs")
def run_list() -> str:
    """The runs, newest first, filtered by project (``%`` patterns) and period."""
    project, period = arg(request.args, "project"), arg(request.args, "period")
    offset = int_arg(request.args, "offset", 0)
    limit = int_arg(request.args, "limit", RUNS_PER_PAGE)
    with catalog_session() as session:
        page = list_runs(
            session=session, project=project, period=period, offset=offset, limit=limit
        )
    return render_template("runs.html", page=page, project=project, period=period)


@runs.get("/runs/<run_number>")
def run(run_number: str) -> str:
    """One run: its numbers, periods and datasets with their lumi blocks.

    A run number that is not a whole number, or past what a run number can
    be, is a 400, as in the JSON API.
    """
    number = whole_number(run_number, "runNumber", maximum=None)
    with catalog_session() as session:
        found = get_run(number, session=session)
        periods = periods_of_runs([found], session=session).get(number, [])
        datasets = [
            RunDataset(d, format_lumi_blocks(file_lumi_blocks(d, session=session)))
            for d in run_datasets(found, session=session)
        ]
    return render_template("run.html", run=found, periods=periods, datasets=datasets)


@runs.get("/periods")
def periods() -> str:
    """The data periods by project and level, with nRuns and reprocessing
    errors.
    """
    level = int_arg(request.args, "level", 0) or None
    project = arg(request.args, "project")
    with catalog_session() as session:
        found = list_periods(session=session, level=level, project=project)
    return render_template(
        "periods.html",
        periods=found,
        level=level,
        levels=PERIOD_LEVELS,
        project=project,
    )
