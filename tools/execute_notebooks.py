#!/usr/bin/env python3
"""Re-runs the instructors' notebooks (solutions/*.ipynb, or the ones named) through the gan-lab
kernel and stores their outputs in place (atomically). Quick mode (GAN_LAB_QUICK=1, 20 training
steps per run) unless --full. Records the run in the notebook's metadata (`gan_lab`: mode, CPU,
cores) and each code cell's wall time in the cell's (`gan_lab.seconds`): the student edition shows
the picture and the time of a full run before each cell tagged `reference`. Prints the cells that
took longer than 10 s. Called by `gan-lab notebooks execute [--full] [NAME...]`.
"""
import datetime
import os
import pathlib
import platform
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cpu_name():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines() if pathlib.Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def seconds(cell):
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return round((parse(end) - parse(start)).total_seconds(), 1)


def main(full, names):
    if not full:
        os.environ["GAN_LAB_QUICK"] = "1"
    paths = sorted((ROOT / "solutions").glob("*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
        missing = set(names) - {p.stem for p in paths} - {p.name for p in paths}
        if missing:
            sys.exit(f"no such notebook in solutions/: {', '.join(sorted(missing))}")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        started = time.monotonic()
        NotebookClient(nb, kernel_name="gan-lab", timeout=7200, startup_timeout=600,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nb.metadata["gan_lab"] = {"mode": "full" if full else "quick", "cpu": cpu_name(), "cores": os.cpu_count()}
        for i, cell in enumerate(nb.cells):
            took = seconds(cell) if cell.cell_type == "code" else None
            if took is not None:
                cell.metadata["gan_lab"] = {"seconds": took}
                if took > 10:
                    print(f"  cell {i + 1}: {took:.0f} s  {cell.source.splitlines()[0][:70]}")
        tmp = path.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)
        print(f"{path.relative_to(ROOT)}: executed in {time.monotonic() - started:.0f} s "
              f"({'full' if full else 'quick'} mode, {cpu_name()})")


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--full" in args, [a for a in args if not a.startswith("--")])
