"""Large containers and large datasets, read without reading them whole.

A container of a hundred thousand datasets took 2-13 s to show (its page,
the JSON API, ``AMIGetDatasetInfo``): its member names were read into Python
and sent back in IN lists. A 100,000-file dataset took 3-8 s in
``AMIListFiles``: each 1,000-file chunk recounted the dataset's files and
skipped again, by OFFSET, every file read before it.

These tests fill a container of some thousand datasets (nested, overlapping,
some not catalogued) and a dataset of some thousand files by bulk inserts,
on SQLite, PostgreSQL and MariaDB, and check what a user sees (members,
totals, pages without gaps or repeats, files in LFN order) and one structural
guard each: the member names never travel back to the database, and a file
listing neither counts nor re-reads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import Sent, statements_of
from test_ami import rows

from catalog.containers import CONTAINER
from catalog.db import SEPARATOR
from catalog.models import Container, ContainerMember, Dataset, File

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
SCOPE = "mc16_13TeV"
BIG = "mc16_13TeV.PhysCont.big.DAOD_PHYS.v1"
INNER = "mc16_13TeV.PhysCont.inner.DAOD_PHYS.v1"
N_CATALOGUED = 1_150  # more than LISTED (1,000) names
N_MISSING = 130  # registered by DDM, not in the catalogue yet
N_INNER_ONLY = 40  # in the inner container only
N_FILES = 2_345  # more than two chunks of AMIListFiles (1,000)


def member(i: int) -> str:
    return f"mc16_13TeV.{i:06d}.sample.deriv.DAOD_PHYS.e1_s2_r3_p4"


def missing(i: int) -> str:
    return f"mc16_13TeV.{i:06d}.later.deriv.DAOD_PHYS.e1_s2_r3_p4"


def dataset_row(name: str, i: int, source: str = "prodsys") -> dict[str, Any]:
    return {
        "name": name,
        "scope": SCOPE,
        "source": source,
        "project_name": SCOPE,
        "ami_status": "TRASHED" if i % 97 == 0 else "VALID",
        "prodsys_status": "SOME EVENTS AVAILABLE" if i % 7 == 0 else None,
        "n_files": i % 50,
        "total_events": (i % 50) * 1000,
        "total_size": (i % 50) * 1_000_000,
        "ddm_incomplete": False,
        "created": NOW,
        "last_modified": NOW,
    }


@pytest.fixture
def big_container(Session: sessionmaker[OrmSession]) -> dict[str, Any]:  # noqa: N803
    """*BIG* holds N_CATALOGUED catalogued datasets, N_MISSING names the
    catalogue lacks, and *INNER*, which holds N_INNER_ONLY datasets of its
    own and repeats a hundred of BIG's; a dataset in no container is there
    too. Returns what a user should see.
    """
    catalogued = [member(i) for i in range(N_CATALOGUED + N_INNER_ONLY)]
    direct = catalogued[:N_CATALOGUED] + [missing(i) for i in range(N_MISSING)]
    inner = catalogued[N_CATALOGUED:] + catalogued[:100]
    outsider = dataset_row("mc16_13TeV.999999.outside.DAOD_PHYS.e1_s2_r3_p4", 1)
    with Session.begin() as session:
        session.execute(
            insert(Dataset),
            [dataset_row(name, i) for i, name in enumerate(catalogued)] + [outsider],
        )
        session.add_all(
            [Container(name=BIG, scope=SCOPE), Container(name=INNER, scope=SCOPE)]
        )
        session.flush()
        ids = dict(session.execute(select(Container.name, Container.id)).all())
        members = [(ids[BIG], name, "DATASET") for name in direct]
        members += [(ids[INNER], name, "DATASET") for name in inner]
        members.append((ids[BIG], INNER, CONTAINER))
        session.execute(
            insert(ContainerMember),
            [
                {"container_id": c, "child_name": n, "child_type": t, "added": NOW}
                for c, n, t in members
            ],
        )
    counted = [dataset_row(name, i) for i, name in enumerate(catalogued)]
    names = sorted(set(direct) | set(inner))
    return {
        "names": names,
        "not_catalogued": sorted(missing(i) for i in range(N_MISSING)),
        "nFiles": sum(d["n_files"] for d in counted),
        "totalEvents": sum(d["total_events"] for d in counted),
        "totalSize": sum(d["total_size"] for d in counted),
        "amiStatuses": ["TRASHED", "VALID"],
        "prodsysStatuses": ["SOME EVENTS AVAILABLE"],
    }


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [v for item in value for v in _flat(item)]
    if isinstance(value, str) and value.startswith("["):
        try:
            return _flat(json.loads(value))
        except ValueError:
            return [value]
    if isinstance(value, str) and SEPARATOR in value:
        return value.split(SEPARATOR)
    return [value]


def names_sent(seen: list[Sent], names: list[str]) -> int:
    """How many of *names* the statements *seen* sent to the database, in
    their parameters: arrays, JSON arrays and joined text split into values.
    """
    wanted = set(names)
    values = [
        value
        for sent in seen
        for parameter in _parameters(sent)
        for value in _flat(parameter)
    ]
    return sum(1 for value in values if value in wanted)


def _parameters(sent: Sent) -> list[Any]:
    given = sent.parameters
    return list(given.values() if isinstance(given, dict) else given or ())


# --- a big container --------------------------------------------------------------


def test_the_api_counts_and_lists_a_big_container_in_sql(
    client: FlaskClient, catalog_engine: Engine, big_container: dict[str, Any]
) -> None:
    with statements_of(catalog_engine) as seen:
        found = client.get(f"/api/v1/containers/{BIG}").json

    expected = big_container
    assert found["nDatasets"] == len(expected["names"])
    assert found["datasets"] == expected["names"][:1000]
    assert found["notCatalogued"] == expected["not_catalogued"]
    for key in ("nFiles", "totalEvents", "totalSize", "amiStatuses"):
        assert found[key] == expected[key], key
    assert found["prodsysStatuses"] == expected["prodsysStatuses"]
    # The structural guard: no member name goes back to the database, and
    # the number of statements does not grow with the container.
    assert names_sent(seen, expected["names"]) == 0
    assert len(seen) <= 6, list(seen)


def test_ami_totals_a_big_container_in_one_query(
    client: FlaskClient, catalog_engine: Engine, big_container: dict[str, Any]
) -> None:
    command = f'AMIGetDatasetInfo -logicalDatasetName="{BIG}"'
    with statements_of(catalog_engine) as seen:
        (found,) = rows(client, command)

    expected = big_container
    assert found["nDatasets"] == str(len(expected["names"]))
    assert found["nFiles"] == str(expected["nFiles"])
    assert found["totalEvents"] == str(expected["totalEvents"])
    assert found["totalSize"] == str(expected["totalSize"])
    assert found["amiStatus"] == "TRASHED,VALID"
    assert names_sent(seen, expected["names"]) == 0


def test_the_page_of_a_big_container_pages_its_members_without_gaps(
    client: FlaskClient, catalog_engine: Engine, big_container: dict[str, Any]
) -> None:
    names, limit = big_container["names"], 500
    shown: list[str] = []
    with statements_of(catalog_engine) as seen:
        for offset in range(0, len(names), limit):
            page = client.get(f"/datasets/{BIG}?offset={offset}&limit={limit}")
            assert page.status_code == 200
            html = page.get_data(as_text=True)
            linked = re.findall(r'<td class="name"><a href="/datasets/([^"]+)"', html)
            absent = re.findall(r'<li class="name">(.*?)</li>', html)
            plain = [re.sub(r"<[^>]+>", "", name) for name in absent]
            shown += sorted(linked + plain)
            first = offset + 1
            last = min(offset + limit, len(names))
            assert f"datasets {first:,}–{last:,} of {len(names):,}" in html

    assert shown == names
    assert f"{len(big_container['not_catalogued'])} not in the catalogue yet" in html
    # Each page sends at most its own names (to read their datasets).
    pages = -(-len(names) // limit)
    assert names_sent(seen, names) <= len(names)
    assert len(seen) <= 8 * pages, list(seen)


# --- a big dataset's files --------------------------------------------------------

DATASET = "mc16_13TeV.000001.sample.deriv.DAOD_PHYS.e1_s2_r3_p4"


@pytest.fixture
def big_dataset(Session: sessionmaker[OrmSession]) -> dict[str, Any]:  # noqa: N803
    """DATASET (ProdSys) with N_FILES files, some failed, some lost, their
    LFNs inserted out of order; a neighbour dataset whose LFNs sort among
    them. Returns every LFN and those that count, by LFN.
    """
    with Session.begin() as session:
        session.execute(
            insert(Dataset),
            [
                dataset_row(DATASET, 1),
                dataset_row("mc16_13TeV.000002.x.deriv.DAOD_PHYS.e1_s2_r3_p4", 2),
            ],
        )
        ids = dict(session.execute(select(Dataset.name, Dataset.id)).all())
        files = []
        for i in reversed(range(N_FILES)):
            own = i % 5 != 0
            files.append(
                {
                    "dataset_id": ids[DATASET] if own else max(ids.values()),
                    "lfn": f"DAOD_PHYS.{i * 7 % N_FILES:06d}.{i}.pool.root.1",
                    "guid": f"00000000-0000-0000-0000-{i:012d}",
                    "size": 1000 + i,
                    "events": i,
                    "status": "failed" if i % 11 == 0 else "finished",
                    "lost": i % 13 == 0,
                    "created": NOW,
                    "modified": NOW,
                }
            )
        session.execute(insert(File), files)
    own = [f for f in files if f["dataset_id"] == ids[DATASET]]
    counted = [f for f in own if f["status"] == "finished" and not f["lost"]]
    return {
        "all": sorted(f["lfn"] for f in own),
        "counted": sorted(f["lfn"] for f in counted),
    }


def listed_lfns(client: FlaskClient, command: str) -> list[str]:
    return [row["LFN"] for row in rows(client, command, "files")]


def test_ami_list_files_lists_every_counted_file_in_lfn_order(
    client: FlaskClient, catalog_engine: Engine, big_dataset: dict[str, Any]
) -> None:
    counted = big_dataset["counted"]
    command = f'AMIListFiles -logicalDatasetName="{DATASET}"'
    with statements_of(catalog_engine) as seen:
        everything = listed_lfns(client, command)
    windows = [(0, 10), (995, 10), (999, 1002), (1500, 5000), (len(counted), 3)]

    assert everything == counted
    for offset, count in windows:
        found = listed_lfns(client, f"{command} -limit={offset},{count}")
        assert found == counted[offset : offset + count], (offset, count)
    total = rows(client, f"{command} -total", "total")
    assert total[0]["LFN"] == f"TOTAL: {1 % 50} files"  # the stored nFiles
    # The structural guard: the files are never counted, there is one
    # statement per chunk, and each chunk after the first starts after the
    # last LFN read instead of skipping again the files read before it.
    files = [sql for sql in seen if re.search(r"\bFROM file\b", sql)]
    assert not [sql for sql in files if "count(" in sql.lower()]
    assert len(files) == -(-len(counted) // 1000)
    assert all("file.lfn >" in sql for sql in files[1:])


def test_ami_list_files_of_a_tier0_dataset_counts_failed_files(
    client: FlaskClient,
    Session: sessionmaker[OrmSession],  # noqa: N803
    big_dataset: dict[str, Any],
) -> None:
    with Session.begin() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == DATASET)).one()
        dataset.source = "tier0"
        lost = set(session.scalars(select(File.lfn).where(File.lost.is_(True))))

    found = listed_lfns(client, f'AMIListFiles -logicalDatasetName="{DATASET}"')

    assert found == [lfn for lfn in big_dataset["all"] if lfn not in lost]


def test_the_api_pages_a_big_datasets_files_by_lfn_without_gaps(
    client: FlaskClient, catalog_engine: Engine, big_dataset: dict[str, Any]
) -> None:
    found: list[str] = []
    cursor: str | None = None
    with statements_of(catalog_engine) as seen:
        while True:
            query = {"limit": "400", **({"cursor": cursor} if cursor else {})}
            page = client.get(f"/api/v1/datasets/{DATASET}/files", query_string=query)
            assert page.status_code == 200, page.json
            found += [item["LFN"] for item in page.json["items"]]
            cursor = page.json["cursor"]
            if cursor is None:
                break

    assert found == big_dataset["all"]
    # Each page is one range of the (dataset_id, lfn) index: bounded by the
    # last LFN alone, no id to break ties between unique LFNs.
    files = [sql for sql in seen if re.search(r"\bFROM file\b", sql)]
    assert len(files) == -(-len(found) // 400)
    assert all("file.id >" not in sql for sql in files)


def test_a_files_cursor_is_checked_as_before(
    client: FlaskClient, big_dataset: dict[str, Any]
) -> None:
    response = client.get(
        f"/api/v1/datasets/{DATASET}/files", query_string={"cursor": "bm90LWl0"}
    )

    assert response.status_code == 400
    assert "cursor is not valid" in response.json["error"]["message"]
