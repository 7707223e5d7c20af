"""``hepcat user`` and ``hepcat token``: physicists, their roles and API tokens."""

from __future__ import annotations

import sys

import click

from catalog import users
from catalog.models.users import ROLES
from hepcat.cli.base import (
    Context,
    echo_empty,
    echo_header,
    header_option,
    main,
    pass_context,
)


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
    context: Context,
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
    if no_password and password_stdin:
        raise click.UsageError(
            "--no-password and --password-stdin contradict each other: give one"
        )
    password = None if no_password else _read_password(password_stdin)
    with context.catalog().begin() as session:
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


@user.command("list")
@header_option
@pass_context
def user_list(context: Context, header: bool | None) -> None:
    """Print every user, by login: login, roles and name."""
    with context.catalog().begin() as session:
        found_users = users.list_users(session=session)
        if not found_users:
            echo_empty("no users ('hepcat user add' adds one)")
            return
        echo_header(header, f"{'LOGIN':20} {'ROLES':26} NAME")
        for found in found_users:
            roles = ",".join(users.role_names(found)) or "-"
            state = "" if found.active else "  (kept out)"
            click.echo(f"{found.login:20} {roles:26} {found.full_name or ''}{state}")


@user.command("grant")
@click.argument("login")
@click.argument("role", type=click.Choice(ROLES))
@pass_context
def user_grant(context: Context, login: str, role: str) -> None:
    """Give the user LOGIN the role ROLE."""
    with context.catalog().begin() as session:
        found = users.grant_role(login, role, session=session)
        roles = ", ".join(users.role_names(found))
        click.echo(f"user {login} has the roles {roles}")


@user.command("revoke")
@click.argument("login")
@click.argument("role", type=click.Choice(ROLES))
@pass_context
def user_revoke(context: Context, login: str, role: str) -> None:
    """Take the role ROLE from the user LOGIN."""
    with context.catalog().begin() as session:
        found = users.revoke_role(login, role, session=session)
        roles = ", ".join(users.role_names(found)) or "no role"
        click.echo(f"user {login} has {roles}")


@user.command("password")
@click.argument("login")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (scripts)."
)
@pass_context
def user_password(context: Context, login: str, password_stdin: bool) -> None:
    """Set the password of the user LOGIN (their logins on the pages end)."""
    password = _read_password(password_stdin)
    with context.catalog().begin() as session:
        users.set_password(login, password, session=session)
    click.echo(f"password of {login} set")


@user.command("sign-out")
@click.argument("login")
@pass_context
def user_sign_out(context: Context, login: str) -> None:
    """End every login of the user LOGIN on the pages (API tokens stay:
    'hepcat token revoke' ends those).
    """
    with context.catalog().begin() as session:
        users.end_sessions(login, session=session)
    click.echo(f"every login of {login} ended")


@user.command("keep-out")
@click.argument("login")
@pass_context
def user_keep_out(context: Context, login: str) -> None:
    """Keep the user LOGIN out without deleting them: their logins end, and
    their passwords, tokens and certificate are refused until 'hepcat user
    let-in'.
    """
    done = f"{login} is kept out ('hepcat user let-in {login}' lets them in)"
    _set_active(context, login, active=False, done=done)


@user.command("let-in")
@click.argument("login")
@pass_context
def user_let_in(context: Context, login: str) -> None:
    """Let the user LOGIN in again, after 'hepcat user keep-out' or an admin
    kept them out on the pages (their earlier logins stay ended).
    """
    _set_active(context, login, active=True, done=f"{login} may log in again")


def _set_active(context: Context, login: str, *, active: bool, done: str) -> None:
    """Let the user *login* in or keep them out, then print *done*."""
    with context.catalog().begin() as session:
        users.set_active(login, active, session=session)
    click.echo(done)


@main.group()
def token() -> None:
    """Manage API tokens (for the JSON API and 'hepcat ami')."""


@token.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What the token is for (laptop, ...).")
@click.option(
    "--expires-days",
    type=click.IntRange(1, users.MAX_TOKEN_DAYS),
    help="Days until the token expires (default: never).",
)
@pass_context
def token_create(
    context: Context, login: str, name: str, expires_days: int | None
) -> None:
    """Make an API token for the user LOGIN and print it, once: the catalogue
    keeps only its hash.
    """
    expires = users.expiry_in_days(expires_days)
    with context.catalog().begin() as session:
        secret = users.create_token(login, name, expires=expires, session=session)
    click.echo(secret)


@token.command("list")
@click.argument("login", required=False)
@pass_context
def token_list(context: Context, login: str | None) -> None:
    """Print the tokens of the user LOGIN (default: of every user)."""
    with context.catalog().begin() as session:
        tokens = users.list_tokens(login, session=session)
        if not tokens:
            echo_empty(f"no tokens of {login}" if login else "no tokens")
            return
        for found in tokens:
            expires = f"{found.expires:%Y-%m-%d}" if found.expires else "never"
            click.echo(
                f"{found.user.login:20} {found.name:20} {found.prefix}...  "
                f"expires {expires:10}  {users.token_state(found)}"
            )


@token.command("revoke")
@click.argument("login")
@click.argument("name")
@pass_context
def token_revoke(context: Context, login: str, name: str) -> None:
    """Revoke the token NAME of the user LOGIN."""
    with context.catalog().begin() as session:
        found = users.revoke_token(login, name, session=session)
        click.echo(f"token {found.prefix}... ({name}) of {login} revoked")
