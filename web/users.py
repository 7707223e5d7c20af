"""The account page of each user, and the user administration pages.

Users see their roles, make and revoke their own API tokens, change their
password and log out everywhere (``/account``); admins add users, grant and
revoke roles, set passwords, keep users out, log them out and manage
anyone's tokens (``/admin/users``). A new token is shown once, on the answer
to the form that made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from catalog.errors import AuthenticationFailed, InvalidInput
from catalog.fields import parse_whole
from catalog.models.users import ROLE_ADMIN, ROLE_READER, ROLES
from catalog.users import (
    MAX_TOKEN_DAYS,
    add_user,
    authenticate_password,
    create_token,
    end_sessions,
    expiry_in_days,
    get_user,
    grant_role,
    list_tokens,
    list_users,
    revoke_role,
    revoke_token,
    role_names,
    set_active,
    set_password,
    token_state,
)
from web.app import catalog_session
from web.auth import acting_user, require_role, start_session

users = Blueprint("users", __name__)

# The fields of a form that hold a password: never sent back to the browser.
PASSWORD_FIELDS = frozenset({"password", "confirm", "current"})

# --- the user's own account ---------------------------------------------------


@users.get("/account")
@require_role(ROLE_READER, action="seeing one's account")
def account() -> ResponseReturnValue:
    """The current user's roles and API tokens."""
    return _account_page()


def _account_page(
    new_token: str | None = None, refused: Refused | None = None
) -> ResponseReturnValue:
    """The account page; *refused*, a form it brings back with its mistake."""
    user = acting_user()
    with catalog_session() as db:
        tokens = list_tokens(user.login, session=db)
    page = render_template(
        "account.html",
        user=user,
        roles=role_names(user),
        tokens=tokens,
        token_state=token_state,
        new_token=new_token,
        refused=refused,
    )
    return page, refused.error.status if refused is not None else 200


@users.post("/account/tokens")
@require_role(ROLE_READER, action="making an API token")
def account_token() -> ResponseReturnValue:
    """Make an API token for oneself; it is shown once, on this answer."""
    user = acting_user()
    try:
        token = _new_token(user.login)
    except InvalidInput as err:
        return _account_page(refused=Refused.of("token", err))
    return _account_page(token)


@users.post("/account/tokens/revoke")
@require_role(ROLE_READER, action="revoking an API token")
def account_token_revoke() -> Response:
    """Revoke one of one's own tokens."""
    user = acting_user()
    with catalog_session() as db:
        revoke_token(user.login, request.form.get("name", ""), session=db)
    return redirect(url_for("users.account"))


@users.post("/account/password")
@require_role(ROLE_READER, action="changing one's password")
def account_password() -> ResponseReturnValue:
    """Change one's password, given the current one."""
    user = acting_user()
    try:
        new = _confirmed_password()
        with catalog_session() as db:
            try:
                authenticate_password(
                    user.login, request.form.get("current", ""), session=db
                )
            except AuthenticationFailed:
                raise InvalidInput("the current password is not right") from None
            changed = set_password(user.login, new, session=db)
            start_session(changed)  # the other logins end; this one goes on
    except InvalidInput as err:
        return _account_page(refused=Refused.of("password", err))
    return redirect(url_for("users.account"))


@users.post("/account/sessions/end")
@require_role(ROLE_READER, action="logging out everywhere")
def account_end_sessions() -> Response:
    """End every login session of the user, this one included."""
    with catalog_session() as db:
        end_sessions(acting_user().login, session=db)
    return redirect(url_for("pages.home"))


def _confirmed_password() -> str:
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        raise InvalidInput("the two passwords differ; type the new one twice")
    return password


def _new_token(login: str) -> str:
    days = request.form.get("expires_days", "").strip()
    number = parse_whole(days)
    if days and not (number is not None and 1 <= number <= MAX_TOKEN_DAYS):
        raise InvalidInput(
            f"{days[:20]!r} is not a number of days (1 to {MAX_TOKEN_DAYS})"
        )
    expires = expiry_in_days(number)
    with catalog_session() as db:
        return create_token(
            login, request.form.get("name", ""), expires=expires, session=db
        )


# --- user administration ------------------------------------------------------


@users.get("/admin/users")
@require_role(ROLE_ADMIN, action="managing users")
def admin_users() -> ResponseReturnValue:
    """Every user with their roles, and the form to add one."""
    return _admin_users_page(MultiDict([("roles", ROLE_READER)]))


def _admin_users_page(
    values: MultiDict[str, str], error: InvalidInput | None = None
) -> ResponseReturnValue:
    """The users, and the form to add one filled with *values*; with *error*,
    the mistake above it and the error's status.
    """
    with catalog_session() as db:
        everyone = list_users(session=db)
    page = render_template(
        "admin_users.html",
        users=everyone,
        roles=ROLES,
        role_names=role_names,
        values=values,
        error=error,
    )
    return page, error.status if error is not None else 200


@users.post("/admin/users")
@require_role(ROLE_ADMIN, action="adding a user")
def admin_add_user() -> ResponseReturnValue:
    """Add a user from the form. A mistake shows the form again, as it was
    filled but for the passwords, with the error.
    """
    form = request.form
    try:
        password = _confirmed_password() if form.get("password") else None
        with catalog_session() as db:
            user = add_user(
                form.get("login", "").strip(),
                password=password,
                roles=form.getlist("roles"),
                full_name=form.get("full_name", "").strip(),
                email=form.get("email", "").strip(),
                dn=form.get("dn", "").strip() or None,
                session=db,
            )
    except InvalidInput as err:
        # The transaction has been rolled back: nothing was saved.
        return _admin_users_page(_without_passwords(form), err)
    return redirect(url_for("users.admin_user", login=user.login))


@dataclass(frozen=True)
class Refused:
    """A form of a user's page that was refused: which one (``token``,
    ``password``), the mistake, and what was typed but the passwords.
    """

    form: str
    error: InvalidInput
    values: MultiDict[str, str]

    @classmethod
    def of(cls, form: str, error: InvalidInput) -> Refused:
        # The transaction has been rolled back: nothing was saved.
        return cls(form, error, _without_passwords(request.form))


def _without_passwords(form: MultiDict[str, str]) -> MultiDict[str, str]:
    """*form* without its passwords, which a page never sends back."""
    kept = [(k, v) for k, v in form.items(multi=True) if k not in PASSWORD_FIELDS]
    return MultiDict(kept)


@users.get("/admin/users/<login>")
@require_role(ROLE_ADMIN, action="managing users")
def admin_user(login: str) -> ResponseReturnValue:
    """One user: roles, password, tokens."""
    return _admin_user_page(login)


def _admin_user_page(
    login: str, new_token: str | None = None, refused: Refused | None = None
) -> ResponseReturnValue:
    """A user's page; *refused*, a form it brings back with its mistake."""
    with catalog_session() as db:
        user = get_user(login, session=db)
        tokens = list_tokens(login, session=db)
    page = render_template(
        "admin_user.html",
        user=user,
        held=role_names(user),
        roles=ROLES,
        tokens=tokens,
        token_state=token_state,
        new_token=new_token,
        refused=refused,
    )
    return page, refused.error.status if refused is not None else 200


@users.post("/admin/users/<login>/roles/grant")
@require_role(ROLE_ADMIN, action="granting a role")
def admin_grant(login: str) -> Response:
    return _changed(grant_role, login, request.form.get("role", ""))


@users.post("/admin/users/<login>/roles/revoke")
@require_role(ROLE_ADMIN, action="revoking a role")
def admin_revoke(login: str) -> Response:
    return _changed(revoke_role, login, request.form.get("role", ""))


@users.post("/admin/users/<login>/password")
@require_role(ROLE_ADMIN, action="setting a password")
def admin_password(login: str) -> ResponseReturnValue:
    try:
        return _changed(set_password, login, _confirmed_password())
    except InvalidInput as err:
        return _admin_user_page(login, refused=Refused.of("password", err))


@users.post("/admin/users/<login>/sessions/end")
@require_role(ROLE_ADMIN, action="logging a user out")
def admin_end_sessions(login: str) -> Response:
    return _changed(end_sessions, login)


@users.post("/admin/users/<login>/active")
@require_role(ROLE_ADMIN, action="letting a user in or out")
def admin_active(login: str) -> ResponseReturnValue:
    active = request.form.get("active") == "1"
    if not active and login == acting_user().login:
        # The page would answer 401 from the next request on, and the only
        # admin could not let themselves in again from the pages.
        error = InvalidInput(
            "you cannot keep yourself out; another admin can, or "
            f"'hepcat user keep-out {login}' on the catalogue's host"
        )
        return _admin_user_page(login, refused=Refused.of("active", error))
    return _changed(set_active, login, active)


@users.post("/admin/users/<login>/tokens")
@require_role(ROLE_ADMIN, action="making an API token")
def admin_token(login: str) -> ResponseReturnValue:
    """Make a token for the user; it is shown once, on this answer."""
    try:
        token = _new_token(login)
    except InvalidInput as err:
        return _admin_user_page(login, refused=Refused.of("token", err))
    return _admin_user_page(login, token)


@users.post("/admin/users/<login>/tokens/revoke")
@require_role(ROLE_ADMIN, action="revoking an API token")
def admin_token_revoke(login: str) -> Response:
    return _changed(revoke_token, login, request.form.get("name", ""))


def _changed(change: Callable[..., object], login: str, *args: object) -> Response:
    """Make *change* (a function of :mod:`catalog.users`) to the user *login*,
    with *args* after the login, and go back to the user's page.
    """
    with catalog_session() as db:
        change(login, *args, session=db)
    return redirect(url_for("users.admin_user", login=login))
