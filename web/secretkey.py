"""The key that signs login sessions, kept in a file of the data directory
when the ``secret_key`` setting is not given.

Several server processes (gunicorn workers) may start at once on an empty
data directory, and all of them must sign with the same key. The file is
therefore never seen half written: a process writes its key to a private
temporary file (0600), then links it to the key file's name, which fails if
the name is taken. The first link wins; every other process reads the
winner's key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from catalog.config import SECRET_KEY_MIN_LENGTH
from catalog.errors import HepcatError

MIN_LENGTH = SECRET_KEY_MIN_LENGTH


class BadSecretKeyFile(HepcatError, ValueError):
    """The key file holds too short a key: empty, cut short, or mistyped."""

    def __init__(self, path: Path, length: int) -> None:
        super().__init__(
            f"the secret key in {path} has {length} characters, fewer than "
            f"{MIN_LENGTH}; remove the file for hepcat to make a new key (users "
            "then log in again), or set secret_key"
        )
        self.path = path


def stored_secret_key(path: Path) -> str:
    """Return the key kept in *path*, making it first if there is none.

    :raises BadSecretKeyFile: if the file holds fewer than
        :data:`MIN_LENGTH` characters.
    :raises OSError: if the file can be neither read nor made (for example,
        a read-only data directory, or one without hard links).
    """
    try:
        return read_secret_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    try:
        _write_private(temporary, key + "\n")
        try:
            # A hard link appears whole and never replaces a file: of the
            # processes racing here, exactly one succeeds.
            os.link(temporary, path)
        except FileExistsError:
            return read_secret_key(path)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def read_secret_key(path: Path) -> str:
    """Return the key in *path*, without surrounding white space.

    :raises FileNotFoundError: if there is no such file.
    :raises BadSecretKeyFile: if the key has fewer than :data:`MIN_LENGTH`
        characters.
    """
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise BadSecretKeyFile(path, len(key))
    return key


def _write_private(path: Path, text: str) -> None:
    """Write *text* to the new file *path*, readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
