"""A TAG ROOT file that does not hold every event of its files is refused by
``hepcat tag import``: a TAG is one row per event of its dataset, and one
missing events would pass for in step while skims silently miss them. On
SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_tag_import import (  # noqa: F401 - catalogue is a fixture
    DATASET,
    EVENTS,
    FILES,
    catalogue,
    small_tag,
    write_tag_file,
)


def every_other(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: values[::2] for name, values in columns.items()}


def none(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: values[:0] for name, values in columns.items()}


def without_the_second_file(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    first = columns["FileIndex"] == 0
    return {name: values[first] for name, values in columns.items()}


@pytest.mark.parametrize(
    ("change", "held"),
    [
        (every_other, f"2 file(s) it lists, as the catalogue counts them: "
         f"{FILES[0].lfn} (15 of 30), {FILES[1].lfn} (10 of 20)"),
        (none, f"2 file(s) it lists, as the catalogue counts them: "
         f"{FILES[0].lfn} (0 of 30), {FILES[1].lfn} (0 of 20)"),
        (without_the_second_file, f"1 file(s) it lists, as the catalogue counts "
         f"them: {FILES[1].lfn} (0 of 20)"),
    ],
    ids=["every other event", "no event", "no event of a file"],
)  # fmt: skip
def test_a_tag_missing_events_of_its_files_is_refused(
    catalogue,  # noqa: F811
    tmp_path,
    change,
    held,
):
    path = write_tag_file(tmp_path / "tag.root", change(dict(small_tag().columns)))

    imported = catalogue.hepcat("tag", "import", DATASET, str(path))

    assert imported.exit_code == 1, imported.output
    assert imported.stderr == (
        f"InvalidInput: {path} does not hold every event of {held}; a TAG has one "
        "row per event of each of its files ('hepcat tag build' makes one)\n"
    )
    answer = catalogue.api.get(f"/api/v1/tags/{DATASET}")
    assert answer.json["nEvents"] == EVENTS  # the TAG in place stays
