"""A form with a mistake comes back as it was filled, with the catalogue's
error beside it and the error's status: adding a user, annotating a
dataset, searching the datasets, making a token and changing a password
(never sent back) on a user's page (the skim form is tested with the skims).
"""

from __future__ import annotations

import html
import re

import pytest
from test_access import PASSWORD, csrf_token, log_in
from werkzeug.test import TestResponse

from catalog.config import load_config
from catalog.users import add_user, get_user
from web.app import create_app

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
NEW_PASSWORD = "apples fall down"
# The form to add a user, filled in; a name with markup, to see it escaped.
NEWTON = {
    "login": "newton",
    "full_name": "Isaac <Newton>",
    "email": "isaac@cam.ac.uk",
    "dn": "/DC=uk/DC=cam/CN=Isaac Newton",
    "password": NEW_PASSWORD,
    "confirm": NEW_PASSWORD,
    "roles": ["physicist", "admin"],
}


@pytest.fixture
def app(catalog_engine, tmp_path):
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


@pytest.fixture
def people(Session):  # noqa: N803
    """An admin, ada, and a physicist, phil, with the tests' password."""
    with Session.begin() as session:
        add_user("ada", password=PASSWORD, roles=["admin"], session=session)
        phil = add_user("phil", roles=["physicist"], session=session)
        phil.password_hash = get_user("ada", session=session).password_hash


@pytest.fixture
def zee(dataset_factory):
    dataset_factory(ZEE)
    return ZEE


def shown(answer: TestResponse) -> str:
    """The text of a page as a browser shows it: tags dropped, entities
    decoded, white space collapsed.
    """
    text = re.sub(r"<[^>]+>", " ", answer.text.replace("<wbr>", ""))
    return " ".join(html.unescape(text).split())


def field(page: str, name: str) -> str | None:
    """The value of the text input *name* on *page*, as sent (escaped)."""
    found = re.search(rf'<input [^>]*name="{name}"[^>]*>', page)
    assert found, f"no input {name!r}"
    value = re.search(r'value="([^"]*)"', found.group(0))
    return value.group(1) if value else None


def ticked(page: str, name: str) -> list[str]:
    """The values of the checkboxes *name* ticked on *page*."""
    return re.findall(rf'name="{name}" value="([^"]*)" checked', page)


# --- adding a user --------------------------------------------------------------


def test_differing_passwords_bring_the_new_user_back_without_them(app, people):
    admin = log_in(app, "ada")

    answer = admin.post(
        "/admin/users",
        data={**NEWTON, "confirm": "apples fall up", "csrf_token": csrf_token(admin)},
    )

    assert answer.status_code == 400
    assert "400 InvalidInput the two passwords differ; type the new one twice" in (
        shown(answer)
    )
    assert field(answer.text, "login") == "newton"
    assert field(answer.text, "full_name") == "Isaac &lt;Newton&gt;"
    assert field(answer.text, "email") == "isaac@cam.ac.uk"
    assert field(answer.text, "dn") == "/DC=uk/DC=cam/CN=Isaac Newton"
    assert ticked(answer.text, "roles") == ["physicist", "admin"]
    assert field(answer.text, "password") is None
    assert field(answer.text, "confirm") is None
    assert "apples fall" not in answer.text


def test_a_login_taken_brings_the_new_user_back(app, people):
    admin = log_in(app, "ada")

    answer = admin.post(
        "/admin/users",
        data={**NEWTON, "login": "phil", "csrf_token": csrf_token(admin)},
    )

    assert answer.status_code == 400
    assert "400 InvalidInput there is already a user 'phil'" in shown(answer)
    assert field(answer.text, "login") == "phil"
    assert field(answer.text, "full_name") == "Isaac &lt;Newton&gt;"
    assert ticked(answer.text, "roles") == ["physicist", "admin"]
    assert NEW_PASSWORD not in answer.text


def test_the_form_brought_back_adds_the_user_once_corrected(app, people):
    admin = log_in(app, "ada")
    refused = admin.post(
        "/admin/users",
        data={**NEWTON, "login": "phil", "csrf_token": csrf_token(admin)},
    )
    token = re.search(r'name="csrf_token" value="([^"]+)"', refused.text)
    assert token

    added = admin.post("/admin/users", data={**NEWTON, "csrf_token": token.group(1)})

    assert added.status_code == 302
    assert "Isaac &lt;Newton&gt;" in admin.get("/admin/users").text


def test_the_empty_form_to_add_a_user_ticks_reader(app, people):
    admin = log_in(app, "ada")

    page = admin.get("/admin/users").text

    assert ticked(page, "roles") == ["reader"]
    assert field(page, "login") in (None, "")
    assert 'role="alert"' not in page


# --- annotating a dataset -------------------------------------------------------


def test_a_bad_annotation_brings_the_form_back_on_the_dataset_page(app, people, zee):
    phil = log_in(app, "phil")

    answer = phil.post(
        f"/datasets/{zee}/annotations",
        data={
            "name": "two words",
            "scope": "pmgl1",
            "comment": "clean <electrons>",
            "csrf_token": csrf_token(phil),
        },
    )
    annotations = answer.text[answer.text.index('id="annotations"') :]

    assert answer.status_code == 400
    assert "400 InvalidInput 'two words' is not a usable annotation" in shown(answer)
    assert 'role="alert"' in annotations  # beside the form, not in place of the page
    assert field(annotations, "name") == "two words"
    assert field(annotations, "scope") == "pmgl1"
    assert field(annotations, "comment") == "clean &lt;electrons&gt;"
    assert ZEE in shown(answer)


def test_another_physicists_tag_brings_the_comment_back(app, people, zee, Session):  # noqa: N803
    with Session.begin() as session:
        added = add_user("paula", roles=["physicist"], session=session)
        added.password_hash = get_user("ada", session=session).password_hash
    phil, paula = log_in(app, "phil"), log_in(app, "paula")
    phil.post(
        f"/datasets/{zee}/annotations",
        data={"name": "p1note", "csrf_token": csrf_token(phil)},
    )

    answer = paula.post(
        f"/datasets/{zee}/annotations",
        data={"name": "p1note", "comment": "mine", "csrf_token": csrf_token(paula)},
    )

    assert answer.status_code == 403
    assert "403 PermissionDenied" in shown(answer)
    assert "changing another physicist's annotation PHYS:p1note" in shown(answer)
    assert field(answer.text, "comment") == "mine"


def test_the_empty_annotation_form_has_the_default_scope(app, people, zee):
    phil = log_in(app, "phil")

    page = phil.get(f"/datasets/{zee}").text
    annotations = page[page.index('id="annotations"') :]

    assert field(annotations, "scope") == "PHYS"
    assert field(annotations, "name") in (None, "")
    assert 'role="alert"' not in annotations


# --- searching the datasets -----------------------------------------------------


@pytest.mark.parametrize(
    "query, name, value, message",
    [
        (
            "runNumber=abc&dataType=AOD",
            "runNumber",
            "abc",
            "runNumber must be an integer, got 'abc'",
        ),
        (
            "runNumbr=5&dataType=AOD",
            "runNumbr",
            "5",
            "unknown field 'runNumbr' of dataset; did you mean runNumber?",
        ),
        (
            "sort=bogus&dataType=AOD",
            "sort",
            "bogus",
            "unknown field 'bogus' of dataset",
        ),
    ],
)
def test_a_bad_search_keeps_the_filter_form_as_typed(
    app, zee, query, name, value, message
):
    answer = app.test_client().get(f"/datasets?{query}")

    assert answer.status_code == 400
    assert f"400 InvalidInput {message}" in shown(answer)
    assert '<form class="search"' in answer.text
    assert field(answer.text, name) == value
    assert field(answer.text, "dataType") == "AOD"


def test_a_bad_search_value_is_shown_escaped(app, zee):
    answer = app.test_client().get('/datasets?runNumber="><b>x')

    assert answer.status_code == 400
    assert field(answer.text, "runNumber") == "&#34;&gt;&lt;b&gt;x"
    assert "<b>x" not in answer.text


# --- a user's page: tokens and passwords ------------------------------------------


def test_a_bad_token_form_comes_back_on_the_account_page_as_typed(app, people):
    phil = log_in(app, "phil")

    answer = phil.post(
        "/account/tokens",
        data={"name": "grid <job>", "expires_days": "0",
              "csrf_token": csrf_token(phil)},
    )  # fmt: skip

    assert answer.status_code == 400
    assert "400 InvalidInput '0' is not a number of days (1 to" in shown(answer)
    assert 'id="token-error"' in answer.text
    assert field(answer.text, "name") == "grid &lt;job&gt;"
    assert field(answer.text, "expires_days") == "0"
    assert "API tokens" in shown(answer)  # the account page, not an error page


def test_a_wrong_current_password_comes_back_beside_the_password_form(app, people):
    phil = log_in(app, "phil")

    answer = phil.post(
        "/account/password",
        data={
            "current": "not it at all",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_token(phil),
        },
    )

    assert answer.status_code == 400
    assert "400 InvalidInput the current password is not right" in shown(answer)
    assert 'id="password-error"' in answer.text
    assert 'id="token-error"' not in answer.text
    assert field(answer.text, "current") is None
    assert NEW_PASSWORD not in answer.text and "not it at all" not in answer.text
    assert log_in(app, "phil")  # the password did not change


def test_an_admins_refused_forms_come_back_on_the_users_page(app, people):
    admin = log_in(app, "ada")

    differing = admin.post(
        "/admin/users/phil/password",
        data={"password": NEW_PASSWORD, "confirm": "x" + NEW_PASSWORD,
              "csrf_token": csrf_token(admin)},
    )  # fmt: skip
    too_long = admin.post(
        "/admin/users/phil/tokens",
        data={"name": "laptop", "expires_days": "400000",
              "csrf_token": csrf_token(admin)},
    )  # fmt: skip

    assert differing.status_code == 400
    assert "the two passwords differ" in shown(differing)
    assert 'id="password-error"' in differing.text
    assert NEW_PASSWORD not in differing.text
    assert too_long.status_code == 400
    assert 'id="token-error"' in too_long.text
    assert field(too_long.text, "name") == "laptop"
    assert field(too_long.text, "expires_days") == "400000"
    assert "phil" in shown(too_long) and "Roles" in shown(too_long)
