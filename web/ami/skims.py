"""The AMI commands of TAG databases and skims.

Reading needs what any command needs; requesting, running, cancelling and
retrying a skim need the ``-AMIUser``/``-AMIPass`` of a physicist
(:func:`web.auth.check_role`), and only a skim's owner or an admin may run,
cancel or retry it. A request takes the options of the JSON API and of
``hepcat skim create``, checked by :func:`skimengine.skims.request_skim` as
theirs are; an event collection comes as CSV text in ``-collection`` (the
protocol carries text, not a ROOT file). The commands are
registered with :func:`web.ami.commands.command`, so ``AMIListCommands``
lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from catalog.datasets import MAX_PAGE_SIZE
from catalog.fields import whole_number
from catalog.models import Skim
from catalog.models.users import ROLE_PHYSICIST
from catalog.users import get_user
from skimengine.skims import (
    cancel_skim,
    get_skim,
    list_skims,
    request_skim,
    retry_skim,
    retryable,
    run_skim,
    skim_progress,
)
from skimengine.tags import get_tag
from web.ami.commandline import CommandLine
from web.ami.commands import (
    Answer,
    asked_window,
    command,
    first_rows,
    flag,
    required,
    rows_to_read,
)
from web.ami.reply import rowset
from web.auth import check_role
from web.tags import TagInfo, count_events, list_tag_databases


@command("the TAG databases: dataset, events, files, store")
def AMIListTagDatabases(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    rows = [_tag_row(TagInfo(t)) for t in list_tag_databases(session=session)]
    return Answer([rowset("tags", rows)])


def _tag_row(info: TagInfo) -> dict[str, Any]:
    return {
        "logicalDatasetName": info.dataset.name,
        "nEvents": info.n_events,
        "nFiles": info.n_files,
        "store": info.store,
        "status": info.status,
        "updated": info.updated,
    }


@command("a dataset's TAG, its attributes and triggers: -logicalDatasetName")
def AMIGetTagInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    name = required(line, "logicalDatasetName")
    info = TagInfo(get_tag(name, session=session))
    attributes = [
        {**_attribute(a), **_statistics(info.distributions.get(a["name"], {}))}
        for a in info.attributes
    ]
    triggers = [{"bit": i, "name": n} for i, n in enumerate(info.triggers)]
    return Answer(
        [
            rowset("tag", [_tag_row(info)]),
            rowset("attributes", attributes),
            rowset("triggers", triggers),
        ]
    )


def _attribute(attribute: dict[str, str]) -> dict[str, Any]:
    return {
        "name": attribute["name"],
        "type": attribute["type"],
        "kind": attribute["kind"],
        "description": attribute["doc"],
        "unit": attribute["unit"],
    }


def _statistics(found: dict[str, Any]) -> dict[str, Any]:
    return {key: found.get(key) for key in ("min", "max", "mean")}


@command("the events of a TAG that pass: -logicalDatasetName, -select")
def AMICountTagEvents(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    name, selection = required(line, "logicalDatasetName"), required(line, "select")
    count, total = count_events(name, selection, session=session)
    row = {"logicalDatasetName": name, "select": selection, "count": count}
    return Answer([rowset("count", [row | {"nEvents": total}])])


@command(
    "requests a skim and runs it (physicist): -logicalDatasetName, -select or "
    "-collection (an event collection as CSV text) with -collectionName, -name, "
    "-branches, -compression, -targetSize (bytes per output file), -noRun (only "
    "define it)",
    flags=("noRun",),
)
def AMICreateSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    owner = check_role(ROLE_PHYSICIST, "requesting a skim")
    collection = line.get("collection")
    skim = request_skim(
        required(line, "logicalDatasetName"),
        line.get("select"),
        required(line, "name"),
        owner=get_user(owner.login, session=session),
        session=session,
        branches=[b.strip() for b in (line.get("branches") or "").split(",")],
        compression=line.get("compression") or None,
        target_size=_target_size(line),
        collection=collection.encode() if collection is not None else None,
        collection_name=line.get("collectionName") or None,
        run=not flag(line, "noRun"),
    )
    return Answer([rowset("skim", [skim_row(skim)])])


@command("runs a defined skim (its owner or an admin): -skimId")
def AMIRunSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    return _change(line, session, "running a skim", run_skim)


@command("one skim, its state and progress: -skimId")
def AMIGetSkimInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    skim = get_skim(_skim_id(line), session=session)
    return Answer([rowset("skim", [skim_row(skim)])])


@command("skims, newest first: -owner, -state, -logicalDatasetName, -limit=o,n")
def AMIListSkims(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    offset, asked = asked_window(line)
    count = rows_to_read(asked)
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        page = list_skims(
            session=session,
            owner=line.get("owner") or None,
            state=line.get("state") or None,
            parent=line.get("logicalDatasetName") or None,
            offset=offset,
            limit=min(MAX_PAGE_SIZE, count - len(rows)),
        )
        rows.extend(skim_row(skim) for skim in page.rows)
        if not page.has_next or not page.rows:
            break
        offset += len(page.rows)
    rows, infos = first_rows(rows, "use -limit=offset,count for more")
    return Answer([rowset("skims", rows)], infos)


@command("cancels a skim in progress (its owner or an admin): -skimId")
def AMICancelSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    return _change(line, session, "cancelling a skim", cancel_skim)


@command(
    "runs a failed skim again, writing only its missing output files (its owner "
    "or an admin): -skimId"
)
def AMIRetrySkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    return _change(line, session, "retrying a skim", retry_skim)


def _change(
    line: CommandLine,
    session: Session,
    action: str,
    change: Callable[..., Skim],
) -> Answer:
    """Make *change* (run, cancel or retry) to the skim of ``-skimId`` as the
    physicist of the command's credentials; the skim module lets only its
    owner or an admin do it.
    """
    user = check_role(ROLE_PHYSICIST, action)
    by = get_user(user.login, session=session)
    skim = change(_skim_id(line), by=by, session=session)
    return Answer([rowset("skim", [skim_row(skim)])])


def _skim_id(line: CommandLine) -> int:
    return whole_number(required(line, "skimId"), "-skimId", signed=True, maximum=None)


def _target_size(line: CommandLine) -> int | None:
    """``-targetSize``, in bytes, when given; its range is checked by
    :func:`request_skim`, as for the other surfaces.
    """
    value = line.get("targetSize")
    if value is None:
        return None
    return whole_number(
        value, "-targetSize", kind="a whole number of bytes", signed=True, maximum=None
    )


def skim_row(skim: Skim) -> dict[str, Any]:
    """The fields of a skim, named as in the JSON API."""
    return {
        "skimId": skim.id,
        "name": skim.name,
        "owner": skim.owner.login if skim.owner is not None else None,
        "logicalDatasetName": skim.parent.name,
        "select": skim.selection,
        "state": skim.state,
        "progress": round(skim_progress(skim), 1),
        "nEventsIn": skim.n_events_in,
        "nSelected": skim.n_selected,
        "outputDatasetName": skim.output.name if skim.output else None,
        "error": skim.error,
        "retryable": retryable(skim),
        "collectionName": skim.collection_name,
        "branches": ",".join(json.loads(skim.branches)) if skim.branches else None,
        "compression": skim.compression,
        "targetSize": skim.target_size,
        "runRequested": skim.run_requested,
        "created": skim.created,
        "started": skim.started,
        "ended": skim.ended,
    }
