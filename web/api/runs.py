"""Runs and data periods."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from catalog.fields import whole_number
from catalog.runs import (
    RunSummary,
    get_run,
    list_periods,
    list_runs_keyset,
    periods_of_runs,
    run_datasets,
)
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_args, page_body
from web.app import catalog_session


@api.get("/runs")
@documented(schemas.RunPage, query=schemas.RunArgs, errors=(400,))
def runs() -> ResponseReturnValue:
    """Runs, newest first, with the periods that hold them."""
    args = load_args(schemas.RunArgs)
    with catalog_session() as session:
        page = list_runs_keyset(
            session=session,
            project=args.get("project"),
            period=args.get("period"),
            cursor=args["cursor"],
            limit=args["limit"],
        )
        return page_body(page, schemas.Run)


@api.get("/runs/<number>")
@documented(schemas.RunDetail, numbers=("number",))
def run(number: str) -> ResponseReturnValue:
    """One run, the periods that hold it and its datasets.

    A `number` that is not a whole number, or past what a run number can
    be, is a 400.
    """
    run_number = whole_number(number, "runNumber", maximum=None)
    with catalog_session() as session:
        found = get_run(run_number, session=session)
        periods = periods_of_runs([found], session=session).get(run_number, [])
        shown = dumped(schemas.RunDetail, RunSummary(found, periods))
        shown["datasets"] = [d.name for d in run_datasets(found, session=session)]
        return shown


@api.get("/periods")
@documented(schemas.PeriodList, query=schemas.PeriodArgs, errors=(400,))
def periods() -> ResponseReturnValue:
    """Data periods by project, level and name, with their number of runs and
    of reprocessing errors (failed, broken or aborted ProdSys tasks on their
    runs). Not paged: a project has a few dozen periods.
    """
    args = load_args(schemas.PeriodArgs)
    with catalog_session() as session:
        found = list_periods(
            session=session, level=args.get("level"), project=args.get("project")
        )
        return {"items": schemas.Period(many=True).dump(found)}
