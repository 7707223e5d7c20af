"""What a failed skim offers, on every surface: a skim whose selection kept
no event cannot be mended by a retry, so no surface offers or accepts one,
and its page says why; a skim that failed for want of a file still can be.
And where a period's reprocessing errors lead from the periods page.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_skim_ami import error as ami_error
from test_skim_ami import rows as ami_rows
from test_skim_pages import (
    SurfaceWorld,
    csrf,
    make_surface_world,
    shown,
)

from catalog.config import load_config
from catalog.derived import FAILED_TASK
from catalog.models import Dataset
from hepcat.cli import main
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from web.app import create_app

#: A selection no event of the dataset passes (its TAG counts none).
NOTHING = "MET > 100000"
NOTHING_SELECTED = "No event passed the selection"


@pytest.fixture
def surface(catalog_engine: Engine, tmp_path: Path) -> SurfaceWorld:
    """On SQLite, PostgreSQL and MariaDB."""
    return make_surface_world(catalog_engine, tmp_path / "data")


def empty_skim(world: SurfaceWorld) -> int:
    """A skim of phil's whose selection kept no event, run to its end."""
    skim_id = world.request("phil", selection=NOTHING)
    assert world.tag.count(NOTHING) == 0
    world.run_skims(skim_id)
    return skim_id


def test_a_skim_that_selected_nothing_says_so_and_offers_no_retry(
    surface: SurfaceWorld,
) -> None:
    skim_id = empty_skim(surface)

    page = surface.browser("phil").get(f"/skims/{skim_id}")

    text = shown(page)
    assert "State failed" in text
    assert "selected 0" in text
    assert f"{NOTHING_SELECTED} ( {NOTHING} ): there is nothing to extract" in text
    assert "a retry would select nothing again" in text
    assert ">Retry</button>" not in page.text
    assert "registered when the skim is done" not in text
    assert "No output dataset: no event was selected" in text
    assert "collection.root" not in page.text  # a collection of no event


def test_a_skim_that_selected_nothing_is_not_retried_on_any_surface(
    surface: SurfaceWorld,
) -> None:
    skim_id = empty_skim(surface)
    browser = surface.browser("phil")
    expected = f"skim {skim_id} selected no event: a retry would select none again"

    form = browser.post(f"/skims/{skim_id}/retry", data={"csrf_token": csrf(browser)})
    api = surface.app.test_client().post(
        f"/api/v1/skims/{skim_id}/retry", headers=surface.bearer("phil")
    )
    ami = ami_error(surface, f"AMIRetrySkim -skimId={skim_id}", "phil")

    assert form.status_code == 400 and expected in shown(form)
    answer = api.get_json()
    assert api.status_code == 400
    assert answer["error"]["type"] == "InvalidInput"
    assert expected in answer["error"]["message"]
    assert ami[0] == "InvalidInput" and expected in html.unescape(ami[1])
    assert surface.skim(skim_id).state == "failed"


def test_a_skim_that_lost_its_files_still_offers_retry(surface: SurfaceWorld) -> None:
    skim_id = surface.request("phil")
    surface.remove_event_files()
    surface.run_skims(skim_id)

    page = surface.browser("phil").get(f"/skims/{skim_id}")

    assert ">Retry</button>" in page.text
    assert NOTHING_SELECTED not in shown(page)
    assert "(registered when the skim is done)" in shown(page)


def retryable_on_each_surface(
    world: SurfaceWorld, engine: Engine, skim_id: int
) -> tuple[object, object, bool]:
    """Whether the API, AMIGetSkimInfo and ``hepcat skim show`` call the
    skim retryable (the CLI says so by naming the command).
    """
    api = world.app.test_client().get(f"/api/v1/skims/{skim_id}")
    [ami] = ami_rows(world, f"AMIGetSkimInfo -skimId={skim_id}", "skim")
    url = engine.url.render_as_string(hide_password=False)
    shown = CliRunner().invoke(
        main, ["skim", "show", str(skim_id)], env={"HEPCAT_DATABASE_URL": url}
    )
    assert api.status_code == 200 and shown.exit_code == 0, shown.output
    return api.json["retryable"], ami["retryable"], "hepcat skim retry" in shown.stdout


def test_each_surface_says_whether_a_failed_skim_can_be_retried(
    surface: SurfaceWorld, catalog_engine: Engine
) -> None:
    nothing = empty_skim(surface)
    lost = surface.request("phil", name="lost")
    surface.remove_event_files()
    surface.run_skims(lost)
    waiting = surface.request("phil", name="waiting", run=False)

    assert retryable_on_each_surface(surface, catalog_engine, nothing) == (
        False, "false", False,
    )  # fmt: skip
    assert retryable_on_each_surface(surface, catalog_engine, lost) == (
        True, "true", True,
    )  # fmt: skip
    assert retryable_on_each_surface(surface, catalog_engine, waiting) == (
        False, "false", False,
    )  # fmt: skip


def test_a_retry_has_its_own_times(surface: SurfaceWorld) -> None:
    skim_id = surface.request("phil")
    surface.remove_event_files()
    failed = surface.run_skims(skim_id)
    assert failed.state == "failed" and failed.started is not None
    before = dt.datetime.now(dt.UTC)

    answer = surface.app.test_client().post(
        f"/api/v1/skims/{skim_id}/retry", headers=surface.bearer("phil")
    )
    retried = surface.skim(skim_id)

    assert answer.status_code == 200, answer.text
    assert retried.started is None and retried.ended is None
    assert retried.run_requested >= before - dt.timedelta(seconds=1)
    assert answer.json["started"] is None


def test_a_cancelled_skim_does_not_promise_its_output(surface: SurfaceWorld) -> None:
    skim_id = surface.request("phil", run=False)
    browser = surface.browser("phil")
    browser.post(f"/skims/{skim_id}/cancel", data={"csrf_token": csrf(browser)})

    page = shown(browser.get(f"/skims/{skim_id}"))

    assert "State cancelled" in page
    assert "(not registered: the skim was cancelled)" in page
    assert "registered when the skim is done" not in page


# --- a period's reprocessing errors ------------------------------------------------


@pytest.fixture
def world(catalog_engine: Engine) -> World:
    built = build_world()
    with sessionmaker(bind=catalog_engine).begin() as session:
        seed_catalog(built, session=session)
    return built


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path, world: World) -> FlaskClient:
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine).test_client()


def error_links(page: str) -> dict[tuple[str, str], str]:
    """The link of each reprocessingErrors cell, by the project and period
    of its row.
    """
    links = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        link = re.search(r'<a href="([^"]+)"', cells[-1]) if cells else None
        if link:
            period = re.sub(r"<[^>]+>", "", cells[1]).strip()
            links[cells[0].strip(), period] = html.unescape(link.group(1))
    return links


def failed_datasets_of(
    Session: sessionmaker[OrmSession],  # noqa: N803
    world: World,
    project: str,
    runs: set[int],
) -> set[str]:
    """The datasets of the failed tasks whose input or output is of *runs*."""

    def of_period(name: str | None) -> bool:
        parts = (name or "").split(".")
        return (
            parts[0] == project
            and parts[1:2] != []
            and parts[1].isdigit()
            and (int(parts[1]) in runs)
        )

    names = {
        output
        for task in world.tasks
        if task.status in FAILED_TASK
        and any(of_period(name) for name in (task.input_dataset, *task.outputs))
        for output in task.outputs
    }
    with Session() as session:
        return set(session.scalars(select(Dataset.name).where(Dataset.name.in_(names))))


def test_reprocessing_errors_link_to_the_periods_failed_datasets(
    client: FlaskClient, world: World, catalog_engine: Engine
) -> None:
    Session = sessionmaker(bind=catalog_engine)  # noqa: N806

    links = error_links(client.get("/periods").get_data(as_text=True))

    assert links  # the failed reprocessing of one run is counted
    for spec in world.periods:
        expected = failed_datasets_of(Session, world, spec.project, set(spec.runs))
        key = (spec.project, spec.period)
        if key not in links:
            assert not expected, key
            continue
        listed = client.get(links[key])
        assert listed.status_code == 200
        names = re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', listed.text)
        assert set(names) == expected and expected, key
        assert "TASK FAILED" in shown(listed)
