"""The marshmallow schemas of the JSON API: what each route answers and the
query arguments and bodies it accepts.

Entities keep their names (``Dataset``, ``File``, ``Run``, ``Period``,
``AmiTag``, ``Annotation``, ...) and their fields keep their AMI names, read
from the model (:mod:`catalog.fields`), so the API, the pages and the AMI
endpoint say ``totalEvents`` for the same thing. The OpenAPI document is
generated from these schemas (:mod:`web.api.openapi`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from catalog import models
from catalog.amitags import tag_parameters
from catalog.annotations import DEFAULT_SCOPE
from catalog.containers import CONTAINER, LISTED
from catalog.datasets import MAX_PROVENANCE_LIMIT, PROVENANCE_LIMIT
from catalog.fields import ami_fields, value_type
from catalog.keyset import DEFAULT_LIMIT, MAX_LIMIT
from catalog.models.skims import MAX_TARGET_SIZE, SKIM_STATES
from catalog.mql import entity_fields
from skimengine.selection import FLOAT, INTEGER
from skimengine.skims import retryable

# marshmallow field classes by the Python type of a column.
_FIELD_TYPES: dict[type, type[fields.Field[Any]]] = {
    int: fields.Integer,
    float: fields.Float,
    bool: fields.Boolean,
    dt.datetime: fields.DateTime,
    str: fields.String,
}


def _ami_schema_fields(
    model: type[Any], *, prefix: str = "", replaced: frozenset[str] = frozenset()
) -> dict[str, fields.Field[Any]]:
    """One output field per AMI field of *model* (but those in *replaced*),
    named by its AMI name, read from the attribute *prefix* + column name.
    """
    declared: dict[str, fields.Field[Any]] = {}
    for name, column in ami_fields(model).items():
        if name in replaced:
            continue
        kind = _FIELD_TYPES.get(value_type(column), fields.String)
        attribute = prefix + str(column.key)
        declared[name] = kind(attribute=attribute, allow_none=bool(column.nullable))
    return declared


def _schema(name: str, base: type[Schema], declared: dict[str, Any]) -> type[Schema]:
    """A schema class called *name* with the fields *declared*."""
    return type(name, (base,), dict(declared))


# --- input -------------------------------------------------------------------


def _storable(value: str) -> None:
    # PostgreSQL cannot hold a NUL character: no catalogue text contains one.
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")
    # JSON's "\ud800" escapes one half of a UTF-16 pair, which is no character:
    # no database encoding can store it.
    if _SURROGATE.search(value):
        raise ValidationError(
            "must not contain a lone UTF-16 surrogate (\\ud800-\\udfff), "
            "which is no character"
        )


_SURROGATE = re.compile("[\ud800-\udfff]")


def Text(**options: Any) -> fields.String:  # noqa: N802 - a field, like fields.String
    """A text field that refuses NUL characters and lone surrogates."""
    return fields.String(validate=_storable, **options)


class JsonBoolean(fields.Boolean):
    """A boolean of a JSON body: ``true`` or ``false`` only, not the strings
    and numbers marshmallow also takes for one ("false" or 0 would be).
    """

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class PageArgs(Schema):
    """The paging arguments of every list."""

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": f"rows per page (default {DEFAULT_LIMIT})"},
    )
    cursor = Text(
        load_default=None,
        metadata={"description": "where the page starts: the previous page's cursor"},
    )


def _filter_fields() -> dict[str, fields.Field[Any]]:
    """A filter per AMI field of a dataset, as MQL knows them (``inContainer``
    included), compared as MQL compares them (:func:`catalog.mql.filter_condition`).
    """
    return {
        name: Text(
            metadata={
                "description": f"{name} equal to this value as MQL's = compares "
                "it, or like it when it holds % (text fields); empty: no filter"
            }
        )
        for name in entity_fields("dataset")
    }


DatasetSearchArgs = _schema(
    "DatasetSearchArgs",
    PageArgs,
    {
        "name": Text(
            metadata={
                "description": "a name pattern: % matches any characters, _ one; "
                "without %, names containing it"
            }
        ),
        "sort": Text(
            load_default="logicalDatasetName",
            metadata={
                "description": "comma-separated AMI fields, - before a field "
                "sorts descending (default logicalDatasetName)"
            },
        ),
        **_filter_fields(),
    },
)


class FileLookupArgs(Schema):
    lfn = Text(required=True, metadata={"description": "the file's LFN"})


class RunArgs(PageArgs):
    project = Text(metadata={"description": "project name; % matches any characters"})
    period = Text(metadata={"description": "only runs of this period (any level)"})


class PeriodArgs(Schema):
    project = Text(metadata={"description": "project name; % matches any characters"})
    level = fields.Integer(
        validate=validate.OneOf([1, 2, 3]), metadata={"description": "1, 2 or 3"}
    )


class AmiTagArgs(PageArgs):
    type = fields.String(
        validate=validate.Regexp("^[a-z]$", error="must be one lower-case letter"),
        metadata={"description": "only tags of this type letter (e, s, r, p, f, m...)"},
    )


class QuarantineArgs(PageArgs):
    source = Text(metadata={"description": "only records of this source"})
    released = fields.Boolean(
        metadata={"description": "only released records (true) or held ones (false)"}
    )


class QuarantineReleaseInput(Schema):
    """The body of a release from quarantine."""

    reason = Text(
        load_default=None,
        allow_none=True,
        metadata={"description": "why, e.g. 'GUID fixed in Tier-0'"},
    )


class AnnotationInput(Schema):
    """The body of a new annotation (an AMI hashtag)."""

    name = Text(required=True, metadata={"description": "the tag, e.g. Zee_2015"})
    scope = Text(load_default=DEFAULT_SCOPE, metadata={"description": "e.g. PHYS"})
    comment = Text(load_default=None, allow_none=True)


class TagCountArgs(Schema):
    select = Text(
        required=True,
        metadata={"description": "a selection, e.g. nJets >= 2 && MET > 30"},
    )


def _base64(value: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        raise ValidationError("must be base64") from None


class SkimInput(Schema):
    """The body of a skim request: a selection, or an event collection."""

    logicalDatasetName = Text(required=True)  # noqa: N815
    name = Text(required=True, metadata={"description": "the skim's name"})
    select = Text(
        load_default=None,
        allow_none=True,
        metadata={"description": "the selection; or give collection"},
    )
    collection = fields.String(
        load_default=None,
        allow_none=True,
        validate=_base64,
        metadata={"description": "an event collection, ROOT or CSV, in base64"},
    )
    collectionName = Text(load_default=None, allow_none=True)  # noqa: N815
    branches = fields.List(
        Text(),
        load_default=None,
        allow_none=True,
        metadata={"description": "the branches to keep (default all)"},
    )
    compression = Text(
        load_default=None,
        allow_none=True,
        metadata={"description": "zstd, lz4 or zlib, with :level (default zstd:1)"},
    )
    # The range is declared for the document but checked by request_skim,
    # so that a value out of it is the InvalidInput the CLI and AMI answer.
    targetSize = fields.Integer(  # noqa: N815
        load_default=None,
        allow_none=True,
        strict=True,
        metadata={
            "description": "bytes of an output file, about (default 2 GB); "
            "out of range: 400 InvalidInput",
            "minimum": 1,
            "maximum": MAX_TARGET_SIZE,
        },
    )
    run = JsonBoolean(
        load_default=True,
        metadata={
            "description": "queue it for the task server at once (default true); "
            "false only defines it, and POST /skims/{id}/run runs it"
        },
    )


class SkimActionInput(Schema):
    """The body of a skim's run, cancel or retry: none, or ``{}``; it takes
    no field.
    """


class SkimArgs(PageArgs):
    owner = Text(metadata={"description": "only the skims of this login"})
    state = fields.String(validate=validate.OneOf(SKIM_STATES))
    dataset = Text(metadata={"description": "only the skims of this dataset (LDN)"})


class CollectionArgs(Schema):
    format = fields.String(
        load_default="root",
        validate=validate.OneOf(["root", "csv"]),
        metadata={"description": "root (default) or csv"},
    )


# --- output --------------------------------------------------------------------


# Fields whose column holds an id; the API shows the name instead.
DERIVED_LINKS = frozenset({"crossSectionSource"})


def _name(dataset: models.Dataset | None) -> str | None:
    return dataset.name if dataset is not None else None


Dataset = _schema(
    "Dataset",
    Schema,
    {
        **_ami_schema_fields(models.Dataset, replaced=DERIVED_LINKS),
        "crossSectionSource": fields.Function(
            lambda dataset: _name(dataset.cross_section_source),
            allow_none=True,
            metadata={
                "type": "string",
                "description": "the EVNT dataset the cross-section comes from",
            },
        ),
    },
)


class Replica(Schema):
    """A replica of a dataset at a storage element, as DDM reported it."""

    rse = fields.String()
    complete = fields.Boolean()
    updated = fields.DateTime()


DatasetDetail = _schema(
    "DatasetDetail",
    Dataset,
    {
        "replicas": fields.List(fields.Nested(Replica)),
        "containers": fields.List(
            fields.String(), metadata={"description": "DDM containers holding it"}
        ),
    },
)


class Container(Schema):
    """A DDM container: the datasets in it and the sums of their counts."""

    logicalDatasetName = fields.String(attribute="name")  # noqa: N815
    scope = fields.String(allow_none=True)
    dataType = fields.Constant(  # noqa: N815
        CONTAINER,
        metadata={
            "type": "string",
            "enum": [CONTAINER],
            "description": "always CONTAINER",
        },
    )
    created = fields.DateTime(
        allow_none=True, metadata={"description": "when DDM first announced it"}
    )
    ddmErased = fields.DateTime(  # noqa: N815
        attribute="erased",
        allow_none=True,
        metadata={"description": "when DDM erased it; null: it is not"},
    )
    nDatasets = fields.Integer(  # noqa: N815
        attribute="n_datasets",
        metadata={"description": "its datasets, catalogued or not"},
    )
    nFiles = fields.Integer(  # noqa: N815
        attribute="n_files",
        metadata={"description": "the sum over its catalogued datasets"},
    )
    totalEvents = fields.Integer(  # noqa: N815
        attribute="total_events",
        metadata={"description": "the sum over its catalogued datasets"},
    )
    totalSize = fields.Integer(  # noqa: N815
        attribute="total_size",
        metadata={"description": "bytes, the sum over its catalogued datasets"},
    )
    prodsysStatuses = fields.List(  # noqa: N815
        fields.String(),
        attribute="prodsys_statuses",
        metadata={"description": "the distinct prodsysStatus of its datasets"},
    )
    amiStatuses = fields.List(  # noqa: N815
        fields.String(),
        attribute="ami_statuses",
        metadata={"description": "the distinct amiStatus of its datasets"},
    )
    datasets = fields.List(
        fields.String(),
        attribute="listed",
        metadata={
            "description": f"the names of its datasets, by name: the first "
            f"{LISTED} (nDatasets counts them all; its catalogued datasets, "
            "a page at a time: GET /api/v1/datasets?inContainer=<name>)",
            "maxItems": LISTED,
        },
    )
    notCatalogued = fields.List(  # noqa: N815
        fields.String(),
        attribute="listed_not_catalogued",
        metadata={
            "description": f"those of its datasets the catalogue lacks yet, by "
            f"name: the first {LISTED}",
            "maxItems": LISTED,
        },
    )


File = _schema(
    "File",
    Schema,
    {
        **_ami_schema_fields(models.File),
        "logicalDatasetName": fields.String(attribute="dataset.name"),
    },
)


class ProvenanceNode(Schema):
    logicalDatasetName = fields.String(attribute="dataset.name")  # noqa: N815
    dataType = fields.String(attribute="dataset.data_type", allow_none=True)  # noqa: N815
    distance = fields.Integer(
        metadata={"description": "ancestors > 0, the dataset 0, descendants < 0"}
    )


class ProvenanceEdge(Schema):
    source = fields.String(metadata={"description": "the parent dataset"})
    destination = fields.String(metadata={"description": "the child dataset"})


class ProvenanceLeftOut(Schema):
    direction = fields.String(metadata={"description": "ancestors or descendants"})
    dataType = fields.String(attribute="data_type", allow_none=True)  # noqa: N815
    count = fields.Integer(
        attribute="n_datasets", metadata={"description": "datasets of it not in nodes"}
    )


class Provenance(Schema):
    """The datasets above and below one dataset, and the edges between them;
    when a cap left some out, how many of each data type in each direction.
    """

    nodes = fields.List(fields.Nested(ProvenanceNode))
    edges = fields.List(fields.Nested(ProvenanceEdge))
    complete = fields.Boolean(
        metadata={"description": "false when depth or limit left datasets out"}
    )
    leftOut = fields.List(  # noqa: N815
        fields.Nested(ProvenanceLeftOut),
        attribute="left_out",
        metadata={"description": "the datasets left out, by direction and dataType"},
    )


class ProvenanceArgs(Schema):
    """How far and how large a provenance graph to answer."""

    depth = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0),
        metadata={"description": "steps up and down at most (default: any)"},
    )
    limit = fields.Integer(
        load_default=PROVENANCE_LIMIT,
        validate=validate.Range(1, MAX_PROVENANCE_LIMIT),
        metadata={
            "description": "datasets at most, the nearest first "
            f"(default {PROVENANCE_LIMIT}, at most {MAX_PROVENANCE_LIMIT})"
        },
    )


Run = _schema(
    "Run",
    Schema,
    {
        **_ami_schema_fields(models.Run, prefix="run."),
        "periods": fields.List(
            fields.String(), metadata={"description": "the periods holding it"}
        ),
    },
)

RunDetail = _schema(
    "RunDetail",
    Run,
    {
        "datasets": fields.List(
            fields.String(), metadata={"description": "the datasets of the run"}
        )
    },
)


class Period(Schema):
    """A data period with its number of runs and reprocessing errors."""

    period = fields.String(attribute="period.name")
    periodLevel = fields.Integer(attribute="period.level")  # noqa: N815
    projectName = fields.String(attribute="period.project")  # noqa: N815
    description = fields.String(attribute="period.description", allow_none=True)
    nRuns = fields.Integer(attribute="n_runs")  # noqa: N815
    reprocessingErrors = fields.Integer(attribute="reprocessing_errors")  # noqa: N815


AmiTag = _schema(
    "AmiTag",
    Schema,
    {
        "tag": fields.String(),
        **_ami_schema_fields(models.AmiTag, replaced=frozenset({"parameters"})),
        "parameters": fields.Function(
            tag_parameters,
            metadata={
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "the transformation's parameters, by name",
            },
        ),
    },
)


class QuarantinedRecord(Schema):
    """A source record that could not be understood, with the reason."""

    id = fields.Integer()
    source = fields.String()
    recordKey = fields.String(attribute="record_key", allow_none=True)  # noqa: N815
    payload = fields.String()
    reason = fields.String()
    created = fields.DateTime()
    released = fields.Boolean()


class Annotation(Schema):
    """An annotation of a dataset: an AMI hashtag."""

    scope = fields.String()
    name = fields.String()
    comment = fields.String(allow_none=True)
    author = fields.String(allow_none=True)
    created = fields.DateTime()


def page_of(name: str, item: type[Schema]) -> type[Schema]:
    """The schema of a page of *item*: the items and the way to the next."""
    return _schema(
        name,
        Schema,
        {
            "items": fields.List(fields.Nested(item)),
            "next": fields.String(
                allow_none=True,
                metadata={"description": "the URL of the next page; null: the last"},
            ),
            "cursor": fields.String(
                allow_none=True,
                metadata={"description": "the cursor of the next page; null: none"},
            ),
        },
    )


DatasetPage = page_of("DatasetPage", Dataset)
FilePage = page_of("FilePage", File)
RunPage = page_of("RunPage", Run)
AmiTagPage = page_of("AmiTagPage", AmiTag)
QuarantinePage = page_of("QuarantinePage", QuarantinedRecord)


class TagAttribute(Schema):
    """An attribute of a TAG, for selections."""

    name = fields.String()
    type = fields.String(metadata={"description": "its numpy type, e.g. float32"})
    kind = fields.String(
        validate=validate.OneOf([INTEGER, FLOAT]),
        metadata={"description": "int (an integer) or float"},
    )
    doc = fields.String(metadata={"description": "what it means"})
    unit = fields.String(
        metadata={"description": 'its values\' unit, e.g. GeV ("" for none)'}
    )


class TagDatabase(Schema):
    """The TAG database of a dataset: its event-level metadata."""

    logicalDatasetName = fields.String(attribute="dataset.name")  # noqa: N815
    nEvents = fields.Integer(attribute="n_events")  # noqa: N815
    store = fields.String()
    status = fields.String()
    created = fields.DateTime()
    updated = fields.DateTime()


class TagDetail(TagDatabase):
    """A TAG database with its schema, files and distributions."""

    attributes = fields.List(fields.Nested(TagAttribute))
    triggers = fields.List(
        fields.String(), metadata={"description": "the trigger menu, bit 0 first"}
    )
    nFiles = fields.Integer(attribute="n_files")  # noqa: N815
    distributions = fields.Dict(
        metadata={
            "description": "per attribute: min, max, mean, a histogram (edges, "
            "counts); for triggerBits the events per trigger (fired)"
        }
    )


class TagList(Schema):
    items = fields.List(fields.Nested(TagDatabase))


class TagCount(Schema):
    """How many events of a TAG pass a selection."""

    logicalDatasetName = fields.String()  # noqa: N815
    select = fields.String()
    count = fields.Integer(metadata={"description": "the events that pass"})
    nEvents = fields.Integer(metadata={"description": "the events of the TAG"})  # noqa: N815


def _json_list(text: str | None) -> list[str] | None:
    return json.loads(text) if text else None


class Skim(Schema):
    """A skim: a selection on a dataset's TAG copied into a new dataset."""

    id = fields.Integer()
    name = fields.String()
    owner = fields.Function(
        lambda skim: skim.owner.login if skim.owner is not None else None,
        allow_none=True,
        metadata={"type": "string", "nullable": True},
    )
    logicalDatasetName = fields.String(attribute="parent.name")  # noqa: N815
    select = fields.String(attribute="selection")
    collectionName = fields.String(attribute="collection_name", allow_none=True)  # noqa: N815
    state = fields.String(metadata={"description": " → ".join(SKIM_STATES[:6])})
    progress = fields.Float(metadata={"description": "percent, 0 to 100"})
    nEventsIn = fields.Integer(attribute="n_events_in", allow_none=True)  # noqa: N815
    nSelected = fields.Integer(attribute="n_selected", allow_none=True)  # noqa: N815
    outputDatasetName = fields.Function(  # noqa: N815
        lambda skim: _name(skim.output),
        allow_none=True,
        metadata={
            "type": "string",
            "nullable": True,
            "description": "the dataset it registered, once done",
        },
    )
    error = fields.String(allow_none=True)
    retryable = fields.Function(
        retryable,
        metadata={
            "type": "boolean",
            "description": "whether a retry would run it again: it failed, not "
            "because its selection kept no event nor because its collection "
            "lists a file its dataset no longer has, and its output name is "
            "still free",
        },
    )
    branches = fields.Function(
        lambda skim: _json_list(skim.branches),
        allow_none=True,
        metadata={"type": "array", "items": {"type": "string"}, "nullable": True},
    )
    compression = fields.String(allow_none=True)
    targetSize = fields.Integer(attribute="target_size", allow_none=True)  # noqa: N815
    runRequested = fields.DateTime(  # noqa: N815
        attribute="run_requested",
        allow_none=True,
        metadata={"description": "when its run was asked for; null: only defined"},
    )
    created = fields.DateTime()
    started = fields.DateTime(allow_none=True)
    ended = fields.DateTime(allow_none=True)


SkimPage = page_of("SkimPage", Skim)


class SkimOutputFile(Schema):
    """A file of a skim's output dataset, and where to download it."""

    LFN = fields.String(attribute="file.lfn")
    fileGUID = fields.String(attribute="file.guid")  # noqa: N815
    events = fields.Integer(attribute="file.events", allow_none=True)
    fileSize = fields.Integer(attribute="file.size", allow_none=True)  # noqa: N815
    checksum = fields.String(attribute="file.checksum", allow_none=True)
    url = fields.String(metadata={"description": "the file's download, ROOT"})


class SkimOutputFiles(Schema):
    """The files of a skim's output dataset."""

    logicalDatasetName = fields.String()  # noqa: N815
    items = fields.List(fields.Nested(SkimOutputFile))


class PeriodList(Schema):
    items = fields.List(fields.Nested(Period))


class AnnotationList(Schema):
    items = fields.List(fields.Nested(Annotation))


class ErrorBody(Schema):
    type = fields.String(metadata={"description": "e.g. DatasetNotFound"})
    message = fields.String()
    status = fields.Integer(metadata={"description": "the HTTP status"})
    details = fields.List(fields.String())


class Error(Schema):
    """Every error of the API has this shape."""

    error = fields.Nested(ErrorBody)


class OpenApiDocument(Schema):
    """The OpenAPI 3 document of this API (its main keys)."""

    openapi = fields.String()
    info = fields.Dict()
    paths = fields.Dict()
    components = fields.Dict()
