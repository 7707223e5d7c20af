"""What every subcommand shares: the ``hepcat`` group, which renders
hepcat's errors in one place (``DatasetNotFound: no dataset named '...'`` on
stderr and exit status 1), and the :class:`Context` the subcommands get.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import socket
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

import migrations
from catalog.config import Config, load_config
from catalog.db import open_catalog, session_factory
from catalog.errors import DatabaseUnavailable, HepcatError
from catalog.urls import hide_password
from taskserver.runs import describe_reason
from web.client import AmiError


class HepcatGroup(click.Group):
    """A command group that renders hepcat's errors in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (HepcatError, AmiError) as err:
            click.echo(error_line(err), err=True)
            ctx.exit(1)


def error_line(err: HepcatError | AmiError) -> str:
    """*err* as an operator reads it: ``DatasetNotFound: no dataset ...``."""
    return f"{err.type}: {err.message}"


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
    ctx.obj = Context(config_file, data_dir, verbose)


class Context:
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
            handler = logging.StreamHandler()
            handler.setFormatter(LogFormatter(LOG_FORMAT, tracebacks=self._verbose))
            logging.basicConfig(level=level, handlers=[handler])
            # APScheduler logs every tick of the task server's clock.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
            if not self._verbose:  # two lines each time the schema is checked
                logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
        return self._config

    def engine(self) -> Engine:
        config = self.config
        engine = open_catalog(config)
        click.get_current_context().call_on_close(engine.dispose)
        check_reachable(engine)
        return engine

    def catalog(self) -> Any:
        """A session factory of the catalogue, whose schema must be current."""
        engine = self.engine()
        migrations.require_current(engine)
        return session_factory(engine)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatter(logging.Formatter):
    """The log lines of hepcat's commands. An error logged with its traceback
    (a task's failure) takes one line, ``...: Type: message``, as an operator
    reads it; -v (*tracebacks*) shows the traceback too.
    """

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if self.tracebacks or error is None:
            return super().format(record)
        line = copy.copy(record)
        line.msg, line.args = f"{record.getMessage()}: {describe_reason(error)}", None
        line.exc_info = line.exc_text = None
        return super().format(line)


def check_reachable(engine: Engine) -> None:
    """Connect to the catalogue of *engine* once.

    :raises DatabaseUnavailable: it cannot be reached; the message names it
        (without password) and gives the driver's reason in one line.
    """
    try:
        with engine.connect():
            pass
    except OperationalError as err:
        reason = str(err.orig).splitlines()[0] if err.orig else str(err)
        raise DatabaseUnavailable(safe_url(engine), reason) from None


class CannotListen(HepcatError, OSError):
    """A server cannot listen where it was asked to."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(reason)
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return self.message


class AddressInUse(CannotListen):
    """Something else listens on the port already."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            host,
            port,
            f"port {port} on {host} is in use; stop what listens there or "
            "choose another port",
        )


class UnknownHost(CannotListen):
    """The host to listen on is no name or address this machine can resolve."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            host,
            port,
            f"cannot listen on {host!r}: no such host name or address ({reason}); "
            "set the host setting (or --host) to an address of this machine, "
            "e.g. 127.0.0.1 or 0.0.0.0",
        )


def listen_error(host: str, port: int, err: OSError) -> CannotListen:
    """The error to report when listening on *host*:*port* failed with *err*."""
    if err.errno == errno.EADDRINUSE:
        return AddressInUse(host, port)
    if isinstance(err, socket.gaierror) or not host:
        return UnknownHost(host, port, err.strerror or str(err))
    reason = (
        f"cannot listen on {host}:{port}: {err.strerror or err}; check the host "
        "setting (an address of this machine) and the port"
    )
    return CannotListen(host, port, reason)


def check_free(host: str, port: int) -> None:
    """Raise :class:`CannotListen` unless a server can listen on *host*:*port*.

    It binds the way Werkzeug's server does (address reuse on), so a port
    left in TIME_WAIT counts as free and a listening one does not.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        raise listen_error(host, port, err) from None


#: The range of a TCP port, for the options that take one.
PORT = click.IntRange(1, 65535)


class Seconds(click.FloatRange):
    """A number of seconds in a range, and finite: click's
    :class:`~click.FloatRange` lets ``nan`` through (no comparison refuses
    it) and, without a maximum, ``inf``.
    """

    name = "seconds"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return number


def safe_url(engine: Engine) -> str:
    """The URL of *engine* as output shows it: without its password, also
    one given as a query parameter.
    """
    return hide_password(engine.url.render_as_string(hide_password=True))


pass_context = click.make_pass_decorator(Context)


# --- lists ---------------------------------------------------------------------

#: When a list prints its header line, as the --help of each list says.
HEADER_HELP = (
    "Print a first line naming the columns (default: when stdout is a "
    "terminal). Piped, the rows come alone, as scripts read them."
)


def header_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--header/--no-header`` option of a list command."""
    return click.option("--header/--no-header", default=None, help=HEADER_HELP)(command)


def echo_header(header: bool | None, line: str) -> None:
    """Print the header *line* of a list when *header* asks for it, or, when
    it is None, when stdout is a terminal.
    """
    if header is None:
        header = click.get_text_stream("stdout").isatty()
    if header:
        click.echo(line)


def echo_empty(what: str) -> None:
    """Say on stderr that a list has no rows (*what*: ``no skims ...``);
    stdout stays empty, as a script counting the rows expects.
    """
    click.echo(what, err=True)
