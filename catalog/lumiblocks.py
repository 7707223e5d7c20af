"""Lumi-block lists as ProdSys, Tier-0 and AMI write them: ``1-10,12``."""

from __future__ import annotations

from collections.abc import Iterable

from catalog.errors import InvalidInput

MAX_LUMI_BLOCK = 100_000


def parse_lumi_blocks(text: str | None) -> set[int]:
    """Return the lumi blocks in *text* (``"1-3,7"`` → ``{1, 2, 3, 7}``).

    :raises InvalidInput: for anything but numbers and ascending ranges.
    """
    blocks: set[int] = set()
    for part in (text or "").replace(" ", "").split(","):
        if part:
            first, last = _range(part, text or "")
            blocks.update(range(first, last + 1))
    return blocks


def _range(part: str, text: str) -> tuple[int, int]:
    first_text, _, last_text = part.partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if last_text else first
    except ValueError:
        raise InvalidInput(f"lumi blocks {text!r}: {part!r} is not N or N-M") from None
    if not 0 <= first <= last <= MAX_LUMI_BLOCK:
        raise InvalidInput(
            f"lumi blocks {text!r}: {part!r} must be an ascending range "
            f"within 0-{MAX_LUMI_BLOCK}"
        )
    return first, last


def ranges(blocks: Iterable[int]) -> list[tuple[int, int]]:
    """Return *blocks* as sorted, merged ``(first, last)`` ranges."""
    merged: list[tuple[int, int]] = []
    for block in sorted(set(blocks)):
        if merged and block == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], block)
        else:
            merged.append((block, block))
    return merged


def format_lumi_blocks(blocks: Iterable[int]) -> str:
    """Return *blocks* as a range string (``{3, 4, 5, 9}`` → ``"3-5,9"``)."""
    return ",".join(
        str(first) if first == last else f"{first}-{last}"
        for first, last in ranges(blocks)
    )
