"""Plots drawn on the server with matplotlib and served as PNG: the datasets
registered per month (home page) and the ingest rate of each task (task-server
page).

Figures are made with :class:`matplotlib.figure.Figure` and the Agg canvas,
never with pyplot: no display, no global state shared between requests. A
plot with nothing to show says "no data yet" instead of failing.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping

from flask import Blueprint, Response
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from catalog.datasets import datasets_per_month
from catalog.db import utcnow
from catalog.operations import ingest_rates
from web.app import catalog_session
from web.operations import plot_hours
from web.pages import kept_a_minute

plots = Blueprint("plots", __name__, url_prefix="/plots")

SIZE = (8.0, 2.6)  # inches, at DPI: 800 × 260 pixels
DPI = 100
BAR_COLOUR = "#0b5cad"


@plots.get("/datasets-per-month.png", endpoint="datasets_per_month")
def datasets_per_month_png() -> Response:
    """A bar chart of the datasets registered each month (counted at most
    once a minute, as the home page's totals: :func:`web.pages.kept_a_minute`).
    """
    counts = kept_a_minute("per month", datasets_per_month)
    return png_response(month_chart(counts))


@plots.get("/ingest-rate.png", endpoint="ingest_rate")
def ingest_rate_png() -> Response:
    """Items per minute of each task over the last ``hours`` (default 6)."""
    hours = plot_hours()
    now = utcnow().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    since = now - dt.timedelta(hours=hours)
    with catalog_session() as session:
        rates = ingest_rates(since, session=session)
    return png_response(rate_chart(rates, since, now))


def png_response(figure: Figure) -> Response:
    """*figure* as a PNG response that browsers do not keep."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    response = Response(buffer.getvalue(), mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


def _figure(title: str) -> Figure:
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def _no_data(figure: Figure) -> Figure:
    axes = figure.axes[0]
    axes.text(0.5, 0.5, "no data yet", ha="center", va="center", color="#5d6873")
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


def month_chart(counts: list[tuple[int, int, int]]) -> Figure:
    """Bars of datasets per month, every month from the first to the last
    (months without a dataset at zero).
    """
    figure = _figure("Datasets registered per month")
    if not counts:
        return _no_data(figure)
    by_month = {(year, month): count for year, month, count in counts}
    months = _months(min(by_month), max(by_month))
    labels = [f"{year}-{month:02d}" for year, month in months]
    axes = figure.axes[0]
    axes.bar(range(len(months)), [by_month.get(m, 0) for m in months], color=BAR_COLOUR)
    axes.set_ylabel("datasets")
    step = max(1, len(labels) // 12)
    axes.set_xticks(range(0, len(labels), step), labels[::step], fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def _months(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    months = []
    year, month = first
    while (year, month) <= last:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def rate_chart(
    rates: Mapping[str, Mapping[dt.datetime, int]],
    since: dt.datetime,
    until: dt.datetime,
) -> Figure:
    """A line per task of its items per minute from *since* to *until*
    (minutes without a run at zero).
    """
    figure = _figure("Items per minute, by task (UTC)")
    if not any(rates.values()):
        return _no_data(figure)
    minutes = int((until - since).total_seconds() // 60)
    times = [since + dt.timedelta(minutes=i) for i in range(minutes)]
    axes = figure.axes[0]
    for name, per_minute in sorted(rates.items()):
        counts = [per_minute.get(t, 0) for t in times]
        x = date2num(times)  # type: ignore[no-untyped-call]
        axes.plot(x, counts, label=name, lw=1.2)
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=dt.UTC))  # type: ignore[no-untyped-call]
    axes.set_ylabel("items / minute")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8, loc="upper left", frameon=False)
    return figure
