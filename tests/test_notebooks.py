"""The notebooks, executed through the real gan-lab Jupyter kernel (evcxr) with nbclient.

Every notebook in solutions/ runs top to bottom in quick mode (GAN_LAB_QUICK=1: builders cut
training to a few steps) and must show its pictures inline; a broken cell must fail the run.

Run by scripts/test after `cargo test` (it installs the kernel first).
"""
import copy
import os
import pathlib
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def execute(nb, cwd):
    os.environ["GAN_LAB_QUICK"] = "1"
    client = NotebookClient(
        nb,
        kernel_name="gan-lab",
        timeout=1200,  # a cold first cell compiles tch and gan_lab inside the kernel
        startup_timeout=300,
        resources={"metadata": {"path": str(cwd)}},
    )
    started = time.monotonic()
    client.execute()
    return time.monotonic() - started


def outputs_of(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.outputs


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_notebook_runs_and_shows_pictures(path):
    nb = nbformat.read(path, as_version=4)
    seconds = execute(nb, path.parent)
    print(f"{path.name}: executed in {seconds:.1f} s (quick mode)")
    errors = [o for o in outputs_of(nb) if o.output_type == "error"]
    assert not errors, errors
    mimes = [m for o in outputs_of(nb) for m in o.get("data", {})]
    assert "image/png" in mimes, f"no PNG output in {path.name}: {sorted(set(mimes))}"
    assert "image/svg+xml" in mimes, f"no SVG output in {path.name}: {sorted(set(mimes))}"
    assert "text/html" in mimes, f"no composed HTML panel in {path.name}"
    for o in outputs_of(nb):
        assert "\r" not in o.get("text", ""), "carriage-return progress bar in notebook output"


def test_a_broken_cell_fails_the_run():
    nb = nbformat.read(SOLUTIONS[0], as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    broken = nbformat.v4.new_code_cell('let n: i32 = "not a number";')
    nb.cells = [copy.deepcopy(first_code), broken]
    with pytest.raises(CellExecutionError):
        execute(nb, SOLUTIONS[0].parent)
