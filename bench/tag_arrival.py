"""AMI tags arriving after their datasets, on a large catalogue: finding
the datasets whose version holds them.

ProdSys may give a dataset before the tag that made it; the tag, when it
arrives, must mark those datasets for their configuration to be derived
again (:func:`catalog.derived.mark_tagged`). A dataset derived with a tag
of its version missing is flagged ``tags_pending``, so a new tag is looked
for among the flagged datasets only.

The catalogue holds ``--datasets`` datasets (default 1,000,000), whose
versions are chains of catalogued tags, but for ``--waiting`` of them
(default 1%) whose derivation tag (``p9000`` to ``p9999``) is not catalogued
yet. For 1, 10, 100 and 1,000 of those tags arriving together it times:

- **ours, added**: ``mark_tagged`` with the tags as new (``added``): the
  flagged datasets among the tags' rows of ``dataset_ami_tag``;
- **ours, changed**: the same tags as changed ones: all the datasets of the
  tags' rows;
- **every version** (the peer, hepcat before 2026-12-06): the datasets
  whose version holds one of the tags, by comparing every dataset's
  version with them (one ``LIKE`` a version and tag).

Each in a transaction rolled back (the catalogue stays as loaded), best of
``--repeat`` (default 3, once for a turn over 30 s); both must mark the
same datasets. It prints the seconds and ``every version / ours`` (added).

    python bench/tag_arrival.py [--catalog sqlite|postgresql|mariadb]
                                [--datasets 1000000] [--waiting 0.01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, String, func, insert, literal, select, text

import migrations
from catalog.db import among, create_catalog_engine, session_factory
from catalog.derived import DATASET, mark_tagged
from catalog.models import AmiTag, DatasetAmiTag
from catalog.nomenclature import tags_in_version

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306",
}
DATABASE = "hepcat_bench_tags"
LATE = [f"p{9000 + n}" for n in range(1000)]
NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
CHUNK = 20_000
# Seconds after which a measurement is not repeated.
LONG = 30


def catalog(kind: str, work: Path) -> Engine:
    if kind == "sqlite":
        return create_catalog_engine(f"sqlite:///{work / 'catalog.sqlite'}")
    server = create_catalog_engine(
        f"{SERVERS[kind]}/test", isolation_level="AUTOCOMMIT"
    )
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    server.dispose()
    return create_catalog_engine(f"{SERVERS[kind]}/{DATABASE}")


def load(engine: Engine, datasets: int, waiting: float) -> int:
    """Write the tags and the datasets; return how many are flagged."""
    tags = [f"{kind}{n}" for kind in "esr" for n in range(1, 101)]
    tags += [f"p{n}" for n in range(1, 1001)]
    with engine.begin() as connection:
        connection.execute(
            insert(AmiTag.__table__),
            [
                {"tag": t, "tag_type": t[0], "tag_number": int(t[1:]), "created": NOW}
                for t in tags
            ],
        )
    every = round(1 / waiting) if waiting else 0
    flagged = 0
    for start in range(0, datasets, CHUNK):
        rows = []
        for n in range(start, min(start + CHUNK, datasets)):
            late = every and n % every == 0
            derivation = LATE[n // every % len(LATE)] if late else f"p{n % 1000 + 1}"
            version = f"e{n % 100 + 1}_s{n % 97 + 1}_r{n % 89 + 1}_{derivation}"
            rows.append(_dataset(n, version, bool(late)))
            flagged += bool(late)
        tagged = [
            {"tag": tag, "dataset_id": row["id"]}
            for row in rows
            for tag in tags_in_version(row["version"])
        ]
        with engine.begin() as connection:
            connection.execute(insert(DATASET), rows)
            connection.execute(insert(DatasetAmiTag.__table__), tagged)
    return flagged


def _dataset(number: int, version: str, pending: bool) -> dict:
    return {
        "id": number + 1,
        "name": f"mc16_13TeV.{number:07d}.Bench.deriv.DAOD_PHYS.{version}",
        "scope": "mc16_13TeV",
        "source": "prodsys",
        "project_name": "mc16_13TeV",
        "data_type": "DAOD_PHYS",
        "version": version,
        "ami_status": "VALID",
        "n_files": 0,
        "total_events": 0,
        "total_size": 0,
        "tags_pending": pending,
        "ddm_incomplete": False,
        "created": NOW,
        "last_modified": NOW,
    }


def timed(Session, tags: list[str], how: str) -> tuple[float, set[int]]:  # noqa: N803
    with Session() as session:
        session.execute(
            insert(AmiTag.__table__),
            [
                {"tag": t, "tag_type": "p", "tag_number": int(t[1:]), "created": NOW}
                for t in tags
            ],
        )
        start = time.perf_counter()
        if how == "added":
            marked = mark_tagged((), tags, session=session)
        elif how == "changed":
            marked = mark_tagged(tags, session=session)
        else:
            marked = set(session.scalars(every_version(tags)))
        elapsed = time.perf_counter() - start
        session.rollback()
    return elapsed, marked


def every_version(tags: list[str]):
    """The peer: the datasets whose version, between ``_``, holds one of
    *tags*, read by comparing every version with the tags' rows.
    """
    spaced = func.replace(DATASET.c.version, "_", " ", type_=String())
    chain = literal(" ") + spaced + literal(" ")
    holds = chain.like(literal("% ") + AmiTag.tag + literal(" %"))
    return (
        select(DATASET.c.id)
        .join(AmiTag, holds)
        .where(among(AmiTag.tag, tags))
        .distinct()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", choices=["sqlite", *SERVERS], default="postgresql")
    parser.add_argument("--datasets", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hepcat-bench-") as work:
        engine = catalog(args.catalog, Path(work))
        migrations.upgrade(engine)
        started = time.perf_counter()
        flagged = load(engine, args.datasets, args.waiting)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "ANALYZE" if args.catalog != "mariadb" else "ANALYZE TABLE dataset"
                )
            )
        print(
            f"{args.catalog}: {args.datasets:,} datasets, {flagged:,} waiting for a "
            f"tag (loaded in {time.perf_counter() - started:.0f} s)"
        )
        Session = session_factory(engine)  # noqa: N806
        for count in (1, 10, 100, 1000):
            tags = LATE[:count]
            ours, changed, theirs = [], [], []
            for _ in range(args.repeat):
                seconds, marked = timed(Session, tags, "added")
                ours.append(seconds)
                seconds, all_marked = timed(Session, tags, "changed")
                changed.append(seconds)
                seconds, every = timed(Session, tags, "every version")
                theirs.append(seconds)
                assert marked == all_marked == every, (len(marked), len(every))
                if theirs[-1] > LONG:
                    break  # minutes: one turn says enough
            print(
                f"  {count:>5} tags, {len(marked):>7,} datasets marked: ours, added "
                f"{min(ours):7.3f} s  changed {min(changed):7.3f} s  every version "
                f"{min(theirs):7.3f} s  every version / ours "
                f"{min(theirs) / min(ours):8.1f}"
            )
        engine.dispose()
        if args.catalog != "sqlite":
            server = create_catalog_engine(
                f"{SERVERS[args.catalog]}/test", isolation_level="AUTOCOMMIT"
            )
            with server.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            server.dispose()


if __name__ == "__main__":
    main()
