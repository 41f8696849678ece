//! The course tooling: markers and their errors, the exercise registry against the sources and
//! tests, the student notebooks, and release's refusals. The student edition itself is built and
//! graded by tests/test_student_edition.py.

mod common;
use common::err_of;
use gan_lab::course::markers::{self, Kind};
use gan_lab::course::{notebooks, release, EXERCISES};
use serde_json::json;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn markers_find_regions_and_strip_them() {
    let text = concat!(
        "fn f() -> i32 {\n    // BEGIN SOLUTION dcgan.interpolate\n    41 + 1\n    // END SOLUTION\n}\n",
        "// BEGIN HIDDEN TESTS\n#[test]\nfn hidden() {}\n// END HIDDEN TESTS\nfn g() {}\n"
    );
    let regions = markers::regions(text, "x.rs").unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!((regions[0].kind, regions[0].begin, regions[0].end), (Kind::Solution, 1, 3));
    assert_eq!(regions[0].id.as_deref(), Some("dcgan.interpolate"));
    let stripped = markers::strip(text, "x.rs", |r| release::stub(r, "x.rs")).unwrap();
    assert_eq!(
        stripped,
        "fn f() -> i32 {\n    // BEGIN EXERCISE dcgan.interpolate: your code goes between this line and `END EXERCISE` \
         (the grader takes exactly that)\n    todo!(\"exercise dcgan.interpolate: steps latent vectors on the segment from z1 \
         to z2, ends included\")\n    // END EXERCISE\n}\nfn g() {}\n"
    );
}

#[test]
fn bad_markers_name_the_file_and_line() {
    let cases = [
        ("// BEGIN SOLUTION dcgan.init\n// BEGIN SOLUTION dcgan.init\n// END SOLUTION\n", "x.rs:2:", "cannot nest"),
        ("a\n// END SOLUTION\n", "x.rs:2:", "without a matching BEGIN"),
        ("// BEGIN SOLUTION dcgan.init\nlet x = 1;\n", "x.rs:1:", "never closed"),
        ("// BEGIN HIDDEN TESTS\n// END SOLUTION\n", "x.rs:2:", "needs `END HIDDEN TESTS`"),
        ("fn f() {\n    # BEGIN SOLUTION\n}\n", "x.rs:2:", "`//` line comments"),
    ];
    for (text, place, what) in cases {
        let msg = err_of(markers::regions(text, "x.rs"));
        assert!(msg.contains(place) && msg.contains(what), "expected `{place}` and `{what}` in `{msg}`");
    }
    let missing_id =
        err_of(markers::strip("// BEGIN SOLUTION\n1\n// END SOLUTION\n", "y.rs", |r| release::stub(r, "y.rs")));
    assert!(missing_id.contains("y.rs:1:") && missing_id.contains("needs an exercise id"), "{missing_id}");
    let unknown = err_of(markers::strip("// BEGIN SOLUTION dcgan.nope\n1\n// END SOLUTION\n", "y.rs", |r| {
        release::stub(r, "y.rs")
    }));
    assert!(unknown.contains("`dcgan.nope` is not in"), "{unknown}");
    // A marker in a language the tool does not strip.
    let msg = err_of(release::student_file(
        "datasets/x.py",
        b"a = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION\n",
        "datasets/x.py",
    ));
    assert!(msg.contains("datasets/x.py:2:") && msg.contains("does not know how to strip"), "{msg}");
    let msg = err_of(release::student_file("gan_lab/run.sh", b"#!/bin/sh\n# BEGIN HIDDEN TESTS\n", "gan_lab/run.sh"));
    assert!(msg.contains("gan_lab/run.sh:2:"), "{msg}");
}

/// Every solution region of the master's library, by exercise id.
fn solution_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for path in release::tracked_files(root()).unwrap() {
        if path.ends_with(".rs") && path.starts_with("gan_lab/src/") {
            let text = std::fs::read_to_string(root().join(&path)).unwrap();
            for r in markers::regions(&text, &path).unwrap() {
                if r.kind == Kind::Solution {
                    ids.push(r.id.unwrap_or_else(|| panic!("{path}:{}: solution region without id", r.begin + 1)));
                }
            }
        }
    }
    ids
}

#[test]
fn every_exercise_has_a_solution_region_and_tests() {
    let ids = solution_ids();
    for e in EXERCISES {
        assert!(ids.iter().any(|id| id == e.id), "{}: no solution region in gan_lab/src", e.id);
        let tests = std::fs::read_to_string(root().join(format!("tests/exercises_{}.rs", e.lesson()))).unwrap();
        assert!(
            tests.contains(&format!("fn {}__", e.name())),
            "{}: no test named {}__* in tests/exercises_{}.rs",
            e.id,
            e.name(),
            e.lesson()
        );
    }
    for id in &ids {
        assert!(EXERCISES.iter().any(|e| e.id == id), "solution region for unregistered exercise {id}");
    }
    // Every exercise test belongs to an exercise.
    for lesson in gan_lab::course::lessons() {
        let tests = std::fs::read_to_string(root().join(format!("tests/exercises_{lesson}.rs"))).unwrap();
        for line in tests.lines().filter_map(|l| l.trim().strip_prefix("fn ")) {
            if let Some((name, _)) = line.split_once("__") {
                assert!(
                    EXERCISES.iter().any(|e| e.lesson() == lesson && e.name() == name),
                    "test fn {line}: no exercise {lesson}.{name}"
                );
            }
        }
    }
}

#[test]
fn student_notebooks_are_generated_and_current() {
    let stale = notebooks::write_student_notebooks(root(), true).unwrap();
    assert!(stale.is_empty(), "out of date (run `gan-lab notebooks student`): {stale:?}");
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {"tags": ["solution"]}, "source": "The answer is 42."},
            {"cell_type": "code", "metadata": {}, "execution_count": 3, "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}],
             "source": ["let a = 1;\n", "// BEGIN SOLUTION\n", "let b = a + 1;\n", "// END SOLUTION\n"]}
        ]
    });
    let student = notebooks::student_notebook(&nb, "n.ipynb").unwrap();
    let text = notebooks::to_text(&student);
    assert!(
        !text.contains("42") && !text.contains("a + 1") && text.contains(notebooks::ANSWER) && text.contains("todo!()"),
        "{text}"
    );
    assert_eq!(student["cells"][1]["outputs"], json!([]));
    assert_eq!(student["cells"][1]["execution_count"], serde_json::Value::Null);
}

#[test]
fn a_training_cell_tagged_reference_keeps_a_picture_of_the_instructors_full_run() {
    let training = |tags: serde_json::Value| {
        json!({"cell_type": "code", "id": "train", "metadata": {"tags": tags, "gan_lab": {"seconds": 84.4}},
               "execution_count": 5, "source": "let gan = train()?;\ngan",
               "outputs": [{"output_type": "display_data", "metadata": {},
                            "data": {"text/html": "<div><img src=\"data:image/png;base64,iVBORw0K+/=\"/><svg></svg></div>"}}]})
    };
    let notebook = |mode: &str, tags: serde_json::Value| {
        json!({"nbformat": 4, "nbformat_minor": 5,
               "metadata": {"gan_lab": {"mode": mode, "cpu": "AMD EPYC", "cores": 2}},
               "cells": [{"cell_type": "markdown", "metadata": {}, "source": "## Training"}, training(tags)]})
    };
    let student = notebooks::student_notebook(&notebook("full", json!(["reference"])), "n.ipynb").unwrap();
    let cells = student["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{student:#}");
    let reference = &cells[1];
    assert_eq!(reference["cell_type"], "markdown");
    assert_eq!(reference["attachments"]["reference.png"]["image/png"], "iVBORw0K+/=");
    let text: String = reference["source"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(text.contains("84 s on AMD EPYC, 2 cores") && text.contains("attachment:reference.png"), "{text}");
    assert_eq!(cells[2]["outputs"], json!([]), "the training cell itself starts empty");
    assert!(student["metadata"].get("gan_lab").is_none() && cells[2]["metadata"].get("gan_lab").is_none());
    // No picture from a quick run (20 steps), nor for an untagged cell.
    for nb in [notebook("quick", json!(["reference"])), notebook("full", json!([]))] {
        let student = notebooks::student_notebook(&nb, "n.ipynb").unwrap();
        assert_eq!(student["cells"].as_array().unwrap().len(), 2, "{student:#}");
    }
}

#[test]
fn malformed_notebooks_are_refused_by_name() {
    let msg = err_of(notebooks::student_notebook(&json!({"nbformat": 3, "cells": []}), "old.ipynb"));
    assert!(msg.contains("old.ipynb") && msg.contains("nbformat 4"), "{msg}");
    let msg = err_of(notebooks::student_notebook(&json!({"nbformat": 4, "cells": [{"cell_type": "code"}]}), "n.ipynb"));
    assert!(msg.contains("n.ipynb: cell 1 has no source"), "{msg}");
    let bad = json!({"nbformat": 4, "cells": [{"cell_type": "code", "metadata": {}, "source": "// BEGIN SOLUTION\nx\n", "outputs": []}]});
    let msg = err_of(notebooks::student_notebook(&bad, "n.ipynb"));
    assert!(msg.contains("n.ipynb (cell 1):1:") && msg.contains("never closed"), "{msg}");
    // A broken notebook in solutions/ stops the whole regeneration before anything is written.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("solutions")).unwrap();
    std::fs::create_dir_all(dir.path().join("notebooks")).unwrap();
    std::fs::write(dir.path().join("solutions/a.ipynb"), notebooks::to_text(&json!({"nbformat": 4, "cells": []})))
        .unwrap();
    std::fs::write(dir.path().join("solutions/b.ipynb"), "{ not json").unwrap();
    let msg = err_of(notebooks::write_student_notebooks(dir.path(), false));
    assert!(msg.contains("b.ipynb") && msg.contains("not valid notebook JSON"), "{msg}");
    assert!(!dir.path().join("notebooks/a.ipynb").exists(), "nothing written when one notebook is bad");
}

#[test]
fn release_refuses_a_non_empty_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let msg = err_of(release::release(root(), dir.path()));
    assert!(msg.contains("exists and is not empty"), "{msg}");
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(), "mine");
}
