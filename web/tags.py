"""The pages of TAG databases: the list of TAGs, and one TAG with its schema,
a distribution plot per attribute and a query composer.

The composer completes attribute and trigger names from the TAG's schema
and shows, as the user types, how many events pass: the page's script asks
``/api/v1/tags/<name>/count?select=...`` (:mod:`web.api.tags`) and shows an
error with the caret under its position. The helpers here (:class:`TagInfo`,
:func:`list_tag_databases`, :func:`count_events`) are shared with the JSON
API and the AMI commands.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from flask import Blueprint, Response, render_template, send_file
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import NotFound
from catalog.models import Dataset, TagDatabase, TagEvent
from skimengine.tags import export_tag, get_tag, open_tag
from web.app import catalog_session
from web.plots import BAR_COLOUR, DPI, png_response

tags = Blueprint("tags", __name__)

PLOT_SIZE = (4.2, 2.4)  # inches, at DPI: 420 × 240 pixels
# A histogram of whole numbers with this many values or fewer labels each.
VALUES_LABELLED = 12

#: The unit of each TAG attribute that has one ("GeV"), from the schema's
#: columns: a TAG built before its schema named units shows them too.
UNITS = {
    column.info["tag"]: column.info["unit"]
    for column in TagEvent.__table__.columns
    if column.info.get("unit")
}


class TagInfo:
    """What the surfaces show of a TAG database: its record, its schema
    (attributes, trigger menu, files) and its distributions, read once.
    """

    def __init__(self, record: TagDatabase) -> None:
        self.record = record
        self.dataset = record.dataset
        self.n_events = record.n_events
        self.store = record.store
        self.status = record.status
        self.created = record.created
        self.updated = record.updated

    @cached_property
    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.record.schema_json or "{}")
        return found

    @property
    def attributes(self) -> list[dict[str, str]]:
        """The attributes of the schema, each with its ``unit`` ("" for none)."""
        return [
            {**attribute, "unit": UNITS.get(attribute["name"], "")}
            for attribute in self.schema.get("attributes", [])
        ]

    @property
    def triggers(self) -> list[str]:
        return list(self.schema.get("triggers", []))

    @property
    def n_files(self) -> int:
        return len(self.schema.get("files", []))

    @cached_property
    def distributions(self) -> dict[str, Any]:
        # A TAG registered before distributions kept to finite values may
        # hold NaN or Infinity, which JSON does not have: shown as null.
        text = self.record.distributions_json or "{}"
        found: dict[str, Any] = json.loads(text, parse_constant=lambda _: None)
        return found


def list_tag_databases(*, session: Session) -> list[TagDatabase]:
    """Every TAG database, by dataset name."""
    query = (
        select(TagDatabase)
        .join(Dataset, Dataset.id == TagDatabase.dataset_id)
        .order_by(Dataset.name)
    )
    return list(session.scalars(query))


def count_events(name: str, selection: str, *, session: Session) -> tuple[int, int]:
    """How many events of the TAG of dataset *name* pass *selection*,
    counted on its columnar store, and how many it holds: both of one
    version of the TAG (its record is read once; a rebuild may replace it).

    :raises DatasetNotFound, TagNotFound: when there is no such TAG.
    :raises SelectionError: pointing at a mistake in *selection*.
    """
    record = get_tag(name, session=session)
    return open_tag(record).count(selection), record.n_events


@tags.get("/tags")
def tag_list() -> str:
    """The TAG databases: dataset, events, store."""
    with catalog_session() as session:
        found = [TagInfo(record) for record in list_tag_databases(session=session)]
        return render_template("tags.html", tags=found)


@tags.get("/tags/<name>")
def tag(name: str) -> str:
    """One TAG: its schema, distributions and the query composer."""
    with catalog_session() as session:
        info = TagInfo(get_tag(name, session=session))
        return render_template("tag.html", tag=info)


@tags.get("/tags/<name>/tag.root")
def tag_root(name: str) -> Response:
    """The TAG as a ROOT file (:func:`skimengine.tags.write_tag_root`)."""
    return tag_download(name)


def tag_download(name: str) -> Response:
    """The TAG of dataset *name* as a ROOT file to download, written to a
    temporary file that is gone once sent.

    :raises TagNotFound: when the dataset has no TAG.
    """
    descriptor, path = tempfile.mkstemp(prefix="hepcat-tag-", suffix=".root")
    os.close(descriptor)
    try:
        with catalog_session() as session:
            export_tag(name, path, session=session)
        stream = open(path, "rb")  # noqa: SIM115 (send_file closes it)
    finally:
        os.unlink(path)  # the open stream keeps the bytes until it is closed
    return send_file(
        stream,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"{name}.TAG.root",
    )


@tags.get("/tags/<name>/plots/<attribute>.png")
def distribution_png(name: str, attribute: str) -> Response:
    """The distribution of one attribute of a TAG (for ``triggerBits``, the
    events each trigger fired on).

    :raises NotFound: for an attribute the TAG does not have.
    """
    with catalog_session() as session:
        info = TagInfo(get_tag(name, session=session))
    found = info.distributions.get(attribute)
    if found is None:
        known = ", ".join(sorted(info.distributions))
        raise NotFound(f"the TAG of {name} has no attribute {attribute!r}: {known}")
    if attribute == "triggerBits":
        return png_response(trigger_chart(found.get("fired", {})))
    figure = histogram(attribute, found["edges"], found["counts"], UNITS.get(attribute))
    return png_response(figure)


@tags.app_template_filter("tag_value")
def tag_value(value: float | None, whole: bool = False, digits: int = 6) -> str:
    """*value* as the TAG page shows a minimum, maximum or mean: whole when
    *whole* (of an integer attribute) or when it has more than *digits*
    digits before the point (a run or event number, never ``3.1e+05``),
    else to *digits* significant digits; "" for none.
    """
    if value is None:
        return ""
    if isinstance(value, int):
        # An event number may be past 2**53, where a float loses its units.
        return str(value)
    if whole or abs(value) >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _figure(title: str) -> Figure:
    figure = Figure(figsize=PLOT_SIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=9, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=7)
    return figure


def histogram(
    attribute: str,
    edges: Sequence[float],
    counts: Sequence[int],
    unit: str | None = None,
) -> Figure:
    """Bars of the events per bin of *attribute*, its name and *unit* under
    the x axis.
    """
    figure = _figure(attribute)
    axes = figure.axes[0]
    axes.set_xlabel(f"{attribute} [{unit}]" if unit else attribute, fontsize=8)
    if not counts or None in edges:
        # None: an edge that was not a number (see TagInfo.distributions).
        note = "build the TAG again to plot it" if counts else "no events"
        axes.text(0.5, 0.5, note, ha="center", va="center", color="#5d6873")
        return figure
    widths = [high - low for low, high in zip(edges, edges[1:], strict=False)]
    axes.bar(edges[:-1], counts, width=widths, align="edge", color=BAR_COLOUR)
    axes.set_ylabel("events", fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    # Values as they are (a run number, not an offset from 3e5); where each
    # bin is one whole number, and there are few, each under its bar.
    axes.ticklabel_format(axis="x", style="plain", useOffset=False)
    one_value = set(widths) == {1.0}
    if one_value and len(counts) <= VALUES_LABELLED:
        values = [int(low + 0.5) for low in edges[:-1]]
        axes.set_xticks(values, [str(value) for value in values])
    else:
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=one_value))
    return figure


def trigger_chart(fired: dict[str, int]) -> Figure:
    """Horizontal bars of the events each trigger fired on."""
    figure = _figure("events per trigger")
    axes = figure.axes[0]
    names = list(fired)
    axes.barh(range(len(names)), [fired[n] for n in names], color=BAR_COLOUR)
    axes.set_yticks(range(len(names)), names, fontsize=6)
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("events", fontsize=8)
    return figure
