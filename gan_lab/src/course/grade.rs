//! `gan-lab grade`: runs each exercise's tests in its own process (see `sandbox`), so a function
//! that panics, loops forever, exits or returns NaN fails its own exercise only, and prints a
//! table of exercises, points and a one-line hint from the first failing check. The building
//! blocks here serve `autograde` too.

use super::sandbox::{self, Limits};
use super::{Exercise, EXERCISES};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// A compiler error, where it points.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// The file as cargo names it (relative to the workspace), and its 1-based line.
    pub file: String,
    pub line: usize,
    /// The error's first line, e.g. `error[E0308]: mismatched types`.
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// `cargo test --release --no-run` of the exercise tests of `lessons` in the workspace `root`:
/// the test binary of each lesson, or the compiler's errors. The command runs without the
/// `CARGO_*` variables and the `OUT_DIR` of a `cargo run` that started this process: build
/// scripts watch them (ring watches both), and inheriting them made every `cargo run … grade`
/// rebuild ring, rustls, ureq and gan_lab twice, once for each side.
///
/// A failure that no source line explains (the linker's: a full disk, a killed `ld`) is tried
/// once more before it is reported, with the linker's own last words in the message: it says
/// nothing about the code being graded.
pub fn build(
    root: &Path,
    lessons: &[&str],
    envs: &[(&str, &Path)],
) -> Result<std::result::Result<Vec<PathBuf>, Vec<CompileError>>> {
    match build_once(root, lessons, envs)? {
        Err(errors) if errors.iter().all(|e| e.file.is_empty()) => build_once(root, lessons, envs),
        built => Ok(built),
    }
}

fn build_once(
    root: &Path,
    lessons: &[&str],
    envs: &[(&str, &Path)],
) -> Result<std::result::Result<Vec<PathBuf>, Vec<CompileError>>> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && !matches!(&*key, "CARGO_HOME" | "CARGO_TARGET_DIR")) || key == "OUT_DIR" {
            cmd.env_remove(&*key);
        }
    }
    cmd.current_dir(root).args(["test", "--release", "--no-run", "--message-format=json"]);
    for lesson in lessons {
        cmd.arg("--test").arg(format!("exercises_{lesson}"));
    }
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let out = cmd.stderr(Stdio::piped()).output().context("cannot run cargo")?;
    let mut exes = vec![None; lessons.len()];
    let mut errors = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" {
            let target = msg["target"]["name"].as_str().unwrap_or("");
            if let (Some(i), Some(exe)) =
                (lessons.iter().position(|l| target == format!("exercises_{l}")), msg["executable"].as_str())
            {
                exes[i] = Some(PathBuf::from(exe));
            }
        }
        if msg["reason"] == "compiler-message" && msg["message"]["level"] == "error" {
            let m = &msg["message"];
            let span = m["spans"].as_array().and_then(|s| s.iter().find(|s| s["is_primary"] == true).cloned());
            let code = m["code"]["code"].as_str().map(|c| format!("[{c}]")).unwrap_or_default();
            let mut message = format!("error{code}: {}", m["message"].as_str().unwrap_or(""));
            if span.is_none() {
                // The linker's complaint is the last line of its notes (`ld: ...`, `collect2: ...`).
                let notes = m["children"].as_array().into_iter().flatten().filter_map(|c| c["message"].as_str());
                if let Some(last) = notes.flat_map(str::lines).map(str::trim).rfind(|l| !l.is_empty()) {
                    message = format!("{message} ({})", last.chars().take(300).collect::<String>());
                }
            }
            errors.push(CompileError {
                file: span.as_ref().and_then(|s| s["file_name"].as_str()).unwrap_or("").to_string(),
                line: span.as_ref().and_then(|s| s["line_start"].as_u64()).unwrap_or(0) as usize,
                message,
            });
        }
    }
    if errors.is_empty() && exes.iter().all(Option::is_some) {
        return Ok(Ok(exes.into_iter().flatten().collect()));
    }
    if errors.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| l.starts_with("error")).unwrap_or("the exercise tests do not build");
        errors.push(CompileError { file: String::new(), line: 0, message: first.to_string() });
    }
    Ok(Err(errors))
}

/// The test names of a libtest binary.
pub fn list_tests(exe: &Path) -> Result<Vec<String>> {
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect())
}

/// The tests of `exe` that belong to exercise `e` (named `<function>__<check>`).
pub fn tests_of<'a>(names: &'a [String], e: &Exercise) -> impl Iterator<Item = &'a String> {
    let prefix = format!("{}__", e.name());
    names.iter().filter(move |n| n.starts_with(&prefix))
}

/// The result of an exercise whose tests could not be run.
pub fn not_built(e: &Exercise, hint: &str) -> ExerciseResult {
    let t = TestOutcome { name: format!("{}__builds", e.name()), passed: false, hint: Some(hint.into()), seconds: 0.0 };
    ExerciseResult { id: e.id, points: e.points, earned: 0, tests: vec![t] }
}

/// Runs the tests of `e` from `names` in `exe`, each in its own process.
pub fn run_exercise(exe: &Path, names: &[String], e: &Exercise, cwd: &Path, limits: Limits) -> Result<ExerciseResult> {
    let tests = tests_of(names, e)
        .map(|n| {
            let o = sandbox::run_test(exe, n, cwd, limits)?;
            Ok(TestOutcome { name: n.clone(), passed: o.passed, hint: o.hint, seconds: o.seconds })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut r = ExerciseResult { id: e.id, points: e.points, earned: 0, tests };
    r.earned = if r.passed() { r.points } else { 0 };
    Ok(r)
}

/// What the grader's `cargo` needs beyond the environment it inherits: the checkout's name
/// (GAN_LAB_CHECKOUT) and, when nothing chose a target directory but the set-up's shared folder is
/// known (a notebook's kernel names GAN_LAB_HOME), the one scripts/setup.sh would choose: `target`
/// for the master, `target-student` for a student edition.
pub fn cargo_env(root: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut env = vec![("GAN_LAB_CHECKOUT", root.to_path_buf())];
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        if let Some(home) = std::env::var_os("GAN_LAB_HOME") {
            let dir = if root.join("solutions").is_dir() { "target" } else { "target-student" };
            env.push(("CARGO_TARGET_DIR", PathBuf::from(home).join(dir)));
        }
    }
    env
}

/// Grades the exercises of `lessons` (all lessons when empty) in the workspace `root`, its own
/// tests on its own code (the student's check; `autograde` is the instructor's).
pub fn grade(root: &Path, lessons: &[String], limits: Limits) -> Result<Vec<ExerciseResult>> {
    super::chosen(lessons)?;
    let env = cargo_env(root);
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let mut results = Vec::new();
    for lesson in super::lessons() {
        if !lessons.is_empty() && !lessons.iter().any(|l| l == lesson) {
            continue;
        }
        let exercises = EXERCISES.iter().filter(|e| e.lesson() == lesson);
        match build(root, &[lesson], &env)? {
            Err(errors) => {
                let hint = format!("does not compile: {}", errors[0]);
                results.extend(exercises.map(|e| not_built(e, &hint)));
            }
            Ok(exes) => {
                let names = list_tests(&exes[0])?;
                for e in exercises {
                    results.push(run_exercise(&exes[0], &names, e, root, limits)?);
                }
            }
        }
    }
    sandbox::remove_private_dir();
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
