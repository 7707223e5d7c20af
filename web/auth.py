"""Who is asking, and what they may do.

The user of a request is found, in this order, from:

1. ``-AMIUser``/``-AMIPass`` in an AMI command (:func:`ami_login`, called by
   the AMI endpoint);
2. an ``Authorization: Bearer <token>`` header (the JSON API, our client);
3. the login session cookie set by ``/login``: on pages, and for reading
   through the JSON API and the AMI endpoint (those take no CSRF token, so
   writing there needs a token or AMI credentials, never a cookie alone,
   whatever the method: :func:`check_role` refuses it).
   The cookie is signed, and carries the user's session epoch when the
   login began and the time it began: it no longer counts once the user's
   epoch was raised (logging out, a new password, "log out everywhere",
   ``hepcat user sign-out``, being kept out) or after ``session_hours``;
4. the X.509 DN that a trusted reverse proxy hands over in the header named
   by the ``trusted_dn_header`` setting (off by default).

Wrong credentials raise :class:`AuthenticationFailed`; no credentials at all
make an anonymous request. The cookie and the DN are *ambient*: a browser
sends them with any request, one another site makes it send included, so
:func:`check_role` refuses a write they authenticate when the browser says
the request comes from another site (:class:`CrossSiteWrite`).

Views that write declare the role they need with :func:`require_role`;
other code asks :func:`check_role`. Reading needs a
user only when the ``anonymous_read`` setting is off (:func:`check_read`,
enforced before every request but the AMI endpoint's, which checks after
reading the command's credentials).

The blueprint also protects every form of the application against CSRF
(Flask-WTF) and serves the login page; the account and user administration
pages are in :mod:`web.users`, the annotation forms in
:mod:`web.annotations`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session as OrmSession
from werkzeug.wrappers import Response

from catalog.errors import AuthenticationFailed, HepcatError, PermissionDenied
from catalog.models import User
from catalog.models.users import ROLE_READER
from catalog.users import (
    TOKEN_PREFIX,
    WRONG_CREDENTIALS,
    authenticate_password,
    authenticate_token,
    end_sessions,
    get_user_by_id,
    has_role,
    user_by_dn,
)
from web.app import catalog_session, web_catalog

logger = logging.getLogger(__name__)

auth = Blueprint("auth", __name__)
csrf = CSRFProtect()

# Blueprints whose clients authenticate each request (token, AMI credentials)
# rather than by cookie: no CSRF token, and a login cookie only for reading.
TOKEN_BLUEPRINTS = ("api", "ami")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints open to everyone, even when anonymous reading is off.
OPEN_ENDPOINTS = frozenset({"static", "auth.login", "auth.logout"})
SESSION_KEY = "user_id"
# The user's session epoch when the login began (a raised epoch ends every
# login of the user), and when it began (seconds since 1970).
EPOCH_KEY, SINCE_KEY = "epoch", "since"
LOGGED_OUT = (
    "You are logged out, in this browser and in every other one where you "
    "were logged in."
)
# What a proxy sends when the client showed no certificate (Apache).
NO_DN = ("", "(null)")
# How the user of a request was found (``g.hepcat_via``). A browser sends the
# cookie and its certificate by itself, whichever site makes the request.
BY_TOKEN, BY_COOKIE, BY_DN, BY_AMI = "token", "cookie", "dn", "ami"
AMBIENT = frozenset({BY_COOKIE, BY_DN})
# What Sec-Fetch-Site says of a request another site made.
OTHER_SITES = frozenset({"cross-site", "same-site"})


class CrossSiteWrite(HepcatError, PermissionError):
    """A browser sent a write, authenticated by its cookie or certificate
    alone, from the page of another site (*origin*).
    """

    status = 403

    def __init__(self, origin: str) -> None:
        super().__init__(
            f"this write comes from a page of another site ({origin}) with only "
            "the browser's login cookie or certificate; it is refused, as it may "
            "not be yours. Write from hepcat's own pages, or send an API token "
            "(Authorization: Bearer ...) or -AMIUser/-AMIPass"
        )
        self.origin = origin


View = TypeVar("View", bound=Callable[..., Any])


@auth.record_once
def _set_up(state: BlueprintSetupState) -> None:
    """Protect every form against CSRF, except in the token blueprints."""
    from web.ami import ami
    from web.api import api

    app = state.app
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # as long as the login
    app.extensions["hepcat_failed_logins"] = FailedLogins()
    csrf.init_app(app)
    csrf.exempt(api)
    csrf.exempt(ami)


# --- who is asking ------------------------------------------------------------


def current_user() -> User | None:
    """Return the user of the current request, or ``None`` when anonymous.

    :raises AuthenticationFailed: when the request carries a token that is
        unknown, revoked or expired.
    """
    if "hepcat_user" not in g:
        g.hepcat_user, g.hepcat_via = _identify()
    user: User | None = g.hepcat_user
    return user


def _identify() -> tuple[User | None, str | None]:
    """The user of the request and how they were found (``BY_...``)."""
    token = _bearer_token()
    user_id = _session_user_id()
    dn = _certificate_dn()
    if token is None and user_id is None and dn is None:
        return None, None
    with catalog_session() as db:
        if token is not None:
            return authenticate_token(token, session=db), BY_TOKEN
        user = get_user_by_id(user_id, session=db) if user_id is not None else None
        if user_id is not None and not _session_holds(user):
            session.clear()  # ended, expired, or the user was kept out since
            user = None
        if user is not None:
            return user, BY_COOKIE
        user = user_by_dn(dn, session=db) if dn is not None else None
        if dn is not None and user is None:
            logger.info("No user has the certificate DN %s", dn)
        return user, BY_DN if user is not None else None


def _session_holds(user: User | None) -> bool:
    """Whether the login session is still *user*'s: the user is let in, no
    one ended their sessions since it began, and it has not outlived the
    ``session_hours`` setting.
    """
    if user is None or session.get(EPOCH_KEY) != user.session_epoch:
        return False
    hours = web_catalog().config.session_hours
    since = session.get(SINCE_KEY)
    if not isinstance(since, int | float):
        return False
    return bool(hours <= 0 or time.time() - since < hours * 3600)


def start_session(user: User) -> None:
    """Make the current browser's login session *user*'s, from now."""
    session.clear()
    session[SESSION_KEY] = user.id
    session[EPOCH_KEY] = user.session_epoch
    session[SINCE_KEY] = int(time.time())


def _bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _session_user_id() -> int | None:
    user_id = session.get(SESSION_KEY)
    if not isinstance(user_id, int):
        return None
    if request.blueprint in TOKEN_BLUEPRINTS and request.method not in SAFE_METHODS:
        return None
    return user_id


def _certificate_dn() -> str | None:
    header = web_catalog().config.trusted_dn_header
    if not header:
        return None
    dn = request.headers.get(header, "").strip()
    return None if dn in NO_DN else dn


def ami_login(login: str, password: str) -> User:
    """Check the ``-AMIUser``/``-AMIPass`` of an AMI command and make that
    user the request's user. The password may also be one of the user's API
    tokens.

    :raises AuthenticationFailed: when they do not match.
    :raises LoginThrottled: after too many wrong passwords.
    """
    with catalog_session() as db:
        if password.startswith(TOKEN_PREFIX):
            user = authenticate_token(password, session=db)
            if user.login != login:
                raise AuthenticationFailed(WRONG_CREDENTIALS)
        else:
            user = _checked_password(login, password, db=db)
    g.hepcat_user, g.hepcat_via = user, BY_AMI
    return user


# --- password guessing --------------------------------------------------------


class LoginThrottled(AuthenticationFailed):
    """Too many wrong passwords came for a login or from an address lately;
    the next try is welcome after *seconds*.
    """

    status = 429

    def __init__(self, seconds: float) -> None:
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        super().__init__(
            f"too many wrong passwords for this login or from this address; "
            f"try again in {int(seconds) + 1} s, after {at:%H:%M:%S} UTC"
        )
        self.seconds = seconds


class FailedLogins:
    """The recent wrong passwords of each login and client address, in this
    process: after *limit* of them within *window* seconds, that login or
    address is refused until the oldest is *window* old.
    """

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds until every one of *keys* may try again; 0: now."""
        now = time.monotonic()
        with self._lock:
            waits = [self._recent(key, now) for key in keys]
        return max(
            (t[0] + self.window - now for t in waits if len(t) >= self.limit),
            default=0.0,
        )

    def failed(self, keys: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._times.setdefault(key, deque(maxlen=self.limit)).append(now)
            if len(self._times) > 10_000:  # forget the quiet ones
                for key in [k for k in self._times if not self._recent(k, now)]:
                    del self._times[key]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._times.get(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times


def _checked_password(login: str, password: str, *, db: OrmSession) -> User:
    """The user *login* if *password* is theirs, unless too many wrong
    passwords came lately for *login* or from the client's address: then
    the password is not even checked.

    :raises LoginThrottled: then.
    :raises AuthenticationFailed: for a wrong password (which counts).
    """
    failures: FailedLogins = current_app.extensions["hepcat_failed_logins"]
    keys = (f"login {login.lower()}", f"address {request.remote_addr}")
    wait = failures.wait(keys)
    if wait > 0:
        logger.warning("Refused a login as %s from %s: throttled", login, keys[1])
        raise LoginThrottled(wait)
    try:
        return authenticate_password(login, password, session=db)
    except AuthenticationFailed:
        failures.failed(keys)
        raise


# --- what they may do ---------------------------------------------------------


def check_role(role: str, action: str) -> User:
    """Return the current user if they hold *role* (or a higher one).

    :param action: what is being done, for the message ("annotating a dataset").
    :raises AuthenticationFailed: when the request is anonymous.
    :raises PermissionDenied: when the user lacks the role.
    :raises CrossSiteWrite: for a write a browser sent from another site
        with only its login cookie or certificate.
    """
    user = current_user()
    if user is None:
        raise AuthenticationFailed(
            f"{action} needs a logged-in user with the role {role!r}; "
            f"{_how_to_sign_in()}"
        )
    _check_write_credentials(action)
    if not has_role(user, role):
        raise PermissionDenied(user.login, role, action)
    return user


def _check_write_credentials(action: str) -> None:
    """Refuse a write the current request's credentials may not make: a
    login cookie through the JSON API or the AMI endpoint (which take no CSRF
    token, and where an AMI command writes over GET too), and a cookie or a
    certificate DN on a request a browser made from another site.

    :raises AuthenticationFailed: for the cookie in a token blueprint.
    :raises CrossSiteWrite: for ambient credentials sent cross-site.
    """
    via = g.get("hepcat_via")
    if via == BY_COOKIE and request.blueprint in TOKEN_BLUEPRINTS:
        raise AuthenticationFailed(
            f"{action}: a login cookie never writes through the AMI endpoint or "
            f"the JSON API; {_how_to_sign_in()}"
        )
    writes = request.method not in SAFE_METHODS or request.blueprint == "ami"
    origin = _other_site()
    if via in AMBIENT and writes and origin is not None:
        logger.warning("Refused a cross-site write from %s to %s", origin, request.path)
        raise CrossSiteWrite(origin)


def _other_site() -> str | None:
    """The site a browser says it made the request from, when that is not
    this one; ``None`` for this site, and for clients that are not browsers.

    ``Sec-Fetch-Site`` decides where the browser sends it (a page cannot set
    it, and it stays right behind a proxy that rewrites ``Host``); older
    browsers send ``Origin`` on every cross-site write, compared here with
    the host the request was sent to (the scheme is left out, as a proxy in
    front may end TLS).
    """
    fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetch_site:
        return f"Sec-Fetch-Site: {fetch_site}" if fetch_site in OTHER_SITES else None
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if urlsplit(origin.strip()).netloc.lower() == request.host.lower():
        return None
    return origin


def _how_to_sign_in() -> str:
    """How the client of the current request says who it is."""
    if request.blueprint == "ami":
        return "send -AMIUser and -AMIPass with the command"
    return "log in, or send an API token (Authorization: Bearer ...)"


def require_role(role: str, *, action: str | None = None) -> Callable[[View], View]:
    """Decorate a view that needs *role*; the view gets ``required_role``, by
    which the tests find every write route and check that it is protected.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check_role(role, action or f"{request.method} {request.path}")
            return view(*args, **kwargs)

        checked.required_role = role  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def acting_user() -> User:
    """The user of a view behind :func:`require_role`.

    :raises AuthenticationFailed: when the request is anonymous.
    """
    user = current_user()
    if user is None:
        raise AuthenticationFailed("this needs a logged-in user; log in first")
    return user


def check_read() -> None:
    """Refuse an anonymous reader when anonymous reading is off.

    :raises AuthenticationFailed: anonymous, and ``anonymous_read`` is off.
    :raises PermissionDenied: a user without the ``reader`` role, when
        ``anonymous_read`` is off.
    """
    user = current_user()
    if web_catalog().config.anonymous_read:
        return
    if user is None:
        raise AuthenticationFailed(
            f"this catalogue is not open to anonymous readers; {_how_to_sign_in()}"
        )
    if not has_role(user, ROLE_READER):
        raise PermissionDenied(user.login, ROLE_READER, "reading the catalogue")


@auth.before_app_request
def _enforce_read() -> None:
    if request.endpoint is None or request.endpoint in OPEN_ENDPOINTS:
        return
    if request.blueprint == "ami":
        return  # the endpoint reads the command's credentials, then checks
    check_read()


# --- templates ----------------------------------------------------------------


def shown_user() -> User | None:
    """The user to show on a page: :func:`current_user`, or ``None`` when
    finding them fails (the page may be the one reporting that failure).
    """
    if "hepcat_user" in g:
        user: User | None = g.hepcat_user
        return user
    try:
        return current_user()
    except HepcatError:
        return None


@auth.app_context_processor
def _user_context() -> dict[str, Any]:
    return {"current_user": shown_user(), "user_has_role": _shown_user_has_role}


def _shown_user_has_role(role: str) -> bool:
    return has_role(shown_user(), role)


def login_page(message: str | None, status: int) -> tuple[str, int]:
    """The login form, with *message* saying why it is shown; the error
    renderer of the pages shows it for :class:`AuthenticationFailed`.
    """
    typed = request.form.get("login", "") if request.endpoint == "auth.login" else ""
    context = {"message": message, "next": _next_target(), "login": typed}
    return render_template("login.html", **context), status


def _next_target() -> str:
    """Where to go after logging in: where the user was going."""
    if request.endpoint == "auth.login":
        return _safe_target(request.values.get("next"))
    if request.method == "GET":
        return _safe_target(request.full_path.rstrip("?"))
    return _safe_target(request.referrer)


def _safe_target(target: str | None) -> str:
    """*target* if it is a path on this site, else the home page."""
    parts = urlsplit(target or "")
    if parts.netloc and parts.netloc != request.host:
        return url_for("pages.home")
    path = parts.path
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return url_for("pages.home")
    return path + (f"?{parts.query}" if parts.query else "")


# --- login --------------------------------------------------------------------


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a right login and password start a login session."""
    if request.method == "GET":
        return login_page(LOGGED_OUT if "logged_out" in request.args else None, 200)
    with catalog_session() as db:
        user = _checked_password(
            request.form.get("login", "").strip(),
            request.form.get("password", ""),
            db=db,
        )
    start_session(user)
    return redirect(_next_target())


@auth.post("/logout")
def logout() -> Response:
    """End the login session, and with it every other login of the user:
    their session epoch is raised, so that a copy of this browser's cookie
    stops working too (the cookie is signed, not stored, so it cannot be
    ended alone). The login page then says so.
    """
    user = shown_user()
    if user is not None and g.get("hepcat_via") == BY_COOKIE:
        with catalog_session() as db:
            end_sessions(user.login, session=db)
    session.clear()
    return redirect(url_for("auth.login", logged_out=1))
