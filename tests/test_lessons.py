"""The student's path through the course, played end to end in a fresh student edition through the
real "Rust (gan_lab)" kernel (scripts/gan_lab_kernel.py, evcxr inside) with nbclient.

Lesson by lesson, in the order of the notebooks' names: the student writes that lesson's exercises
(the master's solutions between the exercise lines), `gan-lab grade --lesson <lesson>` gives full
points, and the lesson's notebook runs to the end in quick mode (GAN_LAB_QUICK=1: builders cut
training to a few steps) with only the exercises of that lesson and the ones before it written,
showing its pictures inline. Before any exercise is written, lesson 1's notebook stops at its first
unwritten exercise with one readable message, the kernel keeps the earlier cells' variables, and
after the student writes the lesson, running that cell again works without a restart. A cell that
does not compile fails as well, and an interrupted cell stops with a message and the kernel goes on.

Run by scripts/test after `cargo test` (it installs the kernel first). The lessons share one
edition and run in order.
"""
import json
import os
import pathlib
import re
import threading
import time

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT, copy_edition, gan_lab, grade, solutions, write_exercises

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
LESSONS = [re.fullmatch(r"(\d\d)-(\w+)\.ipynb", n).group(2) for n in NOTEBOOKS]


@pytest.fixture(scope="module")
def student(edition, tmp_path_factory):
    return copy_edition(edition, tmp_path_factory.mktemp("path") / "student")


def client_for(nb, student):
    os.environ["GAN_LAB_QUICK"] = "1"
    return NotebookClient(nb, kernel_name="gan-lab", timeout=1200, startup_timeout=300,
                          resources={"metadata": {"path": str(student / "notebooks")}})


def outputs_of(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.outputs


def text(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def run_extra(client, nb, source):
    """Runs a cell of the test's own in the notebook's kernel (not kept in the notebook)."""
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    return cell


def built_files(lesson):
    """The student editions' gan-lab binary and the lesson's test binaries, with their mtimes."""
    release = pathlib.Path(os.environ["CARGO_TARGET_DIR"].rstrip("/") + "-student") / "release"
    files = [release / "gan-lab", *(release / "deps").glob(f"exercises_{lesson}-*")]
    return {f: f.stat().st_mtime_ns for f in files if f.is_file()}


def interrupt(client):
    """What JupyterLab's stop button sends: an interrupt request on the control channel."""
    kc = BlockingKernelClient(connection_file=client.km.connection_file)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.control_channel.send(kc.session.msg("interrupt_request", {}))
        kc.control_channel.get_msg(timeout=30)
    finally:
        kc.stop_channels()


def grade_lesson(student, lesson):
    out = gan_lab(student, "grade", "--lesson", lesson, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert results and all(r["id"].startswith(lesson + ".") for r in results), results
    short = {r["id"]: (r["earned"], r["points"]) for r in results if r["earned"] < r["points"]}
    assert not short, f"lesson {lesson} graded short of full points: {short}"
    return out


def check_outputs(nb, name):
    errors = [o for o in outputs_of(nb) if o.output_type == "error"]
    assert not errors, errors
    mimes = [m for o in outputs_of(nb) for m in o.get("data", {})]
    for mime in ("image/png", "image/svg+xml", "text/html"):
        assert mime in mimes, f"no {mime} output in {name}: {sorted(set(mimes))}"
    for o in outputs_of(nb):
        assert "\r" not in o.get("text", ""), "carriage-return progress bar in notebook output"


def test_notebooks_are_named_in_lesson_order():
    assert [int(n[:2]) for n in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1)), NOTEBOOKS
    for number, name in enumerate(NOTEBOOKS, 1):
        title = nbformat.read(ROOT / "notebooks" / name, as_version=4).cells[0].source.splitlines()[0]
        assert title.startswith(f"# Lesson {number}:"), (name, title)


def test_readme_is_short_and_its_layout_table_matches_the_tree():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md: keep it short; details go to docs/"
    layout = readme.split("## Layout", 1)[1]
    named = {p.rstrip("/") for row in re.findall(r"^\| (.*?) \|", layout, re.M) for p in re.findall(r"`([^`]+)`", row)}
    assert named, "no layout table"
    for path in named:
        full = ROOT / path if "/" in path or (ROOT / path).exists() else None
        assert full is None or full.exists(), f"README layout names {path}, which is not in the tree"
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "target"}
    missing = {f for f in folders if not any(n == f or n.startswith(f + "/") for n in named)}
    assert not missing, f"top-level folders missing from the README's layout: {missing}"


def test_each_notebook_lists_its_exercises_and_how_to_check_them():
    points = {i: int(p) for i, p in re.findall(r'id: "([\w.]+)",\s*points: (\d+)',
                                                (ROOT / "gan_lab/src/course/mod.rs").read_text())}
    files = {}
    for file, regions in solutions().items():
        for exercise, _ in regions:
            files.setdefault(exercise, set()).add(file)
    for name, lesson in zip(NOTEBOOKS, LESSONS):
        cells = nbformat.read(ROOT / "notebooks" / name, as_version=4).cells
        intro = next(c.source for c in cells[:3] if "## Your exercises in this lesson" in c.source)
        rows = re.findall(r"^\| `([\w.]+)` \| (.*?) \| (\d+) \|$", intro, re.M)
        want = sorted(i for i in points if i.startswith(lesson + "."))
        assert sorted(r[0] for r in rows) == want, (name, rows)
        for exercise, where, p in rows:
            assert set(re.findall(r"`([^`]+)`", where)) == files[exercise] and int(p) == points[exercise], \
                (name, exercise, where, p)
        assert f"gan-lab -- grade --lesson {lesson}" in intro, name
        assert cells[-1].source == f'gan_lab::notebook::grade("{lesson}")?', (name, cells[-1].source)


def test_lesson_1_stops_at_an_unwritten_exercise_then_runs_once_it_is_written(student):
    # Writing one exercise turns exactly it green, over every lesson (graded here, in the same
    # copy as the rest of the path, to build the edition's tests once).
    write_exercises(student, {"dcgan.interpolate"})
    results = grade(student)
    green = sorted(i for i, r in results.items() if r["earned"] == r["points"])
    assert green == ["dcgan.interpolate"], green
    assert all(r["earned"] == 0 for i, r in results.items() if i != "dcgan.interpolate"), results

    path = student / "notebooks" / NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    client = client_for(nb, student)
    started = time.monotonic()
    with client.setup_kernel():
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        stopped = None
        for i in code:
            try:
                client.execute_cell(nb.cells[i], i)
            except CellExecutionError as error:
                stopped = (i, str(error))
                break
        assert stopped, "lesson 1 ran to the end with no exercise written"
        at, message = stopped
        match = re.search(r"Exercise (dcgan\.\w+) is not written yet \((gan_lab/src/[\w/]+\.rs)\)", message)
        assert match, message
        assert f"gan-lab grade --lesson {LESSONS[0]}" in message, message
        failed = nb.cells[at]
        assert [o.output_type for o in failed.outputs if o.output_type == "error"] == ["error"], failed.outputs
        for noise in ("backtrace", "panicked at", "gan_lab panic", "\x1e"):
            assert noise not in message and noise not in text(failed), (noise, failed.outputs)

        # The kernel kept what the earlier cells defined (lesson 1 loads the digits first).
        probe = run_extra(client, nb, 'println!("still here: {} digits", data.len());')
        assert text(probe).startswith("still here: "), probe.outputs
        # A cell that does not compile fails too.
        with pytest.raises(CellExecutionError):
            run_extra(client, nb, 'let n: i32 = "not a number";')

        write_exercises(student, {LESSONS[0]})
        grade_lesson(student, LESSONS[0])
        # Grading again with nothing changed rebuilds nothing.
        built = built_files(LESSONS[0])
        assert len(built) >= 2, built
        grade_lesson(student, LESSONS[0])
        assert built_files(LESSONS[0]) == built
        # The same cell again, then the rest of the notebook, in the same kernel.
        for i in [c for c in code if c >= at]:
            client.execute_cell(nb.cells[i], i)

        # Interrupting a cell that runs forever stops it and says what was lost; the kernel goes on.
        threading.Timer(10, interrupt, [client]).start()
        with pytest.raises(CellExecutionError) as stopped:
            run_extra(client, nb, "loop { std::thread::sleep(std::time::Duration::from_millis(50)); }")
        assert "you interrupted it" in str(stopped.value), str(stopped.value)
        assert text(run_extra(client, nb, 'println!("{}", 6 * 7);')) == "42\n"
    print(f"{NOTEBOOKS[0]}: {time.monotonic() - started:.0f} s with the grading (quick mode)")
    check_outputs(nb, NOTEBOOKS[0])


@pytest.mark.parametrize("number", range(2, len(NOTEBOOKS) + 1), ids=NOTEBOOKS[1:])
def test_each_later_lesson_graded_and_run_on_the_lessons_before_it(student, number):
    written = set(LESSONS[:number])
    write_exercises(student, written)
    grade_lesson(student, LESSONS[number - 1])
    name = NOTEBOOKS[number - 1]
    nb = nbformat.read(student / "notebooks" / name, as_version=4)
    started = time.monotonic()
    client_for(nb, student).execute()
    print(f"{name}: executed in {time.monotonic() - started:.0f} s (quick mode) with {sorted(written)} written")
    check_outputs(nb, name)
