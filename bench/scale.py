"""How hepcat's surfaces grow with the catalogue: each one timed on a
catalogue of ``--small`` datasets and on one ten times larger, filled the
same way, on PostgreSQL.

The peer of each surface is itself on the smaller catalogue: the ratio
``large/small`` is about 1 when an index serves it (a page, a look-up, a
cursor deep in a list), and approaches the ratio of the sizes (10) when the
database reads the whole table. Surfaces that must read what they show (a
container's datasets, a dataset's files) grow with what they show, which
grows with the catalogue here too: those are marked ``grows``.

The catalogue is filled in SQL (``generate_series``), about 40 s per
million datasets here: ``--small`` datasets (a quarter each EVNT, AOD and
DAOD_PHYS of simulation, a quarter DAOD_PHYS of data), 4 files each, one
run per 10 data datasets in periods of 100 runs, a container of a tenth
of the datasets, a provenance chain EVNT → AOD → DAOD for each sample and
one EVNT with a child per 400 datasets (its graph grows up to the API's
1,000 datasets; the page draws 200), a dataset with a file per 10
datasets, and a task run per 3 datasets in the last 48 hours.

The application is settled as ``hepcat serve`` settles it
(:func:`web.app.settle`: the objects alive at its start moved out of the
garbage collector's reach, which a 10,000-row AMI answer feels most).
Each surface is asked 3 times and the best time kept; it must answer as
expected (200, or 404 for the unknown name).

    python bench/scale.py [--small 100000] [--keep]

``--keep`` leaves the two databases (``hepcat_scale_<n>``) for a look.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, ".")

import migrations  # noqa: E402
from catalog.config import load_config  # noqa: E402
from catalog.datasets import DatasetQuery, dataset_keyset  # noqa: E402
from catalog.db import create_catalog_engine  # noqa: E402
from catalog.keyset import encode_cursor  # noqa: E402
from catalog.models import Dataset  # noqa: E402
from web.app import create_app, settle  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
FILES_PER_DATASET = 4
MC_PROJECTS = ("mc16_13TeV", "mc20_13TeV", "mc21_13p6TeV")
DATA_PROJECTS = ("data15_13TeV", "data16_13TeV", "data17_13TeV", "data18_13TeV")
CONTAINER = "mc16_13TeV:mc16_13TeV.scale.container.DAOD_PHYS/"
START = "2025-01-01 00:00:00+00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = (args.small, args.small * 10)
    times: dict[str, list[float]] = {}
    for size in sizes:
        name = f"hepcat_scale_{size}"
        engine = fresh_database(name)
        started = time.perf_counter()
        fill(engine, size)
        print(f"filled {size:,} datasets in {time.perf_counter() - started:.0f} s")
        for surface, seconds in time_surfaces(engine, size).items():
            times.setdefault(surface, []).append(seconds)
        engine.dispose()
        if not args.keep:
            drop_database(name)
    print(f"\n{'surface':58} {'small ms':>9} {'large ms':>9} {'large/small':>11}")
    for surface, (small, large) in times.items():
        print(
            f"{surface:58} {small * 1e3:9.1f} {large * 1e3:9.1f} {large / small:11.2f}"
        )


def fresh_database(name: str) -> Any:
    admin = create_engine(SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    engine = create_catalog_engine(SERVER + name)
    migrations.upgrade(engine)
    return engine


def drop_database(name: str) -> None:
    admin = create_engine(SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


# -- filling -------------------------------------------------------------------


def fill(engine: Any, n: int) -> None:
    """Fill the catalogue of *engine* with *n* datasets and what goes with
    them (see the module's docstring).
    """
    params = {"n": n, "start": START, "files": FILES_PER_DATASET}
    with engine.begin() as connection:
        for statement in FILL:
            connection.execute(text(statement), params)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("VACUUM ANALYZE"))


# Dataset i: i % 4 = 1 EVNT, 2 AOD, 3 DAOD_PHYS of the sample (i - 1) / 4
# of simulation; 0 a DAOD_PHYS of data, run 300000 + (i / 4) % (n / 40).
_SAMPLE = "((i - 1) / 4)"
_MC = f"(ARRAY{list(MC_PROJECTS)})[1 + {_SAMPLE} % 3]"
_DATA = f"(ARRAY{list(DATA_PROJECTS)})[1 + (i / 4) % 4]"
_RUN = "(300000 + (i / 4) % GREATEST(:n / 40, 1))"
_TYPE = "(ARRAY['DAOD_PHYS', 'EVNT', 'AOD', 'DAOD_PHYS'])[1 + i % 4]"
_STEP = "(ARRAY['deriv', 'evgen', 'recon', 'deriv'])[1 + i % 4]"
_VERSION = (
    "(ARRAY['r11969_p' || (4000 + i), 'e' || (3000 + i), "
    "'e' || (3000 + i - 1) || '_s3126_r' || (10000 + i), "
    "'e' || (3000 + i - 2) || '_s3126_r' || (10000 + i - 1) || '_p' || (4000 + i)]"
    ")[1 + i % 4]"
)
FILL = (
    f"""
    INSERT INTO dataset (id, name, scope, source, project_name, dataset_number,
        run_number, physics_short, stream_name, production_step, data_type,
        version, cross_section, ami_status, n_files, total_events, total_size,
        tags_pending, ddm_incomplete, created, last_modified)
    SELECT i,
        CASE WHEN i % 4 = 0
            THEN {_DATA} || '.' || lpad({_RUN}::text, 8, '0') || '.physics_Main.'
            ELSE {_MC} || '.' || (300000 + {_SAMPLE}) || '.Sample' || {_SAMPLE} || '.'
        END || {_STEP} || '.' || {_TYPE} || '.' || {_VERSION},
        CASE WHEN i % 4 = 0 THEN {_DATA} ELSE {_MC} END,
        'prodsys',
        CASE WHEN i % 4 = 0 THEN {_DATA} ELSE {_MC} END,
        CASE WHEN i % 4 = 0 THEN NULL ELSE 300000 + {_SAMPLE} END,
        CASE WHEN i % 4 = 0 THEN {_RUN} END,
        CASE WHEN i % 4 = 0 THEN NULL ELSE 'Sample' || {_SAMPLE} END,
        CASE WHEN i % 4 = 0 THEN 'physics_Main' END,
        {_STEP}, {_TYPE}, {_VERSION},
        CASE WHEN i % 4 = 1 THEN 1.0 + i % 977 END,
        'VALID', :files, 1000 * :files, 10000000 * :files,
        false, false,
        CAST(:start AS timestamptz) + i * interval '30 seconds',
        CAST(:start AS timestamptz) + i * interval '30 seconds'
    FROM generate_series(1, :n) AS i
    """,
    """
    INSERT INTO file (id, dataset_id, lfn, guid, status, lost, events, size,
        created, modified)
    SELECT d * :files + k, d,
        'DAOD.' || lpad(d::text, 8, '0') || '._' || lpad(k::text, 6, '0') || '.root',
        md5(d::text || '.' || k::text)::uuid::text, 'finished', false, 1000,
        10000000, now(), now()
    FROM generate_series(1, :n) AS d, generate_series(0, :files - 1) AS k
    """,
    # One dataset with a file per 10 datasets: dataset 3 (a DAOD_PHYS).
    """
    INSERT INTO file (id, dataset_id, lfn, guid, status, lost, events, size,
        created, modified)
    SELECT (:n + 1) * :files + k, 3,
        'DAOD.big._' || lpad(k::text, 8, '0') || '.root',
        md5('big.' || k::text)::uuid::text, 'finished', false, 1000, 10000000,
        now(), now()
    FROM generate_series(1, :n / 10) AS k
    """,
    f"""
    INSERT INTO run (run_number, project, n_lumi_blocks, modified)
    SELECT r,
        (ARRAY{list(DATA_PROJECTS)})[1 + ((r - 300000) * 4) / GREATEST(:n / 40, 1)],
        500, now()
    FROM generate_series(300000, 300000 + GREATEST(:n / 40, 1) - 1) AS r
    """,
    """
    INSERT INTO period (id, project, name, level, created)
    SELECT p + 1, run.project, 'P' || p, 1, now()
    FROM generate_series(0, GREATEST(:n / 4000, 1) - 1) AS p
    JOIN run ON run.run_number = 300000 + p * 100
    """,
    """
    INSERT INTO period_run (period_id, run_number)
    SELECT 1 + (r - 300000) / 100, r
    FROM generate_series(300000, 300000 + GREATEST(:n / 40, 1) - 1) AS r
    WHERE 1 + (r - 300000) / 100 <= GREATEST(:n / 4000, 1)
    """,
    f"""
    INSERT INTO container (id, name, scope, created)
    VALUES (1, '{CONTAINER.split(":")[1].rstrip("/")}', 'mc16_13TeV', now())
    """,
    """
    INSERT INTO container_member (container_id, child_name, child_type, added)
    SELECT 1, name, 'dataset', now() FROM dataset WHERE id % 10 = 3
    """,
    # The chains EVNT -> AOD -> DAOD, and EVNT 1 -> an AOD in 100 of each.
    """
    INSERT INTO provenance_edge (parent_id, child_id, kind)
    SELECT i, i + 1, 'task' FROM generate_series(1, :n - 1) AS i
    WHERE i % 4 IN (1, 2)
    """,
    """
    INSERT INTO provenance_edge (parent_id, child_id, kind)
    SELECT 1, i, 'task' FROM generate_series(402, :n, 400) AS i
    """,
    """
    INSERT INTO dataset_ami_tag (tag, dataset_id)
    SELECT DISTINCT part, id
    FROM dataset, unnest(string_to_array(version, '_')) AS part
    WHERE part ~ '^[a-z][0-9]+$'
    """,
    """
    INSERT INTO ami_tag (tag, tag_type, tag_number, created)
    SELECT 'e' || (3000 + i), 'e', 3000 + i, now()
    FROM generate_series(1, :n, 4) AS i
    """,
    """
    INSERT INTO task_run (id, task_name, started, ended, items, outcome, attempt)
    SELECT i, (ARRAY['prodsys', 'tier0', 'ddm', 'coma'])[1 + i % 4],
        now() - (i % 172800) * interval '1 second',
        now() - (i % 172800) * interval '1 second' + interval '1 second',
        i % 50, 'ok', 1
    FROM generate_series(1, :n / 3) AS i
    """,
)


# -- timing --------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    name: str
    ask: Callable[[Any], Any]
    grows: bool = False
    status: int = 200


def time_surfaces(engine: Any, n: int) -> dict[str, float]:
    config = load_config(env={}, data_dir="/tmp/hepcat-scale")
    client = create_app(config, engine=engine).test_client()
    settle()  # as hepcat serve and web.wsgi do once the application is built
    with Session(engine) as session:
        late = session.get_one(Dataset, n - n // 10)
        deep_name = cursor(late, DatasetQuery.sort)
        deep_created = cursor(late, ("-created",))
        tag = session.get_one(Dataset, 5).version or ""
    evnt = dataset_name(engine, 1)
    big = dataset_name(engine, 3)
    surfaces = [
        Surface("home page, totals read", lambda c: home(c)),
        Surface("search page, a pattern", lambda c: c.get("/datasets?q=mc16%25")),
        Surface(
            "search page, by runNumber", lambda c: c.get("/datasets?sort=runNumber")
        ),
        Surface("API datasets, first page", lambda c: c.get("/api/v1/datasets")),
        Surface(
            "API datasets, by name, cursor at 90%",
            lambda c: c.get(f"/api/v1/datasets?cursor={deep_name}"),
        ),
        Surface(
            "API datasets, by -created, cursor at 90%",
            lambda c: c.get(f"/api/v1/datasets?sort=-created&cursor={deep_created}"),
        ),
        Surface("runs of a period", lambda c: c.get("/runs?period=P1")),
        Surface("AMIListRuns of a period", lambda c: ami(c, "AMIListRuns -period=P1")),
        Surface(
            "unknown dataset (did you mean)",
            lambda c: c.get("/datasets/mc16_13TeV.nosuch"),
            status=404,
        ),
        Surface("provenance page of a hub EVNT", lambda c: c.get(f"/datasets/{evnt}")),
        Surface(
            "API provenance of a hub EVNT, up to 1,000",
            lambda c: c.get(f"/api/v1/datasets/{evnt}/provenance"),
            grows=True,
        ),
        Surface(
            "container page", lambda c: c.get(f"/datasets/{CONTAINER}"), grows=True
        ),
        Surface(
            "AMIListFiles of a dataset of n/10 files",
            lambda c: ami(c, f"AMIListFiles -logicalDatasetName={big}"),
            grows=True,
        ),
        Surface("AMI tag page", lambda c: c.get(f"/amitags/{tag.split('_')[0]}")),
        Surface("ingest-rate plot, 48 h", lambda c: c.get("/plots/ingest-rate.png")),
    ]
    times = {}
    for surface in surfaces:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            answer = surface.ask(client)
            best = min(best, time.perf_counter() - started)
            if answer.status_code != surface.status:
                raise SystemExit(f"{surface.name}: HTTP {answer.status_code}")
        label = surface.name + (" (grows)" if surface.grows else "")
        times[label] = best
        print(f"  {n:>9,} {label:58} {best * 1e3:9.1f} ms", flush=True)
    return times


def home(client: Any) -> Any:
    """The home page, its totals read again: not those it keeps a minute."""
    client.application.extensions.get("hepcat.totals", {}).clear()
    return client.get("/")


def dataset_name(engine: Any, id_: int) -> str:
    with engine.connect() as connection:
        return str(
            connection.scalar(
                text("SELECT name FROM dataset WHERE id = :i"), {"i": id_}
            )
        )


def cursor(row: Dataset, sort: Sequence[str]) -> str:
    """The API's cursor that points after *row* in the order *sort*."""
    keyset = dataset_keyset(sort)
    return encode_cursor(keyset.key_of(row), keyset)


def ami(client: Any, command: str) -> Any:
    """The answer to the AMI *command*, as pyAMI asks for it (JSON); an
    error the command answers fails the run.
    """
    form = {"Command": command, "Converter": "AMIXmlToJson.xsl"}
    answer = client.post("/AMI/FrontEnd", data=form)
    if '"error"' in answer.text:
        raise SystemExit(f"{command}: {answer.text[:300]}")
    return answer


if __name__ == "__main__":
    main()
