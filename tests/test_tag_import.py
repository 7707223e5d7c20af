"""TAG ROOT files imported as a dataset's TAG (``hepcat tag import``): a
file that lies about its events is refused with the entry at fault, and the
TAG in place stays; and the distributions the API shows are JSON, whatever
the values. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import uproot
from click.testing import CliRunner
from sqlalchemy import Engine, event, select

from catalog.config import load_config
from catalog.models import File, TagDatabase
from hepcat.cli import main
from skimengine.collection import FileRef
from skimengine.tags import TagReplaced, TagTable, get_tag, register_tag
from web.app import create_app

DATASET = "mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.deriv.DAOD_PHYS.e3601_p4164"
FILES = (
    FileRef("2B3C5D7E-0000-4000-8000-000000000001", "DAOD_PHYS.01234567._000001.root"),
    FileRef("2B3C5D7E-0000-4000-8000-000000000002", "DAOD_PHYS.01234567._000002.root"),
)
MENU = ("HLT_e26_lhtight_nod0_ivarloose", "HLT_mu26_ivarmedium")
PER_FILE = (30, 20)
EVENTS = sum(PER_FILE)
PT = ("jet_pt1", "jet_pt2", "el_pt1", "mu_pt1", "MET")


def small_tag() -> TagTable:
    """A TAG of two files, 30 and 20 events, with made-up attributes."""
    rng = np.random.default_rng(2016)
    pt = {name: rng.exponential(40, EVENTS).astype(np.float32) for name in PT}
    columns = {
        "RunNumber": np.full(EVENTS, 310001, np.int32),
        "EventNumber": np.arange(5000, 5000 + EVENTS, dtype=np.int64),
        "LumiBlock": np.ones(EVENTS, np.int32),
        "nJets": rng.integers(0, 6, EVENTS).astype(np.int32),
        "nElectrons": rng.integers(0, 3, EVENTS).astype(np.int32),
        "nMuons": rng.integers(0, 3, EVENTS).astype(np.int32),
        **pt,
        "triggerBits": rng.integers(0, 4, EVENTS).astype(np.int64),
        "FileIndex": np.repeat([0, 1], PER_FILE).astype(np.int32),
        "Entry": np.concatenate([np.arange(n) for n in PER_FILE]).astype(np.int64),
    }
    return TagTable(FILES, columns, MENU)


def write_tag_file(
    path: Path, columns: dict[str, np.ndarray], menu: str | None = None
) -> Path:
    """A TAG ROOT file as an outside tool may write one: branches of the
    types of *columns*, and *menu* as it is.
    """
    menu = (
        ",".join(f"{bit}:{name}" for bit, name in enumerate(MENU))
        if menu is None
        else menu
    )
    with uproot.recreate(path) as out:
        out["Files"] = "\n".join(f"{ref.guid} {ref.lfn}" for ref in FILES)
        out["TriggerMenu"] = menu
        tree = out.mktree(
            "TAG", {name: values.dtype for name, values in columns.items()}
        )
        tree.extend(columns)
    return path


def changed(name: str, rows: Any, value: Any, dtype: Any = None) -> Callable:
    """The columns of the small TAG with *name* of *rows* set to *value*
    (the column first converted to *dtype*).
    """

    def change(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = columns[name].astype(dtype or columns[name].dtype)
        values[rows] = value
        return columns | {name: values}

    return change


def twice(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns with their first ten rows again at the end."""
    return {
        name: np.concatenate([values, values[:10]]) for name, values in columns.items()
    }


def same(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return columns


#: A malformed TAG file: how its columns and menu differ from the small
#: TAG's, and what ``hepcat tag import`` says of it after the file name.
MALFORMED = {
    "events listed twice": (
        twice,
        None,
        f", entry {EVENTS}: FileIndex 0 Entry 0 is listed already as entry 0; "
        "list each event once",
    ),
    "a count beyond int32": (
        changed("nJets", 4, 2**40 + 3, np.int64),
        None,
        ", entry 4: nJets 1099511627779 is out of range (-2147483648 to 2147483647)",
    ),
    "a MET beyond float32": (
        changed("MET", 7, 1e300, np.float64),
        None,
        ", entry 7: MET 1e+300 is beyond the range of float32 (3.40282e+38)",
    ),
    "a negative event number": (
        changed("EventNumber", 2, -7),
        None,
        ", entry 2: EventNumber -7 is out of range (0 to 9223372036854775807)",
    ),
    "an event number of 2**63": (
        changed("EventNumber", 3, 2**63, np.uint64),
        None,
        ", entry 3: EventNumber 9223372036854775808 is out of range "
        "(0 to 9223372036854775807)",
    ),
    "a negative file index": (
        changed("FileIndex", slice(0, 10), -1),
        None,
        ", entry 0: FileIndex -1 is out of range (0 to 1)",
    ),
    "a file index beyond the files": (
        changed("FileIndex", 45, 2),
        None,
        ", entry 45: FileIndex 2 is out of range (0 to 1)",
    ),
    "a negative entry": (
        changed("Entry", 3, -5),
        None,
        ", entry 3: Entry -5 is out of range (0 to 1099511627775)",
    ),
    "an entry past its file's events": (
        changed("Entry", 29, 30),
        None,
        f", entry 29: Entry 30 is past the end of {FILES[0].lfn}, which holds "
        "30 events",
    ),
    "a NaN MET": (
        changed("MET", 5, np.nan),
        None,
        ", entry 5: MET nan is not a finite number",
    ),
    "an infinite pT": (
        changed("jet_pt1", 6, -np.inf),
        None,
        ", entry 6: jet_pt1 -inf is not a finite number",
    ),
    "a count in floats": (
        changed("nJets", 0, 1.5, np.float64),
        None,
        ": nJets holds float64, not whole numbers",
    ),
    "a trigger bit beyond 63": (
        same,
        "0:HLT_e26,1:HLT_mu26,70:HLT_far",
        ": trigger bit 70 of 'TriggerMenu' is beyond 63",
    ),
    "a menu with a trailing comma": (
        same,
        "0:HLT_e26,1:HLT_mu26,",
        ": 'TriggerMenu' entry '' is not 'bit:name'",
    ),
    "a menu entry without its bit": (
        same,
        "0:HLT_e26,HLT_mu26",
        ": 'TriggerMenu' entry 'HLT_mu26' is not 'bit:name'",
    ),
    "a bit named twice": (
        same,
        "0:HLT_e26,1:HLT_mu26,0:HLT_xe110",
        ": 'TriggerMenu' names bit 0 twice",
    ),
    "a trigger at two bits": (
        same,
        "0:HLT_e26,1:HLT_e26",
        ": 'TriggerMenu' names trigger 'HLT_e26' twice",
    ),
}


@pytest.fixture
def catalogue(
    catalog_engine: Engine,
    Session: Any,  # noqa: N803
    dataset_factory: Any,
    tmp_path: Path,
) -> Any:
    """The dataset with its two files and the small TAG registered, the
    JSON API on it, and ``hepcat`` on the same catalogue.
    """
    dataset = dataset_factory(DATASET)
    data_dir = tmp_path / "data"
    with Session.begin() as session:
        for ref, events in zip(FILES, PER_FILE, strict=True):
            session.add(
                File(
                    dataset_id=dataset.id, guid=ref.guid, lfn=ref.lfn,
                    events=events, status="finished",
                )
            )  # fmt: skip
        register_tag(DATASET, small_tag(), data_dir=data_dir, session=session)
    config = load_config(env={}, data_dir=str(data_dir))
    env = {k: "" for k in os.environ if k.startswith("HEPCAT_")}
    env["HEPCAT_DATABASE_URL"] = catalog_engine.url.render_as_string(False)

    def hepcat(*args: str) -> Any:
        command = ["--data-dir", str(data_dir), *args]
        return CliRunner().invoke(main, command, env=env)

    app = create_app(config, engine=catalog_engine)
    return SimpleNamespace(api=app.test_client(), hepcat=hepcat)


def strict_json(text: str) -> Any:
    """*text* read as RFC 8259 JSON, which has no NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_tag_file_is_refused_naming_the_entry(catalogue, tmp_path, case):
    change, menu, message = MALFORMED[case]
    path = write_tag_file(
        tmp_path / "tag.root", change(dict(small_tag().columns)), menu
    )

    imported = catalogue.hepcat("tag", "import", DATASET, str(path))

    assert imported.exit_code == 1, imported.output
    assert imported.stderr == f"InvalidInput: {path}{message}\n"
    assert imported.stdout == ""
    answer = catalogue.api.get(f"/api/v1/tags/{DATASET}/count?select=MET%3E0")
    assert (answer.json["count"], answer.json["nEvents"]) == (EVENTS, EVENTS)


def test_a_well_formed_tag_file_from_another_tool_is_imported(catalogue, tmp_path):
    columns = dict(small_tag().columns)
    # As the event files have them: EventNumber and triggerBits unsigned.
    columns["EventNumber"] = columns["EventNumber"].astype(np.uint64)
    columns["triggerBits"] = columns["triggerBits"].astype(np.uint64)
    columns["MET"] = columns["MET"].astype(np.float64)
    path = write_tag_file(tmp_path / "tag.root", columns)

    imported = catalogue.hepcat("tag", "import", DATASET, str(path))

    assert imported.exit_code == 0, imported.output
    assert imported.stdout == f"TAG of {DATASET}: {EVENTS} events from {path}\n"
    answer = catalogue.api.get(f"/api/v1/tags/{DATASET}")
    assert answer.json["triggers"] == list(MENU)
    assert answer.json["nEvents"] == EVENTS


# -- distributions ------------------------------------------------------------


def test_an_infinite_value_leaves_the_distributions_json(
    catalogue,
    Session,  # noqa: N803
    tmp_path,
):
    # Build and import refuse them; a TAG registered by other means (in the
    # columnar store only: SQL has no NaN) may hold them.
    table = small_tag()
    met = table.columns["MET"].copy()
    met[[3, 9]] = [np.inf, np.nan]
    columns = dict(table.columns) | {"MET": met}
    with Session.begin() as session:
        register_tag(
            DATASET,
            TagTable(FILES, columns, MENU),
            data_dir=tmp_path,
            session=session,
            relational=False,
        )

    answer = catalogue.api.get(f"/api/v1/tags/{DATASET}")

    assert answer.status_code == 200
    found = strict_json(answer.text)["distributions"]["MET"]
    finite = np.delete(met, [3, 9]).astype(float)
    assert (found["min"], found["max"]) == (finite.min(), finite.max())
    assert found["mean"] == pytest.approx(finite.mean())
    assert min(found["counts"]) >= 0 and sum(found["counts"]) == EVENTS - 2
    assert np.isfinite(found["edges"]).all()


def test_distributions_stored_with_nan_are_answered_as_json(
    catalogue,
    Session,  # noqa: N803
):
    with Session.begin() as session:
        record = get_tag(DATASET, session=session)
        found = json.loads(record.distributions_json)
        found["MET"] |= {"max": float("inf"), "mean": float("inf")}
        found["MET"]["edges"][-1] = float("nan")
        record.distributions_json = json.dumps(found)  # as hepcat wrote them once

    answer = catalogue.api.get(f"/api/v1/tags/{DATASET}")
    page = catalogue.api.get(f"/tags/{DATASET}")
    plot = catalogue.api.get(f"/tags/{DATASET}/plots/MET.png")

    met = strict_json(answer.text)["distributions"]["MET"]
    assert (met["max"], met["mean"], met["edges"][-1]) == (None, None, None)
    assert page.status_code == plot.status_code == 200


# -- two first registrations at once ---------------------------------------------


@contextmanager
def inserting_tag(engine: Engine) -> Iterator[threading.Event]:
    """An event set, inside the block, when a thread other than this one
    inserts a TAG record on *engine*: it has looked for the dataset's TAG
    before.
    """
    inserting = threading.Event()
    here = threading.get_ident()

    def look(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO tag_database") and (
            threading.get_ident() != here
        ):
            inserting.set()

    event.listen(engine, "before_cursor_execute", look)
    try:
        yield inserting
    finally:
        event.remove(engine, "before_cursor_execute", look)


def test_two_first_tags_of_a_dataset_at_once_make_one(
    catalog_engine: Engine,
    Session: Any,
    dataset_factory: Any,
    tmp_path: Path,  # noqa: N803
):
    if catalog_engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time: no two registrations meet")
    dataset = dataset_factory(DATASET)
    with Session.begin() as session:
        for ref, events in zip(FILES, PER_FILE, strict=True):
            session.add(File(dataset_id=dataset.id, guid=ref.guid, lfn=ref.lfn,
                             events=events, status="finished"))  # fmt: skip
    data_dir = tmp_path / "data"

    def second() -> str:
        with Session.begin() as session:
            try:
                register_tag(DATASET, small_tag(), data_dir=data_dir, session=session)
            except TagReplaced as err:
                return str(err)
        return "registered"

    with Session() as first, ThreadPoolExecutor(1) as pool:
        register_tag(DATASET, small_tag(), data_dir=data_dir, session=first)
        with inserting_tag(catalog_engine) as inserting:
            racing = pool.submit(second)
            # The second found no TAG (the first's is not committed): it
            # inserts.
            assert inserting.wait(timeout=20)
            first.commit()
            outcome = racing.result(timeout=30)

    assert outcome == str(TagReplaced(DATASET))
    with Session() as session:
        tags = session.scalars(
            select(TagDatabase).where(TagDatabase.dataset_id == dataset.id)
        ).all()
        assert len(tags) == 1
        assert get_tag(DATASET, session=session).n_events == EVENTS
    # The loser's columnar store is gone: one version is left.
    assert len(list((data_dir / "tags").rglob("files.json"))) == 1
