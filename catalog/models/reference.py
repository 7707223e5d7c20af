"""Reference entities: projects, sub-projects, data types, production steps
and nomenclature templates, as AMI's ``Atlas_Production`` catalogue has them.
"""

from __future__ import annotations

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db import Base, Short

VALID = "VALID"


class _Status:
    """AMI's read and write status of a reference row (``VALID`` or not)."""

    read_status: Mapped[str] = mapped_column(
        String(16), default=VALID, info={"ami": "readStatus"}
    )
    write_status: Mapped[str] = mapped_column(
        String(16), default=VALID, info={"ami": "writeStatus"}
    )


class _ProjectColumns(_Status):
    """What AMI keeps of a project tag and of a sub-project tag alike, after
    the tag (a mixin's columns follow the model's own).
    """

    description: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "description"}
    )
    is_base_type: Mapped[bool] = mapped_column(
        Boolean, default=False, info={"ami": "isBaseType"}
    )
    manager: Mapped[str | None] = mapped_column(Short, info={"ami": "projectManager"})


class Project(Base, _ProjectColumns):
    """A project tag such as ``mc16_13TeV`` or ``data15_13TeV``."""

    __tablename__ = "project"

    tag: Mapped[str] = mapped_column(
        Short, primary_key=True, info={"ami": "projectTag"}
    )


class SubProject(Base, _ProjectColumns):
    """A sub-project tag (the energy part of a project: ``13TeV``, ``comm``)."""

    __tablename__ = "sub_project"

    tag: Mapped[str] = mapped_column(
        Short, primary_key=True, info={"ami": "subProjectTag"}
    )


class DataType(Base, _Status):
    """A data type such as ``AOD`` or ``DAOD_PHYS``."""

    __tablename__ = "data_type"

    name: Mapped[str] = mapped_column(Short, primary_key=True, info={"ami": "dataType"})
    description: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "description"}
    )


class SubDataType(Base, _Status):
    """A sub data type (the part after ``DAOD_``: ``PHYS``, ``TOPQ1``)."""

    __tablename__ = "sub_data_type"

    name: Mapped[str] = mapped_column(
        Short, primary_key=True, info={"ami": "subDataType"}
    )
    description: Mapped[str | None] = mapped_column(
        String(1000), info={"ami": "description"}
    )


class ProductionStep(Base, _Status):
    """A production step (``evgen``, ``simul``, ``recon``, ...) and its tag."""

    __tablename__ = "production_step"

    name: Mapped[str] = mapped_column(
        String(32), primary_key=True, info={"ami": "productionStepName"}
    )
    tag: Mapped[str] = mapped_column(
        String(32), primary_key=True, info={"ami": "productionStepTag"}
    )


class NomenclatureTemplate(Base, _Status):
    """A dataset-name template, e.g. ``project.datasetNumber.physicsShort...``."""

    __tablename__ = "nomenclature"

    tag: Mapped[str] = mapped_column(
        String(32), primary_key=True, info={"ami": "nomenclatureTag"}
    )
    template: Mapped[str] = mapped_column(
        String(255), primary_key=True, info={"ami": "nomenclatureTemplate"}
    )
    name: Mapped[str] = mapped_column(String(255), info={"ami": "nomenclatureName"})
