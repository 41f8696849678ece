"""The instructor grading a class: `gan-lab autograde` on submissions made from a fresh student
edition, as students hand them in (folders, a .zip, a .tar.gz), and the Gradescope bundle run in a
folder laid out like Gradescope's.

Each submission plays one kind of student: all exercises written; nothing written; lesson 1 written
with the `exit(0)` cheat and an emptied test file; planted bugs that only hidden tests catch; an
exercise that does not compile, an endless loop and a memory bomb beside correct ones. All are
graded in one run (two at a time), sharing one build tree with every other autograde on the machine.
"""
import csv
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tarfile
import zipfile

import pytest

from conftest import ROOT, copy_edition, gan_lab, write_exercises



def points():
    text = (ROOT / "gan_lab/src/course/mod.rs").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'id: "([a-z_.]+)",\s*points: (\d+)', text)}


def hidden_tests():
    names = set()
    for f in (ROOT / "tests").glob("exercises_*.rs"):
        inside = False
        for line in f.read_text().splitlines():
            inside = (inside or "// BEGIN HIDDEN TESTS" in line) and "// END HIDDEN TESTS" not in line
            if inside and (m := re.match(r"fn (\w+)\(", line)):
                names.add(m.group(1))
    assert len(names) >= 10
    return names


def replace(file, old, new):
    text = file.read_text()
    assert text.count(old) == 1, f"{file}: `{old}` is not there exactly once"
    file.write_text(text.replace(old, new))


CHEAT = """{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "test interpolate__is_linear_and_evenly_spaced ... ok\\n\\ntest result: ok. 1 passed; 0 failed");
        std::process::exit(0)
    }"""

# Bugs that pass every visible check of their exercise and fail a hidden one.
HIDDEN_ONLY = {
    "losses.gradient_penalty": ("gan_lab/src/losses.rs", "Tensor::run_backward(&[score], &[&mixed], true, true)",
                                "Tensor::run_backward(&[score], &[&mixed], true, false)"),
    "conditional.label_map": ("gan_lab/src/models/cdcgan.rs", "expand([b, classes, size, size], false)",
                              "expand([b, classes, 32, 32], false)"),
    "losses.power_iteration": ("gan_lab/src/models/layers.rs", "let sigma = u.dot(&w.mv(&v));",
                               "let sigma = u.dot(&w.detach().mv(&v));"),
}


@pytest.fixture(scope="module")
def graded(edition, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    honest = copy_edition(edition, tmp / "honest")
    write_exercises(honest, "all")
    empty = copy_edition(edition, tmp / "empty")

    cheat = copy_edition(edition, tmp / "zip" / "cheat")
    write_exercises(cheat, {"dcgan"})
    replace(cheat / "gan_lab/src/explore.rs", "z1.unsqueeze(0) * (1.0 - &alpha) + z2.unsqueeze(0) * alpha", CHEAT)
    explore = cheat / "gan_lab/src/explore.rs"
    explore.write_text(explore.read_text() + "// (edited outside the exercises)\n")
    tests = cheat / "tests/exercises_dcgan.rs"
    tests.write_text(re.sub(r"(#\[test\]\nfn \w+\(\) \{).*?\n\}\n", r"\1}\n", tests.read_text(), flags=re.S))
    with zipfile.ZipFile(tmp / "cheat.zip", "w") as z:
        for f in cheat.rglob("*"):
            z.write(f, f.relative_to(cheat.parent))

    hidden = copy_edition(edition, tmp / "tar" / "hidden")
    write_exercises(hidden, "all")
    for file, good, bad in HIDDEN_ONLY.values():
        replace(hidden / file, good, bad)
    with tarfile.open(tmp / "hidden.tar.gz", "w:gz") as t:
        t.add(hidden, arcname="hidden")

    broken = copy_edition(edition, tmp / "broken")
    write_exercises(broken, "all")
    metrics = broken / "gan_lab/src/metrics/mod.rs"
    anchor = "let kl_marginal = (&marginal * (marginal.log() - real.log())).sum(Kind::Double);"
    replace(metrics, anchor, anchor + '\n    let broken: u32 = "a number";')
    error_line = metrics.read_text().splitlines().index('    let broken: u32 = "a number";') + 1
    replace(broken / "gan_lab/src/losses.rs", "    -fake.mean(Kind::Float)\n", "    loop {}\n")
    # A wrong KL costs kl_divergence only, not also vae_loss, which calls it.
    replace(broken / "gan_lab/src/losses.rs", "(log_variance.exp() + mu.square() - 1.0 - log_variance)",
            "(log_variance.exp() + mu - 1.0 - log_variance)")
    # A wrong label map costs label_map only, not also the fusion that reads the planes.
    replace(broken / "gan_lab/src/models/cdcgan.rs", "expand([b, classes, size, size], false)",
            "expand([b, classes, size, size], false).ones_like()")
    replace(broken / "gan_lab/src/losses.rs", "let _ = w.clamp_(-c, c);",
            "let mut hog = Vec::new();\n        loop { hog.push(vec![1u8; 1 << 24]); }")

    # Student code that phones home: the grader's test processes have no network to reach it with.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    replace(broken / "gan_lab/src/rng.rs", "    Tensor::randn([n, latent_dim], (Kind::Float, Device::Cpu))\n",
            f'    let _ = std::net::TcpStream::connect(("127.0.0.1", {port}));\n'
            "    Tensor::randn([n, latent_dim], (Kind::Float, Device::Cpu))\n")

    out = tmp / "grades"
    submissions = [honest, empty, tmp / "cheat.zip", tmp / "hidden.tar.gz", broken]
    run = gan_lab(ROOT, "autograde", *map(str, submissions), "--jobs", "2", "--timeout", "30", "--memory-gb", "4",
                  "--out", str(out))
    assert run.returncode == 0, run.stderr[-4000:]
    print(run.stdout, run.stderr[-2000:])
    with open(out / "grades.csv") as f:
        rows = list(csv.reader(f))
    try:
        listener.accept()
        phoned_home = True
    except BlockingIOError:
        phoned_home = False
    listener.close()
    return {"out": out, "rows": rows, "error_line": error_line, "phoned_home": phoned_home}


def row(graded, name):
    header, *rows = graded["rows"]
    found = [r for r in rows if r[0] == name]
    assert len(found) == 1, f"{name} in {[r[0] for r in rows]}"
    return {k: int(v) for k, v in zip(header[1:], found[0][1:])}


def feedback(graded, name):
    return (graded["out"] / name / "feedback.md").read_text()


def exercise_line(graded, name, exercise):
    lines = [l for l in feedback(graded, name).splitlines() if l.startswith(f"| `{exercise}` |")]
    assert len(lines) == 1, feedback(graded, name)
    return lines[0]


def test_grades_csv_lists_every_exercise_and_the_totals(graded):
    header, *rows = graded["rows"]
    assert header[0] == "submission" and header[-1] == "total"
    assert header[1:-1] == list(points()), header
    assert [r[0] for r in rows] == ["honest", "empty", "cheat", "hidden", "broken"]
    for r in rows:
        assert sum(map(int, r[1:-1])) == int(r[-1]), r


def test_all_written_earns_every_point_hidden_checks_included(graded):
    assert row(graded, "honest") == {**points(), "total": sum(points().values())}
    assert "hidden checks" in exercise_line(graded, "honest", "dcgan.generator")
    assert "differ from the student edition" not in feedback(graded, "honest")


def test_nothing_written_earns_nothing(graded):
    assert row(graded, "empty")["total"] == 0
    assert "not implemented yet" in exercise_line(graded, "empty", "dcgan.init")


def test_the_exit_cheat_and_an_emptied_test_file_gain_nothing(graded):
    honest, cheat, empty = (row(graded, n)["total"] for n in ("honest", "cheat", "empty"))
    assert honest > cheat > empty
    grades = row(graded, "cheat")
    assert grades["dcgan.interpolate"] == 0
    lesson1 = {k: v for k, v in points().items() if k.startswith("dcgan.") and k != "dcgan.interpolate"}
    assert all(grades[k] == v for k, v in lesson1.items()), grades
    assert grades["total"] == sum(lesson1.values())
    assert "exited before the test finished" in exercise_line(graded, "cheat", "dcgan.interpolate")
    text = feedback(graded, "cheat")
    assert "`tests/exercises_dcgan.rs`" in text and "`gan_lab/src/explore.rs`" in text, text


def test_bugs_only_hidden_tests_catch_are_caught_without_showing_them(graded):
    grades = row(graded, "hidden")
    assert {k for k, v in points().items() if grades[k] < v} == set(HIDDEN_ONLY), grades
    for exercise in HIDDEN_ONLY:
        line = exercise_line(graded, "hidden", exercise)
        assert "hidden check failed" in line and "failed `" not in line, line


def test_code_that_breaks_costs_only_its_own_exercise(graded):
    grades = row(graded, "broken")
    lost = {k for k, v in points().items() if grades[k] < v}
    assert lost == {"metrics.mode_score", "losses.wasserstein_generator", "losses.clip_weights", "vae.kl_divergence",
                    "conditional.label_map"}, \
        grades
    compile_error = exercise_line(graded, "broken", "metrics.mode_score")
    assert f"does not compile: gan_lab/src/metrics/mod.rs:{graded['error_line']}: error[E0308]" in compile_error
    assert "stopped after 30 s" in exercise_line(graded, "broken", "losses.wasserstein_generator")
    assert "ran out of memory" in exercise_line(graded, "broken", "losses.clip_weights")


def test_tests_run_without_network_when_the_system_allows(graded):
    isolated = "machine's network" not in feedback(graded, "broken")
    if os.geteuid() == 0:
        assert isolated, "as root, each test gets a network namespace of its own"
    assert graded["phoned_home"] is not isolated, "the feedback must say whether tests had the network"
    assert row(graded, "broken")["dcgan.sample_prior"] == 1


def test_results_json_is_gradescopes_format_and_hides_hidden_tests(graded):
    hidden = hidden_tests()
    for name in ("honest", "empty", "cheat", "hidden", "broken"):
        results = json.loads((graded["out"] / name / "results.json").read_text())
        assert results["score"] == row(graded, name)["total"]
        assert [t["name"] for t in results["tests"]] == list(points())
        for t in results["tests"]:
            assert set(t) == {"name", "score", "max_score", "output", "visibility"}, t
            assert t["max_score"] == points()[t["name"]] and 0 <= t["score"] <= t["max_score"]
        for text in ((graded["out"] / name / "results.json").read_text(), feedback(graded, name)):
            shown = {h for h in hidden if h in text}
            assert not shown, f"{name}: hidden tests named in the feedback: {shown}"


def test_the_gradescope_bundle_grades_a_submission_where_gradescope_puts_it(edition, tmp_path):
    bundle = tmp_path / "autograder.zip"
    run = gan_lab(ROOT, "autograder", "--gradescope", str(bundle))
    assert run.returncode == 0, run.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        assert "setup.sh" in names and "run_autograder" in names and "tests/exercises_dcgan.rs" in names
        assert not any(n.startswith(("solutions/", "notebooks/")) for n in names)
        z.extractall(root / "source")
    for script in ("setup.sh", "run_autograder"):
        (root / "source" / script).chmod(0o755)  # Gradescope's own unpacking keeps them runnable
    shutil.copy(root / "source/run_autograder", root / "run_autograder")
    submission = copy_edition(edition, root / "submission")
    write_exercises(submission, {"dcgan"})
    # The scripts install into the machine's shared folders (GAN_LAB_HOME) like scripts/setup.sh.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_") and k not in ("LIBTORCH", "GAN_LAB_CHECKOUT")}
    env["GAN_LAB_AUTOGRADER_ROOT"] = str(root)
    env["CARGO_TARGET_DIR"] = os.environ["CARGO_TARGET_DIR"].rstrip("/") + "-student"
    setup = subprocess.run(["bash", str(root / "source/setup.sh")], env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr[-4000:]
    run = subprocess.run([str(root / "run_autograder")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads((root / "results/results.json").read_text())
    lesson1 = sum(v for k, v in points().items() if k.startswith("dcgan."))
    assert results["score"] == lesson1, results
    assert "dcgan.interpolate" in run.stdout  # the feedback, in Gradescope's log
