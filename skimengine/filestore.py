"""Finding an event data file from its logical name.

The file store of SOURCES.md: a file is looked for, in order, in the
PoolFileCatalog.xml files that are configured (the standard POOL format, a
``<File ID="GUID">`` element with ``<pfn name="...">`` and ``<lfn name="...">``
children), then under the local storage root, laid out as Rucio's
deterministic paths ``<root>/<scope>/<md5(scope:name)[0:2]>/<md5[2:4]>/<name>``.

A PFN is a ``file:`` URL or a plain path; a relative path is taken relative
to the directory of the catalogue that lists it. A PFN of another protocol
(``root://``, ``davs://``) is remote: it is noted and the search goes on.
"""

from __future__ import annotations

import hashlib
import struct
import xml.etree.ElementTree as ElementTree
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import uproot
import zstandard

from catalog.errors import ConfigError, EventFileNotFound, HepcatError
from catalog.nomenclature import is_plain_name

__all__ = [
    "EventFileDamaged",
    "FileStore",
    "PoolFileCatalog",
    "deterministic_path",
    "reading_event_file",
]

#: What the bytes of a damaged ROOT file make its readers raise (uproot,
#: the codecs, :mod:`skimengine.baskets`). An error of another kind
#: (TypeError, AttributeError...) is a fault of the reader, not of the
#: file, and is not passed off as damage.
DAMAGE = (
    ValueError,
    LookupError,
    OSError,
    EOFError,
    RecursionError,
    struct.error,
    zlib.error,
    zstandard.ZstdError,
    uproot.deserialization.DeserializationError,
)

#: The characters of the reader's own words an error keeps.
REASON_LENGTH = 200


def deterministic_path(root: Path, scope: str, name: str) -> Path:
    """Where Rucio's deterministic layout puts *scope*:*name* under *root*.

    :raises ValueError: when *scope* or *name* is not a plain name (a ``/``,
        ``.`` or ``..``), which would lead out of *root*.
    """
    for part in (scope, name):
        if not is_plain_name(part):
            raise ValueError(f"{part!r} is not a name the file store can hold")
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return Path(root) / scope / digest[0:2] / digest[2:4] / name


@dataclass(frozen=True)
class PoolFileCatalog:
    """One PoolFileCatalog.xml: PFNs by GUID and by LFN."""

    path: Path
    by_guid: dict[str, str] = field(default_factory=dict)
    by_lfn: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> PoolFileCatalog:
        """Parse the catalogue at *path*.

        :raises ConfigError: when it cannot be read or is not POOL XML.
        """
        try:
            root = ElementTree.parse(path).getroot()
        except (OSError, ElementTree.ParseError) as err:
            raise ConfigError("pool_file_catalogs", str(path), str(err)) from None
        if root.tag != "POOLFILECATALOG":
            reason = f"the root element is <{root.tag}>, not <POOLFILECATALOG>"
            raise ConfigError("pool_file_catalogs", str(path), reason)
        catalog = cls(Path(path))
        for entry in root.iter("File"):
            catalog._add(entry)
        return catalog

    def _add(self, entry: ElementTree.Element) -> None:
        pfn = entry.find("physical/pfn")
        if pfn is None or not pfn.get("name"):
            return
        name = pfn.get("name", "")
        if guid := entry.get("ID"):
            self.by_guid[guid.upper()] = name
        for lfn in entry.iterfind("logical/lfn"):
            if lfn.get("name"):
                self.by_lfn[lfn.get("name", "")] = name

    def pfn(self, lfn: str, guid: str | None = None) -> str | None:
        """The PFN listed for *guid* (when given), else for *lfn*."""
        found = self.by_guid.get(guid.upper()) if guid else None
        return found or self.by_lfn.get(lfn)

    def local_path(self, pfn: str) -> Path | None:
        """The local path a PFN names, or None for a remote protocol."""
        parsed = urlparse(pfn)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        if parsed.scheme and len(parsed.scheme) > 1:
            return None  # root://, davs://, ...: not on this machine
        path = Path(pfn)
        return path if path.is_absolute() else self.path.parent / path


class EventFileDamaged(HepcatError):
    """An event file that the file store holds cannot be read: its bytes are
    cut short, or are not those of a ROOT file, or a basket in it does not
    decompress. The skim or TAG that needs it fails, and can be tried again
    once the file is replaced.
    """

    def __init__(self, lfn: str, path: str, reason: str) -> None:
        super().__init__(
            f"event file {lfn} cannot be read: the copy in the file store is "
            f"damaged ({reason}); replace {path} with a good copy, then try again"
        )
        self.lfn, self.path, self.reason = lfn, path, reason

    def __reduce__(self) -> Any:
        # Rebuilt from its arguments when it crosses from a worker process.
        return type(self), (self.lfn, self.path, self.reason)


@contextmanager
def reading_event_file(lfn: str, path: Path | str) -> Iterator[None]:
    """Read the event file *lfn* at *path* within: what its damaged bytes
    make the reader raise becomes :class:`EventFileDamaged`, naming the
    file. hepcat's own errors, and a file that is not there at all
    (FileNotFoundError), go on as they are.
    """
    try:
        yield
    except (HepcatError, FileNotFoundError):
        raise
    except DAMAGE as err:
        raise EventFileDamaged(lfn, str(path), _reason(err, str(path))) from err


def _reason(err: BaseException, path: str) -> str:
    """The reader's words for *err*, on one line, without the file's path
    (the message names it once) and cut to :data:`REASON_LENGTH`.
    """
    text = " ".join(str(err).replace(path, "").split())
    text = text.removesuffix(" in file").strip()
    if len(text) > REASON_LENGTH:
        text = text[: REASON_LENGTH - 1] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class FileStore:
    """Finds event data files: PoolFileCatalog.xml files first, in order,
    then the deterministic paths under *root*.

    :param root: the storage root (setting ``storage_root``); None: no root.
    :param pool_file_catalogs: PoolFileCatalog.xml files (setting
        ``pool_file_catalogs``), read at the first lookup.
    """

    def __init__(
        self, root: Path | None, pool_file_catalogs: Iterable[Path | str] = ()
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.catalog_paths = tuple(Path(p) for p in pool_file_catalogs)
        self._catalogs: list[PoolFileCatalog] | None = None

    @classmethod
    def from_config(cls, config: Any) -> FileStore:
        """The file store a :class:`~catalog.config.Config` describes."""
        return cls(config.storage_path, config.pool_file_catalogs)

    @property
    def catalogs(self) -> Sequence[PoolFileCatalog]:
        if self._catalogs is None:
            self._catalogs = [PoolFileCatalog.read(p) for p in self.catalog_paths]
        return self._catalogs

    def path(self, lfn: str, *, scope: str, guid: str | None = None) -> Path:
        """The path of the event file *lfn* of *scope* (a GUID, when known,
        is looked up in the PoolFileCatalogs before the LFN).

        :raises EventFileNotFound: naming every place that was looked at.
        """
        looked: list[str] = []
        for catalog in self.catalogs:
            found = self._from_catalog(catalog, lfn, guid, looked)
            if found is not None:
                return found
        if self.root is not None:
            try:
                candidate = deterministic_path(self.root, scope, lfn)
            except ValueError as err:
                looked.append(f"storage root {self.root} (not there: {err})")
            else:
                if candidate.is_file():
                    return candidate
                looked.append(f"storage root {self.root} (no file {candidate})")
        raise EventFileNotFound(lfn, looked)

    def paths(
        self, lfns: Iterable[str], *, scope: str, guids: dict[str, str] | None = None
    ) -> dict[str, Path]:
        """The paths of several files of one *scope*, by LFN."""
        guids = guids or {}
        return {lfn: self.path(lfn, scope=scope, guid=guids.get(lfn)) for lfn in lfns}

    @staticmethod
    def _from_catalog(
        catalog: PoolFileCatalog, lfn: str, guid: str | None, looked: list[str]
    ) -> Path | None:
        pfn = catalog.pfn(lfn, guid)
        if pfn is None:
            looked.append(f"PoolFileCatalog {catalog.path} (not listed)")
            return None
        path = catalog.local_path(pfn)
        if path is None:
            looked.append(f"PoolFileCatalog {catalog.path} (remote PFN {pfn})")
        elif not path.is_file():
            looked.append(f"PoolFileCatalog {catalog.path} (PFN {pfn}: no such file)")
        else:
            return path
        return None
