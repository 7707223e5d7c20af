"""The operator's pages: the quarantine (source records that could not be
understood), the reconciliation (DDM's and Tier-0's counts that differ from
the catalogue's) and the task server's status, with the tasks that need a
look: a task that is late (it stopped running while the others go on), and a
run recorded as running that no task server runs any more (stale). That
judgement is :mod:`catalog.taskhealth`'s, shared with ``hepcat status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from catalog.errors import InvalidInput
from catalog.models.users import ROLE_ADMIN
from catalog.operations import (
    check_source,
    list_quarantine,
    quarantine_sources,
    release_quarantined,
)
from catalog.reconciliation import (
    SOURCE_NAMES,
    list_reconciliations,
    reconciliation_sources,
)
from catalog.taskhealth import (
    LATE_AFTER,
    LATE_FACTOR,
    ago,
    error_summary,
    held,
    span,
    task_health,
)
from web.app import catalog_session
from web.auth import acting_user, require_role
from web.pages import arg, int_arg

operations = Blueprint("operations", __name__)

# The judgement and its words live in catalog.taskhealth, which `hepcat
# status` reads too; the page's templates know them by these names.
operations.add_app_template_global(held, "held")
operations.add_app_template_filter(error_summary, "error_summary")
operations.add_app_template_filter(ago, "ago")
operations.add_app_template_filter(span, "span")

ROWS_PER_PAGE = 50
# Characters of a quarantined payload shown on the page.
PAYLOAD_SHOWN = 300
RUNS_PER_TASK = 5
DEFAULT_HOURS = 6
MAX_HOURS = 48


@operations.get("/quarantine")
def quarantine() -> str:
    """The quarantined records, newest first; ``source`` filters by source,
    ``held=1`` shows only the records not released.
    """
    source = arg(request.args, "source")
    held_only = arg(request.args, "held") in ("1", "yes", "true")
    offset = int_arg(request.args, "offset", 0)
    with catalog_session() as session:
        # Counted as the list below: held only, or held and released.
        sources = quarantine_sources(
            released=False if held_only else None, session=session
        )
        check_source(source or None, found=quarantine_sources(session=session))
        page = list_quarantine(
            session=session,
            source=source,
            released=False if held_only else None,
            offset=offset,
            limit=ROWS_PER_PAGE,
        )
    return render_template(
        "quarantine.html",
        page=page,
        source=source,
        held_only=held_only,
        sources=sources,
        shown=PAYLOAD_SHOWN,
    )


@operations.post("/quarantine/<int:record_id>/release")
@require_role(ROLE_ADMIN, action="releasing a record from quarantine")
def release(record_id: int) -> Response:
    """Release a quarantined record from the form on the quarantine page,
    and go back to where the form was.
    """
    reason = request.form.get("reason")
    with catalog_session() as session:
        release_quarantined(
            [record_id], by=acting_user().login, reason=reason, session=session
        )
    back: dict[str, Any] = {
        key: value for key in ("source", "held") if (value := arg(request.form, key))
    }
    back["_anchor"] = f"q{record_id}"
    return redirect(url_for("operations.quarantine", **back))


@operations.get("/reconciliation")
def reconciliation() -> str:
    """The differences between a source's counts (DDM's at a ``close``,
    Tier-0's) and the catalogue's; ``all=1`` shows the resolved ones too,
    ``source`` filters by source.
    """
    everything = arg(request.args, "all") in ("1", "yes", "true")
    source = arg(request.args, "source")
    offset = int_arg(request.args, "offset", 0)
    with catalog_session() as session:
        sources = reconciliation_sources(session=session)
        check_source(source or None, known=SOURCE_NAMES, found=sources)
        page = list_reconciliations(
            session=session,
            resolved=everything,
            source=source,
            offset=offset,
            limit=ROWS_PER_PAGE,
        )
    return render_template(
        "reconciliation.html",
        page=page,
        everything=everything,
        source=source,
        sources=sources,
    )


@operations.get("/taskserver")
def taskserver() -> str:
    """Each task: its lease, its last runs and its backlog, with the tasks
    that need a look; the catalogue's own backlogs; and the ingest-rate plot
    over the last ``hours``.
    """
    hours = plot_hours()
    with catalog_session() as session:
        health = task_health(session=session, runs_per_task=RUNS_PER_TASK)
    return render_template(
        "taskserver.html",
        tasks=health.tasks,
        stale=health.stale_datasets,
        quarantined=health.quarantined,
        hours=hours,
        now=health.now,
        idle_since=health.idle_since,
        stale_runs=health.stale_runs,
        late=health.late,
        late_factor=LATE_FACTOR,
        late_after=LATE_AFTER,
    )


def plot_hours() -> int:
    """The ``hours`` argument: how far back the ingest rates go.

    :raises InvalidInput: unless it is an integer from 1 to :data:`MAX_HOURS`.
    """
    hours = int_arg(request.args, "hours", DEFAULT_HOURS)
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"hours must be between 1 and {MAX_HOURS}, got {hours}")
    return hours


@operations.app_template_filter("duration")
def duration(seconds: float | dt.timedelta | None) -> str:
    """Return a duration as people read it: ``0.42 s``, ``3 min 5 s``."""
    if seconds is None:
        return ""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"
