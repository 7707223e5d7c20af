"""The pages in a real browser: Debian's Chromium, driven by Playwright,
against a live ``hepcat serve`` on the simulated world (``served_catalog``).

A physicist searches, opens a dataset, follows its provenance graph to the
parent and pages through its files; the runs and task-server pages load
without a console error; the TAG composer completes the name being typed. No
browser is downloaded: without ``/usr/bin/chromium`` (``apt install
chromium``) the tests are skipped, or fail when
``HEPCAT_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from live import ServedCatalog
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine
from test_skim_pages import DATASET as ZMUMU_AOD
from test_skim_pages import serve_tag

from skimengine.tags import TagTable

TIMEOUT_MS = 15_000

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZEE_HITS = f"{ZEE}.simul.HITS.e3601_s3126"


@dataclass
class Tab:
    """A browser page on the served catalogue, and the errors it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def images_loaded(self) -> bool:
        script = "() => [...document.images].every(i => i.complete && i.naturalWidth)"
        return bool(self.page.evaluate(script))


@pytest.fixture
def tab(chromium: Browser, served_catalog: ServedCatalog) -> Iterator[Tab]:
    context = chromium.new_context(base_url=served_catalog.url)
    context.set_default_timeout(TIMEOUT_MS)
    opened = Tab(context.new_page())

    def on_console(message: Any) -> None:
        if message.type == "error":
            opened.errors.append(f"{message.text} at {message.location}")

    opened.page.on("console", on_console)
    opened.page.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()


def table_names(page: Page) -> list[str]:
    """The dataset names in the page's dataset table, in order."""
    cells = page.locator("table.datasets td.name a")
    return [text.strip() for text in cells.all_inner_texts()]


def heading(page: Page) -> str:
    # The name carries <wbr> break opportunities, which innerText drops.
    return page.locator("h1.dataset-name").inner_text().strip()


def test_search_open_dataset_follow_provenance_and_page_files(
    tab: Tab, served_catalog: ServedCatalog
) -> None:
    world = served_catalog.world
    page = tab.page
    page.goto("/")
    page.locator("form.big-search input").fill(f"{ZEE}.recon.%")
    page.get_by_role("button", name="Search datasets").click()

    expected = sorted(
        d.name for d in world.datasets if d.name.startswith(f"{ZEE}.recon.")
    )
    assert table_names(page) == expected

    page.get_by_role("link", name=expected[0]).click()
    assert heading(page) == expected[0]
    graph = page.locator("svg.provenance-graph")
    assert graph.locator("a.node.current").get_attribute("data-name") == expected[0]

    graph.locator('a.node[data-distance="1"]').click()
    page.wait_for_url(f"**/datasets/{ZEE_HITS}")
    assert heading(page) == ZEE_HITS

    page.locator(f'svg.provenance-graph a.node[data-name="{ZEE_EVNT}"]').click()
    page.wait_for_url(f"**/datasets/{ZEE_EVNT}")
    assert heading(page) == ZEE_EVNT

    page.goto(f"{page.url}?files_limit=3")
    lfns = sorted(f.lfn for f in world.dataset(ZEE_EVNT).files)
    first = page.locator("table.files td.name").all_inner_texts()
    page.get_by_role("link", name="next files →").click()
    second = page.locator("table.files td.name").all_inner_texts()
    assert [t.strip() for t in first + second] == lfns
    assert f"files 4–{len(lfns)} of {len(lfns)}" in page.locator("p.count").inner_text()
    assert tab.errors == []


def test_add_a_filter_and_choose_columns_with_the_form(
    tab: Tab, served_catalog: ServedCatalog
) -> None:
    page = tab.page
    page.goto("/datasets")
    page.locator("#q").fill("data15_13TeV.%")
    page.get_by_label("Add a filter on").select_option("nLostLumiBlocks")
    page.get_by_placeholder("value; % as wildcard in text").fill("0")
    page.locator("details.columns summary").click()
    page.get_by_label("nLostLumiBlocks", exact=True).check()
    page.get_by_label("totalSize", exact=True).uncheck()
    page.get_by_role("button", name="Search", exact=True).last.click()

    page.wait_for_url("**/datasets?*nLostLumiBlocks=0*")
    headers = [h.strip() for h in page.locator("table.datasets th").all_inner_texts()]
    assert "nLostLumiBlocks" in headers
    assert "totalSize" not in headers
    # The Tier-0 merges keep every lumi block of their run's RAW dataset.
    merges = [d.name for d in served_catalog.world.datasets if ".merge.AOD." in d.name]
    assert table_names(page) == sorted(merges)
    assert tab.errors == []


def test_unticking_every_column_leaves_the_name_column_alone(tab: Tab) -> None:
    page = tab.page
    page.goto("/datasets?q=data15_13TeV.%&columns=nFiles,totalEvents,period")
    page.locator("details.columns summary").click()
    for name in ("nFiles", "totalEvents", "period"):
        page.get_by_role("checkbox", name=name, exact=True).uncheck()
    page.get_by_role("button", name="Search", exact=True).last.click()

    page.wait_for_url("**/datasets?*columns=logicalDatasetName*")
    headers = page.locator("table.datasets th").all_inner_texts()
    assert [h.strip().rstrip("▲▼") for h in headers] == ["logicalDatasetName"]
    assert table_names(page)
    assert tab.errors == []


def test_the_search_tables_header_stays_in_sight_while_its_rows_scroll(
    tab: Tab,
) -> None:
    page = tab.page
    page.set_viewport_size({"width": 1280, "height": 600})
    page.goto("/datasets?limit=100")
    table = page.locator("table.datasets")
    first = page.locator("table.datasets tbody tr").first
    header = page.locator("table.datasets th").first

    table.hover()
    page.mouse.wheel(0, 2000)

    page.wait_for_function(
        "() => document.querySelector('table.datasets tbody tr')"
        ".getBoundingClientRect().bottom < 0 || "
        "document.querySelector('table.datasets').scrollTop > 500"
    )
    top = header.bounding_box()
    assert first.bounding_box()["y"] < top["y"]  # the rows went under it
    assert 0 <= top["y"] < 600
    assert tab.errors == []


@pytest.mark.parametrize(
    "path",
    ["/", f"/datasets/{ZEE_HITS}", "/runs", "/runs/267073", "/taskserver", "/amitags"],
)
def test_a_page_fits_a_phones_width(tab: Tab, path: str) -> None:
    page = tab.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(path)

    wider = page.evaluate("() => document.documentElement.scrollWidth")
    assert wider <= 390, f"{path} is {wider} px wide on a 390 px screen"
    assert tab.errors == []


def test_runs_and_run_pages_load_without_console_errors(
    tab: Tab, served_catalog: ServedCatalog
) -> None:
    page = tab.page
    page.goto("/runs")
    numbers = page.locator("table.runs tbody tr td:first-child a").all_inner_texts()
    expected = sorted((r.run_number for r in served_catalog.world.runs), reverse=True)
    assert [int(n) for n in numbers] == expected

    page.get_by_role("link", name=str(expected[-1]), exact=True).click()
    page.wait_for_url(f"**/runs/{expected[-1]}")
    assert page.locator("h1").inner_text() == f"Run {expected[-1]}"
    assert page.locator("table.datasets tbody tr").count() > 0
    page.get_by_role("link", name="Periods", exact=True).click()
    assert page.locator("table.periods tbody tr").count() == len(
        served_catalog.world.periods
    )
    assert tab.errors == []


def test_task_server_and_home_pages_draw_their_plots(tab: Tab) -> None:
    page = tab.page
    for path in ("/taskserver", "/"):
        page.goto(path, wait_until="load")
        assert page.locator("img.plot").count() == 1
        assert tab.images_loaded()
    assert tab.errors == []


@pytest.fixture(scope="module")
def zmumu_tag(served_catalog: ServedCatalog, served_engine: Engine) -> TagTable:
    """The TAG of the Zmumu AOD dataset, registered in the served catalogue."""
    return serve_tag(served_catalog, served_engine)


def offered(page: Page) -> list[str]:
    """The names the composer's completion list shows (none when closed)."""
    return page.locator("#selection-names:visible li code").all_inner_texts()


def test_the_tag_composer_completes_the_word_at_the_cursor(
    tab: Tab, zmumu_tag: TagTable
) -> None:
    page = tab.page
    page.goto(f"/tags/{ZMUMU_AOD}")
    composer = page.get_by_label("Selection")
    every_name = page.locator("#tag-names option").evaluate_all(
        "options => options.map(o => o.value)"
    )

    composer.press_sequentially("nJets > 2 && ")
    after_and = offered(page)
    composer.press_sequentially("je")
    after_je = offered(page)
    composer.press("ArrowDown")
    composer.press("Enter")
    completed = composer.input_value()
    composer.press_sequentially(" > 40")
    expression = "nJets > 2 && jet_pt1 > 40"
    count = f"{zmumu_tag.count(expression):,} events of {len(zmumu_tag):,} pass."
    page.wait_for_function(
        "text => document.getElementById('selection-count').textContent === text",
        arg=count,
    )
    # In the middle of the expression: the whole word at the cursor goes.
    composer.fill("MET > 30 && nJets > 2")
    composer.evaluate("box => box.setSelectionRange(13, 13)")  # after the n
    composer.press_sequentially("M")
    in_the_middle = offered(page)
    page.get_by_role("option", name="nMuons").click()

    assert after_and == every_name and "jet_pt1" in every_name
    assert after_je == ["jet_pt1", "jet_pt2"]
    assert completed == "nJets > 2 && jet_pt1"
    assert in_the_middle == ["nMuons"]
    assert composer.input_value() == "MET > 30 && nMuons > 2"
    assert offered(page) == []
    assert tab.errors == []
