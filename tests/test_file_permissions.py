"""The private files of the data directory: the SQLite catalogue (it holds the
password hashes) is made readable by its owner only, and the secret key that
signs login sessions is made once, whole and private, however many server
processes start together.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog.db import create_catalog_engine
from web.secretkey import BadSecretKeyFile, stored_secret_key


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask of most systems, which leaves new files readable by all."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_to_catalogue(path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS note (x INTEGER)"))
        connection.execute(text("INSERT INTO note VALUES (1)"))
    engine.dispose()


# --- the SQLite catalogue -----------------------------------------------------


def test_a_new_sqlite_catalogue_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "data" / "catalog.sqlite"

    engine = create_catalog_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE note (x INTEGER)"))
        wal = Path(f"{path}-wal")
        modes = {path.name: mode(path), wal.name: mode(wal)}
    engine.dispose()

    assert modes == {"catalog.sqlite": 0o600, "catalog.sqlite-wal": 0o600}


def test_an_existing_catalogue_keeps_the_permissions_its_operator_gave(tmp_path):
    path = tmp_path / "catalog.sqlite"
    write_to_catalogue(path)
    path.chmod(0o640)

    write_to_catalogue(path)

    assert mode(path) == 0o640


# --- the secret key -------------------------------------------------------------


def test_a_new_secret_key_is_long_and_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "data" / "secret_key"

    key = stored_secret_key(path)

    assert len(key) == 64
    assert path.read_text() == key + "\n"
    assert mode(path) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_a_stored_secret_key_is_kept(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("k" * 40 + "\n")
    path.chmod(0o640)

    key = stored_secret_key(path)

    assert key == "k" * 40
    assert mode(path) == 0o640


@pytest.mark.parametrize("kept", ["", "\n", "short"])
def test_an_empty_or_short_secret_key_is_an_error(tmp_path, kept):
    path = tmp_path / "secret_key"
    path.write_text(kept)

    with pytest.raises(BadSecretKeyFile) as refused:
        stored_secret_key(path)

    assert f"the secret key in {path} has {len(kept.strip())} characters" in str(
        refused.value
    )
    assert "remove the file" in str(refused.value)
    assert path.read_text() == kept


def test_a_process_that_loses_the_race_takes_the_winners_key(tmp_path, monkeypatch):
    path = tmp_path / "secret_key"
    link = os.link

    def another_process_links_first(source: Path, target: Path) -> None:
        # Another worker made its key between our look and our link.
        path.write_text("w" * 64 + "\n")
        link(source, target)

    monkeypatch.setattr(os, "link", another_process_links_first)

    key = stored_secret_key(path)

    assert key == "w" * 64
    assert list(tmp_path.iterdir()) == [path]


def test_workers_starting_together_share_one_key(tmp_path):
    path = tmp_path / "data" / "secret_key"
    context = multiprocessing.get_context("spawn")

    with context.Pool(8) as workers:
        keys = workers.map(stored_secret_key, [path] * 32)

    assert len(set(keys)) == 1
    assert path.read_text() == keys[0] + "\n"
    assert list(path.parent.iterdir()) == [path]
