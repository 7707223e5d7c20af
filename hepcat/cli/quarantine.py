"""``hepcat quarantine``: the source records that could not be understood,
and their release once the source (or hepcat) is fixed.
"""

from __future__ import annotations

import getpass

import click

from catalog.operations import (
    SOURCES,
    check_source,
    list_quarantine,
    quarantine_sources,
    release_quarantined,
)
from hepcat.cli.base import Context, echo_header, header_option, main, pass_context

# Characters of a record's key and reason printed by 'quarantine list'.
KEY_SHOWN = 60
REASON_SHOWN = 120


@main.group()
def quarantine() -> None:
    """List the source records held in quarantine, and release them once
    the source is fixed (the Tier-0 and ProdSys ingesters then read them
    again; COMA is read whole at its next change).
    """


@quarantine.command("list")
@click.option("--source", help=f"Only records of this source ({', '.join(SOURCES)}).")
@click.option(
    "--all", "everything", is_flag=True, help="Also the records released already."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="The most records printed, newest first.",
)
@header_option
@pass_context
def quarantine_list(
    context: Context,
    source: str | None,
    everything: bool,
    limit: int,
    header: bool | None,
) -> None:
    """Print the records held in quarantine, newest first: id, time (UTC),
    source, state (held or released), key and reason; then, on stderr, how
    many there are (held and released, with --all).
    """
    released = None if everything else False
    with context.catalog().begin() as session:
        check_source(source, found=quarantine_sources(session=session))
        page = list_quarantine(
            session=session, source=source, released=released, limit=limit
        )
        held = _held(source, quarantine_sources(session=session, released=False))
        if page.rows:
            echo_header(
                header,
                f"{'ID':>8}  {'CREATED':16}  {'SOURCE':8} {'STATE':8}  KEY  REASON",
            )
        for entry in page.rows:
            state = "released" if entry.released else "held"
            key = _clip(entry.record_key or "-", KEY_SHOWN)
            click.echo(
                f"{entry.id:>8}  {entry.created:%Y-%m-%d %H:%M}  {entry.source:8} "
                f"{state:8}  {key}  {_clip(entry.reason, REASON_SHOWN)}"
            )
    click.echo(_count_line(len(page.rows), page.total, held, everything), err=True)


def _held(source: str | None, counts: dict[str, int]) -> int:
    """The records held of *source* (of all sources: None), from *counts*."""
    return counts.get(source, 0) if source else sum(counts.values())


def _count_line(shown: int, total: int, held: int, everything: bool) -> str:
    """How many records there are, as ``quarantine list`` ends (on stderr)."""
    noun = "record" if total == 1 else "records"
    count = f"{shown} of {total}" if total > shown else str(total)
    if not everything:
        return f"{count} held {noun} in quarantine"
    return f"{count} {noun} in quarantine ({held} held, {total - held} released)"


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


@quarantine.command("release")
@click.argument("record_ids", metavar="ID...", nargs=-1, required=True, type=int)
@click.option(
    "--reason", help="Why, e.g. 'GUID fixed in Tier-0'; kept in the record's reason."
)
@pass_context
def quarantine_release(
    context: Context, record_ids: tuple[int, ...], reason: str | None
) -> None:
    """Release the quarantined records ID... (as 'quarantine list' numbers
    them) once their source is fixed: Tier-0 then reads its held datasets
    again at its next run. Either all are released or none.
    """
    with context.catalog().begin() as session:
        released = release_quarantined(
            record_ids, by=_operator(), reason=reason, session=session
        )
        lines = [
            f"released {entry.id} ({entry.source} {entry.record_key or '-'})"
            for entry in released
        ]
    click.echo("\n".join(lines))


def _operator() -> str:
    """Who runs the command, as the released record names them."""
    try:
        return f"{getpass.getuser()} (hepcat quarantine release)"
    except (KeyError, OSError):  # no login name in this environment
        return "hepcat quarantine release"
