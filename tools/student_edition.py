#!/usr/bin/env python3
"""Generates the student edition of the notebooks: notebooks/X.ipynb from solutions/X.ipynb.

- outputs and execution counts are cleared;
- markdown cells tagged `solution` (the instructor's answers) become an empty answer cell;
- in code cells, each region between `// BEGIN SOLUTION` and `// END SOLUTION` becomes
  `// YOUR CODE HERE` followed by `todo!()`.

Usage: tools/student_edition.py [--check]
With --check nothing is written; the exit status is 1 when a student notebook is out of date.
"""
import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
ANSWER = "*Your answer here.*"
SOLUTION_REGION = re.compile(
    r"^(?P<indent>[ \t]*)// BEGIN SOLUTION[^\n]*\n.*?^[ \t]*// END SOLUTION[^\n]*$", re.S | re.M
)


def strip_code(source):
    return SOLUTION_REGION.sub(lambda m: f"{m['indent']}// YOUR CODE HERE\n{m['indent']}todo!()", source)


def student_notebook(nb):
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "markdown" and "solution" in tags:
            cell.source = ANSWER
            cell.metadata["tags"] = ["answer"]
        elif cell.cell_type == "code":
            cell.source = strip_code(cell.source)
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def main(check):
    stale = []
    for src in sorted((ROOT / "solutions").glob("*.ipynb")):
        dst = ROOT / "notebooks" / src.name
        text = nbformat.writes(student_notebook(nbformat.read(src, as_version=4))) + "\n"
        if dst.exists() and dst.read_text() == text:
            continue
        stale.append(dst)
        if not check:
            tmp = dst.with_suffix(".ipynb.tmp")
            tmp.write_text(text)
            tmp.replace(dst)
            print(f"wrote {dst.relative_to(ROOT)}")
    if check and stale:
        for dst in stale:
            print(f"{dst.relative_to(ROOT)} is out of date: run tools/student_edition.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
