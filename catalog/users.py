"""Users, their roles, passwords, API tokens and certificate DNs.

Roles are ordered: a ``physicist`` may do what a ``reader`` may, and an
``admin`` what a ``physicist`` may (:func:`has_role`). Passwords are stored as
salted, slow hashes (:mod:`werkzeug.security`); API tokens as the SHA-256 of a
high-entropy random string, which is shown once when the token is made, with a
short prefix kept in clear so that its owner can recognise it.

Functions here take the session keyword-only and never commit: the edge (a
request, a command) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.security import check_password_hash, generate_password_hash

from catalog.db import utcnow
from catalog.errors import AuthenticationFailed, InvalidInput, NotFound, UserNotFound
from catalog.models.users import (
    ROLE_ADMIN,
    ROLE_PHYSICIST,
    ROLE_READER,
    ROLES,
    ApiToken,
    Role,
    User,
    UserRole,
)

ROLE_DESCRIPTIONS = {
    ROLE_READER: "reads the catalogue when anonymous reading is off",
    ROLE_PHYSICIST: "also annotates datasets and requests skims",
    ROLE_ADMIN: "also manages users, roles and tokens",
}
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}

LOGIN_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 8

# Every token starts with this, so that a leaked one is easy to search for.
TOKEN_PREFIX = "hct_"
TOKEN_SHOWN_CHARS = 12

WRONG_CREDENTIALS = "wrong login or password"


# --- users ------------------------------------------------------------------


def add_user(
    login: str,
    *,
    password: str | None = None,
    roles: Iterable[str],
    full_name: str | None = None,
    email: str | None = None,
    dn: str | None = None,
    session: Session,
) -> User:
    """Add the user *login* holding *roles*.

    :param password: the password to log in with; none: the user logs in by
        token or certificate DN only.
    :param dn: the X.509 subject DN of the user's certificate, in either the
        OpenSSL (``/DC=ch/CN=...``) or the RFC 2253 (``CN=...,DC=ch``) form.
    :raises InvalidInput: a bad login, role name or password, or the login or
        DN is already taken.
    """
    check_login(login)
    wanted = check_roles(roles)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise InvalidInput(f"there is already a user {login!r}")
    user = User(login=login, full_name=full_name or None, email=email or None)
    if dn:
        user.dn = _free_dn(dn, session=session)
    if password is not None:
        user.password_hash = _password_hash(password)
    user.roles = [UserRole(role_name=_role(name, session=session)) for name in wanted]
    session.add(user)
    session.flush()
    return user


def check_login(login: str) -> None:
    """:raises InvalidInput: when *login* is not a usable login name."""
    if not LOGIN_PATTERN.fullmatch(login or ""):
        raise InvalidInput(
            f"{login!r} is not a usable login: start with a letter, then letters, "
            "digits, '.', '_' or '-', at most 64 characters"
        )


def check_roles(roles: Iterable[str]) -> list[str]:
    """Return *roles* without repeats.

    :raises InvalidInput: when one of them is not a role.
    """
    wanted = list(dict.fromkeys(roles))
    unknown = [name for name in wanted if name not in ROLE_RANK]
    if unknown:
        raise InvalidInput(f"no role {unknown[0]!r}; the roles are {', '.join(ROLES)}")
    return wanted


def _role(name: str, *, session: Session) -> str:
    """Return the role *name*, adding its row on first use."""
    if session.get(Role, name) is None:
        session.add(Role(name=name, description=ROLE_DESCRIPTIONS[name]))
        session.flush()
    return name


def _users() -> Select[User]:
    return select(User).options(selectinload(User.roles))


def get_user(login: str, *, session: Session) -> User:
    """Return the user *login*, roles loaded.

    :raises UserNotFound: if there is none.
    """
    user = session.scalar(_users().where(User.login == login))
    if user is None:
        raise UserNotFound(login)
    return user


def get_user_by_id(user_id: int, *, session: Session) -> User | None:
    """Return the active user with id *user_id*, roles loaded, or ``None``."""
    return session.scalar(_users().where(User.id == user_id, User.active))


def list_users(*, session: Session) -> Sequence[User]:
    """Every user, by login, roles loaded."""
    return session.scalars(_users().order_by(User.login)).all()


def set_active(login: str, active: bool, *, session: Session) -> User:
    """Let the user *login* in again, or keep them out, without deleting them.

    :raises UserNotFound: if there is none.
    """
    user = get_user(login, session=session)
    user.active = active
    if not active:
        user.session_epoch += 1  # their logins stay ended if let in again
    return user


# --- roles ------------------------------------------------------------------


def grant_role(login: str, role: str, *, session: Session) -> User:
    """Give the user *login* the role *role* (nothing happens if they hold it).

    :raises UserNotFound: if there is no such user.
    :raises InvalidInput: if *role* is not a role.
    """
    check_roles([role])
    user = get_user(login, session=session)
    if role not in role_names(user):
        user.roles.append(UserRole(role_name=_role(role, session=session)))
        session.flush()
    return user


def revoke_role(login: str, role: str, *, session: Session) -> User:
    """Take the role *role* from the user *login* (nothing happens if they
    do not hold it).

    :raises UserNotFound: if there is no such user.
    :raises InvalidInput: if *role* is not a role.
    """
    check_roles([role])
    user = get_user(login, session=session)
    user.roles = [held for held in user.roles if held.role_name != role]
    session.flush()
    return user


def role_names(user: User) -> list[str]:
    """The roles *user* holds, lowest first."""
    return sorted((held.role_name for held in user.roles), key=ROLE_RANK.__getitem__)


def has_role(user: User | None, role: str) -> bool:
    """Whether *user* is active and holds *role* or a higher one (reader <
    physicist < admin).
    """
    if user is None or not user.active:
        return False
    needed = ROLE_RANK[role]
    return any(ROLE_RANK[held.role_name] >= needed for held in user.roles)


# --- passwords --------------------------------------------------------------


def set_password(login: str, password: str | None, *, session: Session) -> User:
    """Set the password of the user *login*; ``None`` removes it (the user
    then logs in by token or certificate only). Their login sessions end.

    :raises UserNotFound: if there is no such user.
    :raises InvalidInput: if the password is too short.
    """
    user = get_user(login, session=session)
    user.password_hash = None if password is None else _password_hash(password)
    user.session_epoch += 1  # whoever had the old password is logged out
    return user


def end_sessions(login: str, *, session: Session) -> User:
    """End every login session of the user *login* on the pages (its API
    tokens stay; :func:`revoke_token` ends those).

    :raises UserNotFound: if there is no such user.
    """
    user = get_user(login, session=session)
    user.session_epoch += 1
    return user


def _password_hash(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    return generate_password_hash(password)


def authenticate_password(login: str, password: str, *, session: Session) -> User:
    """Return the active user *login* if *password* is theirs.

    :raises AuthenticationFailed: otherwise; the message is the same whether
        the login exists or not.
    """
    user = session.scalar(_users().where(User.login == login))
    stored = user.password_hash if user is not None else None
    matches = check_password_hash(stored or _unused_hash(), password)
    if user is None or stored is None or not matches or not user.active:
        raise AuthenticationFailed(WRONG_CREDENTIALS)
    return user


@functools.cache
def _unused_hash() -> str:
    """A hash to check when the login is unknown, so that the answer takes
    as long as for a known one.
    """
    return generate_password_hash(secrets.token_hex(16))


# --- API tokens -------------------------------------------------------------


def create_token(
    login: str,
    name: str,
    *,
    expires: dt.datetime | None = None,
    session: Session,
) -> str:
    """Make an API token called *name* for the user *login* and return it.

    The token itself is returned only here: the catalogue keeps its hash.

    :raises UserNotFound: if there is no such user.
    :raises InvalidInput: if *name* is empty or already names one of the
        user's live tokens, or *expires* is in the past.
    """
    user = get_user(login, session=session)
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput("a token needs a name of 1 to 64 characters")
    if any(token.name == name for token in _live_tokens(user)):
        raise InvalidInput(f"user {login!r} already has a live token named {name!r}")
    if expires is not None and expires <= utcnow():
        raise InvalidInput("a token's expiry must be in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.tokens.append(
        ApiToken(
            name=name,
            prefix=token[:TOKEN_SHOWN_CHARS],
            token_hash=token_hash(token),
            expires=expires,
        )
    )
    session.flush()
    return token


#: The longest life of a token, in days (a hundred years).
MAX_TOKEN_DAYS = 36_500


def expiry_in_days(days: int | None) -> dt.datetime | None:
    """The expiry of a token that lives *days* days (``None``: never).

    :raises InvalidInput: unless 1 <= *days* <= :data:`MAX_TOKEN_DAYS`.
    """
    if days is None:
        return None
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"{days} is not a number of days (1 to {MAX_TOKEN_DAYS})")
    return utcnow() + dt.timedelta(days=days)


def token_hash(token: str) -> str:
    """The hash under which *token* is stored (SHA-256: a token is random
    enough that a slow hash would add nothing).
    """
    return hashlib.sha256(token.encode()).hexdigest()


def _live_tokens(user: User) -> list[ApiToken]:
    return [token for token in user.tokens if token_state(token) == "live"]


def token_state(token: ApiToken) -> str:
    """``live``, ``revoked`` or ``expired``."""
    if token.revoked:
        return "revoked"
    if token.expires is not None and token.expires <= utcnow():
        return "expired"
    return "live"


def list_tokens(login: str | None = None, *, session: Session) -> Sequence[ApiToken]:
    """The tokens of the user *login* (default: of every user), newest first,
    their users loaded.

    :raises UserNotFound: if *login* names no user.
    """
    query = select(ApiToken).options(selectinload(ApiToken.user))
    if login is not None:
        query = query.where(ApiToken.user_id == get_user(login, session=session).id)
    order = (ApiToken.created.desc(), ApiToken.id.desc())
    return session.scalars(query.order_by(*order)).all()


def revoke_token(login: str, name: str, *, session: Session) -> ApiToken:
    """Revoke the live token *name* of the user *login*.

    :raises UserNotFound: if there is no such user.
    :raises NotFound: if the user has no live token of that name.
    """
    user = get_user(login, session=session)
    for token in _live_tokens(user):
        if token.name == name:
            token.revoked = True
            return token
    raise NotFound(
        f"user {login!r} has no live token named {name!r}; "
        "'hepcat token list' shows the tokens"
    )


def authenticate_token(token: str, *, session: Session) -> User:
    """Return the active user who owns *token*, and note that it was used.

    :raises AuthenticationFailed: for an unknown, revoked or expired token.
    """
    query = select(ApiToken).where(ApiToken.token_hash == token_hash(token.strip()))
    found = session.scalar(query)
    if found is None:
        raise AuthenticationFailed("unknown API token; ask an admin for a new one")
    state = token_state(found)
    if state != "live":
        raise AuthenticationFailed(
            f"API token {found.prefix}... ({found.name!r}) is {state}; "
            "ask an admin for a new one"
        )
    user = get_user_by_id(found.user_id, session=session)
    if user is None:
        raise AuthenticationFailed(f"API token {found.prefix}... belongs to no one")
    found.last_used = utcnow()
    return user


# --- certificate DNs --------------------------------------------------------


def normalise_dn(dn: str) -> str:
    """Return *dn* in the OpenSSL form (``/DC=ch/DC=cern/CN=Jane Doe``).

    Reverse proxies hand DNs over in either the OpenSSL form or the RFC 2253
    form (``CN=Jane Doe,DC=cern,DC=ch``, as Apache 2.4 and nginx do); both
    name the same certificate.
    """
    dn = dn.strip()
    if not dn or dn.startswith("/"):
        return dn
    parts = [part.strip() for part in re.split(r"(?<!\\),", dn)]
    return "".join(f"/{part.replace(chr(92) + ',', ',')}" for part in reversed(parts))


def _free_dn(dn: str, *, session: Session) -> str:
    normal = normalise_dn(dn)
    if "=" not in normal:
        raise InvalidInput(f"{dn!r} is not a certificate DN such as /DC=ch/CN=Name")
    if session.scalar(select(User.login).where(User.dn == normal)) is not None:
        raise InvalidInput(f"another user already has the DN {normal!r}")
    return normal


def user_by_dn(dn: str, *, session: Session) -> User | None:
    """Return the active user with the certificate DN *dn* (either form), or
    ``None``.
    """
    normal = normalise_dn(dn)
    if not normal:
        return None
    return session.scalar(_users().where(User.dn == normal, User.active))
