"""Which tasks the configuration turns on, and with what."""

from __future__ import annotations

from sqlalchemy import Engine

from catalog.config import Config
from catalog.db import create_catalog_engine
from ingest.coma import ComaIngester
from ingest.ddm import DdmIngester
from ingest.prodsys import ProdSysIngester
from ingest.tier0 import Tier0Ingester
from taskserver.base import Task


def configured_ingesters(config: Config) -> list[Task]:
    """One ingester per source the configuration names, in a stable order:
    COMA (runs and periods first), Tier-0, DDM, ProdSys.
    """
    tasks: list[Task] = []
    if config.coma_url:
        tasks.append(ComaIngester(_source(config.coma_url)))
    if config.tier0_url:
        tasks.append(Tier0Ingester(_source(config.tier0_url)))
    if config.ddm_broker:
        tasks.append(DdmIngester(config.ddm_broker, config.ddm_destination))
    if config.prodsys_url:
        tasks.append(
            ProdSysIngester(_source(config.prodsys_url), lag=config.prodsys_safety_lag)
        )
    return tasks


def skim_tasks(config: Config) -> list[Task]:
    """The tasks of the task server besides the ingesters: the skim task."""
    from skimengine.task import SkimTask  # uproot and numpy only when needed

    return [SkimTask(config)]


def _source(url: str) -> Engine:
    return create_catalog_engine(url, pool_pre_ping=True)
