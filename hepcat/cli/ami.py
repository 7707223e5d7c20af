"""``hepcat ami``: one AMI command sent to an endpoint, its answer printed."""

from __future__ import annotations

import sys

import click

from catalog.config import Config
from hepcat.cli.base import Context, Seconds, main, pass_context
from web.client import FORMATS


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
    help="text: tables; json or csv: the rows; xml: the answer as it came. "
    "The server's notes go to stderr.",
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
    type=Seconds(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@pass_context
def ami(
    context: Context,
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
    The server's notes (a list cut at 10,000 rows, and how to read the
    rest) are printed on stderr, whatever the format.
    """
    from web.client import Client, argv_arguments, parse_command_line, render

    if not arguments and " " in command.strip():
        command, parsed = parse_command_line(command)
    else:
        parsed = argv_arguments(arguments)
    password = _ami_password(user, password_stdin)
    url = url or ami_url(context.config)
    client = Client(url, token=token, user=user, password=password, timeout=timeout)
    result = client.send(command, parsed)
    click.echo(render(result, form), nl=False)
    # The server's notes (a list cut at the rows an answer holds) go to
    # stderr in every format, where a script piping the rows still shows them.
    for info in result.infos:
        click.echo(info, err=True)


def _ami_password(user: str | None, from_stdin: bool) -> str | None:
    if user is None:
        return None
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt(f"Password of {user}", hide_input=True)
    return password


def ami_url(config: Config) -> str:
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
