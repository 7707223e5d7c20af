"""Which tasks the configuration turns on, and with what."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from catalog.config import Config
from catalog.db import create_catalog_engine, sqlite_path
from catalog.errors import ConfigError
from ingest.coma import ComaIngester
from ingest.ddm import DEFAULT_SUBSCRIPTION, DdmIngester, settle_client_id
from ingest.prodsys import ProdSysIngester
from ingest.tier0 import Tier0Ingester
from taskserver.base import Task


def configured_ingesters(config: Config, *, once: bool = False) -> list[Task]:
    """One ingester per source the configuration names, in a stable order:
    COMA (runs and periods first), Tier-0, DDM, ProdSys.

    :param once: for ``hepcat ingest --once``: a DDM broker that stays out of
        reach fails the DDM ingester, where the task server keeps trying; a
        client id another process holds (a task server) skips DDM.
    """
    tasks: list[Task] = []
    if config.coma_url:
        tasks.append(ComaIngester(_source(config, "coma_url")))
    if config.tier0_url:
        tasks.append(Tier0Ingester(_source(config, "tier0_url")))
    if config.ddm_broker:
        tasks.append(
            DdmIngester(
                config.ddm_broker,
                config.ddm_destination,
                client_id=config.ddm_client_id,
                catalog_url=config.catalog_url,
                subscription=config.ddm_subscription or DEFAULT_SUBSCRIPTION,
                fail_unreachable=once,
            )
        )
    if config.prodsys_url:
        tasks.append(
            ProdSysIngester(
                _source(config, "prodsys_url"), lag=config.prodsys_safety_lag
            )
        )
    return tasks


def ddm_client_id(
    config: Config,
    Session: sessionmaker[Session] | None = None,  # noqa: N803
) -> str:
    """The DDM ingester's client id: the one chosen once for the catalogue
    of *Session* and stored in it (:func:`ingest.ddm.settle_client_id`), or
    the ``ddm_client_id`` setting, which always wins.

    :raises ConfigError: the setting is unset and there is no *Session* to
        read the catalogue's id from.
    """
    if Session is not None:
        return settle_client_id(Session, config.catalog_url, config.ddm_client_id)
    if config.ddm_client_id:
        return str(config.ddm_client_id)
    raise ConfigError(
        "ddm_client_id",
        None,
        "unset, the DDM client id is the one stored in the catalogue; "
        "open the catalogue to read it",
    )


def skim_tasks(config: Config, *, tags: bool | None = None) -> list[Task]:
    """The tasks of the task server besides the ingesters: the skim task, and
    the TAG task when *tags* (default: when a file store is configured,
    ``storage_root`` or ``pool_file_catalogs``; without one, every
    derivation's event files would be looked for in vain).
    """
    from skimengine.task import SkimTask, TagBuildTask  # uproot, numpy: on use

    if tags is None:
        store = ("storage_root", "pool_file_catalogs")
        tags = any(config.values.get(name) for name in store)
    return [SkimTask(config), *([TagBuildTask(config)] if tags else [])]


def _source(config: Config, setting: str) -> Engine:
    """The engine of the source database named by *setting*.

    :raises ConfigError: it is a SQLite file that does not exist: a source is
        read, never created, so a missing file is a mistyped path.
    """
    url = config.values[setting]
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ConfigError(
            setting,
            url,
            f"there is no SQLite file {path}; a source database must exist "
            f"(check the path); {config.origin(setting)}",
        )
    return create_catalog_engine(url, pool_pre_ping=True)
