"""Access control as users meet it: who may write what, logging in and out,
tokens, certificate DNs handed over by a proxy, CSRF on forms, and a
catalogue closed to anonymous readers.

The write routes are read from the application's URL map, so a route added
later is checked without a change here.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from catalog.annotations import list_annotations
from catalog.config import load_config
from catalog.errors import AuthenticationFailed
from catalog.users import add_user, create_token, get_user
from web.app import create_app
from web.auth import ami_login, current_user

PASSWORD = "correct horse battery"
ZEE_EVNT = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
DN_HEADER = "X-SSL-Client-S-DN"
RITA_DN = "/DC=ch/DC=cern/OU=Users/CN=rita"
RITA_DN_RFC2253 = "CN=rita,OU=Users,DC=cern,DC=ch"

# One user per role, one without any, and a second physicist.
PEOPLE = {
    "nora": [],
    "rita": ["reader"],
    "phil": ["reader", "physicist"],
    "paula": ["physicist"],
    "ada": ["admin"],
}
HOLDS = {"reader": "rita", "physicist": "phil", "admin": "ada"}
BELOW = {"reader": "nora", "physicist": "rita", "admin": "phil"}

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Writes that anyone may send: logging in and out. The AMI endpoint's
# writes are commands, checked by command.
OPEN_WRITES = {"auth.login", "auth.logout"}
# Writes after which the sender must log in again.
ENDS_OWN_LOGIN = {"users.account_end_sessions"}


@pytest.fixture
def make_app(catalog_engine: Any, tmp_path: Any) -> Any:
    """``make_app(**settings)``: the application on the test's catalogue."""

    def make(**settings: Any) -> Flask:
        config = load_config(env={}, data_dir=str(tmp_path), **settings)
        return create_app(config, engine=catalog_engine)

    return make


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app()


@pytest.fixture
def tokens(Session: Any) -> dict[str, str]:  # noqa: N803
    """The people above, each with a password and an API token."""
    made = {}
    with Session.begin() as session:
        add_user("ada", password=PASSWORD, roles=PEOPLE["ada"], session=session)
        password_hash = get_user("ada", session=session).password_hash
        for login, roles in PEOPLE.items():
            dn = RITA_DN if login == "rita" else None
            if login != "ada":  # the same password: hashed once, for speed
                user = add_user(login, roles=roles, dn=dn, session=session)
                user.password_hash = password_hash
            made[login] = create_token(login, "tests", session=session)
    return made


@pytest.fixture
def zee(dataset_factory: Any) -> str:
    dataset_factory(ZEE_EVNT)
    return ZEE_EVNT


def csrf_token(client: FlaskClient) -> str:
    """The CSRF token of the client's session, as the login form carries it."""
    page = client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def log_in(app: Flask, login: str) -> FlaskClient:
    """A browser logged in as *login* through the login form."""
    client = app.test_client()
    answer = client.post(
        "/login",
        data={"login": login, "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 302, answer.text
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shown(answer: TestResponse) -> str:
    """The text of a page as a browser shows it (entities decoded)."""
    return html.unescape(answer.text)


def refused_anonymous(answer: TestResponse) -> bool:
    """Refused for want of a login: 401 (pages show the login form), or a
    redirect to the login page.
    """
    if answer.status_code == 302:
        return "/login" in answer.headers["Location"]
    return answer.status_code == 401


# --- every write route --------------------------------------------------------


def write_routes(app: Flask) -> Iterator[tuple[Rule, str]]:
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN_WRITES or rule.endpoint.startswith("ami."):
            continue
        for method in sorted((rule.methods or set()) & WRITE_METHODS):
            yield rule, method


class Writer:
    """Sends a write as a user would: a page form from a logged-in browser
    with its CSRF token, or a JSON request with an API token.
    """

    def __init__(self, app: Flask, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens
        self.browsers = {login: log_in(app, login) for login in tokens}
        self.anonymous = app.test_client()

    def send(self, rule: Rule, method: str, login: str | None) -> TestResponse:
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        if rule.endpoint.startswith("api."):
            headers = bearer(self.tokens[login]) if login else {}
            return self.anonymous.open(path, method=method, json={}, headers=headers)
        client = self.browsers[login] if login else self.anonymous
        form = {"csrf_token": csrf_token(client)}
        answer = client.open(path, method=method, data=form)
        if login and rule.endpoint in ENDS_OWN_LOGIN:
            self.browsers[login] = log_in(self.app, login)
        return answer


def test_every_write_route_needs_a_user_with_its_role(app, tokens):
    routes = list(write_routes(app))
    writer = Writer(app, tokens)
    problems = []

    for rule, method in routes:
        where = f"{method} {rule.rule}"
        role = getattr(app.view_functions[rule.endpoint], "required_role", None)
        if role is None:
            problems.append(f"{where}: declares no role (use @require_role)")
            continue
        anonymous = writer.send(rule, method, None)
        too_low = writer.send(rule, method, BELOW[role])
        right = writer.send(rule, method, HOLDS[role])
        if not refused_anonymous(anonymous):
            problems.append(f"{where}: anonymous got {anonymous.status_code}")
        if too_low.status_code != 403:
            problems.append(f"{where}: {BELOW[role]} got {too_low.status_code}")
        if right.status_code in (401, 403) or "CSRF" in right.text:
            problems.append(f"{where}: {HOLDS[role]} ({role}) was refused")

    assert {rule.endpoint for rule, _ in routes} >= {
        "annotations.add_annotation",
        "users.admin_add_user",
        "users.admin_token",
    }
    assert problems == []


def test_the_too_low_role_is_named_on_the_refusal(app, tokens, zee):
    browser = log_in(app, "rita")

    answer = browser.post(
        f"/datasets/{zee}/annotations",
        data={"name": "ZeeCandidate", "csrf_token": csrf_token(browser)},
    )

    assert answer.status_code == 403
    assert "annotating a dataset needs the role 'physicist'" in shown(answer)
    assert "user 'rita' does not have it" in shown(answer)


# --- CSRF ---------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(app, tokens, zee, Session):  # noqa: N803
    browser = log_in(app, "phil")
    form = {"name": "ZeeCandidate", "comment": "clean electrons"}

    forged = browser.post(f"/datasets/{zee}/annotations", data=form)
    with Session() as session:
        after_forged = list_annotations(zee, session=session)
    genuine = browser.post(
        f"/datasets/{zee}/annotations", data={**form, "csrf_token": csrf_token(browser)}
    )
    with Session() as session:
        after_genuine = list_annotations(zee, session=session)

    assert app.config["WTF_CSRF_ENABLED"]
    assert forged.status_code == 400
    assert "CSRF token is missing" in forged.text
    assert after_forged == []
    assert genuine.status_code == 302
    assert [(h.name, h.author) for h in after_genuine] == [("ZeeCandidate", "phil")]


def test_logging_in_and_out_need_the_csrf_token(app, tokens):
    browser = app.test_client()

    login = browser.post("/login", data={"login": "phil", "password": PASSWORD})
    logged_in = log_in(app, "phil")
    logout = logged_in.post("/logout")

    assert login.status_code == 400
    assert logout.status_code == 400
    assert "phil" in logged_in.get("/").text  # still logged in


def test_a_login_cookie_alone_does_not_write_through_the_api(app, tokens, zee):
    browser = log_in(app, "phil")
    body = {"name": "ZeeCandidate"}

    with_cookie = browser.post(f"/api/v1/datasets/{zee}/annotations", json=body)
    with_token = app.test_client().post(
        f"/api/v1/datasets/{zee}/annotations", json=body, headers=bearer(tokens["phil"])
    )

    assert with_cookie.status_code == 401
    assert with_token.status_code == 201


# --- logging in ---------------------------------------------------------------


def test_a_page_that_needs_a_login_shows_the_form_and_leads_back(app, tokens):
    browser = app.test_client()

    asked = browser.get("/admin/users")
    answer = browser.post(
        "/login",
        data={
            "login": "ada",
            "password": PASSWORD,
            "next": "/admin/users",
            "csrf_token": csrf_token(browser),
        },
    )
    users = browser.get("/admin/users")

    assert asked.status_code == 401
    assert 'name="password"' in asked.text
    assert 'name="next" value="/admin/users"' in asked.text
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/users"
    assert users.status_code == 200
    assert all(login in users.text for login in PEOPLE)


def test_a_wrong_password_shows_the_form_again(app, tokens):
    browser = app.test_client()

    answer = browser.post(
        "/login",
        data={"login": "phil", "password": "guess", "csrf_token": csrf_token(browser)},
    )

    assert answer.status_code == 401
    assert "wrong login or password" in answer.text
    assert 'value="phil"' in answer.text
    assert "Log out" not in browser.get("/").text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_logging_in_never_leads_off_the_site(app, tokens, target):
    browser = app.test_client()

    answer = browser.post(
        "/login",
        data={
            "login": "phil",
            "password": PASSWORD,
            "next": target,
            "csrf_token": csrf_token(browser),
        },
    )

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"


def test_every_page_shows_who_is_logged_in(app, tokens):
    browser = log_in(app, "phil")
    anonymous = app.test_client()

    for path in ("/", "/datasets", "/account"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert re.search(r">\s*phil\s*</a>", page.text), path
        assert "Log out" in page.text, path
    assert "Log in" in anonymous.get("/").text
    assert "Log out" not in anonymous.get("/").text


def test_logging_out_ends_the_login(app, tokens):
    browser = log_in(app, "ada")

    answer = browser.post("/logout", data={"csrf_token": csrf_token(browser)})

    assert answer.status_code == 302
    assert browser.get("/admin/users").status_code == 401


def test_a_user_kept_out_by_an_admin_is_logged_out(app, tokens):
    phil = log_in(app, "phil")
    admin = log_in(app, "ada")

    kept_out = admin.post(
        "/admin/users/phil/active",
        data={"active": "0", "csrf_token": csrf_token(admin)},
    )

    assert kept_out.status_code == 302
    assert phil.get("/account").status_code == 401
    api = app.test_client().get("/api/v1/datasets", headers=bearer(tokens["phil"]))
    assert api.status_code == 401


def test_log_out_everywhere_ends_the_logins_of_every_browser(app, tokens):
    laptop, desktop = log_in(app, "phil"), log_in(app, "phil")
    rita = log_in(app, "rita")

    ended = laptop.post(
        "/account/sessions/end", data={"csrf_token": csrf_token(laptop)}
    )

    assert ended.status_code == 302
    assert laptop.get("/account").status_code == 401
    assert desktop.get("/account").status_code == 401
    assert rita.get("/account").status_code == 200  # only phil's logins end
    assert log_in(app, "phil").get("/account").status_code == 200


def test_a_new_password_ends_the_other_logins_but_not_this_one(app, tokens):
    laptop, desktop = log_in(app, "phil"), log_in(app, "phil")
    new = "a longer new password"

    changed = laptop.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "password": new,
            "confirm": new,
            "csrf_token": csrf_token(laptop),
        },
    )

    assert changed.status_code == 302
    assert laptop.get("/account").status_code == 200
    assert desktop.get("/account").status_code == 401


def test_an_admin_logs_a_user_out_and_a_stolen_cookie_stops_working(app, tokens):
    phil = log_in(app, "phil")
    stolen = app.test_client()
    stolen.set_cookie("session", phil.get_cookie("session").value)
    assert stolen.get("/account").status_code == 200
    admin = log_in(app, "ada")

    admin.post("/admin/users/phil/sessions/end", data={"csrf_token": csrf_token(admin)})

    assert phil.get("/account").status_code == 401
    assert stolen.get("/account").status_code == 401


def test_a_login_lasts_session_hours(make_app, tokens):
    app = make_app(session_hours="1")
    phil = log_in(app, "phil")
    assert phil.get("/account").status_code == 200

    with phil.session_transaction() as cookie:
        cookie["since"] -= 3601

    assert phil.get("/account").status_code == 401


def test_hepcat_user_sign_out_ends_the_logins(app, tokens, catalog_engine, tmp_path):
    from click.testing import CliRunner

    from hepcat.cli import main

    phil = log_in(app, "phil")
    url = catalog_engine.url.render_as_string(hide_password=False)

    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "user", "sign-out", "phil"],
        env={"HEPCAT_DATABASE_URL": url},
    )

    assert result.exit_code == 0, result.output
    assert "every login of phil ended" in result.output
    assert phil.get("/account").status_code == 401


def test_an_admin_cannot_keep_themselves_out_on_the_pages(app, tokens):
    admin = log_in(app, "ada")

    refused = admin.post(
        "/admin/users/ada/active", data={"active": "0", "csrf_token": csrf_token(admin)}
    )

    assert refused.status_code == 400
    assert "you cannot keep yourself out; another admin can" in refused.text
    assert 'id="active-error"' in refused.text
    assert admin.get("/account").status_code == 200  # still in


def test_hepcat_user_keep_out_and_let_in(app, tokens, catalog_engine, tmp_path):
    from click.testing import CliRunner

    from hepcat.cli import main

    url = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}
    phil = log_in(app, "phil")

    def hepcat(*args: str):
        return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=url)

    out = hepcat("user", "keep-out", "phil")
    refused = phil.get("/account").status_code
    back = hepcat("user", "let-in", "phil")

    assert out.exit_code == 0 and back.exit_code == 0, out.output + back.output
    assert "phil is kept out ('hepcat user let-in phil' lets them in)" in out.output
    assert refused == 401
    assert "phil may log in again" in back.output
    assert log_in(app, "phil").get("/account").status_code == 200


# --- tokens -------------------------------------------------------------------


def test_an_admin_makes_a_token_shown_once_that_the_api_takes(app, tokens, zee):
    admin = log_in(app, "ada")

    made = admin.post(
        "/admin/users/paula/tokens",
        data={"name": "laptop", "csrf_token": csrf_token(admin)},
    )
    token = re.search(r"hct_[A-Za-z0-9_-]+", made.text)
    assert token, made.text
    later = admin.get("/admin/users/paula")
    annotated = app.test_client().post(
        f"/api/v1/datasets/{zee}/annotations",
        json={"name": "Zee"},
        headers=bearer(token.group(0)),
    )
    revoked = admin.post(
        "/admin/users/paula/tokens/revoke",
        data={"name": "laptop", "csrf_token": csrf_token(admin)},
    )
    after = app.test_client().get("/api/v1/datasets", headers=bearer(token.group(0)))

    assert made.status_code == 200
    assert token.group(0) not in later.text
    assert token.group(0)[:12] in later.text
    assert annotated.status_code == 201
    assert annotated.get_json()["author"] == "paula"
    assert revoked.status_code == 302
    assert after.status_code == 401


def test_users_make_their_own_tokens(app, tokens):
    rita = log_in(app, "rita")

    made = rita.post(
        "/account/tokens",
        data={"name": "notebook", "expires_days": "30", "csrf_token": csrf_token(rita)},
    )
    token = re.search(r"hct_[A-Za-z0-9_-]+", made.text)

    assert token, made.text
    account = app.test_client().get("/account", headers=bearer(token.group(0)))
    assert account.status_code == 200
    assert "notebook" in account.text and "rita" in account.text


def test_a_wrong_token_is_refused_even_where_reading_is_open(app, tokens):
    client = app.test_client()

    page = client.get("/", headers=bearer("hct_not-a-token"))
    api = client.get("/api/v1/datasets", headers=bearer("hct_not-a-token"))

    assert page.status_code == 401
    assert api.status_code == 401
    assert "unknown API token" in api.get_data(as_text=True)


# --- an admin manages users ---------------------------------------------------


def test_an_admin_adds_a_user_who_then_logs_in(app, tokens):
    admin = log_in(app, "ada")

    added = admin.post(
        "/admin/users",
        data={
            "login": "newton",
            "full_name": "Isaac Newton",
            "password": "apples fall down",
            "confirm": "apples fall down",
            "roles": ["physicist"],
            "csrf_token": csrf_token(admin),
        },
    )
    newton = app.test_client()
    logged_in = newton.post(
        "/login",
        data={
            "login": "newton",
            "password": "apples fall down",
            "csrf_token": csrf_token(newton),
        },
    )

    assert added.status_code == 302
    assert "Isaac Newton" in admin.get("/admin/users").text
    assert logged_in.status_code == 302
    assert "physicist" in newton.get("/account").text


def test_an_admin_grants_and_revokes_roles(app, tokens):
    admin = log_in(app, "ada")
    rita = log_in(app, "rita")

    admin.post(
        "/admin/users/rita/roles/grant",
        data={"role": "admin", "csrf_token": csrf_token(admin)},
    )
    as_admin = rita.get("/admin/users")
    admin.post(
        "/admin/users/rita/roles/revoke",
        data={"role": "admin", "csrf_token": csrf_token(admin)},
    )
    as_reader = rita.get("/admin/users")

    assert as_admin.status_code == 200
    assert as_reader.status_code == 403


# --- annotations on the dataset page ------------------------------------------


def test_physicists_annotate_on_the_dataset_page(app, tokens, zee):
    phil = log_in(app, "phil")
    rita = log_in(app, "rita")
    anonymous_before = app.test_client().get(f"/datasets/{zee}")

    phil.post(
        f"/datasets/{zee}/annotations",
        data={
            "name": "#ZeeCandidate",
            "scope": "phys",
            "comment": "clean electrons",
            "csrf_token": csrf_token(phil),
        },
    )
    as_phil = phil.get(f"/datasets/{zee}").text
    as_rita = rita.get(f"/datasets/{zee}").text

    assert "No annotation yet" in anonymous_before.text
    assert "as a physicist to annotate" in anonymous_before.text
    assert "#ZeeCandidate" in as_phil and "clean electrons" in as_phil
    assert ">Annotate</button>" in as_phil and ">Remove</button>" in as_phil
    assert "#ZeeCandidate" in as_rita
    assert ">Annotate</button>" not in as_rita and ">Remove</button>" not in as_rita


def test_only_its_author_or_an_admin_removes_an_annotation(app, tokens, zee, Session):  # noqa: N803
    phil = log_in(app, "phil")
    phil.post(
        f"/datasets/{zee}/annotations",
        data={"name": "ZeeCandidate", "csrf_token": csrf_token(phil)},
    )
    remove = f"/datasets/{zee}/annotations/PHYS/ZeeCandidate/delete"
    paula = log_in(app, "paula")
    admin = log_in(app, "ada")

    by_paula = paula.post(remove, data={"csrf_token": csrf_token(paula)})
    with Session() as session:
        kept = list_annotations(zee, session=session)
    by_admin = admin.post(remove, data={"csrf_token": csrf_token(admin)})
    with Session() as session:
        left = list_annotations(zee, session=session)

    assert by_paula.status_code == 403
    assert "removing another physicist's annotation" in shown(by_paula)
    assert [h.name for h in kept] == ["ZeeCandidate"]
    assert by_admin.status_code == 302
    assert left == []


# --- anonymous reading --------------------------------------------------------


def reading_routes(app: Flask) -> list[str]:
    """Paths of the GET routes without arguments, but login and static files."""
    return [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set())
        and not rule.arguments
        and rule.endpoint not in ("static", "auth.login")
        and not rule.endpoint.startswith("ami.")
    ]


def test_a_closed_catalogue_refuses_anonymous_readers(make_app, tokens):
    app = make_app(anonymous_read=False)
    client = app.test_client()
    paths = reading_routes(app)

    refused = {path: client.get(path) for path in paths}

    assert "/" in paths and "/api/v1/datasets" in paths
    assert {
        p: a.status_code for p, a in refused.items() if not refused_anonymous(a)
    } == {}
    assert 'name="password"' in refused["/"].text
    assert client.get("/login").status_code == 200
    with client.get("/static/hepcat.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_a_closed_catalogue_opens_to_readers(make_app, tokens):
    app = make_app(anonymous_read=False)
    rita = log_in(app, "rita")
    nora = log_in(app, "nora")

    page = rita.get("/datasets")
    api = app.test_client().get("/api/v1/datasets", headers=bearer(tokens["rita"]))
    api_by_cookie = rita.get("/api/v1/datasets")
    roleless = nora.get("/datasets")

    assert page.status_code == 200
    assert api.status_code == 200
    assert api_by_cookie.status_code == 200
    assert roleless.status_code == 403
    assert "reading the catalogue needs the role 'reader'" in shown(roleless)


# --- certificates through a trusted proxy -------------------------------------


def test_a_dn_header_is_ignored_unless_configured(app, tokens):
    answer = app.test_client().get("/account", headers={DN_HEADER: RITA_DN})

    assert answer.status_code == 401


@pytest.mark.parametrize("dn", [RITA_DN, RITA_DN_RFC2253])
def test_a_dn_from_the_trusted_proxy_is_its_user(make_app, tokens, dn):
    app = make_app(trusted_dn_header=DN_HEADER)

    answer = app.test_client().get("/account", headers={DN_HEADER: dn})

    assert answer.status_code == 200
    assert RITA_DN in answer.text


@pytest.mark.parametrize("dn", ["/DC=ch/CN=somebody else", "(null)", ""])
def test_an_unknown_or_missing_dn_is_anonymous(make_app, tokens, dn):
    app = make_app(trusted_dn_header=DN_HEADER)

    answer = app.test_client().get("/account", headers={DN_HEADER: dn})

    assert answer.status_code == 401


# --- AMI credentials ----------------------------------------------------------


def test_ami_credentials_make_the_user_of_the_request(app, tokens):
    with app.test_request_context("/AMI/FrontEnd", method="POST"):
        assert ami_login("phil", PASSWORD).login == "phil"
        assert current_user().login == "phil"
    with app.test_request_context("/AMI/FrontEnd", method="POST"):
        assert ami_login("phil", tokens["phil"]).login == "phil"  # a token will do
    with app.test_request_context("/AMI/FrontEnd", method="POST"):
        with pytest.raises(AuthenticationFailed, match="wrong login or password"):
            ami_login("phil", "guess")
        with pytest.raises(AuthenticationFailed, match="wrong login or password"):
            ami_login("rita", tokens["phil"])  # someone else's token
        assert current_user() is None


def ami_endpoint(app: Flask) -> str:
    paths = {rule.rule for rule in app.url_map.iter_rules()}
    if "/AMI/FrontEnd" not in paths:
        pytest.skip("the AMI endpoint is not in this application")
    return "/AMI/FrontEnd"


def test_the_ami_endpoint_refuses_wrong_credentials(app, tokens):
    endpoint = ami_endpoint(app)
    command = 'AMIListCommands -AMIUser="phil" -AMIPass="guess"'

    answer = app.test_client().post(endpoint, data={"Command": command})

    assert '<error type="AuthenticationFailed">' in answer.text
    assert "wrong login or password" in answer.text


def test_a_closed_ami_endpoint_answers_its_users_only(make_app, tokens):
    app = make_app(anonymous_read=False)
    endpoint = ami_endpoint(app)
    client = app.test_client()

    anonymous = client.post(endpoint, data={"Command": "AMIListCommands"})
    with_login = client.post(
        endpoint,
        data={"Command": f'AMIListCommands -AMIUser="rita" -AMIPass="{PASSWORD}"'},
    )

    assert '<error type="AuthenticationFailed">' in anonymous.text
    assert "<error" not in with_login.text
    assert "AMIListCommands" in with_login.text


@pytest.mark.parametrize(
    ("credentials", "password"),
    [
        ('-AMIUser="phil" -AMIPass ="Hunter2secret"', "Hunter2secret"),
        ('-AMIUser="phil" -AMIPass "Hunter2secret"', "Hunter2secret"),
        ("-AMIUser=phil -amipass = 'Hunter2secret'", "Hunter2secret"),
        ("-AMIPass='Hunter2 secret' -AMIUser=phil", "Hunter2 secret"),
        ('-AMIPass "Hunter2\\"secret" -AMIUser=phil', 'Hunter2\\"secret'),
        ("-AMIPass\n=\nHunter2secret -AMIUser=phil", "Hunter2secret"),
    ],
    ids=[
        "blank before =",
        "no =",
        "blanks around =",
        "single quotes",
        "escaped",
        "lines",
    ],
)
def test_an_ami_error_never_shows_a_password_however_written(
    app, credentials, password
):
    command = f"AMIListCommands {credentials}"

    answer = app.test_client().post(
        ami_endpoint(app), data={"Command": command, "Converter": "AMIXmlToText.xsl"}
    )

    assert answer.text.startswith("#AMI Result\n\nError: expected an argument")
    assert "*" in answer.text
    for word in re.split(r"\W+", password):
        assert word not in answer.text


# --- a live server ------------------------------------------------------------


def test_a_live_server_takes_a_token_made_on_the_command_line(served_catalog):
    def hepcat(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hepcat", *args],
            env=served_catalog.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    hepcat("user", "add", "live_reader", "--role", "reader", "--no-password")
    token = hepcat("token", "create", "live_reader", "--name", "test").split()[-1]
    account = served_catalog.url + "/account"

    with urllib.request.urlopen(
        urllib.request.Request(account, headers=bearer(token)), timeout=30
    ) as answer:
        page = answer.read().decode()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(account, timeout=30)
    anonymous.value.close()

    assert "live_reader" in page
    assert anonymous.value.code == 401


# --- writes with ambient credentials (cookie, certificate) ------------------

PHIL_DN = "/DC=ch/DC=cern/OU=Users/CN=phil"
SKIM_WRITES = {
    "AMICreateSkim": '-logicalDatasetName="{zee}" -name="again" -select="nMuons > 1"',
    "AMIRunSkim": "-skimId={skim}",
    "AMICancelSkim": "-skimId={skim}",
    "AMIRetrySkim": "-skimId={skim}",
}


@pytest.fixture
def skim(tokens, zee, Session) -> int:  # noqa: N803
    """A skim phil defined on the Zee dataset, not run yet; phil has a DN."""
    from catalog.datasets import get_dataset
    from catalog.models import Skim

    with Session.begin() as session:
        phil = get_user("phil", session=session)
        phil.dn = PHIL_DN
        defined = Skim(
            name="dimuon",
            owner=phil,
            parent=get_dataset(zee, session=session),
            selection="nMuons >= 2",
        )
        session.add(defined)
        session.flush()
        return defined.id


def skim_state(Session: Any, skim_id: int) -> tuple[str, Any]:  # noqa: N803
    from catalog.models import Skim

    with Session() as session:
        found = session.get(Skim, skim_id)
        return found.state, found.run_requested


def ami_error(answer: TestResponse) -> tuple[str, str] | None:
    found = re.search(r'<error type="(\w+)"><!\[CDATA\[(.*?)\]\]>', answer.text, re.S)
    return (found.group(1), found.group(2)) if found else None


@pytest.mark.parametrize("command", sorted(SKIM_WRITES))
def test_a_login_cookie_never_writes_through_the_ami_endpoint_even_by_get(
    app,
    tokens,
    zee,
    skim,
    Session,  # noqa: N803
    command,
):
    browser = log_in(app, "phil")
    line = f"{command} " + SKIM_WRITES[command].format(zee=zee, skim=skim)

    answer = browser.get("/AMI/FrontEnd", query_string={"Command": line})

    kind, message = ami_error(answer)
    assert kind == "AuthenticationFailed"
    assert "a login cookie never writes through the AMI endpoint" in message
    assert "send -AMIUser and -AMIPass" in message
    assert skim_state(Session, skim) == ("defined", None)
    reading = browser.get("/AMI/FrontEnd", query_string={"Command": "AMIListSkims"})
    assert ami_error(reading) is None  # reading with the cookie still works


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_certificate_does_not_write_through_the_ami_endpoint_from_another_site(
    make_app,
    skim,
    Session,  # noqa: N803
    headers,
):
    app = make_app(trusted_dn_header=DN_HEADER)
    form = {"Command": f"AMICancelSkim -skimId={skim}"}

    answer = app.test_client().post(
        "/AMI/FrontEnd", data=form, headers={DN_HEADER: PHIL_DN, **headers}
    )

    kind, message = ami_error(answer)
    assert kind == "CrossSiteWrite"
    assert "comes from a page of another site" in message
    assert skim_state(Session, skim) == ("defined", None)


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_certificate_does_not_write_through_the_api_from_another_site(
    make_app,
    skim,
    Session,  # noqa: N803
    headers,
):
    app = make_app(trusted_dn_header=DN_HEADER)

    answer = app.test_client().post(
        f"/api/v1/skims/{skim}/cancel", headers={DN_HEADER: PHIL_DN, **headers}
    )

    assert answer.status_code == 403
    assert answer.json["error"]["type"] == "CrossSiteWrite"
    assert skim_state(Session, skim) == ("defined", None)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"}],
    ids=["pyami", "same-origin", "fetch-same-origin"],
)
def test_a_certificate_writes_from_a_client_or_this_site(
    make_app,
    skim,
    Session,  # noqa: N803
    headers,
):
    app = make_app(trusted_dn_header=DN_HEADER)
    form = {"Command": f"AMICancelSkim -skimId={skim}"}

    answer = app.test_client().post(
        "/AMI/FrontEnd", data=form, headers={DN_HEADER: PHIL_DN, **headers}
    )

    assert ami_error(answer) is None
    assert skim_state(Session, skim)[0] == "cancelled"


def test_tokens_and_ami_passwords_write_from_anywhere(app, tokens, skim, Session):  # noqa: N803
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    client = app.test_client()
    line = f'AMIRunSkim -skimId={skim} -AMIUser="phil" -AMIPass="{PASSWORD}"'

    by_password = client.post("/AMI/FrontEnd", data={"Command": line}, headers=evil)
    by_token = client.post(
        f"/api/v1/skims/{skim}/cancel", headers={**evil, **bearer(tokens["phil"])}
    )

    assert ami_error(by_password) is None
    assert by_token.status_code == 200, by_token.text
    assert skim_state(Session, skim)[0] == "cancelled"


def test_a_page_form_from_another_site_is_refused_even_with_its_csrf_token(
    app, tokens, zee
):
    browser = log_in(app, "phil")
    form = {"name": "ZeeCandidate", "csrf_token": csrf_token(browser)}

    answer = browser.post(
        f"/datasets/{zee}/annotations", data=form, headers={"Origin": "https://x.org"}
    )

    assert answer.status_code == 403
    assert "comes from a page of another site (https://x.org)" in shown(answer)


# --- the login cookie and the response headers ------------------------------


def login_cookie(app: Flask) -> str:
    client = app.test_client()
    answer = client.post(
        "/login",
        data={"login": "phil", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    [cookie] = [c for c in answer.headers.getlist("Set-Cookie") if "session=" in c]
    return cookie


def test_the_login_cookie_is_same_site_lax_and_secure_when_asked(make_app, tokens):
    plain = login_cookie(make_app())
    secure = login_cookie(make_app(secure_cookies="true"))

    assert "SameSite=Lax" in plain and "HttpOnly" in plain
    assert "Secure" not in plain
    assert "SameSite=Lax" in secure and "; Secure" in secure


@pytest.mark.parametrize(
    "path", ["/", "/login", "/no/such/page", "/api/v1/datasets", "/AMI/FrontEnd"]
)
def test_every_response_forbids_framing_and_sniffing(app, path):
    answer = app.test_client().get(path)

    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_logging_out_ends_a_copied_cookie_and_the_other_logins(app, tokens):
    browser, desktop = log_in(app, "phil"), log_in(app, "phil")
    copied = app.test_client()
    copied.set_cookie("session", browser.get_cookie("session").value)

    answer = browser.post("/logout", data={"csrf_token": csrf_token(browser)})

    assert answer.status_code == 302
    assert "every other one where you were logged in" in shown(
        browser.get(answer.headers["Location"])
    )
    assert copied.get("/account").status_code == 401
    assert desktop.get("/account").status_code == 401
    assert log_in(app, "phil").get("/account").status_code == 200


# --- password guessing --------------------------------------------------------


def test_five_wrong_passwords_make_the_login_wait(app, tokens):
    browser = app.test_client()
    token = csrf_token(browser)

    def try_login(password: str, login: str = "phil") -> TestResponse:
        form = {"login": login, "password": password, "csrf_token": token}
        return browser.post("/login", data=form)

    wrong = [try_login(f"guess {n}") for n in range(5)]
    refused = try_login(PASSWORD)  # the right one: not even checked

    assert [answer.status_code for answer in wrong] == [401] * 5
    assert refused.status_code == 429
    assert "too many wrong passwords" in shown(refused)
    assert re.search(r"try again in \d+ s, after \d\d:\d\d:\d\d UTC", shown(refused))
    assert browser.get("/account").status_code == 401
    assert try_login(PASSWORD, "ada").status_code == 429  # the same address


def test_wrong_ami_passwords_make_the_login_wait(app, tokens):
    client = app.test_client()

    def command(password: str) -> str:
        line = f'AMIListCommands -AMIUser="phil" -AMIPass="{password}"'
        return client.post("/AMI/FrontEnd", data={"Command": line}).text

    wrong = [command(f"guess {n}") for n in range(5)]

    assert all('<error type="AuthenticationFailed">' in answer for answer in wrong)
    assert '<error type="LoginThrottled">' in command(PASSWORD)
    other = app.test_client().post(
        "/AMI/FrontEnd",
        data={"Command": "AMIListCommands"},
        headers=bearer(tokens["phil"]),
    )
    assert "<error" not in other.text  # a token is not a password: not held up
