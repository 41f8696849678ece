"""What the end-to-end tests share: cargo and gan-lab runs, one student edition per test session
(released once, copied by the tests that change it), and a student who writes exercises by copying
the master's solutions into the exercise blocks of an edition."""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLUTION = re.compile(r"^\s*// BEGIN SOLUTION (\S+)")
SOLUTION_END = re.compile(r"^\s*// END SOLUTION")
EXERCISE = re.compile(r"^\s*// BEGIN EXERCISE ([^\s:]+)")
EXERCISE_END = re.compile(r"^\s*// END EXERCISE")


def cargo(cwd, *args, env=None):
    """`cargo ARGS` in `cwd`; outside the master, into the student editions' target directory
    (the one scripts/setup.sh gives a student edition)."""
    env = dict(os.environ if env is None else env, GAN_LAB_CHECKOUT=str(pathlib.Path(cwd).resolve()))
    if pathlib.Path(cwd).resolve() != ROOT and "CARGO_TARGET_DIR" in env:
        env["CARGO_TARGET_DIR"] = env["CARGO_TARGET_DIR"].rstrip("/") + "-student"
    return subprocess.run(["cargo", *args], cwd=cwd, env=env, capture_output=True, text=True)


def gan_lab(cwd, *args):
    return cargo(cwd, "run", "--release", "--quiet", "--bin", "gan-lab", "--", *args)


def grade(cwd):
    out = gan_lab(cwd, "grade", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    return {r["id"]: r for r in json.loads(out.stdout)}


def tracked(root):
    files = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [f for f in files.splitlines() if (root / f).is_file()]


@pytest.fixture(scope="session")
def edition(tmp_path_factory):
    """A fresh student edition of this master (tests that change it work on a copy)."""
    out = tmp_path_factory.mktemp("edition") / "student"
    result = gan_lab(ROOT, "release", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def copy_edition(edition, dest):
    shutil.copytree(edition, dest, ignore=shutil.ignore_patterns("target"), copy_function=shutil.copy)
    return dest


def solutions():
    """The master's solution bodies: {file: [(exercise id, [lines])]} in file order."""
    out = {}
    for f in sorted((ROOT / "gan_lab/src").rglob("*.rs")):
        current, body = None, []
        for line in f.read_text().splitlines():
            if current is None and (m := SOLUTION.match(line)):
                current, body = m.group(1), []
            elif current is not None and SOLUTION_END.match(line):
                out.setdefault(str(f.relative_to(ROOT)), []).append((current, body))
                current = None
            elif current is not None:
                body.append(line)
    return out


def write_exercises(student, wanted):
    """Writes, in the edition `student`, the exercises whose id or lesson is in `wanted` ("all" for
    every one), as a student would: the master's solution between the exercise block's lines."""
    for path, regions in solutions().items():
        file = student / path
        lines, out, k = file.read_text().splitlines(), [], 0
        i = 0
        while i < len(lines):
            out.append(lines[i])
            m = EXERCISE.match(lines[i])
            if not m:
                i += 1
                continue
            j = next(j for j in range(i + 1, len(lines)) if EXERCISE_END.match(lines[j]))
            exercise, body = regions[k]
            k += 1
            assert exercise == m.group(1), f"{path}: block {m.group(1)} where the master has {exercise}"
            write = wanted == "all" or exercise in wanted or exercise.split(".")[0] in wanted
            out.extend(body if write else lines[i + 1:j])
            i = j
        assert k == len(regions), f"{path}: {len(regions)} solution regions, {k} exercise blocks"
        file.write_text("\n".join(out) + "\n")
