"""What a skim request and an uploaded event collection are checked for, on
SQLite, PostgreSQL and MariaDB, through the surfaces a physicist uses: a
name longer than its column and a compression are refused or stored the
same way by the API, AMI and the page (one check, in ``request_skim``); an
upload whose lumi block is not the TAG's, an RNTuple, a damaged, truncated,
empty or wrongly typed ROOT file, and loosely written CSV numbers and
headers are refused; and an output file whose copy in the
skim's directory has gone is still served from the file store.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from test_skim_ami import error as ami_error
from test_skim_ami import rows as ami_rows
from test_skim_api import assert_error, post_skim
from test_skim_faults import collection_root
from test_skim_pages import DATASET, DIMUON, SurfaceWorld, shown, submit_skim_form

API = "/api/v1"


def collection_csv(world: SurfaceWorld, events: int = 3) -> str:
    """Some events of the TAG as an uploaded CSV collection."""
    tag = world.tag
    return tag.collection(tag.select("nMuons >= 0")[:events]).to_csv()


def encoded(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def skims_of(world: SurfaceWorld) -> list[Any]:
    answer = world.app.test_client().get(f"{API}/skims")
    return list(answer.json["items"])


# -- names longer than their columns ---------------------------------------------


def test_a_collection_name_longer_than_its_column_is_refused_everywhere(surface):
    upload = collection_csv(surface)
    long_name = "x" * 296 + ".csv"
    message = "the collection's file name has 300 characters; it may have at most 255"

    api = post_skim(
        surface, "phil", collection=encoded(upload), collectionName=long_name
    )
    ami = ami_error(
        surface,
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -name="dimuon" '
        f'-collection="{upload}" -collectionName="{long_name}"',
        "phil",
    )
    page = submit_skim_form(
        surface.browser("phil"),
        name="dimuon",
        collection=(io.BytesIO(upload.encode()), long_name),
    )

    assert assert_error(api, 400, "InvalidInput")["message"] == message
    assert ami == ("InvalidInput", message)
    assert page.status_code == 400 and message in shown(page)
    assert skims_of(surface) == []


# -- compression -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "stored"),
    [
        ("ZSTD:1", "zstd:1"),
        ("zstd: 1", "zstd:1"),
        ("zstd:01", "zstd:1"),
        ("zstd:" + "0" * 40, "zstd:0"),
        ("lz4", "lz4:1"),
        (" Zlib : 9 ", "zlib:9"),
    ],
)
def test_a_compression_is_stored_as_algorithm_and_level(surface, asked, stored):
    answer = post_skim(surface, "phil", select=DIMUON, compression=asked)

    assert answer.status_code == 201, answer.text
    assert answer.json["compression"] == stored
    assert surface.skim(answer.json["id"]).compression == stored


def test_the_page_and_ami_store_the_compression_the_same_way(surface):
    form = submit_skim_form(
        surface.browser("phil"), select=DIMUON, name="paged", compression="LZ4: 04"
    )
    [made] = ami_rows(
        surface,
        f'AMICreateSkim -logicalDatasetName="{DATASET}" -select="{DIMUON}" '
        '-name="amied" -compression="ZLIB:07" -noRun',
        "skim",
        login="phil",
    )

    assert form.status_code == 302
    paged = surface.skim(int(form.headers["Location"].rsplit("/", 1)[1]))
    assert paged.compression == "lz4:4"
    assert made["compression"] == "zlib:7"


@pytest.mark.parametrize(
    ("asked", "highest"),
    [
        ("zstd:1.5", 22),
        ("zstd:23", 22),
        ("zlib:10", 9),
        ("lz4:-1", 12),
        ("zstd:", 22),
        ("zstd:1_0", 22),
        ("zstd:\uff13", 22),
        ("zstd:" + "9" * 5000, 22),
    ],
    ids=[
        "fraction", "zstd above", "zlib above", "negative", "empty", "underscore",
        "full-width", "thousands of digits",
    ],
)  # fmt: skip
def test_a_level_out_of_range_or_not_whole_is_refused(surface, asked, highest):
    answer = post_skim(surface, "phil", select=DIMUON, compression=asked)

    message = assert_error(answer, 400, "InvalidInput")["message"]
    algorithm = asked.partition(":")[0]
    assert message == (
        f"compression {asked!r}: the level of {algorithm} is a whole number "
        f"from 0 to {highest}, e.g. '{algorithm}:1'"
    )
    assert skims_of(surface) == []


# -- uploaded collections ------------------------------------------------------------


def test_an_upload_with_another_lumi_block_than_the_tags_is_refused(surface):
    header, first, *rest = collection_csv(surface).splitlines()
    fields = first.split(",")
    tag_lumi = int(fields[2])
    fields[2] = str(tag_lumi + 76)
    upload = "\n".join([header, ",".join(fields), *rest]) + "\n"

    answer = post_skim(
        surface, "phil", collection=encoded(upload), collectionName="l.csv"
    )

    message = assert_error(answer, 400, "CollectionError")["message"]
    assert message.startswith("collection, event 1 of 3: run ")
    assert message.endswith(
        f"is in lumi block {tag_lumi} in the TAG, not {tag_lumi + 76}"
    )
    assert skims_of(surface) == []


def test_a_collection_written_as_an_rntuple_says_to_write_a_ttree(surface, tmp_path):
    path = tmp_path / "c.root"
    with uproot.recreate(path) as out:
        out["Files"] = "A B"
        # uproot's default for a dict of arrays: an RNTuple.
        out["Collection"] = {"RunNumber": np.array([1], np.int32)}

    answer = post_skim(
        surface, "phil", collection=encoded(path.read_bytes()), collectionName="c.root"
    )

    message = assert_error(answer, 400, "CollectionError")["message"]
    assert message == (
        "c.root: has 'Collection' as a ROOT::RNTuple, not a TTree; write it as a "
        "TTree, e.g. with uproot's file.mktree('Collection', ...)"
    )


def damaged_basket(path: Path) -> bytes:
    """A ROOT collection of a thousand events whose first compressed block
    fails its checksum (zlib.error when read).
    """
    events = 1000
    data = bytearray(
        collection_root(
            path,
            RunNumber=np.ones(events, np.int32),
            EventNumber=np.arange(events, dtype=np.uint64),
            LumiBlock=np.ones(events, np.int32),
            FileIndex=np.zeros(events, np.int32),
            Entry=np.arange(events, dtype=np.int64),
        )
    )
    start = data.index(b"ZL\x08")
    data[start + 9 + int.from_bytes(data[start + 3 : start + 6], "little") - 1] ^= 0xFF
    return bytes(data)


def without_collection_tree(path: Path) -> bytes:
    with uproot.recreate(path) as out:
        out["Files"] = "GUID-1 file1.root"
    return path.read_bytes()


DAMAGED = "g.root: cannot be read as ROOT: it is truncated or damaged"
# Damaged or wrong uploads, made in a directory, and the message each gets.
DAMAGED_UPLOADS = {
    "garbage": (lambda _: b"root" + b"\xff" * 200, DAMAGED),
    "bad checksum": (damaged_basket, DAMAGED),
    "truncated": (
        lambda path: collection_root(path)[:3000],
        f"{DAMAGED} (expected Chunk of length",
    ),
    "no tree": (without_collection_tree, "g.root: has no TTree 'Collection'"),
    "bool branch": (
        lambda path: collection_root(path, LumiBlock=np.array([True, False, True])),
        "g.root: branch 'LumiBlock' holds bool, not whole numbers",
    ),
    "zero bytes": (lambda _: b"", "g.root: is an empty file"),
}


@pytest.mark.parametrize("kind", DAMAGED_UPLOADS)
def test_a_damaged_root_upload_is_refused_by_the_api_and_the_page(
    surface, tmp_path, kind
):
    make, expected = DAMAGED_UPLOADS[kind]
    data = make(tmp_path / "g.root")

    api = post_skim(
        surface, "phil", name="g1", collection=encoded(data), collectionName="g.root"
    )
    page = submit_skim_form(
        surface.browser("phil"), name="g2", collection=(io.BytesIO(data), "g.root")
    )

    message = assert_error(api, 400, "CollectionError")["message"]
    assert message.startswith(expected)
    assert "\n" not in message and "BytesIO" not in message
    assert page.status_code == 400 and message in shown(page)
    assert skims_of(surface) == []


@pytest.mark.parametrize(
    ("entry", "shown"),
    [("0_2", "'0_2'"), ("\uff13", "'\uff13'"), ("\u0663", "'\u0663'")],
    ids=["underscore", "full-width", "arabic-indic"],
)
def test_a_csv_number_is_ascii_digits_only(surface, entry, shown):
    header, first, *_ = collection_csv(surface).splitlines()
    upload = f"{header}\n{first.rsplit(',', 1)[0]},{entry}\n"

    answer = post_skim(
        surface, "phil", collection=encoded(upload), collectionName="e.csv"
    )

    message = assert_error(answer, 400, "CollectionError")["message"]
    assert message == f"e.csv, line 2: Entry must be a whole number, not {shown}"
    assert post_skim(surface, "phil", collection=spaced(upload)).status_code == 400
    plain = collection_csv(surface)
    assert post_skim(surface, "phil", collection=spaced(plain)).status_code == 201


def spaced(upload: str) -> str:
    """*upload* (CSV) encoded, with a blank around each cell below the header:
    numbers may have them.
    """
    header, *lines = upload.splitlines()
    cells = [",".join(f" {cell} " for cell in line.split(",")) for line in lines]
    return encoded("\n".join([header, *cells]) + "\n")


def test_a_csv_header_naming_a_column_twice_is_refused(surface):
    header, *lines = collection_csv(surface).splitlines()
    upload = "\n".join([header + ",Entry", *(line + ",2" for line in lines)]) + "\n"

    answer = post_skim(
        surface, "phil", collection=encoded(upload), collectionName="d.csv"
    )

    message = assert_error(answer, 400, "CollectionError")["message"]
    assert message == "d.csv: the header names column 'Entry' twice; name each once"


# -- output files whose skim-directory copy has gone ----------------------------------


def test_an_output_file_gone_from_the_skim_directory_is_served_from_the_store(
    surface,
):
    skim_id = surface.request("phil", selection=DIMUON)
    skim = surface.run_skims(skim_id)
    shutil.rmtree(skim.output_dir)
    client = surface.app.test_client()

    listed = client.get(f"{API}/skims/{skim_id}/files").json["items"]
    downloads = [download(client, item["url"]) for item in listed]
    page = download(
        surface.browser("phil"), f"/skims/{skim_id}/files/{listed[0]['LFN']}"
    )

    assert listed and [status for status, _ in downloads] == [200] * len(listed)
    for item, (_, data) in zip(listed, downloads, strict=True):
        assert item["checksum"] == f"ad:{zlib.adler32(data):08x}"
    assert page == downloads[0]


def download(client: Any, url: str) -> tuple[int, bytes]:
    """The status and the bytes of the download at *url*."""
    with client.get(url) as answer:
        return answer.status_code, answer.data


def test_an_output_file_gone_from_every_disk_is_said_to_be_missing(surface):
    skim_id = surface.request("phil", selection=DIMUON)
    skim = surface.run_skims(skim_id)
    lfn = skim.output.files[0].lfn
    for found in Path(surface.config.storage_path).rglob(lfn):
        found.unlink()
    (Path(skim.output_dir) / lfn).unlink(missing_ok=True)

    answer = surface.app.test_client().get(f"{API}/skims/{skim_id}/files/{lfn}")

    message = assert_error(answer, 404, "OutputNotReady")["message"]
    assert message == (
        f"skim {skim_id} lists the output file {lfn!r}, but it is missing on disk; "
        "an admin can restore it from the file store"
    )
    assert not re.search(r"/\w", message)  # no server path
