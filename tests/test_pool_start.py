"""The local pool of skim workers starts whatever the working directory of
the task server holds, and says why when it cannot start.

Each test runs its executor in a Python of its own: the fork server that
starts the pool's processes is started once per process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.eventfiles import write_dataset_files
from ingest.world import build_world
from skimengine.extract import Plan, output_dataset_name, plan_extraction
from skimengine.filestore import FileStore

PARENT = (
    "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS."
    "e6337_s3126_r10724_p4164"
)
#: Modules the fork server imports as it starts (selectors), and that the
#: extraction code it loads imports (numbers, through numpy).
HIDDEN = ("selectors", "numbers")

RUN_SCRIPT = """
import os, sys
from pathlib import Path
from skimengine.executors import LocalExecutor
from skimengine.extract import Plan

if __name__ == "__main__":
    plan = Plan.from_json(Path(sys.argv[1]).read_text())
    with LocalExecutor(2) as executor:
        outcome = executor.run(plan, sys.argv[2])
    print(len(outcome.outputs), "of", len(plan.units), "complete:", outcome.complete)
    print("PYTHONSAFEPATH" in os.environ)
"""

REFUSED_SCRIPT = """
import os, sys
from pathlib import Path
from skimengine.executors import LocalExecutor
from skimengine.extract import Plan

if __name__ == "__main__":
    plan = Plan.from_json(Path(sys.argv[1]).read_text())
    os.environ["PYTHONPATH"] = os.getcwd()  # where the hiding files are
    with LocalExecutor(2) as executor:
        try:
            executor.run(plan, sys.argv[2])
        except Exception as err:  # as the skim's error shows it
            print(f"{type(err).__name__}: {err}")
        del os.environ["PYTHONPATH"]
        print("again complete:", executor.run(plan, sys.argv[2]).complete)
"""


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plan of a few units over one event file, as JSON."""
    root = tmp_path_factory.mktemp("store")
    dataset = build_world(files_per_dataset=1).dataset(PARENT)
    written = write_dataset_files(dataset, root, basket_entries=250)
    source = FileStore(root).paths([w.lfn for w in written], scope="mc16_13TeV")
    plan = plan_extraction(
        {lfn: np.arange(0, 900, 3) for lfn in source},
        source,
        dataset=output_dataset_name(PARENT, "jdoe", "poolstart"),
        target_size=50_000,
    )
    assert len(plan.units) > 2
    path = root / "plan.json"
    path.write_text(plan.to_json())
    return path


def run_in_hiding_directory(tmp_path: Path, script: str, plan: Path) -> str:
    """Run *script* in a directory with files named like standard modules
    (that fail when imported); return what it prints.
    """
    here = tmp_path / "cwd"
    here.mkdir()
    for name in HIDDEN:
        (here / f"{name}.py").write_text('raise ImportError("hidden by a file")\n')
    path = tmp_path / "script.py"  # not in the directory: only the pool is
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path), str(plan), str(tmp_path / "out")],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_skim_runs_in_a_directory_with_files_named_like_standard_modules(
    tmp_path, plan_file
):
    printed = run_in_hiding_directory(tmp_path, RUN_SCRIPT, plan_file)

    units = len(Plan.from_json(plan_file.read_text()).units)
    assert printed.splitlines() == [f"{units} of {units} complete: True", "False"]


def test_a_pool_that_cannot_start_says_why_and_starts_once_fixed(tmp_path, plan_file):
    printed = run_in_hiding_directory(tmp_path, REFUSED_SCRIPT, plan_file)

    assert printed.splitlines() == [
        "WorkerPoolNotStarted: the skim worker pool could not start: its fork "
        "server stops as it starts: ImportError: hidden by a file",
        "again complete: True",
    ]
