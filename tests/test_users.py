"""Users, roles, passwords and API tokens in the catalogue, and the
``hepcat user`` and ``hepcat token`` commands that manage them.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from catalog.config import load_config
from catalog.db import utcnow
from catalog.errors import AuthenticationFailed, InvalidInput, NotFound, UserNotFound
from catalog.models import ApiToken, Role, User
from catalog.users import (
    add_user,
    authenticate_password,
    authenticate_token,
    create_token,
    get_user,
    grant_role,
    has_role,
    normalise_dn,
    revoke_role,
    revoke_token,
    role_names,
    set_active,
    set_password,
    user_by_dn,
)
from hepcat.cli import main
from web.app import create_app

PASSWORD = "correct horse battery"
ROLES = ("reader", "physicist", "admin")
DN = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=Jane Doe"
DN_RFC2253 = "CN=Jane Doe,CN=123456,CN=jdoe,OU=Users,OU=Organic Units,DC=cern,DC=ch"


@pytest.fixture
def alice(Session):  # noqa: N803
    with Session.begin() as session:
        add_user("alice", password=PASSWORD, roles=["physicist"], session=session)
    return "alice"


# --- passwords ---------------------------------------------------------------


def test_a_password_is_stored_as_a_salted_hash(Session, alice):  # noqa: N803
    with Session.begin() as session:
        add_user("bob", password=PASSWORD, roles=["reader"], session=session)
    with Session() as session:
        hashes = session.scalars(select(User.password_hash).order_by(User.login)).all()

    assert all(PASSWORD not in stored for stored in hashes)
    assert hashes[0] != hashes[1]  # same password, different salts
    assert all(stored.startswith(("scrypt:", "pbkdf2:")) for stored in hashes)


def test_the_right_password_logs_in(Session, alice):  # noqa: N803
    with Session.begin() as session:
        user = authenticate_password("alice", PASSWORD, session=session)

    assert user.login == "alice"
    assert role_names(user) == ["physicist"]


def test_a_wrong_password_and_an_unknown_login_get_the_same_answer(Session, alice):  # noqa: N803
    with Session.begin() as session:
        with pytest.raises(AuthenticationFailed) as wrong_password:
            authenticate_password("alice", "not the password", session=session)
        with pytest.raises(AuthenticationFailed) as unknown_login:
            authenticate_password("mallory", PASSWORD, session=session)

    assert str(wrong_password.value) == str(unknown_login.value)
    assert "alice" not in str(wrong_password.value)


def test_a_user_kept_out_or_without_password_cannot_log_in(Session, alice):  # noqa: N803
    with Session.begin() as session:
        add_user("robot", roles=["reader"], session=session)
        set_active("alice", False, session=session)
    with Session.begin() as session:
        with pytest.raises(AuthenticationFailed):
            authenticate_password("alice", PASSWORD, session=session)
        with pytest.raises(AuthenticationFailed):
            authenticate_password("robot", "", session=session)


def test_a_changed_password_replaces_the_old_one(Session, alice):  # noqa: N803
    with Session.begin() as session:
        set_password("alice", "a new long password", session=session)
    with Session.begin() as session:
        with pytest.raises(AuthenticationFailed):
            authenticate_password("alice", PASSWORD, session=session)
        assert authenticate_password("alice", "a new long password", session=session)


def test_a_short_password_is_refused(Session, alice):  # noqa: N803
    with Session.begin() as session, pytest.raises(InvalidInput, match="at least 8"):
        set_password("alice", "short", session=session)


# --- users and roles ----------------------------------------------------------


@pytest.mark.parametrize(
    "login, roles, message",
    [
        ("1alice", ["reader"], "not a usable login"),
        ("al ice", ["reader"], "not a usable login"),
        ("alice", ["superuser"], "no role 'superuser'; the roles are reader"),
    ],
)
def test_bad_logins_and_roles_are_refused(Session, login, roles, message):  # noqa: N803
    with Session.begin() as session, pytest.raises(InvalidInput, match=message):
        add_user(login, roles=roles, session=session)


def test_a_login_is_taken_once(Session, alice):  # noqa: N803
    with Session.begin() as session, pytest.raises(InvalidInput, match="already"):
        add_user("alice", roles=["reader"], session=session)


def test_roles_are_ordered_reader_physicist_admin(Session):  # noqa: N803
    with Session.begin() as session:
        for login, role in (("r", "reader"), ("p", "physicist"), ("a", "admin")):
            add_user(login, roles=[role], session=session)
        add_user("nobody", roles=[], session=session)
    with Session() as session:
        held = {
            login: [has_role(get_user(login, session=session), role) for role in ROLES]
            for login in ("nobody", "r", "p", "a")
        }

    assert held == {
        "nobody": [False, False, False],
        "r": [True, False, False],
        "p": [True, True, False],
        "a": [True, True, True],
    }


def test_roles_are_granted_and_revoked(Session, alice):  # noqa: N803
    with Session.begin() as session:
        grant_role("alice", "admin", session=session)
        grant_role("alice", "admin", session=session)  # twice: no change
    with Session.begin() as session:
        granted = role_names(get_user("alice", session=session))
        revoke_role("alice", "physicist", session=session)
    with Session() as session:
        user = get_user("alice", session=session)
        roles_in_table = set(session.scalars(select(Role.name)))

    assert granted == ["physicist", "admin"]
    assert role_names(user) == ["admin"]
    assert roles_in_table == {"physicist", "admin"}


def test_a_user_that_does_not_exist_is_named(Session):  # noqa: N803
    with Session.begin() as session, pytest.raises(UserNotFound, match="'carol'"):
        grant_role("carol", "admin", session=session)


def test_a_kept_out_user_holds_no_role(Session, alice):  # noqa: N803
    with Session.begin() as session:
        user = set_active("alice", False, session=session)

        assert not has_role(user, "reader")


# --- API tokens ---------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_as_a_hash(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token("alice", "laptop", session=session)
    with Session() as session:
        row = session.scalars(select(ApiToken)).one()

    assert token.startswith("hct_") and len(token) > 40
    assert token not in row.token_hash
    assert row.prefix == token[:12]
    assert row.name == "laptop"


def test_a_token_logs_its_user_in_and_notes_when(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token("alice", "laptop", session=session)
    before = utcnow()
    with Session.begin() as session:
        user = authenticate_token(token, session=session)
    with Session() as session:
        last_used = session.scalar(select(ApiToken.last_used))

    assert user.login == "alice"
    assert has_role(user, "physicist")
    assert last_used is not None and last_used >= before - dt.timedelta(seconds=1)


def test_a_revoked_token_no_longer_works(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token("alice", "laptop", session=session)
    with Session.begin() as session:
        revoke_token("alice", "laptop", session=session)
    with Session.begin() as session, pytest.raises(AuthenticationFailed) as refused:
        authenticate_token(token, session=session)

    assert "'laptop') is revoked" in str(refused.value)


def test_an_expired_token_no_longer_works(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token(
            "alice", "job", expires=utcnow() + dt.timedelta(days=1), session=session
        )
        assert authenticate_token(token, session=session).login == "alice"
    with Session.begin() as session:  # two days later
        past = utcnow() - dt.timedelta(days=1)
        session.execute(update(ApiToken).values(expires=past))
    with Session.begin() as session, pytest.raises(AuthenticationFailed) as refused:
        authenticate_token(token, session=session)

    assert "is expired" in str(refused.value)


def test_an_unknown_token_is_refused(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token("alice", "laptop", session=session)
    with Session.begin() as session, pytest.raises(AuthenticationFailed):
        authenticate_token(
            token[:-1] + ("A" if token[-1] != "A" else "B"), session=session
        )


def test_a_token_of_a_kept_out_user_is_refused(Session, alice):  # noqa: N803
    with Session.begin() as session:
        token = create_token("alice", "laptop", session=session)
        set_active("alice", False, session=session)
    with Session.begin() as session, pytest.raises(AuthenticationFailed):
        authenticate_token(token, session=session)


def test_token_names_tell_live_tokens_apart(Session, alice):  # noqa: N803
    with Session.begin() as session:
        create_token("alice", "laptop", session=session)
        with pytest.raises(InvalidInput, match="already has a live token"):
            create_token("alice", "laptop", session=session)
        revoke_token("alice", "laptop", session=session)
        create_token("alice", "laptop", session=session)  # the name is free again
        with pytest.raises(NotFound, match="no live token named 'desktop'"):
            revoke_token("alice", "desktop", session=session)


def csrf_token(client):
    """The CSRF token of the client's session, as the forms carry it."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert found
    return found.group(1)


@pytest.fixture
def alice_browser(alice, catalog_engine, tmp_path):
    """A browser logged in as alice through the login form."""
    app = create_app(load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine)
    client = app.test_client()
    form = {"login": "alice", "password": PASSWORD, "csrf_token": csrf_token(client)}
    assert client.post("/login", data=form).status_code == 302
    return client


@pytest.mark.parametrize("days", ["\u00b2", "\u0663", "0", "36501", "9" * 5000])
def test_a_token_lifetime_not_in_days_is_refused(Session, alice_browser, days):  # noqa: N803
    form = {"name": "job", "expires_days": days}

    answer = alice_browser.post(
        "/account/tokens", data=form | {"csrf_token": csrf_token(alice_browser)}
    )

    assert answer.status_code == 400
    assert "is not a number of days (1 to 36500)" in html.unescape(answer.text)
    with Session() as session:
        assert session.scalars(select(ApiToken)).all() == []


# --- certificate DNs ----------------------------------------------------------


def test_both_forms_of_a_dn_find_the_user(Session):  # noqa: N803
    with Session.begin() as session:
        add_user("jdoe", roles=["reader"], dn=DN_RFC2253, session=session)
    with Session() as session:
        by_openssl = user_by_dn(DN, session=session)
        by_rfc2253 = user_by_dn(DN_RFC2253, session=session)
        by_other = user_by_dn("/DC=ch/DC=cern/CN=someone else", session=session)

    assert normalise_dn(DN_RFC2253) == DN
    assert by_openssl is not None and by_openssl.login == "jdoe"
    assert by_rfc2253 is not None and by_rfc2253.login == "jdoe"
    assert by_other is None


def test_an_escaped_comma_stays_in_its_part():
    assert normalise_dn(r"CN=Doe\, Jane,O=CERN") == "/O=CERN/CN=Doe, Jane"


def test_a_dn_belongs_to_one_user(Session):  # noqa: N803
    with Session.begin() as session:
        add_user("jdoe", roles=["reader"], dn=DN, session=session)
        with pytest.raises(InvalidInput, match="already has the DN"):
            add_user("jdoe2", roles=["reader"], dn=DN_RFC2253, session=session)


# --- the commands -------------------------------------------------------------


@pytest.fixture
def hepcat(tmp_path, catalog_engine):
    """Run ``hepcat ARGS...`` on the test's catalogue."""
    env = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}

    def run(*args: str, input: str | None = None):
        runner = CliRunner()
        return runner.invoke(
            main, ["--data-dir", str(tmp_path), *args], env=env, input=input
        )

    return run


def test_user_add_asks_for_the_password_twice(hepcat, Session):  # noqa: N803
    added = hepcat(
        "user", "add", "alice", "--role", "physicist", "--full-name", "Alice Liddell",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    listed = hepcat("user", "list")

    assert added.exit_code == 0, added.output
    assert "user alice added with the roles physicist" in added.output
    assert PASSWORD not in added.output
    assert listed.output.split() == ["alice", "physicist", "Alice", "Liddell"]
    with Session.begin() as session:
        assert authenticate_password("alice", PASSWORD, session=session)


def test_user_add_reads_a_script_password_from_stdin(hepcat, Session):  # noqa: N803
    added = hepcat(
        "user", "add", "robot", "--role", "reader", "--role", "physicist",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert added.exit_code == 0, added.output
    with Session.begin() as session:
        user = authenticate_password("robot", PASSWORD, session=session)
        assert role_names(user) == ["reader", "physicist"]


def test_user_grant_and_revoke_change_the_roles(hepcat, alice):
    granted = hepcat("user", "grant", "alice", "admin")
    revoked = hepcat("user", "revoke", "alice", "physicist")

    assert "user alice has the roles physicist, admin" in granted.output
    assert "user alice has admin" in revoked.output


def test_token_create_prints_a_token_that_works(hepcat, alice, Session):  # noqa: N803
    created = hepcat("token", "create", "alice", "--name", "laptop")
    token = created.output.strip()
    listed = hepcat("token", "list", "alice")

    assert created.exit_code == 0, created.output
    with Session.begin() as session:
        assert authenticate_token(token, session=session).login == "alice"
    assert f"{token[:12]}..." in listed.output
    assert token not in listed.output
    assert "live" in listed.output


def test_token_revoke_stops_the_token(hepcat, alice, Session):  # noqa: N803
    token = hepcat("token", "create", "alice", "--name", "job").output.strip()

    revoked = hepcat("token", "revoke", "alice", "job")

    assert revoked.exit_code == 0, revoked.output
    assert "of alice revoked" in revoked.output
    with Session.begin() as session, pytest.raises(AuthenticationFailed):
        authenticate_token(token, session=session)


def test_token_expiry_is_set_in_days(hepcat, alice, Session):  # noqa: N803
    hepcat("token", "create", "alice", "--name", "job", "--expires-days", "7")

    with Session() as session:
        expires = session.scalar(select(ApiToken.expires))
    left = expires - utcnow()
    assert dt.timedelta(days=6, hours=23) < left <= dt.timedelta(days=7)


def test_a_password_with_no_password_is_refused(hepcat, Session):  # noqa: N803
    both = hepcat(
        "user", "add", "bob", "--role", "reader", "--no-password", "--password-stdin"
    )

    assert both.exit_code == 2
    assert "--no-password and --password-stdin contradict each other" in both.stderr
    with Session() as session:
        assert session.scalar(select(User).where(User.login == "bob")) is None


def test_command_errors_are_one_line_with_their_type(hepcat, alice):
    unknown = hepcat("token", "create", "carol", "--name", "laptop")
    taken = hepcat("user", "add", "alice", "--role", "reader", "--no-password")
    bad_role = hepcat("user", "grant", "alice", "superuser")

    assert unknown.exit_code == 1
    assert (
        "UserNotFound: no user 'carol'; the list of users gives their logins"
        in unknown.stderr.splitlines()
    )
    assert taken.exit_code == 1
    assert "InvalidInput: there is already a user 'alice'" in taken.stderr.splitlines()
    assert bad_role.exit_code == 2  # click refuses the choice before hepcat runs
    assert "'superuser' is not one of 'reader', 'physicist', 'admin'" in (
        bad_role.stderr
    )
