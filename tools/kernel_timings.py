#!/usr/bin/env python3
"""Measures the gan-lab Jupyter kernel: kernel start, the `:dep gan_lab` cell, and a trivial
cell's latency (median of 10), through nbclient as the tests drive it. Prints the figures.

Usage: .venv/bin/python tools/kernel_timings.py   (after `scripts/test` or `scripts/lab` set-up)
"""
import pathlib
import statistics
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    nb = nbformat.v4.new_notebook()
    dep = nbformat.v4.new_code_cell(':dep gan_lab = { path = "../gan_lab" }')
    use = nbformat.v4.new_code_cell("use gan_lab::Dcgan;")
    trivial = nbformat.v4.new_code_cell("1 + 1")
    nb.cells = [dep, use, trivial]
    client = NotebookClient(nb, kernel_name="gan-lab", timeout=1200, startup_timeout=600,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    started = time.monotonic()
    with client.setup_kernel():
        kernel_start = time.monotonic() - started
        timings = {}
        for name, index in (("`:dep gan_lab` cell", 0), ("first `use gan_lab` cell", 1)):
            t = time.monotonic()
            client.execute_cell(nb.cells[index], index)
            timings[name] = time.monotonic() - t
        trivial_times = []
        for _ in range(10):
            t = time.monotonic()
            client.execute_cell(nb.cells[2], 2)
            trivial_times.append(time.monotonic() - t)
    print(f"kernel start:              {kernel_start:6.2f} s")
    for name, seconds in timings.items():
        print(f"{name:<26} {seconds:6.2f} s")
    print(f"trivial cell (median of 10): {statistics.median(trivial_times):6.2f} s "
          f"(min {min(trivial_times):.2f}, max {max(trivial_times):.2f})")


if __name__ == "__main__":
    main()
