"""Details of the pages a physicist reads, as an audit found them: a whole
quarantined payload, TAG values with their units and whole run and event
numbers, the dataset page's production badge coloured as the home page
colours it, the empty TAG list saying what to run, a bad AMI tag letter
refused as the API refuses it, roles implied by a higher one shown held,
and the home page's size saying what it counts; on SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import test_pages
from flask import Flask, Response
from flask.testing import FlaskClient
from test_access import PASSWORD, log_in
from test_pages import DATA_AOD, ZEE_AOD, ZEE_DAOD, Factory, visible_text
from test_skim_pages import DATASET, shown

import web.tags
from catalog.derived import ALL_EVENTS, SOME_EVENTS, TASK_FAILED
from catalog.models import AMI_TRASHED
from catalog.operations import quarantine
from catalog.users import add_user

# The application and its test client of the page tests: a catalogue each.
app = test_pages.app
client = test_pages.client


def production_badge(response: Any, status: str) -> str:
    """The level of the badge saying *status* at the head of a dataset page
    (the class beside ``status``: good, warn, bad; "" when grey).
    """
    head = response.text[: response.text.index('<h1 class="dataset-name">')]
    badge = rf'<span class="status ?([a-z]*)"[^>]*>{re.escape(status)}</span>'
    found = re.search(badge, head)
    assert found, f"no {status} badge at the head of the page"
    return found.group(1)


# --- quarantine -----------------------------------------------------------------


def test_a_long_payload_opens_whole_and_escaped(
    client: FlaskClient,
    Session: Any,  # noqa: N803
) -> None:
    payload = {"files": [f"AOD.{n:08d}.pool.root.1" for n in range(40)], "end": "<b>"}
    with Session.begin() as session:
        quarantine("prodsys", "task 10000017", payload, "no taskid", session=session)

    page = client.get("/quarantine")

    details = re.search(r"<details>(.*?)</details>", page.text, re.S)
    assert details, "the long payload has no <details> to open"
    whole = re.search(r"</summary><code>(.*?)</code>", details.group(1), re.S)
    assert whole and "AOD.00000039.pool.root.1" in whole.group(1)
    assert '"end": "<b>"' in html.unescape(whole.group(1))
    assert "<b>" not in page.text
    assert "more characters: show the whole payload" in visible_text(page)


# --- TAG pages ----------------------------------------------------------------------


def test_tag_values_have_units_and_numbers_print_whole(surface: Any) -> None:
    page = shown(surface.browser().get(f"/tags/{DATASET}"))

    columns = surface.tag.columns
    run, event, met = columns["RunNumber"], columns["EventNumber"], columns["MET"]
    assert (
        f"RunNumber int32 int run number {run.min()} {run.max()} {run.mean():.0f}"
        in page
    )
    assert f"event number in the run {event.min()} {event.max()} " in page
    assert "e+0" not in page
    assert f"{met.max():.6g} {met.mean():.4g} GeV" in page
    assert f"leading muon pT (0 if none) 0 {columns['mu_pt1'].max():.6g}" in page


def test_distribution_plots_name_the_attribute_and_unit_under_the_axis(
    surface: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Any] = []

    def keep(figure: Any) -> Response:
        drawn.append(figure)
        return Response()

    monkeypatch.setattr(web.tags, "png_response", keep)
    browser = surface.browser()

    for attribute in ("MET", "jet_pt1", "nJets", "triggerBits"):
        assert browser.get(f"/tags/{DATASET}/plots/{attribute}.png").status_code == 200

    labels = [figure.axes[0].get_xlabel() for figure in drawn]
    assert labels == ["MET [GeV]", "jet_pt1 [GeV]", "nJets", "events"]


def test_the_empty_tag_list_says_what_to_run(client: FlaskClient) -> None:
    text = visible_text(client.get("/tags"))

    assert "No TAG database yet" in text
    assert "hepcat tag build LDN" in text
    assert "the task server's TAG task" in text
    assert "skimengine" not in text


# --- the dataset page's production status ---------------------------------------


@pytest.mark.parametrize(
    ("status", "level"),
    [(TASK_FAILED, "bad"), (SOME_EVENTS, "warn"), (ALL_EVENTS, "good")],
)
def test_the_production_badge_is_coloured_as_on_the_home_page(
    client: FlaskClient, dataset_factory: Factory, status: str, level: str
) -> None:
    dataset_factory(ZEE_AOD, prodsys_status=status)

    page = client.get(f"/datasets/{ZEE_AOD}")

    assert production_badge(page, status) == level


# --- AMI tags ------------------------------------------------------------------------


def test_a_tag_type_of_two_letters_is_refused_as_the_api_refuses_it(
    client: FlaskClient,
) -> None:
    page = client.get("/amitags", query_string={"type": "zz"})
    api = client.get("/api/v1/amitags", query_string={"type": "zz"})

    assert page.status_code == api.status_code == 400
    error = api.get_json()["error"]
    assert error["message"] == "type: must be one lower-case letter"
    assert error["message"] in visible_text(page)


# --- roles ----------------------------------------------------------------------------


@pytest.fixture
def admin(app: Flask, Session: Any) -> FlaskClient:  # noqa: N803
    """A browser logged in as the admin ada; phil is a physicist."""
    with Session.begin() as session:
        add_user("ada", password=PASSWORD, roles=["admin"], session=session)
        add_user("phil", password=PASSWORD, roles=["physicist"], session=session)
    return log_in(app, "ada")


def role_rows(response: Any) -> dict[str, tuple[str, list[str]]]:
    """The roles table of a user's admin page: role → (state, buttons)."""
    table = response.text[response.text.index('<table class="grid roles">') :]
    table = table[: table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        buttons = re.findall(r'<button type="submit">(\w+)</button>', row)
        rows[cells[0].strip()] = (cells[1].strip(), buttons)
    return rows


def test_a_physicist_is_shown_as_a_reader_too_with_no_grant(
    admin: FlaskClient,
) -> None:
    page = admin.get("/admin/users/phil")

    assert role_rows(page) == {
        "reader": ("held (with physicist)", []),
        "physicist": ("held", ["Revoke"]),
        "admin": ("", ["Grant"]),
    }


# --- home -----------------------------------------------------------------------------


def test_the_home_size_says_it_counts_trashed_datasets_too(
    client: FlaskClient, dataset_factory: Factory
) -> None:
    dataset_factory(ZEE_DAOD, total_size=10_000_000_000, ami_status=AMI_TRASHED)
    dataset_factory(DATA_AOD, total_size=2_500_000_000)

    text = visible_text(client.get("/"))

    assert "2 datasets" in text
    assert "12.5 GB in their files" in text
    assert "on disk" not in text
    assert "trashed ones too" in text
