//! `gan-lab autograde`: grades students' submissions against the master's tests, hidden ones
//! included.
//!
//! A submission is a student edition (a folder, a `.zip` or a `.tar.gz`). Only the exercise
//! bodies are taken from it (the lines between `// BEGIN EXERCISE <id>` and `// END EXERCISE`);
//! they replace the solution regions of a clean copy of the master, which is built and tested.
//! Everything else, tests included, comes from the master, so editing a test or the library
//! outside an exercise gains nothing (the feedback lists the files that differed).
//!
//! Submissions share one build tree and one target directory: the dependencies compile once, and
//! each submission recompiles only `gan_lab` and its exercise tests. Builds take turns (cargo
//! locks its target directory anyway); a submission's tests run while the next one builds. Each
//! test runs in its own process (`sandbox`). An exercise whose body does not compile is graded as
//! not written, with the compiler's message at the submission's own file and line, and the rest
//! are still graded.

use super::grade::{self, ExerciseResult, TestOutcome};
use super::markers::{self, Kind};
use super::release;
use super::sandbox::{self, Limits};
use super::Exercise;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What to grade and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lessons to grade (all when empty).
    pub lessons: Vec<String>,
    /// Submissions graded at once.
    pub jobs: usize,
    pub limits: Limits,
    /// Where the build tree and its target directory live (shared between runs).
    pub work: PathBuf,
}

/// One submission's grade.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The folder's or archive's name, without `.zip` / `.tar.gz`.
    pub submission: String,
    pub exercises: Vec<Graded>,
    /// Files of the submission that differ from the student edition outside the exercises.
    pub ignored_changes: Vec<String>,
    /// Things the student should know that belong to no single exercise.
    pub notes: Vec<String>,
}

/// One exercise of one submission.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    #[serde(flatten)]
    pub result: ExerciseResult,
    /// Names of the master's hidden checks among `result.tests`.
    pub hidden: Vec<String>,
}

impl Report {
    pub fn total(&self) -> u32 {
        self.exercises.iter().map(|g| g.result.earned).sum()
    }
}

impl Graded {
    /// What the student is told about this exercise: a visible check's hint, never a hidden
    /// check's name or message.
    pub fn feedback(&self) -> String {
        let r = &self.result;
        let hidden = |t: &TestOutcome| self.hidden.contains(&t.name);
        let visible_total = r.tests.iter().filter(|t| !hidden(t)).count();
        let hidden_total = r.tests.len() - visible_total;
        if r.passed() {
            return format!("passed ({visible_total} visible and {hidden_total} hidden checks)");
        }
        let mut out = String::new();
        if let Some(t) = r.tests.iter().find(|t| !t.passed && !hidden(t)) {
            out += &format!("failed `{}`: {}", t.name, t.hint.as_deref().unwrap_or("failed"));
        }
        let hidden_failed = r.tests.iter().filter(|t| !t.passed && hidden(t)).count();
        if hidden_failed > 0 {
            if !out.is_empty() {
                out += "; ";
            }
            out += &format!("hidden check failed ({hidden_failed} of {hidden_total})");
        }
        if out.is_empty() {
            out = "no tests found for this exercise".into();
        }
        out
    }
}

/// Grades `submissions` against the master at `master`, writing `grades.csv` and, per
/// submission, `feedback.md` and `results.json` (Gradescope's format) under `out`.
pub fn autograde(master: &Path, submissions: &[PathBuf], out: &Path, options: &Options) -> Result<Vec<Report>> {
    ensure!(!submissions.is_empty(), "no submissions given: name folders, .zip or .tar.gz files");
    let exercises = super::chosen(&options.lessons)?;
    let names = submission_names(submissions)?;
    crate::files::ensure_writable_dir(out)?;
    let master = Master::read(master)?;
    std::fs::create_dir_all(&options.work).with_context(|| format!("cannot create {}", options.work.display()))?;
    let _lock = lock(&options.work.join("autograde.lock"))?;
    let scratch = options.work.join(format!("scratch-{}", sandbox::token()));
    let builder = Mutex::new(Builder {
        master: &master,
        dir: options.work.join("workspace"),
        target: options.work.join("target"),
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; submissions.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..options.jobs.max(1).min(submissions.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= submissions.len() || failure.lock().unwrap().is_some() {
                    break;
                }
                let dir = scratch.join(format!("{i}"));
                let graded = grade_one(&submissions[i], &names[i], &dir, &master, &builder, &exercises, options.limits)
                    .and_then(|report| write_submission(out, &report, &exercises).map(|()| report))
                    .with_context(|| format!("grading {}", submissions[i].display()));
                let _ = std::fs::remove_dir_all(&dir);
                match graded {
                    Ok(report) => {
                        eprintln!(
                            "[autograde] {}: {}/{} points",
                            report.submission,
                            report.total(),
                            points(&exercises)
                        );
                        reports.lock().unwrap()[i] = Some(report);
                    }
                    Err(e) => *failure.lock().unwrap() = Some(e),
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    sandbox::remove_private_dir();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let reports: Vec<Report> = reports.into_inner().unwrap().into_iter().flatten().collect();
    crate::files::write_atomic(&out.join("grades.csv"), grades_csv(&reports, &exercises).as_bytes())?;
    Ok(reports)
}

fn points(exercises: &[&Exercise]) -> u32 {
    exercises.iter().map(|e| e.points).sum()
}

/// Each submission's name (its folder's or archive's), made unique.
fn submission_names(submissions: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for path in submissions {
        ensure!(path.exists(), "submission {}: no such file or folder", path.display());
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "submission".into());
        let stem = [".tar.gz", ".tgz", ".zip"].iter().find_map(|ext| file.strip_suffix(ext)).unwrap_or(&file);
        let clean: String =
            stem.chars().map(|c| if c.is_alphanumeric() || "-_.@".contains(c) { c } else { '_' }).collect();
        let mut name = clean.clone();
        let mut k = 2;
        while !seen.insert(name.clone()) {
            name = format!("{clean}-{k}");
            k += 1;
        }
        out.push(name);
    }
    Ok(out)
}

/// The master's files that a build needs, and what the graders need to know of them.
struct Master {
    /// Repository path → content, for the files of the build tree.
    files: BTreeMap<String, Vec<u8>>,
    /// Hidden test names, by lesson.
    hidden: BTreeMap<String, Vec<String>>,
    /// The master's `.venv` (libtorch for the build tree's `.cargo/config.toml`), if any.
    venv: Option<PathBuf>,
}

/// Master files a build of the exercise tests does not need.
const NOT_BUILT: &[&str] = &["notebooks/", "solutions/", "docs/", "tools/", ".ci/", "scripts/"];

impl Master {
    fn read(root: &Path) -> Result<Master> {
        let mut files = BTreeMap::new();
        for path in release::master_files(root)? {
            if NOT_BUILT.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            let Ok(bytes) = std::fs::read(root.join(&path)) else { continue };
            files.insert(path, bytes);
        }
        ensure!(
            files.contains_key("Cargo.toml") && files.contains_key("gan_lab/src/lib.rs"),
            "{}: not a gan_lab master (no Cargo.toml and gan_lab/src/lib.rs)",
            root.display()
        );
        let mut hidden = BTreeMap::new();
        for lesson in super::lessons() {
            let path = format!("tests/exercises_{lesson}.rs");
            let Some(bytes) = files.get(&path) else { continue };
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = text.lines().collect();
            let mut names = Vec::new();
            for r in markers::regions(&text, &path)?.iter().filter(|r| r.kind == Kind::HiddenTests) {
                for line in &lines[r.begin..=r.end] {
                    if let Some(rest) = line.trim_start().strip_prefix("fn ") {
                        names.push(rest.split(['(', '<']).next().unwrap_or("").trim().to_string());
                    }
                }
            }
            hidden.insert(lesson.to_string(), names);
        }
        let venv = root.join(".venv").canonicalize().ok();
        Ok(Master { files, hidden, venv })
    }

    /// The master's Rust files that hold solution regions.
    fn exercise_files(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.files.iter().filter(|(p, b)| {
            p.ends_with(".rs") && p.starts_with("gan_lab/src/") && String::from_utf8_lossy(b).contains("BEGIN SOLUTION")
        })
    }
}

/// The folder of a submission that holds `gan_lab/src`: the submission itself or, as archives
/// and Gradescope uploads often have it, one folder down.
fn edition_root(dir: &Path) -> Result<PathBuf> {
    if dir.join("gan_lab/src").is_dir() {
        return Ok(dir.to_path_buf());
    }
    let mut found = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for e in read.flatten() {
            if e.path().join("gan_lab/src").is_dir() {
                found.push(e.path());
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("{}: no student edition in it (expected a folder holding gan_lab/src)", dir.display()),
        _ => bail!("{}: {} student editions in it; expected one", dir.display(), found.len()),
    }
}

/// The submission as a folder: itself, or its archive unpacked into `dir`.
fn unpack(submission: &Path, dir: &Path) -> Result<PathBuf> {
    if submission.is_dir() {
        return edition_root(submission);
    }
    let name = submission.to_string_lossy();
    let into = dir.join("unpacked");
    std::fs::create_dir_all(&into)?;
    let file = std::fs::File::open(submission).with_context(|| format!("cannot open {name}"))?;
    if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{name}: not a zip archive"))?;
        zip.extract(&into).with_context(|| format!("{name}: cannot unpack"))?;
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(&into)
            .with_context(|| format!("{name}: not a readable .tar.gz"))?;
    } else {
        bail!("submission {name}: expected a folder, a .zip or a .tar.gz");
    }
    edition_root(&into).with_context(|| format!("submission {name}"))
}

/// Where a spliced exercise body landed: lines `begin..end` (0-based) of `file` in the build
/// tree, from line `from` (0-based) of the same file in the submission.
#[derive(Debug, Clone)]
struct Placed {
    id: String,
    file: String,
    begin: usize,
    end: usize,
    from: usize,
}

/// `master` (a library file with solution regions) with each region replaced by the student's
/// body of the same exercise (the k-th block of an id for the k-th region), or by the stub when
/// the exercise is in `stubbed` or its block is missing. Returns the text, where each body went,
/// and the ids whose block was missing.
fn splice(
    path: &str,
    master: &str,
    student: Option<&str>,
    stubbed: &BTreeSet<String>,
) -> Result<(String, Vec<Placed>, Vec<String>)> {
    let regions = markers::regions(master, path)?;
    let student_lines: Vec<&str> = student.map(|s| s.lines().collect()).unwrap_or_default();
    let mut blocks: BTreeMap<String, Vec<markers::Block>> = BTreeMap::new();
    for b in student.map(markers::exercise_blocks).unwrap_or_default() {
        blocks.entry(b.id.clone()).or_default().push(b);
    }
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let lines: Vec<&str> = master.lines().collect();
    let (mut out, mut placed, mut missing) = (Vec::<String>::new(), Vec::new(), Vec::new());
    let mut next = 0;
    for r in &regions {
        out.extend(lines[next..r.begin].iter().map(|l| l.to_string()));
        next = r.end + 1;
        if r.kind != Kind::Solution {
            out.extend(lines[r.begin..=r.end].iter().map(|l| l.to_string()));
            continue;
        }
        let id = r.id.clone().unwrap_or_default();
        let k = taken.entry(id.clone()).or_default();
        let block = blocks.get(&id).and_then(|b| b.get(*k)).cloned();
        *k += 1;
        match block {
            Some(b) if !stubbed.contains(&id) => {
                let begin = out.len();
                out.extend(student_lines[b.begin..b.end].iter().map(|l| l.to_string()));
                placed.push(Placed { id, file: path.to_string(), begin, end: out.len(), from: b.begin });
            }
            found => {
                if found.is_none() && !missing.contains(&id) {
                    missing.push(id.clone());
                }
                for l in release::stub(r, path)?.lines() {
                    out.push(format!("{}{l}", r.indent));
                }
            }
        }
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    let mut text = out.join("\n");
    if master.ends_with('\n') {
        text.push('\n');
    }
    Ok((text, placed, missing))
}

/// The files below `dir` (links included, not followed), as paths relative to it with `/`
/// between components; none when `dir` does not exist yet.
fn files_below(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut walk = vec![dir.to_path_buf()];
    while let Some(at) = walk.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else { continue };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", at.display()))?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let parts: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into()).collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The one build tree and target directory that submissions take turns in.
struct Builder<'a> {
    master: &'a Master,
    dir: PathBuf,
    target: PathBuf,
}

/// A submission's exercise tests, built and copied out of the shared tree.
struct Built {
    /// Test binary per lesson.
    executables: BTreeMap<String, PathBuf>,
    /// Exercises graded as not written because their code did not compile, with the message.
    broken: BTreeMap<String, String>,
    /// Exercises with no block in the submission.
    missing: Vec<String>,
}

impl Builder<'_> {
    /// Writes `files` into the build tree, leaving files whose content is unchanged untouched so
    /// that cargo rebuilds only what a submission changed, and removes the files the master no
    /// longer has (a module moved from `train.rs` to `train/mod.rs` must not leave both behind).
    fn sync(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        for stale in files_below(&self.dir)?.into_iter().filter(|f| !files.contains_key(f)) {
            if stale != ".venv" && stale != "Cargo.lock" {
                std::fs::remove_file(self.dir.join(&stale))
                    .with_context(|| format!("cannot remove {}", self.dir.join(&stale).display()))?;
            }
        }
        for (path, bytes) in files {
            let dest = self.dir.join(path);
            if std::fs::read(&dest).ok().as_deref() == Some(bytes.as_slice()) {
                continue;
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            crate::files::write_atomic(&dest, bytes)?;
        }
        if let Some(venv) = &self.master.venv {
            let link = self.dir.join(".venv");
            if std::fs::read_link(&link).ok().as_deref() != Some(venv.as_path()) {
                let _ = std::fs::remove_file(&link);
                #[cfg(unix)]
                std::os::unix::fs::symlink(venv, &link).with_context(|| format!("cannot link {}", link.display()))?;
            }
        }
        Ok(())
    }

    /// Splices `student` (a student edition's root) into the master, builds the tests of
    /// `lessons`, and copies the binaries into `keep`. An exercise whose body fails to compile
    /// is stubbed and the build repeated, so the others are still graded.
    fn build(&self, student: &Path, lessons: &[&str], keep: &Path) -> Result<std::result::Result<Built, String>> {
        let mut stubbed: BTreeSet<String> = BTreeSet::new();
        let mut broken: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let mut files = self.master.files.clone();
            let mut placed = Vec::new();
            let mut missing = Vec::new();
            for (path, bytes) in self.master.exercise_files() {
                let theirs = std::fs::read(student.join(path)).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
                let (text, p, m) = splice(path, &String::from_utf8_lossy(bytes), theirs.as_deref(), &stubbed)?;
                files.insert(path.clone(), text.into_bytes());
                placed.extend(p);
                missing.extend(m);
            }
            self.sync(&files)?;
            let envs = [("CARGO_TARGET_DIR", self.target.as_path()), ("GAN_LAB_CHECKOUT", self.dir.as_path())];
            match grade::build(&self.dir, lessons, &envs)? {
                Ok(exes) => {
                    std::fs::create_dir_all(keep)?;
                    let mut executables = BTreeMap::new();
                    for (lesson, exe) in lessons.iter().zip(exes) {
                        let dest = keep.join(format!("exercises_{lesson}"));
                        std::fs::copy(&exe, &dest).with_context(|| format!("cannot copy {}", exe.display()))?;
                        executables.insert(lesson.to_string(), dest);
                    }
                    return Ok(Ok(Built { executables, broken, missing }));
                }
                Err(errors) => {
                    let mut progress = false;
                    let mut outside = None;
                    for e in &errors {
                        let at = placed.iter().find(|p| p.file == e.file && p.begin < e.line && e.line <= p.end);
                        match at {
                            Some(p) => {
                                let line = p.from + (e.line - p.begin);
                                broken
                                    .entry(p.id.clone())
                                    .or_insert_with(|| format!("does not compile: {}:{line}: {}", p.file, e.message));
                                progress |= stubbed.insert(p.id.clone());
                            }
                            None => outside = outside.or(Some(e.clone())),
                        }
                    }
                    if !progress {
                        let e = outside.unwrap_or_else(|| errors[0].clone());
                        return Ok(Err(format!("the submission does not compile: {e}")));
                    }
                }
            }
        }
    }
}

fn grade_one(
    submission: &Path,
    name: &str,
    dir: &Path,
    master: &Master,
    builder: &Mutex<Builder>,
    exercises: &[&Exercise],
    limits: Limits,
) -> Result<Report> {
    std::fs::create_dir_all(dir)?;
    let mut notes = Vec::new();
    let student = match unpack(submission, dir) {
        Ok(root) => root,
        Err(e) => {
            let hint = format!("{e:#}");
            let exercises = exercises.iter().map(|e| graded(grade::not_built(e, &hint), &[])).collect();
            return Ok(Report { submission: name.into(), exercises, ignored_changes: vec![], notes: vec![hint] });
        }
    };
    let mut lessons: Vec<&str> = Vec::new();
    for e in exercises {
        if !lessons.contains(&e.lesson()) {
            lessons.push(e.lesson());
        }
    }
    let ignored_changes = ignored_changes(master, &student)?;
    let built = builder.lock().unwrap().build(&student, &lessons, &dir.join("bin"))?;
    if let Err(isolation) = sandbox::network_isolation() {
        notes.push(isolation.clone());
    }
    let built = match built {
        Ok(b) => b,
        Err(message) => {
            notes.push(message.clone());
            let exercises = exercises.iter().map(|e| graded(grade::not_built(e, &message), &[])).collect();
            return Ok(Report { submission: name.into(), exercises, ignored_changes, notes });
        }
    };
    for id in &built.missing {
        notes.push(format!(
            "exercise {id}: its `// BEGIN EXERCISE {id}` … `// END EXERCISE` lines were not found; graded as not written"
        ));
    }
    let mut out = Vec::new();
    for lesson in &lessons {
        let exe = &built.executables[*lesson];
        let names = grade::list_tests(exe)?;
        let hidden = master.hidden.get(*lesson).map(Vec::as_slice).unwrap_or_default();
        for e in exercises.iter().filter(|e| e.lesson() == *lesson) {
            let result = match built.broken.get(e.id) {
                Some(message) => grade::not_built(e, message),
                None => grade::run_exercise(exe, &names, e, dir, limits)?,
            };
            out.push(graded(result, hidden));
        }
    }
    Ok(Report { submission: name.into(), exercises: out, ignored_changes, notes })
}

fn graded(result: ExerciseResult, hidden: &[String]) -> Graded {
    let hidden = result.tests.iter().filter(|t| hidden.contains(&t.name)).map(|t| t.name.clone()).collect();
    Graded { result, hidden }
}

/// The submission's library, test and manifest files that differ from the student edition
/// outside the exercise blocks (their changes are not graded).
fn ignored_changes(master: &Master, student: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (path, bytes) in &master.files {
        let graded = path.starts_with("gan_lab/") || path.starts_with("tests/") || path == "Cargo.toml";
        if !graded {
            continue;
        }
        let Some(edition) = release::student_file(path, bytes, path)? else { continue };
        match std::fs::read(student.join(path)) {
            Err(_) => out.push(format!("{path} (missing)")),
            Ok(theirs) if without_blocks(&theirs) != without_blocks(&edition) => out.push(path.clone()),
            Ok(_) => {}
        }
    }
    Ok(out)
}

/// A file's lines with the bodies of its exercise blocks left out.
fn without_blocks(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let blocks = markers::exercise_blocks(&text);
    text.lines()
        .enumerate()
        .filter(|(i, _)| !blocks.iter().any(|b| b.begin <= *i && *i < b.end))
        .map(|(_, l)| l.trim_end().to_string())
        .collect()
}

/// `DIR/<submission>/feedback.md` and `results.json`.
fn write_submission(out: &Path, report: &Report, exercises: &[&Exercise]) -> Result<()> {
    let dir = out.join(&report.submission);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::files::write_atomic(&dir.join("feedback.md"), feedback_md(report, exercises).as_bytes())?;
    let json = serde_json::to_string_pretty(&gradescope_results(report))?;
    crate::files::write_atomic(&dir.join("results.json"), json.as_bytes())
}

fn feedback_md(report: &Report, exercises: &[&Exercise]) -> String {
    let mut s = format!("# {}: {} of {} points\n\n", report.submission, report.total(), points(exercises));
    s += "| exercise | points | result |\n| --- | --- | --- |\n";
    for g in &report.exercises {
        let r = &g.result;
        s += &format!("| `{}` | {}/{} | {} |\n", r.id, r.earned, r.points, g.feedback().replace('|', "\\|"));
    }
    if !report.ignored_changes.is_empty() {
        s += "\nOnly the code between `// BEGIN EXERCISE` and `// END EXERCISE` is graded. These files \
              differ from the student edition elsewhere, and those changes were not graded:\n\n";
        for f in &report.ignored_changes {
            s += &format!("- `{f}`\n");
        }
    }
    if !report.notes.is_empty() {
        s += "\nNotes:\n\n";
        for n in &report.notes {
            s += &format!("- {n}\n");
        }
    }
    s
}

/// Gradescope's autograder results: the score, and one visible test entry per exercise.
pub fn gradescope_results(report: &Report) -> serde_json::Value {
    let tests: Vec<_> = report
        .exercises
        .iter()
        .map(|g| {
            serde_json::json!({
                "name": g.result.id,
                "score": g.result.earned,
                "max_score": g.result.points,
                "output": g.feedback(),
                "visibility": "visible",
            })
        })
        .collect();
    let mut output = String::new();
    if !report.ignored_changes.is_empty() {
        output += &format!("Not graded (outside the exercises): {}\n", report.ignored_changes.join(", "));
    }
    for n in &report.notes {
        output += &format!("{n}\n");
    }
    serde_json::json!({ "score": report.total(), "output": output, "tests": tests })
}

fn grades_csv(reports: &[Report], exercises: &[&Exercise]) -> String {
    let mut s = String::from("submission");
    for e in exercises {
        s += &format!(",{}", e.id);
    }
    s += ",total\n";
    for r in reports {
        s += &csv_field(&r.submission);
        for e in exercises {
            let earned = r.exercises.iter().find(|g| g.result.id == e.id).map_or(0, |g| g.result.earned);
            s += &format!(",{earned}");
        }
        s += &format!(",{}\n", r.total());
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// An exclusive lock on `path` for as long as the file stays open: one autograde at a time per
/// build tree.
fn lock(path: &Path) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            eprintln!("[autograde] waiting for another autograde using {}", path.display());
            // SAFETY: as above, blocking this time.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "fn a() -> i32 {\n    // BEGIN SOLUTION dcgan.init\n    1\n    // END SOLUTION\n}\n\
                          fn b() -> i32 {\n    // BEGIN SOLUTION dcgan.interpolate\n    2\n    // END SOLUTION\n}\n";

    fn student(a: &str, b: &str) -> String {
        format!(
            "fn a() -> i32 {{\n    // BEGIN EXERCISE dcgan.init: yours\n{a}    // END EXERCISE\n}}\n\
             // a change outside the exercises\n\
             fn b() -> i32 {{\n    // BEGIN EXERCISE dcgan.interpolate: yours\n{b}    // END EXERCISE\n}}\n"
        )
    }

    #[test]
    fn the_build_tree_keeps_exactly_the_masters_files() {
        let work = tempfile::tempdir().unwrap();
        let master = Master { files: BTreeMap::new(), hidden: BTreeMap::new(), venv: None };
        let builder =
            Builder { master: &master, dir: work.path().join("workspace"), target: work.path().join("target") };
        let files = |paths: &[&str]| paths.iter().map(|p| (p.to_string(), p.as_bytes().to_vec())).collect();
        builder.sync(&files(&["Cargo.toml", "gan_lab/src/lib.rs", "gan_lab/src/train.rs"])).unwrap();
        builder.sync(&files(&["Cargo.toml", "gan_lab/src/lib.rs", "gan_lab/src/train/mod.rs"])).unwrap();
        assert_eq!(
            files_below(&builder.dir).unwrap(),
            ["Cargo.toml", "gan_lab/src/lib.rs", "gan_lab/src/train/mod.rs"],
            "a file the master moved is gone from the build tree"
        );
    }

    #[test]
    fn splice_takes_exactly_the_bodies_and_says_where_they_went() {
        let theirs = student("    let x = 40;\n    x + 1\n", "    7\n");
        let (text, placed, missing) = splice("f.rs", MASTER, Some(&theirs), &BTreeSet::new()).unwrap();
        assert_eq!(text, "fn a() -> i32 {\n    let x = 40;\n    x + 1\n}\nfn b() -> i32 {\n    7\n}\n");
        assert!(missing.is_empty());
        let at: Vec<_> = placed.iter().map(|p| (p.id.as_str(), p.begin, p.end, p.from)).collect();
        // Spliced lines 1..3 (0-based) came from the student's lines 2 on, b's body from line 9.
        assert_eq!(at, [("dcgan.init", 1, 3, 2), ("dcgan.interpolate", 5, 6, 9)]);
    }

    #[test]
    fn a_stubbed_or_missing_exercise_gets_the_stub() {
        let theirs = student("    1\n", "    2\n").replace("// END EXERCISE\n}\n// a", "}\n// a");
        let stubbed = BTreeSet::from(["dcgan.interpolate".to_string()]);
        let (text, placed, missing) = splice("f.rs", MASTER, Some(&theirs), &stubbed).unwrap();
        // dcgan.init's block lost its END line: not found; dcgan.interpolate is stubbed.
        assert_eq!(missing, ["dcgan.init"]);
        assert!(placed.is_empty());
        assert_eq!(text.matches("todo!(\"exercise dcgan.").count(), 2, "{text}");
        let (_, _, missing) = splice("f.rs", MASTER, None, &BTreeSet::new()).unwrap();
        assert_eq!(missing, ["dcgan.init", "dcgan.interpolate"]);
    }

    #[test]
    fn hidden_checks_are_reported_without_their_names_or_messages() {
        let test = |name: &str, passed: bool, hint: &str| TestOutcome {
            name: name.into(),
            passed,
            hint: (!passed).then(|| hint.into()),
            seconds: 0.0,
        };
        let result = ExerciseResult {
            id: "dcgan.init",
            points: 1,
            earned: 0,
            tests: vec![test("init__visible", true, ""), test("init__secret", false, "secret message")],
        };
        let g = graded(result, &["init__secret".to_string()]);
        assert_eq!(g.feedback(), "hidden check failed (1 of 1)");
        let mut shown = g.clone();
        shown.result.tests[0] = test("init__visible", false, "look at the mean");
        assert_eq!(shown.feedback(), "failed `init__visible`: look at the mean; hidden check failed (1 of 1)");
    }
}
