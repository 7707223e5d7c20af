"""Datasets: search, one dataset with every AMI field, its files and its
provenance.
"""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from catalog.containers import check_container
from catalog.datasets import (
    DatasetQuery,
    get_dataset,
    get_provenance,
    list_files_keyset,
    search_datasets_keyset,
)
from catalog.ddm import containers_of, replicas_of
from web.api import api, schemas
from web.api.openapi import documented
from web.api.paging import dumped, load_args, page_body
from web.app import catalog_session
from web.pages import several_values

# The arguments of a search that are not AMI field filters.
SEARCH_ARGUMENTS = ("name", "sort", "limit", "cursor")


@api.get("/datasets")
@documented(schemas.DatasetPage, query=schemas.DatasetSearchArgs, errors=(400,))
def search() -> ResponseReturnValue:
    """Search datasets by name pattern and AMI fields, sorted, page by page.

    Every AMI field of a dataset is a filter, compared as MQL compares it:
    equal to the value, or like it when the value holds % (text fields); an
    empty value filters nothing. `name` may be a Rucio DID (`scope:name`).
    `sort` takes comma-separated AMI fields, `-` before one sorts it
    descending; NULLs come last either way. An `inContainer` without `%`
    that names no DDM container is a 404 `ContainerNotFound`.
    """
    args = load_args(schemas.DatasetSearchArgs, hint=several_values)
    query = dataset_query(args)
    with catalog_session() as session:
        check_container(args.get("inContainer"), session=session)
        page = search_datasets_keyset(query, session=session, cursor=args["cursor"])
        return page_body(page, schemas.Dataset)


def dataset_query(args: dict[str, Any]) -> DatasetQuery:
    """The search that the loaded query arguments *args* ask for."""
    filters = {k: v for k, v in args.items() if k not in SEARCH_ARGUMENTS}
    sort = tuple(key.strip() for key in args["sort"].split(",") if key.strip())
    return DatasetQuery(
        pattern=args.get("name") or None,
        filters=filters,
        sort=sort or DatasetQuery.sort,
        limit=args["limit"],
    )


@api.get("/datasets/<name>")
@documented(schemas.DatasetDetail)
def dataset(name: str) -> ResponseReturnValue:
    """One dataset: every AMI field, derived quantities included, where its
    cross-section comes from, its DDM replicas and containers.
    """
    with catalog_session() as session:
        found = get_dataset(name, session=session)
        shown = dumped(schemas.DatasetDetail, found)
        shown["replicas"] = schemas.Replica(many=True).dump(
            replicas_of(found.name, session=session)
        )
        shown["containers"] = containers_of(found.name, session=session)
        return shown


@api.get("/datasets/<name>/files")
@documented(schemas.FilePage, query=schemas.PageArgs)
def files(name: str) -> ResponseReturnValue:
    """The files of a dataset (every status, lost ones too), by LFN."""
    args = load_args(schemas.PageArgs)
    with catalog_session() as session:
        found = get_dataset(name, session=session)
        page = list_files_keyset(
            found, session=session, cursor=args["cursor"], limit=args["limit"]
        )
        return page_body(page, schemas.File)


@api.get("/datasets/<name>/provenance")
@documented(schemas.Provenance, query=schemas.ProvenanceArgs)
def provenance(name: str) -> ResponseReturnValue:
    """The ancestors (distance 1, 2, ...) and descendants (-1, -2, ...) of a
    dataset, itself at 0, with the edges from parent to child: at most
    `depth` steps away and `limit` datasets, the nearest first. `complete`
    says whether that is all of them; `leftOut` counts the others by
    direction and dataType.
    """
    args = load_args(schemas.ProvenanceArgs)
    with catalog_session() as session:
        graph = get_provenance(
            get_dataset(name, session=session),
            session=session,
            depth=args["depth"],
            limit=args["limit"],
        )
        edges = [{"source": p, "destination": c} for p, c in graph.edges]
        shown = {"nodes": graph.nodes, "edges": edges, "left_out": graph.left_out}
        return dumped(schemas.Provenance, {**shown, "complete": graph.complete})
