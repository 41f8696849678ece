#!/usr/bin/env python3
"""Re-runs the instructors' notebooks (solutions/*.ipynb) through the gan-lab kernel and stores
their outputs in place (atomically). Quick mode (GAN_LAB_QUICK=1, 20 training steps per run)
unless --full. Called by `gan-lab notebooks execute [--full]`.
"""
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(full):
    if not full:
        os.environ["GAN_LAB_QUICK"] = "1"
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        started = time.monotonic()
        NotebookClient(nb, kernel_name="gan-lab", timeout=7200, startup_timeout=600,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        tmp = path.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)
        print(f"{path.relative_to(ROOT)}: executed in {time.monotonic() - started:.0f} s "
              f"({'full' if full else 'quick'} mode)")


if __name__ == "__main__":
    main("--full" in sys.argv[1:])
