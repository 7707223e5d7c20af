"""The client's lists are whole: ``list_datasets`` and ``list_files`` read
past the rows one AMI answer holds, a page at a time; ``list_runs``, which
cannot, warns; ``hepcat ami`` prints the server's notes on stderr. Empty
lists of values select nothing, and bad arguments are ``InvalidInput``.

The client talks HTTP to the real application, served in this process so
that the rows an answer holds can be made small (:data:`CAP`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_ami import ZEE_DAOD
from werkzeug.serving import make_server

from catalog.config import load_config
from catalog.models import Dataset, File
from catalog.mql import compiler
from hepcat.cli import main
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from web.ami import commands
from web.app import create_app
from web.client import (
    Client,
    IncompleteAnswer,
    InvalidInput,
    atlas,
    dataset_search,
    list_datasets,
    list_files,
    list_runs,
)

# The rows an answer holds, in these tests.
CAP = 2


@pytest.fixture
def world(Session: sessionmaker[OrmSession]) -> World:  # noqa: N803
    built = build_world()
    with Session.begin() as session:
        seed_catalog(built, session=session)
    return built


@pytest.fixture
def ami_url(catalog_engine: Engine, tmp_path: Path, world: World) -> Iterator[str]:
    """The AMI endpoint of the seeded world, served over HTTP by a thread."""
    config = load_config(env={}, data_dir=str(tmp_path))
    app = create_app(config, engine=catalog_engine)
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, name="ami-endpoint")
    thread.start()
    yield f"http://127.0.0.1:{server.port}/AMI/FrontEnd"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def client(ami_url: str) -> Client:
    return Client(ami_url, timeout=30)


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> int:
    """Answers hold CAP rows, and the client asks for pages of as many."""
    monkeypatch.setattr(commands, "MAX_ROWS", CAP)
    monkeypatch.setattr(compiler, "MAX_ROWS", CAP)
    monkeypatch.setattr(atlas, "PAGE_ROWS", CAP)
    return CAP


def counted_lfns(Session: sessionmaker[OrmSession], name: str) -> list[str]:  # noqa: N803
    with Session() as session:
        query = (
            select(File.lfn)
            .join(Dataset, File.dataset_id == Dataset.id)
            .where(Dataset.name == name, File.lost.is_(False))
        )
        return sorted(session.scalars(query))


def valid_names(Session: sessionmaker[OrmSession], pattern: str) -> list[str]:  # noqa: N803
    with Session() as session:
        query = select(Dataset.name).where(
            Dataset.name.like(pattern), Dataset.ami_status == "VALID"
        )
        return sorted(session.scalars(query))


# --- lists longer than an answer -------------------------------------------------


def test_list_files_reads_every_file_past_the_rows_an_answer_holds(
    client: Client,
    Session: sessionmaker[OrmSession],
    capped: int,  # noqa: N803
) -> None:
    lfns = counted_lfns(Session, ZEE_DAOD)

    files = list_files(client, ZEE_DAOD)

    assert len(lfns) > capped
    assert [f["LFN"] for f in files] == lfns


def test_list_files_keeps_the_callers_window_and_the_total(
    client: Client,
    Session: sessionmaker[OrmSession],
    capped: int,  # noqa: N803
) -> None:
    lfns = counted_lfns(Session, ZEE_DAOD)

    *files, total = list_files(client, ZEE_DAOD, total=True, limit=(1, capped + 1))

    assert [f["LFN"] for f in files] == lfns[1 : capped + 2]
    assert total["events"] == sum(f["events"] for f in list_files(client, ZEE_DAOD))


def test_list_datasets_reads_every_match_past_the_rows_an_answer_holds(
    client: Client,
    Session: sessionmaker[OrmSession],
    capped: int,  # noqa: N803
) -> None:
    names = valid_names(Session, "mc16%")

    found = list_datasets(client, "mc16%")
    window = list_datasets(client, "mc16%", limit=(1, capped + 1))

    assert len(names) > 2 * capped
    assert [row["ldn"] for row in found] == names
    assert [row["ldn"] for row in window] == names[1 : capped + 2]


def test_list_runs_warns_when_the_endpoint_cuts_the_list(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = list_runs(client, year=2015)
    monkeypatch.setattr(commands, "MAX_ROWS", 2)

    with pytest.warns(IncompleteAnswer, match="only the first 2 rows; narrow"):
        cut = list_runs(client, year=2015)

    assert len(every) > 2
    assert cut == every[:2]


def test_hepcat_ami_prints_a_cut_on_stderr_in_every_format(
    ami_url: str, capped: int
) -> None:
    command = ["ami", "--url", ami_url, "--format", "csv", "AMIListFiles"]

    done = CliRunner().invoke(main, [*command, f"-logicalDatasetName={ZEE_DAOD}"])

    assert done.exit_code == 0, done.output
    assert len(done.stdout.splitlines()) == 1 + capped  # the header and the rows
    assert done.stderr == (
        f"only the first {capped} rows; use -limit=offset,count for more\n"
    )


# --- empty lists of values -------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [{"run_number": []}, {"type": []}, {"data_period": []}, {"type": ()}],
    ids=["run_number", "type", "data_period", "tuple"],
)
def test_an_empty_list_of_values_selects_no_dataset(
    client: Client, filters: dict[str, list[str]]
) -> None:
    assert list_datasets(client, "%", **filters) == []


def test_a_good_run_list_without_runs_keeps_no_dataset(
    client: Client, world: World, tmp_path: Path
) -> None:
    empty, some = tmp_path / "empty.xml", tmp_path / "grl.xml"
    empty.write_text("<LumiRangeCollection><Run/></LumiRangeCollection>")
    run = world.runs[0].run_number
    some.write_text(f"<LumiRangeCollection><Run> {run} </Run></LumiRangeCollection>")

    none = list_datasets(client, grl=str(empty))
    kept = list_datasets(client, fields=["run_number"], grl=str(some))

    assert none == []
    assert kept and {row["run_number"] for row in kept} == {run}


def test_an_empty_list_is_a_condition_no_dataset_meets_in_the_mql() -> None:
    arguments, _ = dataset_search("%", type=[], stream=None, project="")

    assert "(dataset.dataType" not in arguments["mql"]
    assert "AND ((1 = 0) AND (dataset.amiStatus = 'VALID'))" in arguments["mql"]


# --- bad arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    "limit", [[5], "x", (1, 2, 3), "1,2,3", -1, 2.5, True, ("a", 1)], ids=repr
)
def test_a_limit_that_is_no_window_is_invalid_input(client: Client, limit: object):
    with pytest.raises(InvalidInput, match="limit must be a number of rows"):
        list_datasets(client, "%", limit=limit)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="limit must be a number of rows"):
        list_files(client, ZEE_DAOD, limit=limit)  # type: ignore[arg-type]


def test_a_limit_in_text_is_read_as_pyami_reads_numbers(client: Client) -> None:
    whole = list_datasets(client, "mc16%")

    assert list_datasets(client, "mc16%", limit="3") == whole[:3]
    assert list_datasets(client, "mc16%", limit="1,2") == whole[1:3]


def test_a_year_in_text_is_the_year(client: Client) -> None:
    by_number = list_runs(client, year=2015)

    assert list_runs(client, year="15") == list_runs(client, year="2015") == by_number
    assert by_number


@pytest.mark.parametrize("year", ["fifteen", 15.5, -15, True], ids=repr)
def test_a_year_that_is_no_whole_number_is_invalid_input(
    client: Client, year: object
) -> None:
    with pytest.raises(InvalidInput, match="year must be a whole number"):
        list_runs(client, year=year)  # type: ignore[arg-type]
