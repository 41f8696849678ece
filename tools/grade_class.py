"""Times `gan-lab autograde` on a generated class: N submissions from a fresh student edition,
student k having written a different share of the exercises (some with a planted bug), graded
`--jobs` at a time. Prints the wall time, the time per submission and the grade distribution.

    .venv/bin/python tools/grade_class.py [N] [--jobs J]     (after `source scripts/setup.sh`)
"""
import argparse
import csv
import pathlib
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from conftest import ROOT, copy_edition, gan_lab, solutions, write_exercises  # noqa: E402

BUGS = [  # (file, text in the master's solution, a student's mistake)
    ("gan_lab/src/explore.rs", "z1.unsqueeze(0) * (1.0 - &alpha) + z2.unsqueeze(0) * alpha",
     "z1.unsqueeze(0) * &alpha + z2.unsqueeze(0) * (1.0 - alpha)"),
    ("gan_lab/src/losses.rs", "-bce_with_logits(fake_logits, 0.0)", "bce_with_logits(fake_logits, 0.0)"),
    ("gan_lab/src/losses.rs", "mu + (log_variance * 0.5).exp() * eps", "mu + log_variance.exp() * eps"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    ids = [e for regions in solutions().values() for e, _ in regions]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        run = gan_lab(ROOT, "release", "--out", str(tmp / "edition"))
        assert run.returncode == 0, run.stderr
        rng = random.Random(0)
        submissions = []
        for k in range(args.n):
            student = copy_edition(tmp / "edition", tmp / "class" / f"student{k:02d}")
            write_exercises(student, set(rng.sample(ids, rng.randint(0, len(ids)))) if k % 4 else "all")
            if k % 3 == 1:
                file, good, bad = rng.choice(BUGS)
                text = (student / file).read_text()
                (student / file).write_text(text.replace(good, bad))
            submissions.append(str(student))
        started = time.monotonic()
        run = subprocess.run(["cargo", "run", "--release", "--quiet", "--bin", "gan-lab", "--", "autograde",
                              *submissions, "--jobs", str(args.jobs), "--out", str(tmp / "grades")],
                             cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-3000:]
        with open(tmp / "grades" / "grades.csv") as f:
            totals = sorted(int(r["total"]) for r in csv.DictReader(f))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{args.n} submissions, --jobs {args.jobs}, on {cpu}: {wall:.0f} s wall, "
          f"{wall / args.n:.1f} s per submission; totals {totals}")


if __name__ == "__main__":
    main()
