"""The ``hepcat`` command: one console script with subcommands.

This module is the composition root: it reads the configuration, opens the
catalogue and wires the parts together. Errors are rendered here, once:
``DatasetNotFound: no dataset named '...'`` on stderr and exit status 1.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

import migrations
from catalog import users
from catalog.config import Config, declared, documented_default, load_config
from catalog.db import open_catalog, session_factory
from catalog.errors import DatabaseUnavailable, HepcatError
from catalog.models.users import ROLES
from hepcat.wiring import configured_ingesters, skim_tasks
from taskserver.runner import run_until_drained, serve_forever
from taskserver.server import TaskServer
from web.client import FORMATS, AmiError


class HepcatGroup(click.Group):
    """A command group that renders hepcat's errors in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (HepcatError, AmiError) as err:
            click.echo(f"{err.type}: {err.message}", err=True)
            ctx.exit(1)


@click.group(cls=HepcatGroup)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A TOML configuration file (default: $HEPCAT_CONFIG, or hepcat.toml "
    "in the data directory when it exists).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Where the embedded default keeps its files (default ./hepcat-data; "
    "$HEPCAT_DATA_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.version_option(package_name="hepcat")
@click.pass_context
def main(
    ctx: click.Context, config_file: str | None, data_dir: str | None, verbose: bool
) -> None:
    """hepcat: a metadata catalogue for high-energy-physics datasets.

    Settings come from defaults, then a TOML file, then HEPCAT_* environment
    variables; 'hepcat config show' lists them with where each came from.
    """
    ctx.obj = _Context(config_file, data_dir, verbose)


class _Context:
    """What the subcommands share: the configuration, read on first use."""

    def __init__(self, config_file: str | None, data_dir: str | None, verbose: bool):
        self._file = config_file
        self._data_dir = data_dir
        self._verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self._file, data_dir=self._data_dir)
            level = "DEBUG" if self._verbose else self._config.log_level
            logging.basicConfig(
                level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            # APScheduler logs every tick of the task server's clock.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        return self._config

    def engine(self) -> Engine:
        config = self.config
        engine = open_catalog(config)
        click.get_current_context().call_on_close(engine.dispose)
        try:
            with engine.connect():
                pass
        except OperationalError as err:
            reason = str(err.orig).splitlines()[0] if err.orig else str(err)
            raise DatabaseUnavailable(_safe_url(engine), reason) from None
        return engine


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


pass_context = click.make_pass_decorator(_Context)


# --- db ------------------------------------------------------------------


@main.group()
def db() -> None:
    """Manage the catalogue schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_context
def db_upgrade(context: _Context, revision: str) -> None:
    """Bring the catalogue schema to REVISION (default: the newest)."""
    _migrate(context.engine(), migrations.upgrade, revision)


@db.command("downgrade")
@click.argument("revision")
@pass_context
def db_downgrade(context: _Context, revision: str) -> None:
    """Take the catalogue schema back to REVISION ('base' empties it)."""
    _migrate(context.engine(), migrations.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    before = migrations.current(engine)
    step(engine, revision)
    after = migrations.current(engine)
    shown = f"{before or 'empty'} -> {after or 'empty'}"
    click.echo(f"catalogue {_safe_url(engine)}: schema {shown}")


@db.command("current")
@pass_context
def db_current(context: _Context) -> None:
    """Print the catalogue's schema revision and the newest one."""
    engine = context.engine()
    click.echo(f"current: {migrations.current(engine) or 'empty'}")
    click.echo(f"newest:  {migrations.head()}")


# --- config --------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Show the settings."""


@config_group.command("show")
@pass_context
def config_show(context: _Context) -> None:
    """Print every setting, its value and where the value came from."""
    config = context.config
    for setting in declared():
        value = config.values[setting.name]
        shown = "(none)" if value in (None, ()) else value
        source = config.sources[setting.name]
        click.echo(f"{setting.env:28} {shown}    [{source}]")


@config_group.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) as Markdown."""
    click.echo(settings_reference(), nl=False)


def settings_reference() -> str:
    """The Markdown table of every declared setting."""
    lines = [
        "# Settings",
        "",
        "Generated by `hepcat config docs` from the declarations in",
        "`catalog/config.py`; a test keeps this page and the code in step.",
        "",
        "Values stack up as defaults, then a TOML file (`--config FILE`,",
        "`HEPCAT_CONFIG`, or `hepcat.toml` in the data directory; keys as in the",
        "*key* column, at the top level or under `[hepcat]`), then environment",
        "variables.",
        "",
        "| environment | key | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in declared():
        default = documented_default(setting)
        lines.append(
            f"| `{setting.env}` | `{setting.name}` | {default} | {setting.help} |"
        )
    return "\n".join(lines) + "\n"


# --- ingest and derive ---------------------------------------------------


@main.command()
@click.option(
    "--once",
    is_flag=True,
    required=True,
    help="Run every configured ingester until its source is drained, then exit "
    "(DDM: until the destination is quiet).",
)
@click.option(
    "--max-seconds",
    type=float,
    default=None,
    help="Give up after this many seconds (default: no limit).",
)
@pass_context
def ingest(context: _Context, once: bool, max_seconds: float | None) -> None:
    """Ingest from the configured sources (HEPCAT_PRODSYS_URL, HEPCAT_TIER0_URL,
    HEPCAT_COMA_URL, HEPCAT_DDM_BROKER) and print what each ingested.
    """
    engine = context.engine()
    migrations.require_current(engine)
    tasks = configured_ingesters(context.config)
    if not tasks:
        _no_sources()
    progress = Progress()
    items = run_until_drained(
        tasks,
        session_factory(engine),
        max_seconds=max_seconds,
        progress=progress,
        lease_seconds=context.config.taskserver_lease_seconds,
    )
    progress.done()
    for name, count in items.items():
        click.echo(f"{name}: {count} ingested")


class Progress:
    """A one-line progress display of a draining backlog on the terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, task: str, items: int, backlog: int | None) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        left = "?" if backlog is None else f"{backlog:,}"
        line = f"{task}: {items:,} ingested, {left} left"
        click.echo(f"\r{line:<70}" if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.last:
            click.echo(err=True)


@main.command()
@click.option("--check", is_flag=True, help="Only report differences (the default).")
@click.option("--fix", is_flag=True, help="Write the recomputed values.")
@pass_context
def derive(context: _Context, check: bool, fix: bool) -> None:
    """Recompute every derived quantity from scratch and report differences
    from the stored values (exit status 1 when there are any, unless --fix).
    """
    from catalog.consistency import check_derived

    engine = context.engine()
    migrations.require_current(engine)
    Session = session_factory(engine)
    with Session() as session:
        differences = check_derived(session=session)
        if fix:
            session.commit()
        else:
            session.rollback()
    for difference in differences:
        click.echo(str(difference))
    verb = "fixed" if fix else "found"
    click.echo(f"{len(differences)} differences {verb}")
    if differences and not fix:
        raise SystemExit(1)


@main.command()
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics on this port (default: none).",
)
@pass_context
def taskserver(context: _Context, metrics_port: int | None) -> None:
    """Run the task server: every configured ingester and the skim task,
    time-shared, until SIGTERM or Ctrl-C; the TAG task too when the file
    store is configured (storage_root or pool_file_catalogs). Several can
    share one catalogue database.
    """
    engine = context.engine()
    migrations.require_current(engine)
    config = context.config
    tasks = configured_ingesters(config)
    if not tasks:
        _no_sources()
    tasks += skim_tasks(config)
    server = TaskServer(
        tasks,
        session_factory(engine),
        workers=config.taskserver_workers,
        lease_seconds=config.taskserver_lease_seconds,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(
            metrics_port, addr=config.host, registry=server.metrics.registry
        )
    names = ", ".join(task.name for task in tasks)
    click.echo(f"task server {server.owner} runs: {names}")
    serve_forever(server, threading.Event())


def _no_sources() -> None:
    click.echo(
        "no source is configured; set HEPCAT_PRODSYS_URL, HEPCAT_TIER0_URL, "
        "HEPCAT_COMA_URL or HEPCAT_DDM_BROKER",
        err=True,
    )
    raise SystemExit(1)


# --- users and tokens ----------------------------------------------------


@main.group()
def user() -> None:
    """Manage the users of the catalogue and their roles (reader < physicist
    < admin).
    """


@user.command("add")
@click.argument("login")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="A role to grant; repeat for several.",
)
@click.option("--full-name", help="The user's name as shown on the pages.")
@click.option("--email", help="The user's email address.")
@click.option("--dn", help="The X.509 subject DN of the user's certificate.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (scripts)."
)
@click.option(
    "--no-password",
    is_flag=True,
    help="No password: the user logs in by API token or certificate only.",
)
@pass_context
def user_add(
    context: _Context,
    login: str,
    roles: tuple[str, ...],
    full_name: str | None,
    email: str | None,
    dn: str | None,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Add the user LOGIN; the password is asked for twice, unless
    --password-stdin or --no-password.
    """
    password = None if no_password else _read_password(password_stdin)
    with _catalog(context).begin() as session:
        users.add_user(
            login,
            password=password,
            roles=roles,
            full_name=full_name,
            email=email,
            dn=dn,
            session=session,
        )
    click.echo(f"user {login} added with the roles {', '.join(roles)}")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _catalog(context: _Context) -> Any:
    engine = context.engine()
    migrations.require_current(engine)
    return session_factory(engine)


@user.command("list")
@pass_context
def user_list(context: _Context) -> None:
    """Print every user with their roles."""
    with _catalog(context).begin() as session:
        for found in users.list_users(session=session):
            roles = ",".join(users.role_names(found)) or "-"
            state = "" if found.active else "  (kept out)"
            click.echo(f"{found.login:20} {roles:26} {found.full_name or ''}{state}")


@user.command("grant")
@click.argument("login")
@click.argument("role", type=click.Choice(ROLES))
@pass_context
def user_grant(context: _Context, login: str, role: str) -> None:
    """Give the user LOGIN the role ROLE."""
    with _catalog(context).begin() as session:
        found = users.grant_role(login, role, session=session)
        roles = ", ".join(users.role_names(found))
        click.echo(f"user {login} has the roles {roles}")


@user.command("revoke")
@click.argument("login")
@click.argument("role", type=click.Choice(ROLES))
@pass_context
def user_revoke(context: _Context, login: str, role: str) -> None:
    """Take the role ROLE from the user LOGIN."""
    with _catalog(context).begin() as session:
        found = users.revoke_role(login, role, session=session)
        roles = ", ".join(users.role_names(found)) or "no role"
        click.echo(f"user {login} has {roles}")


@user.command("password")
@click.argument("login")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (scripts)."
)
@pass_context
def user_password(context: _Context, login: str, password_stdin: bool) -> None:
    """Set the password of the user LOGIN."""
    password = _read_password(password_stdin)
    with _catalog(context).begin() as session:
        users.set_password(login, password, session=session)
    click.echo(f"password of {login} set")


@main.group()
def token() -> None:
    """Manage API tokens (for the JSON API and 'hepcat ami')."""


@token.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What the token is for (laptop, ...).")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    help="Days until the token expires (default: never).",
)
@pass_context
def token_create(
    context: _Context, login: str, name: str, expires_days: int | None
) -> None:
    """Make an API token for the user LOGIN and print it, once: the catalogue
    keeps only its hash.
    """
    expires = users.expiry_in_days(expires_days)
    with _catalog(context).begin() as session:
        secret = users.create_token(login, name, expires=expires, session=session)
    click.echo(secret)


@token.command("list")
@click.argument("login", required=False)
@pass_context
def token_list(context: _Context, login: str | None) -> None:
    """Print the tokens of the user LOGIN (default: of every user)."""
    with _catalog(context).begin() as session:
        for found in users.list_tokens(login, session=session):
            expires = f"{found.expires:%Y-%m-%d}" if found.expires else "never"
            click.echo(
                f"{found.user.login:20} {found.name:20} {found.prefix}...  "
                f"expires {expires:10}  {users.token_state(found)}"
            )


@token.command("revoke")
@click.argument("login")
@click.argument("name")
@pass_context
def token_revoke(context: _Context, login: str, name: str) -> None:
    """Revoke the token NAME of the user LOGIN."""
    with _catalog(context).begin() as session:
        found = users.revoke_token(login, name, session=session)
        click.echo(f"token {found.prefix}... ({name}) of {login} revoked")


# --- skims and TAGs ------------------------------------------------------


@main.group()
def skim() -> None:
    """Request skims of datasets and follow them: a selection on a dataset's
    TAG, extracted into a new dataset in the requester's scope.
    """


@skim.command("create")
@click.option("--dataset", "dataset_name", required=True, help="The parent dataset.")
@click.option("--select", "selection", help="The selection on the dataset's TAG.")
@click.option(
    "--collection",
    type=click.Path(exists=True, dir_okay=False),
    help="An event collection (ROOT or CSV) to extract instead of a selection.",
)
@click.option("--name", required=True, help="The skim's name, the output's last field.")
@click.option("--user", "login", required=True, help="The physicist asking for it.")
@click.option("--branches", help="Branches to keep, comma-separated (default all).")
@click.option("--compression", help="zstd, lz4 or zlib, with :level (default zstd:1).")
@click.option("--target-size", type=int, help="Bytes of an output file, about.")
@click.option(
    "--run",
    is_flag=True,
    help="Also request its run, for the task server (default: only define it).",
)
@pass_context
def skim_create(
    context: _Context,
    dataset_name: str,
    selection: str | None,
    collection: str | None,
    name: str,
    login: str,
    branches: str | None,
    compression: str | None,
    target_size: int | None,
    run: bool,
) -> None:
    """Define a skim of a dataset as the catalogued physicist --user; print
    its id. 'hepcat skim run ID --wait' runs it here; with --run, the task
    server runs it.
    """
    from pathlib import Path

    from skimengine.skims import request_skim

    upload = Path(collection).read_bytes() if collection else None
    with _catalog(context).begin() as session:
        requested = request_skim(
            dataset_name,
            selection,
            name,
            owner=users.get_user(login, session=session),
            session=session,
            branches=branches.split(",") if branches else None,
            compression=compression,
            target_size=target_size,
            collection=upload,
            collection_name=Path(collection).name if collection else None,
            run=run,
        )
        click.echo(requested.id)


@skim.command("run")
@click.argument("skim_id", type=int)
@click.option("--wait", is_flag=True, help="Run it to its end, with a progress bar.")
@click.option("--user", "login", help="Who asks for the run (default: its owner).")
@pass_context
def skim_run(context: _Context, skim_id: int, wait: bool, login: str | None) -> None:
    """Request the run of skim SKIM_ID and run the skim task for it in this
    process: one step, or with --wait until the skim is done, failed or
    cancelled (exit status 1 unless done).
    """
    from skimengine.skims import FINISHED_STATES, get_skim, run_skim, skim_progress
    from skimengine.task import SkimTask
    from taskserver.base import RunContext

    Session = _catalog(context)
    with Session.begin() as session:
        found = get_skim(skim_id, session=session)
        if found.state not in FINISHED_STATES:
            run_skim(skim_id, by=_acting(skim_id, login, session), session=session)
    task = SkimTask(context.config, only=skim_id)
    bar = SkimProgress()
    try:
        while True:
            task.run(RunContext(Session, time.monotonic() + task.budget))
            with Session() as session:
                found = get_skim(skim_id, session=session)
                state, percent, error = found.state, skim_progress(found), found.error
            bar(skim_id, state, percent, final=state in FINISHED_STATES)
            if not wait or state in FINISHED_STATES:
                break
            time.sleep(0.2)
    finally:
        bar.done()
        task.close()
    click.echo(f"skim {skim_id}: {state}" + (f": {error}" if error else ""))
    if wait and state != "done":
        raise SystemExit(1)


class SkimProgress:
    """A progress bar of a skim on the terminal (a line now and then elsewhere)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(
        self, skim_id: int, state: str, percent: float, *, final: bool = False
    ) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0) and not final:
            return
        self.last = now
        filled = int(percent // 5)
        line = f"skim {skim_id} [{'#' * filled:<20}] {percent:5.1f}% {state}"
        click.echo(f"\r{line:<70}" if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.last:
            click.echo(err=True)


@skim.command("show")
@click.argument("skim_id", type=int)
@pass_context
def skim_show(context: _Context, skim_id: int) -> None:
    """Print a skim: what was asked, its state, progress and output."""
    from skimengine.skims import get_skim, output_name, skim_progress

    with _catalog(context)() as session:
        found = get_skim(skim_id, session=session)
        shown = {
            "skim": found.id,
            "name": found.name,
            "owner": found.owner.login if found.owner else "-",
            "dataset": found.parent.name,
            "selection": found.selection or f"collection {found.collection_name}",
            "state": found.state,
            "run": f"requested {found.run_requested:%Y-%m-%d %H:%M:%S} UTC"
            if found.run_requested
            else f"not requested ('hepcat skim run {found.id}' runs it)",
            "progress": f"{skim_progress(found):.1f}%",
            "events": f"{found.n_selected} of {found.n_events_in}"
            if found.n_selected is not None
            else "-",
            "files": f"{found.units_done or 0} of {found.n_units}"
            if found.n_units
            else "-",
            "output": found.output.name if found.output else output_name(found),
            "error": found.error or "-",
        }
    for key, value in shown.items():
        click.echo(f"{key + ':':11}{value}")


@skim.command("list")
@click.option("--user", "login", help="Only the skims of this user.")
@click.option("--state", help="Only the skims in this state.")
@click.option("--limit", type=int, default=50, show_default=True)
@pass_context
def skim_list(
    context: _Context, login: str | None, state: str | None, limit: int
) -> None:
    """Print the skims, newest first."""
    from skimengine.skims import list_skims, skim_progress

    with _catalog(context)() as session:
        page = list_skims(session=session, owner=login, state=state, limit=limit)
        for found in page.rows:
            owner = found.owner.login if found.owner else "-"
            click.echo(
                f"{found.id:>5} {found.state:12} {skim_progress(found):5.1f}% "
                f"{owner:12} {found.name:20} {found.parent.name}"
            )


@skim.command("cancel")
@click.argument("skim_id", type=int)
@click.option("--user", "login", help="Who cancels it (default: its owner).")
@pass_context
def skim_cancel(context: _Context, skim_id: int, login: str | None) -> None:
    """Cancel a skim in progress."""
    from skimengine.skims import cancel_skim

    with _catalog(context).begin() as session:
        by = _acting(skim_id, login, session)
        found = cancel_skim(skim_id, by=by, session=session)
        click.echo(f"skim {found.id}: {found.state}")


@skim.command("retry")
@click.argument("skim_id", type=int)
@click.option("--user", "login", help="Who retries it (default: its owner).")
@pass_context
def skim_retry(context: _Context, skim_id: int, login: str | None) -> None:
    """Run a failed skim again: only its missing output files are written."""
    from skimengine.skims import retry_skim

    with _catalog(context).begin() as session:
        by = _acting(skim_id, login, session)
        found = retry_skim(skim_id, by=by, session=session)
        click.echo(f"skim {found.id}: {found.state}")


def _acting(skim_id: int, login: str | None, session: Any) -> Any:
    """The user a command acts for: *login*, or the owner of the skim."""
    from skimengine.skims import get_skim

    if login:
        return users.get_user(login, session=session)
    return get_skim(skim_id, session=session).owner


@skim.command("collection")
@click.argument("skim_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option(
    "--format", "kind", type=click.Choice(["root", "csv"]), default="root",
    show_default=True,
)  # fmt: skip
@pass_context
def skim_collection(context: _Context, skim_id: int, output: str, kind: str) -> None:
    """Write a skim's event collection to a file, as ROOT or CSV."""
    import shutil

    from skimengine.collection import read_collection
    from skimengine.skims import collection_path, get_skim

    with _catalog(context)() as session:
        path = collection_path(get_skim(skim_id, session=session))
    if kind == "root":
        shutil.copyfile(path, output)
    else:
        with open(output, "w", encoding="utf-8", newline="") as stream:
            read_collection(path).write_csv(stream)
    click.echo(f"wrote {output}")


@main.group()
def tag() -> None:
    """Build the TAG databases (event-level metadata) of datasets."""


@tag.command("build")
@click.argument("dataset_name")
@pass_context
def tag_build(context: _Context, dataset_name: str) -> None:
    """Build and register the TAG of a dataset from its event files, found
    in the file store (storage_root, pool_file_catalogs).
    """
    from skimengine.filestore import FileStore
    from skimengine.tags import build_tag, dataset_event_files, register_tag

    config = context.config
    with _catalog(context).begin() as session:
        store = FileStore.from_config(config)
        files = dataset_event_files(dataset_name, store, session=session)
        table = build_tag(files)
        register_tag(dataset_name, table, data_dir=config.data_path, session=session)
    click.echo(f"TAG of {dataset_name}: {len(table)} events from {len(files)} files")


# --- demo and serve ------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@click.option(
    "--no-serve",
    is_flag=True,
    help="Write the whole simulated world into the sources, ingest it, then exit.",
)
@click.option(
    "--pace",
    default=0.3,
    type=float,
    show_default=True,
    help="Seconds between two writes of the simulated sources.",
)
@pass_context
def demo(
    context: _Context, host: str | None, port: int | None, no_serve: bool, pace: float
) -> None:
    """Run hepcat on the embedded default with a simulated world.

    Creates the data directory with its SQLite catalogue and simulated ProdSys,
    Tier-0 and COMA databases. The simulators write a small realistic world
    into the sources (Monte Carlo chains and real-data runs, with files) while
    the task server ingests it, and the pages are served at
    http://127.0.0.1:5000 so that data arrives while one watches.
    """
    from ingest.simulate import Feeder
    from skimengine.task import TagBuildTask

    config, fresh, steps = _demo_sources(context.config)
    engine = context.engine()
    migrations.upgrade(engine)
    Session = session_factory(engine)
    tasks = configured_ingesters(config)
    if no_serve:
        for step in steps:
            step()
        items = run_until_drained(
            tasks, Session, lease_seconds=config.taskserver_lease_seconds
        )
        click.echo(
            ", ".join(f"{name}: {count} ingested" for name, count in items.items())
        )
        if fresh:
            _demo_event_files(config)
        built = run_until_drained(
            [TagBuildTask(config)],
            Session,
            lease_seconds=config.taskserver_lease_seconds,
        )
        click.echo(f"TAGs built: {sum(built.values())}")
        return
    feeder = Feeder(steps, pace=pace)
    tasks += skim_tasks(config, tags=True)
    server = TaskServer(tasks, Session, workers=config.taskserver_workers)
    if fresh:  # the TAG task builds each derivation's TAG once its files are here
        threading.Thread(
            target=_demo_event_files, args=(config,), name="demo-files", daemon=True
        ).start()
    feeder.start()
    server.start()
    if fresh:
        click.echo(f"the simulators write {len(steps)} changes, one every {pace} s")
    try:
        _serve(config, engine, host, port)
    finally:
        feeder.stop()
        server.stop()


def _demo_sources(config: Config) -> tuple[Config, bool, list[Any]]:
    """The demo's source databases in the data directory; on first use, the
    writes that fill them with the simulated world.
    """
    from ingest.simulate import ComaSource, ProdSysSource, Tier0Source, world_steps
    from ingest.world import build_world

    folder = config.data_path / "sources"
    fresh = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    urls = {name: f"sqlite:///{folder / f'{name}.sqlite'}" for name in DEMO_SOURCES}
    config = config.replace(**{f"{name}_url": url for name, url in urls.items()})
    if not fresh:
        return config, False, []
    prodsys = ProdSysSource(urls["prodsys"]).create()
    tier0 = Tier0Source(urls["tier0"]).create()
    coma = ComaSource(urls["coma"]).create()
    return config, True, world_steps(build_world(), prodsys, tier0, coma)


DEMO_SOURCES = ("prodsys", "tier0", "coma")


def _demo_event_files(config: Config) -> None:
    """Write the event files of the simulated world's AOD and DAOD datasets
    into the file store (a few seconds).
    """
    from ingest.eventfiles import write_world_files
    from ingest.world import build_world

    write_world_files(build_world(), config.storage_path)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default 5000)."
)
@pass_context
def serve(context: _Context, host: str | None, port: int | None) -> None:
    """Serve the web pages, the JSON API and the AMI endpoint for the catalogue."""
    engine = context.engine()
    migrations.require_current(engine)
    _serve(context.config, engine, host, port)


def _serve(config: Config, engine: Engine, host: str | None, port: int | None) -> None:
    from web.app import create_app, settle

    app = create_app(config, engine=engine)
    settle()
    host = host or config.host
    port = port or config.port
    click.echo(f"hepcat is serving at http://{host}:{port}/  (Ctrl-C stops it)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


# --- ami -----------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("command")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--url",
    help="The AMI endpoint (default: $HEPCAT_AMI_URL, or the endpoint of "
    "'hepcat serve' at the host and port settings).",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: tables; json or csv: the rows; xml: the answer as it came.",
)
@click.option(
    "--token", envvar="HEPCAT_TOKEN", help="An API token (default: $HEPCAT_TOKEN)."
)
@click.option("--user", help="Log in as USER; the password is asked for.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password of --user from stdin (scripts).",
)
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@pass_context
def ami(
    context: _Context,
    command: str,
    arguments: tuple[str, ...],
    url: str | None,
    form: str,
    token: str | None,
    user: str | None,
    password_stdin: bool,
    timeout: float,
) -> None:
    """Send one AMI command and print the result.

    ARGUMENTS are -name=value or -flag, one word each:

      hepcat ami AMIGetDatasetInfo -logicalDatasetName=mc16_13TeV.361106...

    A whole command line in one quoted word, as AMI writes it, works too.
    """
    from web.client import Client, argv_arguments, parse_command_line, render

    if not arguments and " " in command.strip():
        command, parsed = parse_command_line(command)
    else:
        parsed = argv_arguments(arguments)
    password = _ami_password(user, password_stdin)
    url = url or _ami_url(context.config)
    client = Client(url, token=token, user=user, password=password, timeout=timeout)
    click.echo(render(client.send(command, parsed), form), nl=False)


def _ami_password(user: str | None, from_stdin: bool) -> str | None:
    if user is None:
        return None
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt(f"Password of {user}", hide_input=True)
    return password


def _ami_url(config: Config) -> str:
    """The AMI endpoint of the configuration: ``ami_url``, or that of
    ``hepcat serve`` on this machine.
    """
    if config.ami_url:
        return str(config.ami_url)
    host = str(config.host)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # serve listens everywhere; this machine will do
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}/AMI/FrontEnd"


def run() -> None:
    """Entry point for ``python -m hepcat``."""
    main(prog_name="hepcat")
