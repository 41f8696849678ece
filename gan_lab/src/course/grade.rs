//! `gan-lab grade`: runs each exercise's tests in its own process with a time limit, so a
//! function that panics, loops forever or returns NaN fails its own exercise only, and prints a
//! table of exercises, points and a one-line hint from the first failing check.

use super::{Exercise, EXERCISES};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub name: String,
    pub passed: bool,
    /// First line of the failure, for the student.
    pub hint: Option<String>,
    pub seconds: f64,
}

/// One exercise's result: its points only when every one of its tests passes.
#[derive(Debug, Clone, Serialize)]
pub struct ExerciseResult {
    pub id: &'static str,
    pub points: u32,
    pub earned: u32,
    pub tests: Vec<TestOutcome>,
}

impl ExerciseResult {
    pub fn passed(&self) -> bool {
        !self.tests.is_empty() && self.tests.iter().all(|t| t.passed)
    }

    pub fn hint(&self) -> Option<&str> {
        if self.tests.is_empty() {
            return Some("no tests found for this exercise");
        }
        self.tests.iter().find(|t| !t.passed).and_then(|t| t.hint.as_deref())
    }
}

/// Builds the exercise tests of `lesson` in the workspace `root`; returns the test binary, or the
/// compiler's first error.
fn build(root: &Path, lesson: &str) -> Result<std::result::Result<PathBuf, String>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["test", "--release", "--no-run", "--message-format=json-render-diagnostics", "--test"])
        .arg(format!("exercises_{lesson}"))
        .stderr(Stdio::piped())
        .output()
        .context("cannot run cargo")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == format!("exercises_{lesson}") {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(Ok(PathBuf::from(exe)));
            }
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_error = stderr.lines().find(|l| l.starts_with("error")).unwrap_or("the exercise tests do not build");
    Ok(Err(format!("does not compile: {first_error}")))
}

fn list_tests(exe: &Path) -> Result<Vec<String>> {
    let out = Command::new(exe).args(["--list", "--format", "terse"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect())
}

/// The failure's first useful line: the panic message, with `todo!` stubs said plainly.
fn hint_from(output: &str) -> String {
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let message = lines.next().unwrap_or("").trim();
            if let Some(rest) = message.strip_prefix("not yet implemented: ") {
                return format!("not implemented yet ({rest})");
            }
            return message.chars().take(160).collect();
        }
    }
    "failed without a panic message".into()
}

fn run_test(exe: &Path, name: &str, timeout: Duration) -> Result<TestOutcome> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["--exact", name, "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = reader.join().unwrap_or_default();
    let seconds = started.elapsed().as_secs_f64();
    let (passed, hint) = match status {
        None => (false, Some(format!("stopped after {} s: an endless loop?", timeout.as_secs()))),
        Some(s) if s.success() && output.contains("1 passed") => (true, None),
        Some(_) => (false, Some(hint_from(&output))),
    };
    Ok(TestOutcome { name: name.to_string(), passed, hint, seconds })
}

/// Grades the exercises of `lessons` (all lessons when empty) in the workspace `root`.
pub fn grade(root: &Path, lessons: &[String], timeout: Duration) -> Result<Vec<ExerciseResult>> {
    let mut results = Vec::new();
    for lesson in super::lessons() {
        if !lessons.is_empty() && !lessons.iter().any(|l| l == lesson) {
            continue;
        }
        let exercises: Vec<&Exercise> = EXERCISES.iter().filter(|e| e.lesson() == lesson).collect();
        match build(root, lesson)? {
            Err(hint) => {
                for e in exercises {
                    let t = TestOutcome {
                        name: format!("{}__builds", e.name()),
                        passed: false,
                        hint: Some(hint.clone()),
                        seconds: 0.0,
                    };
                    results.push(ExerciseResult { id: e.id, points: e.points, earned: 0, tests: vec![t] });
                }
            }
            Ok(exe) => {
                let names = list_tests(&exe)?;
                for e in exercises {
                    let prefix = format!("{}__", e.name());
                    let tests = names
                        .iter()
                        .filter(|n| n.starts_with(&prefix))
                        .map(|n| run_test(&exe, n, timeout))
                        .collect::<Result<Vec<_>>>()?;
                    let mut r = ExerciseResult { id: e.id, points: e.points, earned: 0, tests };
                    r.earned = if r.passed() { r.points } else { 0 };
                    results.push(r);
                }
            }
        }
    }
    Ok(results)
}

/// The results as a table, one exercise per line, with the total.
pub fn table(results: &[ExerciseResult]) -> String {
    let mut out = format!("{:<38} {:>7}  {:<6}  {}\n", "exercise", "points", "result", "hint");
    for r in results {
        let passed = r.tests.iter().filter(|t| t.passed).count();
        out += &format!(
            "{:<38} {:>3}/{:<3}  {:<6}  {}\n",
            r.id,
            r.earned,
            r.points,
            if r.passed() { "passed" } else { "FAILED" },
            if r.passed() {
                format!("{passed}/{} checks", r.tests.len())
            } else {
                format!("{passed}/{} checks; {}", r.tests.len(), r.hint().unwrap_or(""))
            }
        );
    }
    let (earned, total): (u32, u32) = results.iter().fold((0, 0), |(e, t), r| (e + r.earned, t + r.points));
    let passed = results.iter().filter(|r| r.passed()).count();
    out += &format!("total {earned}/{total} points; {passed} passed, {} failed\n", results.len() - passed);
    out
}
