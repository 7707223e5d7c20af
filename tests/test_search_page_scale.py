"""The dataset search page over a big catalogue: it counts matches only up
to a cap ("more than 10,000 datasets match"), refuses deep offsets with
advice, and its "next" links follow a cursor, so that every page costs what
the first one does. The caps are set low here so that a few datasets
show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from statements import statements_of
from test_pages import CheckedClient, link, listed_datasets, visible_text
from werkzeug.test import TestResponse

import catalog.datasets
import web.pages
from catalog.config import load_config
from web.app import create_app

Factory = Callable[..., Any]

SAMPLE = "mc16_13TeV.{:06d}.PowhegPythia8EvtGen_Sample{}.deriv.DAOD_PHYS.e3601_p4164"
DATA = "data15_13TeV.{:08d}.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
COUNTED = 5  # matches counted at most, here
DEEPEST = 4  # the deepest offset a URL may ask for, here


@pytest.fixture
def app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    config = load_config(env={}, data_dir=str(tmp_path))
    made = create_app(config, engine=catalog_engine)
    made.test_client_class = CheckedClient
    return made


@pytest.fixture
def client(app: Flask, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setattr(catalog.datasets, "MAX_COUNTED", COUNTED)
    monkeypatch.setattr(catalog.datasets, "MAX_OFFSET", DEEPEST)
    monkeypatch.setattr(web.pages, "MAX_OFFSET", DEEPEST)
    return app.test_client()


@pytest.fixture
def nine_datasets(dataset_factory: Factory) -> None:
    """Five MC samples and four data datasets; events tie in pairs, and two
    have none (NULL): a sort by them must still reach every one once.
    """
    events = [300, None, 100, 300, 200, None, 100, 200, 500]
    for number, count in enumerate(events[:5]):
        dataset_factory(SAMPLE.format(361100 + number, number), total_events=count)
    for number, count in enumerate(events[5:]):
        dataset_factory(DATA.format(276262 + number), total_events=count)


def walk(client: FlaskClient, first: TestResponse) -> list[TestResponse]:
    """The pages reached from *first* by its "next" links, *first* included."""
    pages = [first]
    while 'rel="next"' in pages[-1].get_data(as_text=True):
        pages.append(client.get(link(pages[-1], "next")))
        assert pages[-1].status_code == 200, visible_text(pages[-1])
    return pages


def args_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture
def statements(catalog_engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the test runs, as sent to the database."""
    with statements_of(catalog_engine) as sent:
        yield sent


# --- the count -------------------------------------------------------------------


@pytest.mark.usefixtures("nine_datasets")
def test_a_broad_search_says_more_than_the_cap(client: FlaskClient) -> None:
    response = client.get("/datasets", query_string={"limit": "2"})

    text = visible_text(response)
    assert f"More than {COUNTED} datasets match" in text
    assert "showing 1–2" in text
    assert "9 datasets" not in text


@pytest.mark.usefixtures("nine_datasets")
@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"q": "data15%"}, "4 datasets match"),
        ({"q": "Sample1"}, "1 dataset matches"),
        ({"q": "mc16%", "totalEvents": "300"}, "2 datasets match"),
        ({"q": "mc16%"}, f"{COUNTED} datasets match"),  # at the cap
        ({"q": "nothing"}, "0 datasets match"),
    ],
)
def test_a_search_below_the_cap_is_counted_exactly(
    client: FlaskClient, query: dict[str, str], shown: str
) -> None:
    response = client.get("/datasets", query_string=query)

    assert shown in visible_text(response)


# --- paging -------------------------------------------------------------------------


@pytest.mark.usefixtures("nine_datasets")
@pytest.mark.parametrize(
    "sort", ["logicalDatasetName", "-logicalDatasetName", "totalEvents", "-totalEvents"]
)
def test_next_links_follow_a_cursor_and_reach_every_match_once(
    client: FlaskClient, sort: str
) -> None:
    everything = listed_datasets(client.get("/datasets", query_string={"sort": sort}))
    first = client.get("/datasets", query_string={"sort": sort, "limit": "2"})

    pages = walk(client, first)

    walked = [name for page in pages for name in listed_datasets(page)]
    assert len(everything) == 9
    assert walked == everything
    assert [len(listed_datasets(page)) for page in pages] == [2, 2, 2, 2, 1]
    nexts = [args_of(link(page, "next")) for page in pages[:-1]]
    assert all("after" in args for args in nexts)
    assert [args["offset"] for args in nexts] == [["2"], ["4"], ["6"], ["8"]]
    assert "showing 9–9" in visible_text(pages[-1])


@pytest.mark.usefixtures("nine_datasets")
def test_previous_links_go_back_by_offset_near_the_start(client: FlaskClient) -> None:
    pages = walk(client, client.get("/datasets", query_string={"limit": "2"}))

    # offsets 2 and 4 are bookmarks still; from 8, two pages back (6) is
    # past the deepest offset: the link goes to the first page instead.
    backs = [client.get(link(page, "prev")) for page in pages[1:3]]
    assert [listed_datasets(back) for back in backs] == [
        listed_datasets(page) for page in pages[0:2]
    ]
    assert "after" not in args_of(link(pages[2], "prev"))
    html = pages[-1].get_data(as_text=True)
    assert 'rel="prev"' not in html
    assert listed_datasets(client.get(link(pages[-1], "first"))) == listed_datasets(
        pages[0]
    )


@pytest.mark.usefixtures("nine_datasets")
def test_an_offset_in_a_bookmark_still_works_near_the_start(
    client: FlaskClient,
) -> None:
    everything = listed_datasets(client.get("/datasets"))

    response = client.get("/datasets", query_string={"offset": "4", "limit": "2"})

    assert response.status_code == 200
    assert listed_datasets(response) == everything[4:6]
    assert "showing 5–6" in visible_text(response)


@pytest.mark.usefixtures("nine_datasets")
def test_a_deep_offset_is_refused_with_advice(client: FlaskClient) -> None:
    response = client.get("/datasets", query_string={"offset": "6", "limit": "2"})

    assert response.status_code == 400
    text = visible_text(response)
    assert f"offset must be at most {DEEPEST} on a search, got 6" in text
    assert "narrow the search" in text
    assert "follow the next links" in text


@pytest.mark.usefixtures("nine_datasets")
def test_a_sort_no_cursor_follows_pages_by_offset_as_deep_as_allowed(
    client: FlaskClient,
) -> None:
    # inContainer is computed: its pages follow by offset, up to the deepest.
    first = client.get("/datasets", query_string={"sort": "inContainer", "limit": "2"})

    pages = walk(client, first)

    assert ["after" in args_of(link(page, "next")) for page in pages[:-1]] == [
        False,
        False,
    ]
    assert len(pages) == 3  # offsets 0, 2, 4; no link to 6
    assert "narrow the search or sort the other way" in visible_text(pages[-1])
    names = [name for page in pages for name in listed_datasets(page)]
    assert len(set(names)) == 6


@pytest.mark.usefixtures("nine_datasets")
def test_a_bad_cursor_is_explained_with_status_400(client: FlaskClient) -> None:
    first = client.get("/datasets", query_string={"limit": "2"})
    cursor = args_of(link(first, "next"))["after"][0]

    tampered = client.get("/datasets", query_string={"after": "x" + cursor})
    other_sort = client.get(
        "/datasets", query_string={"after": cursor, "sort": "-totalEvents"}
    )

    assert tampered.status_code == other_sort.status_code == 400
    assert "the cursor is not valid" in visible_text(tampered)
    assert "made for another sort order" in visible_text(other_sort)


@pytest.mark.usefixtures("nine_datasets")
def test_sorting_and_the_form_start_again_at_the_first_page(
    client: FlaskClient,
) -> None:
    second = client.get(link(client.get("/datasets?limit=2"), "next"))
    html = second.get_data(as_text=True).replace("&amp;", "&")

    assert "after=" not in html.split('<nav class="pager"')[0]
    assert 'name="after"' not in html


# --- what the database is asked -------------------------------------------------------


@pytest.mark.usefixtures("nine_datasets")
def test_a_deep_page_reads_an_index_range_and_counts_up_to_the_cap(
    client: FlaskClient, statements: list[str], catalog_engine: Engine
) -> None:
    first = client.get("/datasets", query_string={"q": "mc16%", "limit": "2"})
    second_url = link(first, "next")
    statements.clear()

    second = client.get(second_url)

    assert second.status_code == 200
    counts = [s for s in statements if "count(" in s.lower()]
    assert len(counts) == 1
    assert "LIMIT" in counts[0].upper()
    reads = [s for s in statements if "FROM dataset" in s and "ORDER BY" in s]
    assert reads
    if catalog_engine.dialect.name != "sqlite":  # it writes "OFFSET 0" always
        assert not any("OFFSET" in s.upper() for s in statements), statements
    assert any("dataset.name >" in s for s in reads), reads
