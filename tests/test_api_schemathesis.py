"""schemathesis against the API's own OpenAPI document: whatever a client
sends, the API never answers with a 5xx, and every answer has a documented
status, a JSON body and the documented shape.

The application runs in process on a SQLite catalogue seeded with the
simulated world. The document is the one the API serves, with examples
(real names from the world) added for the path and query arguments, so that
the examples phase reaches real datasets, files, runs and tags besides the
random ones. Requests carry a physicist's token, so that writes get past
authentication too. Hypothesis is derandomized: CI sees the same cases on
every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from live import populate
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from test_containers import put_in_container

from catalog.config import load_config
from catalog.users import add_user, create_token
from ingest.world import World, build_world
from web.app import create_app

API = "/api/v1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CONTAINER = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.DAOD_PHYS"


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture(scope="module")
def seeded_app(
    tmp_path_factory: pytest.TempPathFactory, world: World
) -> Iterator[Flask]:
    """The application on a SQLite catalogue seeded with the world, with a
    physicist ``phil`` whose token is ``app.config["TEST_TOKEN"]``, and a
    DDM container of the world's DAOD_PHYS datasets.
    """
    data_dir: Path = tmp_path_factory.mktemp("schemathesis") / "hepcat-data"
    populate(data_dir, world)
    app = create_app(load_config(env={}, data_dir=str(data_dir)))
    state = app.extensions["hepcat"]
    with state.Session.begin() as session:
        add_user("phil", roles=["physicist"], session=session)
        app.config["TEST_TOKEN"] = create_token("phil", "schemathesis", session=session)
    daods = [d.name for d in world.datasets if ".DAOD_PHYS." in d.name]
    put_in_container(state.Session, CONTAINER, daods, scope="mc16_13TeV")
    yield app
    state.engine.dispose()


def examples(world: World) -> dict[str, Any]:
    """A real value for each argument name of the API."""
    daod = next(d for d in world.datasets if ".DAOD_PHYS." in d.name)
    file = daod.files[0]
    return {
        "name": daod.name,
        "container": CONTAINER,
        "guid": file.guid,
        "lfn": file.lfn,
        "number": world.runs[0].run_number,
        "tag": world.tags[0].tag,
        "scope": "PHYS",
        "sort": "-totalEvents,logicalDatasetName",
        "dataType": "DAOD_PHYS",
        "project": world.runs[0].project,
        "period": "A",
        "level": 1,
        "limit": 2,
    }


def with_examples(document: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """*document* with an example on every parameter named in *values*."""
    for item in document["paths"].values():
        operations = [item, *(op for key, op in item.items() if key != "parameters")]
        for operation in operations:
            for parameter in operation.get("parameters", []):
                if parameter["name"] in values:
                    parameter["example"] = values[parameter["name"]]
    return document


@pytest.fixture(scope="module")
def api_schema(seeded_app: Flask, world: World) -> Any:
    document = seeded_app.test_client().get(f"{API}/openapi.json").json
    loaded = schemathesis.openapi.from_dict(with_examples(document, examples(world)))
    loaded.app = seeded_app
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_document(case: Any, seeded_app: Flask) -> None:
    token = seeded_app.config["TEST_TOKEN"]

    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def test_the_document_is_valid_openapi(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]

    labels = {operation.label for operation in operations}
    assert f"GET {API}/datasets" in labels
    assert f"POST {API}/datasets/{{name}}/annotations" in labels
    assert f"GET {API}/openapi.json" in labels
