"""The task-server page, as an operator reads it: a failed run's error in
words and without its SQL, how long ago each task last ran, and which task
needs a look because it stopped running while the others go on, or because a
run recorded as running has no task server behind it any more.
"""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_pages import CheckedClient, visible_text
from werkzeug.test import TestResponse

from catalog.config import load_config
from catalog.models import TaskLease, TaskRun
from taskserver.runs import describe_error
from web.app import create_app

OWNER = "host-1:4242:taskserver:a1b2c3"


@pytest.fixture
def now() -> dt.datetime:
    """The time the test begins: its runs are this long ago."""
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path) -> FlaskClient:
    app = create_app(load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine)
    app.test_client_class = CheckedClient
    return app.test_client()


def add_runs(
    Session: sessionmaker[OrmSession],  # noqa: N803
    name: str,
    *,
    now: dt.datetime,
    last: dt.timedelta,
    every: dt.timedelta = dt.timedelta(seconds=2),
    count: int = 10,
    owner: str | None = OWNER,
) -> None:
    """*count* ok runs of task *name* of 0.1 s each, *every* apart, the last
    one started *last* ago, as a task server records them.
    """
    with Session.begin() as session:
        for index in range(count):
            started = now - last - index * every
            session.add(
                TaskRun(
                    task_name=name,
                    owner=owner,
                    started=started,
                    ended=started + dt.timedelta(seconds=0.1),
                    items=3,
                    backlog=0,
                    outcome="ok",
                )
            )


def running_servers_tasks(
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
) -> None:
    """The tasks a healthy task server runs: three every 2 s, COMA every 30 s
    and prodsys in a run now, its lease held.
    """
    for name in ("coma", "tier0", "skim"):
        every = dt.timedelta(seconds=30 if name == "coma" else 2)
        add_runs(Session, name, now=now, last=dt.timedelta(seconds=20), every=every)
    add_runs(Session, "prodsys", now=now, last=dt.timedelta(seconds=5))
    with Session.begin() as session:
        session.add(
            TaskLease(
                task_name="prodsys", owner=OWNER, expires=now + dt.timedelta(seconds=30)
            )
        )


def task_row(response: TestResponse, name: str) -> str:
    """The text of the row of task *name* in the page's table of tasks."""
    html = response.get_data(as_text=True)
    table = html[html.index('<table class="grid tasks">') :]
    table = table[: table.index("</table>")]
    for row in table.split("<tr")[1:]:
        if f"<code>{name}</code>" in row:
            return visible_text_of("<tr" + row)
    raise AssertionError(f"no row of task {name} on the page")


def visible_text_of(html: str) -> str:
    """The text of the fragment *html*, as a reader sees it."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def flags(text: str) -> list[str]:
    return re.findall(r"\blate\b|\bstale\?", text)


def multi_line_sql_error(engine: Engine) -> sa.exc.DBAPIError:
    """The error of a select on a missing table, as the database behind
    *engine* raises it: SQLAlchemy renders the statement over several lines,
    and PostgreSQL quotes the line it stumbled on.
    """
    table = sa.table(
        "t_production_file", sa.column("lfn"), sa.column("timestamp", sa.DateTime)
    )
    query = sa.select(table.c.lfn).where(table.c.timestamp.is_(None))
    try:
        with engine.connect() as connection:
            connection.execute(query)
    except sa.exc.DBAPIError as exc:
        return exc
    raise AssertionError("the select on a missing table succeeded")


def error_cells(response: TestResponse) -> list[str]:
    html = response.get_data(as_text=True)
    cells = re.findall(r'<td class="error">(.*?)</td>', html, flags=re.S)
    return [visible_text_of(cell) for cell in cells]


@pytest.mark.parametrize("recorded", ["traceback", "message"])
def test_a_multi_line_sql_error_shows_its_first_line_and_no_sql(
    client: FlaskClient,
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
    recorded: str,
) -> None:
    exc = multi_line_sql_error(catalog_engine)
    assert "\nFROM t_production_file" in str(exc)  # the SQL spans lines
    first_line = str(exc).splitlines()[0]
    with Session.begin() as session:
        session.add(
            TaskRun(
                task_name="prodsys",
                started=now - dt.timedelta(seconds=3),
                ended=now - dt.timedelta(seconds=2),
                outcome="failed",
                # The task server records the traceback; a message alone
                # reads the same.
                error=describe_error(exc) if recorded == "traceback" else str(exc),
            )
        )

    response = client.get("/taskserver")

    shown = f"sqlalchemy.exc.{type(exc).__name__}: {first_line}"
    assert error_cells(response) == [shown if recorded == "traceback" else first_line]
    text = visible_text(response)
    for sql in ("FROM", "WHERE", "IS NULL", "[SQL", "LINE 2", "sqlalche.me"):
        assert sql not in text


def test_a_task_that_stopped_while_the_others_run_is_late(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
) -> None:
    running_servers_tasks(Session, now)
    # ddm ran every second until 4 min ago; tags ran once, as long ago.
    add_runs(
        Session,
        "ddm",
        now=now,
        last=dt.timedelta(minutes=4, seconds=20),
        every=dt.timedelta(seconds=1),
    )
    add_runs(
        Session, "tags", now=now, last=dt.timedelta(minutes=4, seconds=20), count=1
    )

    response = client.get("/taskserver")

    for name in ("ddm", "tags"):
        row = task_row(response, name)
        assert "4 min ago" in row
        assert flags(row) == ["late"]
    assert flags(task_row(response, "tier0")) == []
    assert "No task server seems to be running" not in visible_text(response)


@pytest.mark.parametrize("lease", ["free", "expired", "another owner"])
def test_a_run_left_running_without_its_lease_is_flagged_stale(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
    lease: str,
) -> None:
    running_servers_tasks(Session, now)
    started = now - dt.timedelta(hours=1, minutes=10)
    with Session.begin() as session:
        # The task server died in this run; nothing ended it.
        session.add(TaskRun(task_name="ddm", owner="host-2:99", started=started))
        session.add(
            TaskLease(
                task_name="ddm",
                owner=None if lease == "free" else "host-3:7",
                expires={
                    "free": None,
                    "expired": now - dt.timedelta(hours=1),
                    "another owner": now + dt.timedelta(seconds=30),
                }[lease],
            )
        )

    response = client.get("/taskserver")

    row = task_row(response, "ddm")
    assert flags(row) == ["stale?"]
    assert "running" not in row
    assert "host-2:99" in row
    assert "1 h 10 min ago" in row
    runs = visible_text(response)
    runs = runs[runs.index("ddm: last 1 run") :]
    assert "host-2:99 stale?" in runs


def test_healthy_tasks_say_when_they_last_ran_and_raise_no_flag(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
) -> None:
    running_servers_tasks(Session, now)

    response = client.get("/taskserver")

    for name in ("coma", "tier0", "skim"):
        assert "20 s ago" in task_row(response, name)
    assert "5 s ago" in task_row(response, "prodsys")
    assert flags(visible_text(response)) == []
