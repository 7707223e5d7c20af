"""The pages of TAG databases and skims through Flask's test client: the
TAG list and page (schema, plots, the query composer), the skim list, the
form that requests a skim, a skim's page with its actions, and the event
collection downloads, on a catalogue seeded with the simulated world whose
Zmumu AOD dataset has real event files and a TAG built from them.

:class:`SurfaceWorld` is shared with ``test_skim_api.py`` and
``test_skim_ami.py``; its fixture ``surface`` is in ``worlds.py``.
"""

from __future__ import annotations

import html
import io
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from flask import Flask
from flask.testing import FlaskClient
from live import ServedCatalog
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

from catalog.config import Config, load_config
from catalog.db import session_factory
from catalog.models import File, Skim
from catalog.users import add_user, create_token, get_user
from ingest.eventfiles import write_dataset_files
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from skimengine.collection import read_collection
from skimengine.filestore import FileStore
from skimengine.skims import FINISHED_STATES, get_skim, request_skim
from skimengine.tags import (
    TagTable,
    build_tag,
    dataset_event_files,
    get_tag,
    open_tag,
    register_tag,
)
from skimengine.task import SkimTask
from taskserver.base import RunContext
from web.app import create_app
from web.tags import histogram

DATASET = (
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.recon.AOD."
    "e3601_s3126_r10724"
)
UNTAGGED = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
DIMUON = "nMuons >= 2 && mu_pt1 > 30"
PASSWORD = "correct horse battery"
# Login: roles. phil and paula are two physicists; rita only reads.
PEOPLE = {"phil": ["physicist"], "paula": ["physicist"], "rita": ["reader"]}
PEOPLE |= {"ada": ["admin"]}


@dataclass
class SurfaceWorld:
    """A catalogue seeded with the world, the event files of :data:`DATASET`
    on disk with its TAG registered, the people above with API tokens, and
    the application on it.
    """

    Session: sessionmaker[OrmSession]
    config: Config
    app: Flask
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> TagTable:
        with self.Session() as session:
            return open_tag(get_tag(DATASET, session=session))

    def request(self, login: str = "phil", name: str = "dimuon", **options: Any) -> int:
        """Request a skim of :data:`DATASET` as *login*; return its id."""
        options.setdefault("selection", DIMUON)
        options.setdefault("run", True)
        with self.Session.begin() as session:
            skim = request_skim(
                DATASET,
                options.pop("selection"),
                name,
                owner=get_user(login, session=session),
                session=session,
                **options,
            )
            return skim.id

    def skim(self, skim_id: int) -> Skim:
        with self.Session() as session:
            skim = get_skim(skim_id, session=session)
            _ = skim.owner, skim.parent, skim.output  # loaded while it is open
            _ = skim.output.files if skim.output else None
            return skim

    def run_skims(self, skim_id: int, until: tuple[str, ...] = FINISHED_STATES) -> Skim:
        """Take the skim *skim_id* through its states with the real skim
        task, as the task server does, until it is in one of *until*.
        """
        task = SkimTask(self.config, only=skim_id)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                task.run(RunContext(self.Session, time.monotonic() + task.budget))
                skim = self.skim(skim_id)
                if skim.state in until:
                    return skim
                time.sleep(0.05)
        finally:
            task.close()
        raise AssertionError(f"skim {skim_id} is still {skim.state}")

    def remove_event_files(self) -> None:
        """Lose the event files of :data:`DATASET`, as a broken disk would."""
        store = FileStore.from_config(self.config)
        with self.Session() as session:
            for event_file in dataset_event_files(DATASET, store, session=session):
                event_file.path.unlink()

    def browser(self, login: str | None = None) -> FlaskClient:
        """A browser, logged in as *login* through the login form."""
        client = self.app.test_client()
        if login is not None:
            form = {"login": login, "password": PASSWORD}
            answer = client.post("/login", data={**form, "csrf_token": csrf(client)})
            assert answer.status_code == 302, answer.text
        return client

    def bearer(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[login]}"}


def make_surface_world(engine: Engine, directory: Path) -> SurfaceWorld:
    world: World = build_world()
    config = load_config(env={}, data_dir=str(directory))
    spec = next(d for d in world.datasets if d.name == DATASET)
    write_dataset_files(spec, config.storage_path)
    Session = session_factory(engine)  # noqa: N806
    made = SurfaceWorld(Session, config, create_app(config, engine=engine))
    with Session.begin() as session:
        seed_catalog(world, session=session)
        files = dataset_event_files(
            DATASET, FileStore.from_config(config), session=session
        )
        table = build_tag(files)
        register_tag(DATASET, table, data_dir=config.data_path, session=session)
        hashed = add_user("ada", password=PASSWORD, roles=["admin"], session=session)
        for login, roles in PEOPLE.items():
            user = (
                add_user(login, roles=roles, session=session)
                if login != "ada"
                else hashed
            )
            user.password_hash = hashed.password_hash  # hashed once, for speed
            made.tokens[login] = create_token(login, "tests", session=session)
    return made


def csrf(client: FlaskClient) -> str:
    """The CSRF token of the client's session, as every form carries it."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert found
    return found.group(1)


def submit_skim_form(browser: FlaskClient, **fields: Any) -> TestResponse:
    """Send the form that requests a skim of :data:`DATASET`, filled in with
    *fields* and the browser's CSRF token; with a collection file, as
    multipart/form-data.
    """
    data = {"dataset": DATASET, **fields, "csrf_token": csrf(browser)}
    kind = "multipart/form-data" if "collection" in fields else None
    return browser.post("/skims/new", data=data, content_type=kind)


def shown(answer: TestResponse) -> str:
    """The text of a page as a browser shows it: tags dropped, entities
    decoded, white space collapsed.
    """
    text = re.sub(r"<[^>]+>", " ", answer.text.replace("<wbr>", ""))
    return " ".join(html.unescape(text).split())


# --- TAG pages -----------------------------------------------------------------


def test_the_tag_list_shows_each_tag_with_its_events(surface):
    page = surface.browser().get("/tags")

    assert page.status_code == 200
    assert f"{DATASET} {len(surface.tag):,} 2 npy+sql ready" in shown(page)
    assert f'href="/tags/{DATASET}"' in page.text


def test_the_tag_page_shows_attributes_triggers_and_plots(surface):
    page = surface.browser().get(f"/tags/{DATASET}")
    plot = surface.browser().get(f"/tags/{DATASET}/plots/MET.png")
    triggers = surface.browser().get(f"/tags/{DATASET}/plots/triggerBits.png")

    assert page.status_code == 200
    met = surface.tag.columns["MET"]
    described = "MET float32 float missing transverse momentum"
    assert f"{described} {met.min():.6g}" in shown(page)
    for name in ("nJets", "jet_pt1", "mu_pt1", "triggerBits"):
        assert f'<option value="{name}">' in page.text
        assert f'src="/tags/{DATASET}/plots/{name}.png"' in page.text
    assert (
        "<option value='trigger(\"HLT_mu26_ivarmedium\")'>bit 1</option>" in page.text
    )
    assert f'data-count-url="/api/v1/tags/{DATASET}/count"' in page.text
    assert plot.content_type == triggers.content_type == "image/png"
    assert plot.data[:8] == triggers.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_distribution_plots_label_values_as_they_are():
    """A run number reads 300000, not 0 with an offset of +3e5; a count of
    objects is labelled under each bar.
    """
    run = histogram("RunNumber", [299999.5, 300000.5], [4033])
    jets = histogram("nJets", [n - 0.5 for n in range(10)], [1, 5, 3, 2, 1, 1, 0, 0, 1])
    events = histogram("EventNumber", [5.3e8 + n * 6e6 for n in range(6)], [9] * 5)

    for figure in (run, jets, events):
        figure.canvas.draw()
    labels = [
        [label.get_text() for label in figure.axes[0].get_xticklabels()]
        for figure in (run, jets, events)
    ]
    assert labels[0] == ["300000"]
    assert labels[1] == [str(n) for n in range(9)]
    assert "540000000" in labels[2]
    assert not any(f.axes[0].xaxis.get_offset_text().get_text() for f in (run, events))


def test_the_tag_downloads_as_a_root_file(surface):
    browser = surface.browser()
    page = browser.get(f"/tags/{DATASET}")

    with browser.get(f"/tags/{DATASET}/tag.root") as download:
        data, disposition = download.data, download.headers["Content-Disposition"]
    with browser.get(f"/api/v1/tags/{DATASET}/root") as from_api:
        api_data = from_api.data
    missing = browser.get(f"/tags/{UNTAGGED}/tag.root")

    assert f'href="/tags/{DATASET}/tag.root"' in page.text
    assert disposition == f"attachment; filename={DATASET}.TAG.root"
    table = surface.tag
    for bytes_ in (data, api_data):
        with uproot.open(io.BytesIO(bytes_)) as opened:
            tree = opened["TAG"]
            assert tree.num_entries == len(table)
            events = tree["EventNumber"].array(library="np")
            assert np.array_equal(events, table.columns["EventNumber"])
    assert missing.status_code == 404
    assert f"dataset '{UNTAGGED}' has no TAG database" in shown(missing)


def test_a_dataset_without_a_tag_has_no_tag_page(surface):
    page = surface.browser().get(f"/tags/{UNTAGGED}")
    plot = surface.browser().get(f"/tags/{DATASET}/plots/MissingET.png")

    assert page.status_code == 404
    assert f"dataset '{UNTAGGED}' has no TAG database" in shown(page)
    assert plot.status_code == 404
    assert "has no attribute 'MissingET'" in shown(plot)


# --- skim list -----------------------------------------------------------------


def test_the_skim_list_filters_by_state_and_owner(surface):
    phils = surface.request("phil", "dimuon")
    paulas = surface.request("paula", "highMET", selection="MET > 60")
    paula = surface.browser("paula")
    paula.post(f"/skims/{paulas}/cancel", data={"csrf_token": csrf(paula)})
    browser = surface.browser()

    everything = shown(browser.get("/skims"))
    cancelled = shown(browser.get("/skims?state=cancelled"))
    of_phil = shown(browser.get("/skims?owner=phil"))

    assert "2 skims" in everything
    assert everything.index(f"{paulas} highMET paula") < everything.index(
        f"{phils} dimuon phil"
    )
    assert (
        "1 skim" in cancelled and "highMET" in cancelled and "dimuon" not in cancelled
    )
    assert "1 skim" in of_phil and "dimuon phil" in of_phil and "paula" not in of_phil


# --- requesting a skim ------------------------------------------------------------


def test_a_physicist_requests_a_skim_with_the_form(surface):
    browser = surface.browser("phil")
    form = browser.get(f"/skims/new?dataset={DATASET}&select=MET+%3E+40")

    answer = submit_skim_form(
        browser, select="MET > 40", name="highMET", branches="MET, mu_pt"
    )
    skim_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    page = browser.get(answer.headers["Location"])

    assert form.status_code == 200
    assert f'value="{DATASET}"' in form.text and 'value="MET &gt; 40"' in form.text
    assert answer.status_code == 302
    assert surface.skim(skim_id).owner.login == "phil"
    assert "State defined" in shown(page)
    assert "selection MET > 40" in shown(page)
    assert "branches [MET, mu_pt]" in shown(page)
    assert "user.phil." in shown(page)
    assert "Defined: it runs once its owner asks for it" in shown(page)
    assert ">Run</button>" in page.text and ">Cancel</button>" in page.text
    assert surface.skim(skim_id).run_requested is None


def test_the_run_button_queues_a_defined_skim_for_the_task_server(surface):
    skim_id = surface.request("phil", run=False)
    paula, phil = surface.browser("paula"), surface.browser("phil")

    not_hers = paula.post(f"/skims/{skim_id}/run", data={"csrf_token": csrf(paula)})
    answer = phil.post(f"/skims/{skim_id}/run", data={"csrf_token": csrf(phil)})
    page = phil.get(f"/skims/{skim_id}")
    done = surface.run_skims(skim_id)

    assert not_hers.status_code == 403
    assert "running a skim of another user" in shown(not_hers)
    assert answer.status_code == 302
    assert ">Run</button>" not in page.text and "run requested" in shown(page)
    assert "<script>" in page.text  # the page follows the skim now
    assert done.state == "done"


def test_define_and_run_on_the_form_queues_the_skim_at_once(surface):
    browser = surface.browser("phil")

    answer = submit_skim_form(browser, select=DIMUON, name="dimuon", run="1")
    skim_id = int(answer.headers["Location"].rsplit("/", 1)[1])

    assert answer.status_code == 302
    assert surface.skim(skim_id).run_requested is not None
    assert surface.run_skims(skim_id).state == "done"


def test_the_skim_form_is_for_physicists_and_needs_its_csrf_token(surface):
    form = {"dataset": DATASET, "select": DIMUON, "name": "dimuon"}
    reader = surface.browser("rita")
    physicist = surface.browser("phil")

    anonymous = surface.browser().get("/skims/new")
    refused = reader.get("/skims/new")
    forged = physicist.post("/skims/new", data=form)

    assert anonymous.status_code == 401 and 'name="password"' in anonymous.text
    assert refused.status_code == 403
    assert "requesting a skim needs the role 'physicist'" in shown(refused)
    assert forged.status_code == 400 and "CSRF token is missing" in forged.text
    assert "No skim yet" in shown(physicist.get("/skims"))


def test_a_wrong_selection_on_the_form_points_at_the_mistake(surface):
    browser = surface.browser("phil")

    answer = submit_skim_form(browser, select="nJets >= 2 && jetpt1 > 20", name="jets")

    assert answer.status_code == 400
    message = shown(answer)
    assert "column 15: unknown attribute 'jetpt1'; did you mean 'jet_pt1'" in message
    assert "nJets >= 2 && jetpt1 > 20 ^^^^^^" in message
    # The form comes back as the user filled it, to be corrected.
    assert 'value="nJets &gt;= 2 &amp;&amp; jetpt1 &gt; 20"' in answer.text
    assert 'name="name" required value="jets"' in answer.text
    assert ">Define and run</button>" in answer.text
    assert "No skim yet" in shown(browser.get("/skims"))


def test_an_uploaded_collection_makes_a_skim(surface):
    tag = surface.tag
    csv = tag.collection(tag.select("nJets >= 3")).to_csv()
    browser = surface.browser("phil")

    answer = submit_skim_form(
        browser, name="threeJets", collection=(io.BytesIO(csv.encode()), "jets.csv")
    )
    page = shown(browser.get(answer.headers["Location"]))

    assert answer.status_code == 302
    assert "uploaded collection jets.csv" in page


def test_a_bad_upload_shows_the_form_again_with_the_error(surface):
    browser = surface.browser("phil")

    answer = submit_skim_form(
        browser,
        name="mine",
        collection=(io.BytesIO(b"RunNumber,EventNumbr\n1,2\n"), "mine.csv"),
    )

    assert answer.status_code == 400
    page = shown(answer)
    assert "CollectionError" in page and "not 'EventNumbr'?" in page
    assert "Choose the event collection file again" in page
    assert 'name="name" required value="mine"' in answer.text


def test_the_form_takes_a_target_size_and_a_compression(surface):
    browser = surface.browser("phil")
    form = browser.get("/skims/new")

    answer = submit_skim_form(
        browser, select=DIMUON, name="small", compression="lz4:4", target_size="60000"
    )
    skim = surface.skim(int(answer.headers["Location"].rsplit("/", 1)[1]))

    assert "Target size of an output file, in bytes (empty: 2,000,000,000)" in (
        shown(form)
    )
    page = shown(browser.get(answer.headers["Location"]))
    default = shown(browser.get(f"/skims/{surface.request('phil', 'big')}"))

    assert answer.status_code == 302
    assert (skim.target_size, skim.compression) == (60000, "lz4:4")
    assert "target size 60,000 bytes an output file" in page
    assert "target size 2,000,000,000 bytes an output file (the default)" in default


@pytest.mark.parametrize(
    ("target_size", "message"),
    [
        ("0", "the target file size must be positive, not 0"),
        (
            "9" * 30,
            f"the target file size must be at most {2**62} bytes, not {'9' * 30}",
        ),
        ("2 GB", "the target size must be a whole number of bytes, got '2 GB'"),
    ],
    ids=["zero", "too large", "words"],
)
def test_a_wrong_target_size_shows_the_form_again_with_the_error(
    surface, target_size, message
):
    browser = surface.browser("phil")

    answer = submit_skim_form(
        browser, select=DIMUON, name="small", target_size=target_size
    )

    assert answer.status_code == 400
    assert f"400 InvalidInput {message}" in shown(answer)
    assert f'name="target_size" inputmode="numeric" value="{target_size}"' in (
        answer.text
    )
    assert "No skim yet" in shown(browser.get("/skims"))


@pytest.mark.parametrize(
    ("on_the_form", "in_the_api"),
    [
        ({"compression": "brotli"}, {"compression": "brotli"}),
        ({"branches": "MET, mu_ptt"}, {"branches": ["MET", "mu_ptt"]}),
        ({"target_size": "-5"}, {"targetSize": -5}),
    ],
    ids=["compression", "branches", "target size"],
)
def test_a_wrong_option_on_the_form_is_the_apis_error(surface, on_the_form, in_the_api):
    browser = surface.browser("phil")
    by_api = surface.app.test_client().post(
        "/api/v1/skims",
        json={"logicalDatasetName": DATASET, "name": "mine", "select": DIMUON}
        | in_the_api,
        headers=surface.bearer("phil"),
    )

    answer = submit_skim_form(browser, select=DIMUON, name="mine", **on_the_form)

    error = by_api.json["error"]
    assert answer.status_code == by_api.status_code == 400
    assert f"400 {error['type']} {error['message']}" in shown(answer)


# --- one skim ---------------------------------------------------------------------


def test_only_the_owner_or_an_admin_may_cancel(surface):
    skim_id = surface.request("phil")
    paula, ada = surface.browser("paula"), surface.browser("ada")

    not_hers = paula.post(f"/skims/{skim_id}/cancel", data={"csrf_token": csrf(paula)})
    paulas_view = paula.get(f"/skims/{skim_id}")
    by_admin = ada.post(f"/skims/{skim_id}/cancel", data={"csrf_token": csrf(ada)})
    after = surface.browser("phil").get(f"/skims/{skim_id}")

    assert not_hers.status_code == 403
    assert "cancelling a skim of another user" in shown(not_hers)
    assert ">Cancel</button>" not in paulas_view.text
    assert by_admin.status_code == 302
    assert "State cancelled" in shown(after)
    assert ">Cancel</button>" not in after.text
    assert ">Retry</button>" not in after.text


def test_a_skim_number_that_is_no_whole_number_is_a_400_naming_it(surface):
    browser = surface.browser("phil")
    token = csrf(browser)

    answers = [
        browser.get("/skims/abc"),
        browser.get("/skims/abc/collection.csv"),
        browser.get("/skims/abc/files/x.root"),
    ]
    answers += [
        browser.post(f"/skims/abc/{action}", data={"csrf_token": token})
        for action in ("run", "cancel", "retry")
    ]
    form = browser.get("/skims/new")

    for answer in answers:
        assert answer.status_code == 400
        said = "400 InvalidInput skim id must be a whole number, got 'abc'"
        assert said in shown(answer)
    assert form.status_code == 200 and 'name="select"' in form.text


def test_a_done_skim_shows_its_output_and_collection(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    surface.run_skims(skim_id)
    browser = surface.browser()
    expected = surface.tag.select(DIMUON)

    page = browser.get(f"/skims/{skim_id}")
    with browser.get(f"/skims/{skim_id}/collection.root") as as_root:
        root_data = as_root.data
    as_csv = browser.get(f"/skims/{skim_id}/collection.csv")
    output = surface.skim(skim_id).output

    assert "State done" in shown(page) and "100%" in shown(page)
    assert f"selected {len(expected):,}" in shown(page)
    assert f'href="/datasets/{output.name}"' in page.text
    assert "<script>" not in page.text  # nothing left to follow
    from_root = read_collection(root_data, "collection.root")
    from_csv = read_collection(as_csv.data, "collection.csv")
    tag = surface.tag
    for events in (from_root, from_csv):
        assert np.array_equal(events.event_number, tag.columns["EventNumber"][expected])
        assert np.array_equal(events.entry, tag.columns["Entry"][expected])
    assert (
        as_csv.text.splitlines()[0] == "RunNumber,EventNumber,LumiBlock,GUID,LFN,Entry"
    )
    with uproot.open(io.BytesIO(root_data)) as opened:
        assert opened["Collection"].num_entries == len(expected)


def test_a_done_skim_page_downloads_its_output_files(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    surface.run_skims(skim_id)
    browser = surface.browser()
    files = sorted(surface.skim(skim_id).output.files, key=lambda f: f.lfn)

    page = browser.get(f"/skims/{skim_id}")
    events = 0
    for file in files:
        link = f'href="/skims/{skim_id}/files/{file.lfn}"'
        assert link in page.text
        with browser.get(f"/skims/{skim_id}/files/{file.lfn}") as download:
            assert download.status_code == 200
            assert file.checksum == f"ad:{zlib.adler32(download.data):08x}"
            with uproot.open(io.BytesIO(download.data)) as opened:
                events += opened["CollectionTree"].num_entries
    missing = browser.get(f"/skims/{skim_id}/files/other.root")

    assert files and events == len(surface.tag.select(DIMUON))
    assert missing.status_code == 404
    assert f"skim {skim_id} has no output file 'other.root'" in shown(missing)


def test_a_skim_with_more_files_than_a_page_lists_them_a_page_at_a_time(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    output = surface.run_skims(skim_id).output
    with surface.Session.begin() as session:
        for number in range(1, 60):  # a skim as long as the longest ones
            lfn = f"{output.name}._{number:06d}.pool.root.1"
            guid = str(uuid.UUID(int=number))
            kept = {"size": 1000, "events": 10, "checksum": "ad:00000001"}
            session.add(
                File(dataset_id=output.id, lfn=lfn, guid=guid, status="done", **kept)
            )
    lfns = sorted(f.lfn for f in surface.skim(skim_id).output.files)
    browser = surface.browser()

    first = browser.get(f"/skims/{skim_id}")
    later = next_link(first)
    second = browser.get(later)
    wrong = browser.get(f"/skims/{skim_id}?files_limit=0")

    assert len(lfns) > 50
    assert listed_files(first) == lfns[:50]
    assert f"<strong>{len(lfns)} output files</strong>; showing 1–50." in first.text
    assert later == f"/skims/{skim_id}?files_offset=50"
    assert listed_files(second) == lfns[50:]
    assert f"</strong>; showing 51–{len(lfns)}." in second.text
    assert 'rel="next"' not in second.text
    assert f'rel="prev" href="/skims/{skim_id}"' in second.text
    assert wrong.status_code == 400
    assert "files_limit must be between 1 and 1000, got 0" in shown(wrong)


def next_link(answer: TestResponse) -> str:
    """The address of the page's *next files* link."""
    found = re.search(r'<a rel="next" href="([^"]+)">next files →</a>', answer.text)
    assert found, "no link to the next files"
    return html.unescape(found.group(1))


def listed_files(answer: TestResponse) -> list[str]:
    """The LFNs in the output file table of a skim's page."""
    table = answer.text.split('id="skim-files"')[1].split("</table>")[0]
    return [
        html.unescape(lfn) for lfn in re.findall(r"/files/[^\"]+\">([^<]+)<", table)
    ]


def test_a_dataset_page_shows_its_tag_and_its_skims(surface):
    done = surface.request("phil", "dimuon", selection=DIMUON)
    surface.run_skims(done)
    defined = surface.request("paula", "highMET", selection="MET > 60", run=False)
    output = surface.skim(done).output
    selected = len(surface.tag.select(DIMUON))

    anonymous = surface.browser().get(f"/datasets/{DATASET}")
    physicist = surface.browser("phil").get(f"/datasets/{DATASET}")
    untagged = surface.browser().get(f"/datasets/{UNTAGGED}")

    text = shown(anonymous)
    assert f"TAG database: {len(surface.tag):,} events, ready" in text
    assert f'href="/tags/{DATASET}">Select its events</a>' in anonymous.text
    assert "request a skim" not in text  # only for a physicist
    assert f'href="/skims/new?dataset={DATASET}">request a skim</a>' in physicist.text
    assert f"{defined} highMET paula defined 0%" in text
    assert f"{done} dimuon phil done 100% {selected:,} {output.name}" in text
    assert text.index(f"{defined} highMET") < text.index(f"{done} dimuon")
    assert f'href="/datasets/{output.name}"' in anonymous.text
    assert "Events and skims" not in shown(untagged)


def test_a_skim_output_page_says_which_skim_made_it(surface):
    skim_id = surface.request("phil", "dimuon", selection=DIMUON)
    surface.run_skims(skim_id)
    skim = surface.skim(skim_id)
    events = len(surface.tag)

    page = surface.browser().get(f"/datasets/{skim.output.name}")

    assert page.status_code == 200
    text = shown(page)
    assert (
        f"Made by skim {skim_id} dimuon of phil: {skim.n_selected:,} of the "
        f"{events:,} events of {DATASET} , selected by {DIMUON} ."
    ) in text
    assert f'href="/skims/{skim_id}"' in page.text
    assert "TAG database" not in text  # the output has no TAG of its own


def test_the_skim_list_filters_by_dataset(surface):
    surface.request("phil", "dimuon", run=False)
    browser = surface.browser()

    of_dataset = shown(browser.get(f"/skims?dataset={DATASET}"))
    of_other = shown(browser.get(f"/skims?dataset={UNTAGGED}"))
    unknown = browser.get("/skims?dataset=mc16_13TeV.999999.Nothing.evgen.EVNT.e1")

    assert "1 skim" in of_dataset and "dimuon phil" in of_dataset
    assert "0 skims" in of_other and "No skim matches these filters" in of_other
    assert unknown.status_code == 404
    assert "mc16_13TeV.999999.Nothing.evgen.EVNT.e1" in shown(unknown)


def test_a_failed_skim_is_retried_by_its_owner(surface):
    skim_id = surface.request("phil")
    surface.remove_event_files()
    failed = surface.run_skims(skim_id)
    browser = surface.browser("phil")
    page = browser.get(f"/skims/{skim_id}")

    answer = browser.post(f"/skims/{skim_id}/retry", data={"csrf_token": csrf(browser)})

    assert failed.state == "failed"
    assert "State failed" in shown(page)
    assert failed.error and " ".join(failed.error.split()) in shown(page)
    assert ">Retry</button>" in page.text
    assert answer.status_code == 302
    assert surface.skim(skim_id).state in ("selected", "defined")


# --- the query composer in a browser ---------------------------------------------


@pytest.fixture(scope="module")
def served_tag(served_catalog: ServedCatalog, served_engine: Engine) -> TagTable:
    """The TAG of :data:`DATASET` registered in the served catalogue."""
    return serve_tag(served_catalog, served_engine)


def serve_tag(served_catalog: ServedCatalog, served_engine: Engine) -> TagTable:
    """Register the TAG of :data:`DATASET` in the served catalogue (again: it
    replaces the one there), built from its event files written into the
    catalogue's file store.
    """
    config = load_config(env={}, data_dir=str(served_catalog.data_dir))
    spec = next(d for d in served_catalog.world.datasets if d.name == DATASET)
    write_dataset_files(spec, config.storage_path)
    with session_factory(served_engine).begin() as session:
        store = FileStore.from_config(config)
        files = dataset_event_files(DATASET, store, session=session)
        record = register_tag(
            DATASET, build_tag(files), data_dir=config.data_path, session=session
        )
        return open_tag(record)


def test_the_composer_counts_the_events_as_the_user_types(
    chromium, served_catalog, served_tag
):
    context = chromium.new_context(base_url=served_catalog.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/tags/{DATASET}")
    composer = page.get_by_label("Selection")
    mistake = page.locator("#selection-error")

    composer.press_sequentially(DIMUON)
    expected = f"{served_tag.count(DIMUON):,} events of {len(served_tag):,} pass."
    page.wait_for_function(
        "text => document.getElementById('selection-count').textContent === text",
        arg=expected,
    )
    composer.fill("nJets >= 2 && jetpt1 > 20")
    mistake.wait_for(state="visible")
    shown_error = mistake.inner_text()
    context.close()

    assert shown_error.splitlines()[0].startswith("column 15: unknown attribute")
    assert shown_error.splitlines()[2] == "  " + " " * 14 + "^^^^^^"
    assert errors == []


def test_a_skim_named_before_lengths_were_checked_still_has_its_page(surface):
    skim_id = surface.request("phil", "short")
    with surface.Session.begin() as session:
        session.get(Skim, skim_id).name = "n" * 240  # too long for its files

    page = surface.app.test_client().get(f"/skims/{skim_id}")

    assert page.status_code == 200
    assert "none: " in shown(page) and "more than 255" in shown(page)
