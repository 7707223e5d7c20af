"""The catalogue's data model. Importing this package registers every table
on :data:`catalog.db.Base.metadata`.
"""

from __future__ import annotations

from catalog.models.datasets import (
    AMI_TRASHED,
    AMI_VALID,
    AmiTag,
    Container,
    ContainerMember,
    Dataset,
    DatasetAmiTag,
    DatasetKeyword,
    DatasetStale,
    File,
    FileLumiRange,
    Hashtag,
    ProductionTask,
    ProvenanceEdge,
)
from catalog.models.ddm import DdmMessage, Reconciliation, Replica
from catalog.models.operations import Quarantine, StopPoint, TaskLease, TaskRun
from catalog.models.reference import (
    DataType,
    NomenclatureTemplate,
    ProductionStep,
    Project,
    SubDataType,
    SubProject,
)
from catalog.models.runs import Period, PeriodRun, Run
from catalog.models.skims import (
    OUTPUT_INHERITS,
    SKIM_STATES,
    Skim,
    TagDatabase,
    TagEvent,
    inherit_columns,
)
from catalog.models.users import ROLES, ApiToken, Role, User, UserRole

__all__ = [
    "AMI_TRASHED",
    "AMI_VALID",
    "ROLES",
    "OUTPUT_INHERITS",
    "SKIM_STATES",
    "AmiTag",
    "ApiToken",
    "Container",
    "ContainerMember",
    "DataType",
    "Dataset",
    "DatasetAmiTag",
    "DatasetKeyword",
    "DatasetStale",
    "DdmMessage",
    "File",
    "FileLumiRange",
    "Hashtag",
    "NomenclatureTemplate",
    "Period",
    "PeriodRun",
    "ProductionStep",
    "ProductionTask",
    "Project",
    "ProvenanceEdge",
    "Quarantine",
    "Reconciliation",
    "Replica",
    "Role",
    "Run",
    "Skim",
    "StopPoint",
    "SubDataType",
    "SubProject",
    "TagDatabase",
    "TagEvent",
    "TaskLease",
    "TaskRun",
    "User",
    "UserRole",
    "inherit_columns",
]
