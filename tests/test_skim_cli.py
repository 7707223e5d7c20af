"""``hepcat skim`` and ``hepcat tag``: a skim from the command line, its
errors, a crash in the middle of one, and the demo's TAGs.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import uproot
from click.testing import CliRunner
from sqlalchemy import select
from test_skims import DATASET, DIMUON, make_world, output_events, output_files

import migrations
from catalog.db import create_catalog_engine
from catalog.models import Dataset, File, Skim, TagDatabase
from hepcat.cli import main
from hepcat.cli import skims as skims_cli
from skimengine.collection import read_collection
from skimengine.skims import MAX_TARGET_SIZE, get_skim


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose catalogue holds the skim world of test_skims."""
    directory = tmp_path / "data"
    directory.mkdir()
    engine = create_catalog_engine(f"sqlite:///{directory / 'catalog.sqlite'}")
    migrations.upgrade(engine)
    make_world(engine, directory)
    engine.dispose()
    return directory


def hepcat(data_dir: Path, *args: str) -> Any:
    env = {k: "" for k in os.environ if k.startswith("HEPCAT_")}
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], env=env)


def skim_row(data_dir: Path, skim_id: int) -> Skim:
    engine = create_catalog_engine(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    try:
        with engine.connect() as connection:
            from sqlalchemy.orm import Session

            with Session(bind=connection) as session:
                skim = get_skim(skim_id, session=session)
                session.expunge(skim)
                return skim
    finally:
        engine.dispose()


def test_a_skim_from_the_command_line(data_dir: Path, tmp_path: Path) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "dimuon", "--user", "jdoe", "--target-size", "60000",
    )  # fmt: skip
    skim_id = int(created.stdout)
    defined = hepcat(data_dir, "skim", "show", str(skim_id))
    ran = hepcat(data_dir, "skim", "run", str(skim_id), "--wait")
    shown = hepcat(data_dir, "skim", "show", str(skim_id))
    listed = hepcat(data_dir, "skim", "list", "--user", "jdoe")
    as_csv = tmp_path / "events.csv"
    as_root = tmp_path / "events.root"
    wrote_csv = hepcat(
        data_dir, "skim", "collection", str(skim_id), "-o", str(as_csv),
        "--format", "csv",
    )  # fmt: skip
    wrote_root = hepcat(
        data_dir, "skim", "collection", str(skim_id), "-o", str(as_root)
    )
    fetched = hepcat(
        data_dir, "skim", "files", str(skim_id), "-o", str(tmp_path / "out")
    )

    assert created.exit_code == 0, created.output
    assert "state:     defined\n" in defined.stdout
    assert f"run:       not requested ('hepcat skim run {skim_id}'" in defined.stdout
    assert ran.exit_code == 0, ran.output
    assert f"skim {skim_id}: done" in ran.stdout
    assert "[####################] 100.0% done" in ran.stderr
    skim = skim_row(data_dir, skim_id)
    assert "state:     done\n" in shown.stdout
    assert f"events:    {skim.n_selected} of {skim.n_events_in}\n" in shown.stdout
    assert "output:    user.jdoe.mc16_13TeV.361107." in shown.stdout
    assert listed.stdout.split()[:3] == [str(skim_id), "done", "100.0%"]
    assert wrote_csv.exit_code == 0 and wrote_root.exit_code == 0
    # The output's files are listed, and copied checked: the selected events.
    assert fetched.exit_code == 0, fetched.output
    made = output_files(skim)
    assert len(made) > 1
    for path in made:
        assert f"{path.name}  " in fetched.stdout and f"  {path}\n" in fetched.stdout
    copies = sorted((tmp_path / "out").iterdir())
    assert [c.name for c in copies] == [p.name for p in made]
    assert len(output_events(copies)) == skim.n_selected
    total = sum(p.stat().st_size for p in made)
    copied = f"copied {len(made)} file(s), {total:,} B, to {tmp_path / 'out'}\n"
    assert fetched.stdout.endswith(copied)
    rows = list(csv.DictReader(io.StringIO(as_csv.read_text())))
    collection = read_collection(as_root)
    assert len(rows) == len(collection) == skim.n_selected
    assert [(int(r["RunNumber"]), int(r["EventNumber"])) for r in rows] == list(
        zip(
            collection.run_number.tolist(),
            collection.event_number.tolist(),
            strict=True,
        )
    )


def test_skims_are_listed_by_dataset(data_dir: Path) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "dimuon", "--user", "jdoe",
    )  # fmt: skip
    other = DATASET.replace("DAOD_PHYS", "DAOD_X")

    of_dataset = hepcat(data_dir, "skim", "list", "--dataset", DATASET)
    of_other = hepcat(data_dir, "skim", "list", "--dataset", other)

    assert of_dataset.stdout.split()[:2] == [created.stdout.strip(), "defined"]
    assert of_dataset.stdout.rstrip().endswith(DATASET)
    assert of_other.exit_code == 1 and of_other.stdout == ""
    assert of_other.stderr.startswith(f"DatasetNotFound: no dataset named '{other}'")


def test_create_with_run_queues_the_skim_for_the_task_server(data_dir: Path) -> None:
    queued = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "queued", "--user", "jdoe", "--run",
    )  # fmt: skip
    defined = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "defined", "--user", "jdoe",
    )  # fmt: skip
    not_hers = hepcat(data_dir, "skim", "run", defined.stdout.strip(), "--user", "mona")

    assert skim_row(data_dir, int(queued.stdout)).run_requested is not None
    assert skim_row(data_dir, int(defined.stdout)).run_requested is None
    assert not_hers.exit_code == 1
    assert not_hers.stderr.startswith("PermissionDenied: running a skim of another")


def test_errors_are_one_line_and_exit_1(data_dir: Path) -> None:
    reader = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "x", "--user", "rita",
    )  # fmt: skip
    wrong = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", "MET >> 3",
        "--name", "x", "--user", "jdoe",
    )  # fmt: skip
    missing = hepcat(data_dir, "skim", "show", "42")
    early = hepcat(data_dir, "skim", "retry", "42")
    defined = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "later", "--user", "jdoe",
    )  # fmt: skip
    no_files = hepcat(data_dir, "skim", "files", defined.stdout.strip())

    assert reader.exit_code == 1
    assert reader.stderr == (
        "PermissionDenied: requesting a skim needs the role 'physicist'; "
        "user 'rita' does not have it\n"
    )
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("SelectionError: column 6: ")
    assert "Traceback" not in wrong.output
    assert missing.stderr == (
        "SkimNotFound: no skim 42; the list of skims gives their numbers\n"
    )
    assert early.exit_code == 1 and early.stderr.startswith("SkimNotFound")
    assert no_files.exit_code == 1
    assert no_files.stderr == (
        f"OutputNotReady: skim {defined.stdout.strip()} has no output files yet: "
        "it is defined\n"
    )


def test_a_bad_compression_is_refused_in_hepcats_words(data_dir: Path) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "x", "--user", "jdoe", "--compression", "zstd:1.5",
    )  # fmt: skip

    assert created.exit_code == 1 and created.stdout == ""
    assert created.stderr == (
        "InvalidInput: compression 'zstd:1.5': the level of zstd is a whole "
        "number from 0 to 22, e.g. 'zstd:1'\n"
    )


def test_a_cancelled_skim_is_shown_and_refused_as_on_the_other_surfaces(
    data_dir: Path,
) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "stopped", "--user", "jdoe", "--run",
    )  # fmt: skip
    skim_id = created.stdout.strip()
    cancelled = hepcat(data_dir, "skim", "cancel", skim_id)

    shown = hepcat(data_dir, "skim", "show", skim_id)
    ran = hepcat(data_dir, "skim", "run", skim_id)

    assert cancelled.exit_code == 0, cancelled.output
    [output] = [line for line in shown.stdout.splitlines() if "output:" in line]
    assert output.startswith("output:    user.jdoe.")
    assert output.endswith(".stopped (not registered: the skim was cancelled)")
    assert (ran.exit_code, ran.stdout) == (1, "")
    assert ran.stderr == (
        f"InvalidInput: skim {skim_id} is cancelled: it cannot run again\n"
    )


def test_files_that_cannot_be_written_or_have_gone_are_said_so(
    data_dir: Path, tmp_path: Path
) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "dimuon", "--user", "jdoe", "--run",
    )  # fmt: skip
    skim_id = created.stdout.strip()
    assert hepcat(data_dir, "skim", "run", skim_id, "--wait").exit_code == 0
    nowhere = tmp_path / "nonexistent"
    skim = skim_row(data_dir, int(skim_id))
    shutil.rmtree(skim.output_dir or "")

    as_csv = hepcat(
        data_dir, "skim", "collection", skim_id, "-o", f"{nowhere}/x.csv",
        "--format", "csv",
    )  # fmt: skip
    as_root = hepcat(data_dir, "skim", "collection", skim_id, "-o", f"{nowhere}/x.root")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    exported = hepcat(data_dir, "tag", "export", DATASET, "-o", f"{blocked}/t.root")
    published = hepcat(data_dir, "skim", "files", skim_id, "-o", str(tmp_path / "out"))
    for path in (data_dir / "user.jdoe").rglob("*.root"):
        path.unlink()
    gone = hepcat(data_dir, "skim", "files", skim_id)

    for answer, name in [(as_csv, "x.csv"), (as_root, "x.root")]:
        assert (answer.exit_code, answer.stdout) == (1, "")
        assert answer.stderr == (
            f"InvalidInput: cannot write {nowhere}/{name}: No such file or directory\n"
        )
    assert (exported.exit_code, exported.stdout) == (1, "")
    assert exported.stderr.startswith(f"InvalidInput: cannot write {blocked}/t.root: ")
    assert exported.stderr.count("\n") == 1
    assert published.exit_code == 0, published.output
    lines = published.stdout.splitlines()
    assert all(f"{data_dir}/user.jdoe/" in line for line in lines[:-1])
    assert lines[-1].startswith(f"copied {len(lines) - 1} file(s)")
    assert gone.exit_code == 0
    assert gone.stdout.count(" (missing on disk)\n") == len(lines) - 1


def test_the_physicist_is_by_default_the_login_name(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = ("skim", "create", "--dataset", DATASET, "--select", DIMUON)
    monkeypatch.setattr("getpass.getuser", lambda: "jdoe")
    by_login = hepcat(data_dir, *asked, "--name", "logged")
    monkeypatch.setattr("getpass.getuser", lambda: "nobody")
    unknown = hepcat(data_dir, *asked, "--name", "nobody")

    assert by_login.exit_code == 0, by_login.output
    shown = hepcat(data_dir, "skim", "show", by_login.stdout.strip())
    assert "owner:     jdoe\n" in shown.stdout
    assert unknown.exit_code == 1
    assert "no user 'nobody'" in unknown.output


def test_an_option_out_of_its_range_is_a_usage_error(data_dir: Path) -> None:
    no_rows = hepcat(data_dir, "skim", "list", "--limit", "0")
    no_state = hepcat(data_dir, "skim", "list", "--state", "finished")
    no_bytes = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "x", "--user", "jdoe", "--target-size", "0",
    )  # fmt: skip

    # README: like --port 99999, click's usage message and exit status 2.
    assert no_rows.exit_code == 2
    assert "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=1000" in (
        no_rows.stderr
    )
    assert no_state.exit_code == 2
    assert "Error: Invalid value for '--state': 'finished' is not one of" in (
        no_state.stderr
    )
    assert no_bytes.exit_code == 2
    assert "Error: Invalid value for '--target-size': 0 is not in the range" in (
        no_bytes.stderr
    )
    assert skim_list_names(data_dir) == []


def skim_list_names(data_dir: Path) -> list[str]:
    listed = hepcat(data_dir, "skim", "list")
    return [line.split()[4] for line in listed.stdout.splitlines()]


def test_a_tag_is_exported_to_root_and_imported_back(
    data_dir: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "zmumu.TAG.root"
    parent = DATASET.replace("deriv.DAOD_PHYS", "recon.AOD").removesuffix("_p4164")
    junk = tmp_path / "junk.root"
    junk.write_text("not ROOT at all\n")

    wrote = hepcat(data_dir, "tag", "export", DATASET, "-o", str(exported))
    again = hepcat(data_dir, "tag", "import", DATASET, str(exported))
    elsewhere = hepcat(data_dir, "tag", "import", parent, str(exported))
    broken = hepcat(data_dir, "tag", "import", DATASET, str(junk))

    engine = create_catalog_engine(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    with engine.connect() as connection:
        tags = connection.execute(select(TagDatabase.dataset_id, TagDatabase.n_events))
        n_tags, n_events = (
            len(tags.all()),
            connection.scalar(select(TagDatabase.n_events)),
        )
    engine.dispose()
    assert wrote.exit_code == 0, wrote.output
    assert wrote.stdout == f"wrote {exported}: {n_events} events\n"
    with uproot.open(exported) as opened:
        tree = opened["TAG"]
        assert tree.num_entries == n_events
        assert {"EventNumber", "nMuons", "FileIndex", "Entry"} <= set(tree.keys())
        assert len(str(opened["Files"]).splitlines()) == 4
    assert again.exit_code == 0, again.output
    assert again.stdout == f"TAG of {DATASET}: {n_events} events from {exported}\n"
    assert n_tags == 1  # the parent got none
    assert elsewhere.exit_code == 1
    assert elsewhere.stderr.startswith(
        f"InvalidInput: {exported} lists 4 file(s) that are not files of {parent}: "
    )
    assert broken.exit_code == 1
    assert broken.stderr.startswith(f"InvalidInput: {junk} cannot be read as ROOT")
    assert "Traceback" not in broken.output + elsewhere.output


def test_tag_build_registers_the_tag_of_a_dataset(data_dir: Path) -> None:
    built = hepcat(data_dir, "tag", "build", DATASET)
    other = hepcat(data_dir, "tag", "build", DATASET.replace("DAOD_PHYS", "DAOD_X"))

    engine = create_catalog_engine(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    with engine.connect() as connection:
        n_events = connection.scalar(select(TagDatabase.n_events))
        total = connection.scalar(
            select(Dataset.total_events).where(Dataset.name == DATASET)
        )
    engine.dispose()
    assert built.exit_code == 0, built.output
    assert built.stdout == f"TAG of {DATASET}: {n_events} events from 4 files\n"
    assert n_events == total
    assert other.exit_code == 1 and other.stderr.startswith("DatasetNotFound")


def test_a_skim_killed_mid_extraction_resumes_without_duplicate_files(
    data_dir: Path,
) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select",
        "nMuons >= 2 && mu_pt1 > 45", "--name", "crash", "--user", "jdoe",
        "--target-size", "40000",
    )  # fmt: skip
    skim_id = created.stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    env["HEPCAT_TASKSERVER_LEASE_SECONDS"] = "1"  # the dead worker's heartbeat
    command = [
        sys.executable, "-m", "hepcat", "--data-dir", str(data_dir),
        "skim", "run", skim_id, "--wait",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while (skim_row(data_dir, int(skim_id)).units_done or 0) < 3:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed = skim_row(data_dir, int(skim_id))
    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300
    )

    skim = skim_row(data_dir, int(skim_id))
    assert killed.state == "extracting" and killed.units_done < killed.n_units
    assert again.returncode == 0, again.stderr
    assert skim.state == "done"
    directory = Path(skim.output_dir or "")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        p.name for p in output_files(skim)
    )  # no partial file left over
    assert len(output_files(skim)) == skim.n_units
    events = output_events(output_files(skim))
    assert len(events) == len(set(events)) == skim.n_selected
    engine = create_catalog_engine(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    with engine.connect() as connection:
        lfns = connection.scalars(
            select(File.lfn).where(File.dataset_id == skim.output_id)
        ).all()
    engine.dispose()
    assert sorted(lfns) == sorted(p.name for p in output_files(skim))


def test_the_demo_builds_the_tags_of_the_derivations(tmp_path: Path) -> None:
    from ingest.eventfiles import has_event_files
    from ingest.world import build_world

    derivations = {
        d.name
        for d in build_world().datasets
        if has_event_files(d) and ".DAOD" in d.name and d.files
    }

    result = hepcat(tmp_path, "demo", "--no-serve")

    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.connect() as connection:
        tagged = dict(
            connection.execute(
                select(Dataset.name, TagDatabase.n_events).join(
                    TagDatabase, TagDatabase.dataset_id == Dataset.id
                )
            ).all()
        )
        totals = dict(
            connection.execute(
                select(Dataset.name, Dataset.total_events).where(
                    Dataset.name.in_(list(tagged))
                )
            ).all()
        )
    engine.dispose()
    assert result.exit_code == 0, result.output
    assert f"TAGs built: {len(tagged)}" in result.stdout
    assert set(tagged) == {d for d in derivations if totals.get(d)}
    assert tagged == totals


def test_the_target_size_option_allows_what_a_skim_allows() -> None:
    # The command does not import skimengine for it (uproot comes with it).
    assert skims_cli.MAX_TARGET_SIZE == MAX_TARGET_SIZE


def test_a_skim_cancelled_before_it_was_run_suggests_no_run(data_dir: Path) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "never", "--user", "jdoe",
    )  # fmt: skip
    skim_id = created.stdout.strip()
    hepcat(data_dir, "skim", "cancel", skim_id)

    shown = hepcat(data_dir, "skim", "show", skim_id)

    assert "state:     cancelled\n" in shown.stdout
    assert "run:       not requested\n" in shown.stdout
    assert "hepcat skim run" not in shown.stdout
