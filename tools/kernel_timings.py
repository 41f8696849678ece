#!/usr/bin/env python3
"""Measures the gan-lab Jupyter kernel through nbclient, as the tests drive it: kernel start, the
`:dep gan_lab` cell, the first `use` cell, a trivial cell's latency (median of 10), a cell that
calls into gan_lab (median of 5), the first cell that runs libtorch code (it loads the dataset;
the kernel loads libtorch then, once), and 40 DCGAN training steps (median of 3), timed inside
the kernel too, so that the cell's own cost shows. Prints the figures.

Usage: .venv/bin/python tools/kernel_timings.py   (after `scripts/test` or `scripts/lab` set-up)
"""
import pathlib
import statistics
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent

TRAIN_40 = ("let started = std::time::Instant::now();\n"
            "Dcgan::mnist32().steps(40).seed(0).train(&data)?;\n"
            "println!(\"TRAINED {:.3}\", started.elapsed().as_secs_f64());")
CELLS = [
    ("`:dep gan_lab` cell", ':dep gan_lab = { path = "../gan_lab" }'),
    ("first `use` cell", "use gan_lab::{Dcgan, data::{Dataset, Split}};"),
    ("trivial cell", "1 + 1"),
    ("cell calling gan_lab", "Dcgan::mnist32().steps(10).seed(3);"),
    # The first cell that runs libtorch code loads the library (once per kernel).
    ("first libtorch cell (data)", "let data = Dataset::mnist(Split::Train)?;"),
    ("40 training steps", TRAIN_40),
]
REPEATS = {"trivial cell": 10, "cell calling gan_lab": 5, "40 training steps": 3}


def main():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for _, source in CELLS]
    client = NotebookClient(nb, kernel_name="gan-lab", timeout=1200, startup_timeout=600,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    started = time.monotonic()
    with client.setup_kernel():
        print(f"kernel start:               {time.monotonic() - started:6.2f} s")
        for index, (name, _) in enumerate(CELLS):
            times = []
            for _ in range(REPEATS.get(name, 1)):
                t = time.monotonic()
                cell = client.execute_cell(nb.cells[index], index)
                times.append(time.monotonic() - t)
            line = f"{name + ':':<27} {statistics.median(times):6.2f} s"
            if len(times) > 1:
                line += f" (median of {len(times)}; min {min(times):.2f}, max {max(times):.2f})"
            trained = [float(text.split()[1]) for output in cell.get("outputs", [])
                       for text in output.get("text", "").splitlines() if text.startswith("TRAINED ")]
            if trained:
                line += f"; training itself {trained[-1]:.2f} s (last run)"
            print(line)


if __name__ == "__main__":
    main()
