"""TAG databases: the list, one TAG with its schema and distributions, and
the number of its events that pass a selection (the live count of the TAG
page's query composer).
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from skimengine.tags import get_tag, open_tag
from web.api import api, schemas
from web.api.openapi import ROOT_FILE, documented
from web.api.paging import dumped, load_args
from web.app import catalog_session
from web.tags import TagInfo, list_tag_databases, tag_download


@api.get("/tags")
@documented(schemas.TagList, errors=())
def tags() -> ResponseReturnValue:
    """Every TAG database, by dataset name; not paged (a TAG per dataset)."""
    with catalog_session() as session:
        found = list_tag_databases(session=session)
        return {"items": schemas.TagDatabase(many=True).dump(found)}


@api.get("/tags/<name>")
@documented(schemas.TagDetail)
def tag(name: str) -> ResponseReturnValue:
    """The TAG of a dataset: its attributes, trigger menu and distributions."""
    with catalog_session() as session:
        return dumped(schemas.TagDetail, TagInfo(get_tag(name, session=session)))


@api.get("/tags/<name>/count")
@documented(schemas.TagCount, query=schemas.TagCountArgs)
def tag_count(name: str) -> ResponseReturnValue:
    """How many events of a dataset's TAG pass a selection.

    A selection that cannot be read is a 400 whose message shows the
    selection with a caret under the mistake.
    """
    selection = load_args(schemas.TagCountArgs)["select"]
    with catalog_session() as session:
        # One read of the record: the count and nEvents are of one version
        # of the TAG, though it be registered again meanwhile.
        record = get_tag(name, session=session)
        count = open_tag(record).count(selection)
        total = record.n_events
    return {
        "logicalDatasetName": name,
        "select": selection,
        "count": count,
        "nEvents": total,
    }


@api.get("/tags/<name>/root")
@documented(None, files=(ROOT_FILE,))
def tag_root(name: str) -> ResponseReturnValue:
    """The TAG of a dataset as a ROOT file: TTree ``TAG`` (an entry per
    event: its attributes, ``FileIndex`` and ``Entry``), ``Files`` and
    ``TriggerMenu``.
    """
    return tag_download(name)
