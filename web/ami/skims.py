"""The AMI commands of TAG databases and skims.

Reading needs what any command needs; requesting, running and cancelling a
skim need the ``-AMIUser``/``-AMIPass`` of a physicist
(:func:`web.auth.check_role`), and only a skim's owner or an admin may run
or cancel it. The commands are
registered with :func:`web.ami.commands.command`, so ``AMIListCommands``
lists them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog.datasets import MAX_PAGE_SIZE
from catalog.errors import InvalidInput
from catalog.models import Skim
from catalog.models.users import ROLE_PHYSICIST
from catalog.mql import MAX_ROWS
from catalog.users import get_user
from skimengine.skims import (
    cancel_skim,
    get_skim,
    list_skims,
    request_skim,
    run_skim,
    skim_progress,
)
from skimengine.tags import get_tag
from web.ami.commandline import CommandLine
from web.ami.commands import Answer, command, flag, required, window
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
    }


def _statistics(found: dict[str, Any]) -> dict[str, Any]:
    return {key: found.get(key) for key in ("min", "max", "mean")}


@command("the events of a TAG that pass: -logicalDatasetName, -select")
def AMICountTagEvents(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    name, selection = required(line, "logicalDatasetName"), required(line, "select")
    count = count_events(name, selection, session=session)
    total = get_tag(name, session=session).n_events
    row = {"logicalDatasetName": name, "select": selection, "count": count}
    return Answer([rowset("count", [row | {"nEvents": total}])])


@command(
    "requests a skim and runs it (physicist): -logicalDatasetName, -select, "
    "-name, -branches, -compression, -noRun (only define it)",
    flags=("noRun",),
)
def AMICreateSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    owner = check_role(ROLE_PHYSICIST, "requesting a skim")
    skim = request_skim(
        required(line, "logicalDatasetName"),
        required(line, "select"),
        required(line, "name"),
        owner=get_user(owner.login, session=session),
        session=session,
        branches=[b.strip() for b in (line.get("branches") or "").split(",")],
        compression=line.get("compression") or None,
        run=not flag(line, "noRun"),
    )
    return Answer([rowset("skim", [skim_row(skim)])])


@command("runs a defined skim (its owner or an admin): -skimId")
def AMIRunSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    user = check_role(ROLE_PHYSICIST, "running a skim")
    by = get_user(user.login, session=session)
    skim = run_skim(_skim_id(line), by=by, session=session)
    return Answer([rowset("skim", [skim_row(skim)])])


@command("one skim, its state and progress: -skimId")
def AMIGetSkimInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    skim = get_skim(_skim_id(line), session=session)
    return Answer([rowset("skim", [skim_row(skim)])])


@command("skims, newest first: -owner, -state, -logicalDatasetName, -limit=o,n")
def AMIListSkims(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    offset, count = window(line)
    rows: list[dict[str, Any]] = []
    while len(rows) < min(count, MAX_ROWS):
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
    return Answer([rowset("skims", rows)])


@command("cancels a skim in progress (its owner or an admin): -skimId")
def AMICancelSkim(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    user = check_role(ROLE_PHYSICIST, "cancelling a skim")
    by = get_user(user.login, session=session)
    skim = cancel_skim(_skim_id(line), by=by, session=session)
    return Answer([rowset("skim", [skim_row(skim)])])


def _skim_id(line: CommandLine) -> int:
    value = required(line, "skimId")
    if not value.strip().isdigit():
        raise InvalidInput(f"-skimId must be a whole number, got {value!r}")
    return int(value)


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
        "runRequested": skim.run_requested,
        "created": skim.created,
    }
