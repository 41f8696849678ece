//! `gan-lab release --out DIR`: the student edition of the master repository.
//!
//! Solution regions become `todo!("exercise <id>: <summary>")`, hidden tests disappear, the
//! instructors' notebooks become `notebooks/` (answers stripped, outputs cleared), the students'
//! README replaces the master's, and files only instructors need (solutions, the library's own
//! test suite, CI, docs/ and its pictures) stay behind. The edition is
//! written beside `DIR` and renamed into place, so a failure leaves nothing half-written.

use super::markers::{self, Kind, Region};
use super::{exercise, notebooks};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Files of the master that the student edition leaves out (prefixes of repository paths).
const INSTRUCTOR_ONLY: &[&str] =
    &["solutions/", "notebooks/", ".ci/", "tools/", "tests/reference/", "tests/browser/", "docs/", "README.md"];

/// The student edition's own README (set-up, lessons, exercises, grading; no results that answer
/// a question), which becomes its `README.md`.
const STUDENT_README: &str = "docs/student-README.md";

/// Whether a repository file goes into the student edition as it is (after stripping markers).
fn shipped(path: &str) -> bool {
    if INSTRUCTOR_ONLY.iter().any(|p| path.starts_with(p)) && path != STUDENT_README {
        return false;
    }
    // Of the tests, students get the exercise tests and their helpers.
    match path.strip_prefix("tests/") {
        Some(rest) => rest.starts_with("exercises_") || rest.starts_with("common/"),
        None => true,
    }
}

/// The `todo!` that replaces a solution region in the student edition.
pub fn stub(region: &Region, what: &str) -> Result<String> {
    let Some(id) = &region.id else {
        bail!(
            "{what}:{}: `// BEGIN SOLUTION` needs an exercise id, e.g. `// BEGIN SOLUTION dcgan.generator`",
            region.begin + 1
        );
    };
    let Some(e) = exercise(id) else {
        bail!("{what}:{}: exercise `{id}` is not in gan_lab::course::EXERCISES", region.begin + 1);
    };
    Ok(format!(
        "// {} {}: your code goes between this line and `{}` (the grader takes exactly that)\n\
         todo!(\"exercise {}: {}\")\n// {}",
        markers::BEGIN_EXERCISE,
        e.id,
        markers::END_EXERCISE,
        e.id,
        e.summary,
        markers::END_EXERCISE
    ))
}

/// The student version of one file of the master, or `None` if it is not shipped.
pub fn student_file(path: &str, bytes: &[u8], what: &str) -> Result<Option<Vec<u8>>> {
    if !shipped(path) {
        return Ok(None);
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return Ok(Some(bytes.to_vec())) };
    if path.ends_with(".rs") {
        let mut stripped = markers::strip(text, what, |r| stub(r, what))?;
        if path == LIBRARY_ROOT {
            stripped = allow_unused_while_stubbed(&stripped);
        }
        return Ok(Some(stripped.into_bytes()));
    }
    if let Some(line) = text.lines().position(markers::looks_like_marker) {
        bail!(
            "{what}:{}: a marker in a file the tool does not know how to strip (it knows .rs files and notebooks)",
            line + 1
        );
    }
    if path.ends_with("Cargo.toml") {
        return Ok(Some(drop_unshipped_tests(text).into_bytes()));
    }
    Ok(Some(bytes.to_vec()))
}

/// The library's root module.
const LIBRARY_ROOT: &str = "gan_lab/src/lib.rs";

/// Stubs leave parameters and imports unused until the student writes the exercise: the
/// edition's library allows that, so it builds without warnings from the start.
fn allow_unused_while_stubbed(lib: &str) -> String {
    let docs: usize = lib.lines().take_while(|l| l.starts_with("//!")).map(|l| l.len() + 1).sum();
    let attr = "\n// Student edition: exercise stubs leave parameters and imports unused until they are written.\n\
                #![allow(unused_variables, unused_imports, dead_code, unreachable_code)]\n";
    format!("{}{attr}{}", &lib[..docs], &lib[docs..])
}

/// Removes `[[test]]` sections whose `path` is not shipped.
fn drop_unshipped_tests(manifest: &str) -> String {
    let mut out = String::new();
    for (i, section) in manifest.split("\n[[test]]").enumerate() {
        if i == 0 {
            out.push_str(section);
            continue;
        }
        let path = section.lines().find_map(|l| l.trim().strip_prefix("path = ")).map(|p| p.trim_matches('"'));
        let repo_path = path.map(|p| p.trim_start_matches("../"));
        if repo_path.is_none_or(shipped) {
            out.push_str("\n[[test]]");
            out.push_str(section);
        }
    }
    out
}

/// The master's tracked files (paths relative to `master`).
pub fn tracked_files(master: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(master)
        .args(["ls-files", "-z"])
        .output()
        .context("running git ls-files (the master must be a git checkout)")?;
    ensure!(
        out.status.success(),
        "{}: not a git checkout: {}",
        master.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// The master's files: git's list in a checkout, else every file but builds and envs (the
/// Gradescope bundle is an unpacked folder, not a checkout).
pub fn master_files(root: &Path) -> Result<Vec<String>> {
    if root.join(".git").exists() {
        return tracked_files(root);
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.as_os_str().is_empty() && matches!(name.as_str(), "target" | ".venv" | ".git") {
                continue;
            }
            let path = rel.join(&name);
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What a release wrote.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub notebooks: usize,
    pub stubs: usize,
}

/// Writes the student edition of `master` to `out`, which must not exist or be empty.
pub fn release(master: &Path, out: &Path) -> Result<Summary> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        ensure!(empty, "output directory {} exists and is not empty: choose a new one", out.display());
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::files::ensure_writable_dir(parent)?;
    let tmp = crate::files::temp_path(out);
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_edition(master, &tmp);
    match result {
        Ok(summary) => {
            if out.exists() {
                std::fs::remove_dir(out).with_context(|| format!("cannot replace {}", out.display()))?;
            }
            std::fs::rename(&tmp, out).with_context(|| format!("cannot create {}", out.display()))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn write_edition(master: &Path, dir: &Path) -> Result<Summary> {
    let mut summary = Summary::default();
    for path in master_files(master)? {
        let src = master.join(&path);
        let Ok(bytes) = std::fs::read(&src) else { continue }; // deleted in the working tree
        let what = src.display().to_string();
        if let Some(content) = student_file(&path, &bytes, &what)? {
            if path.ends_with(".rs") {
                summary.stubs += count_stubs(&bytes, &what)?;
            }
            write(dir, if path == STUDENT_README { "README.md" } else { &path }, &content)?;
            summary.files += 1;
        }
    }
    for (name, text) in notebooks::student_edition(&master.join("solutions"))? {
        write(dir, &format!("notebooks/{name}"), text.as_bytes())?;
        summary.notebooks += 1;
    }
    keep_executable_bits(master, dir)?;
    Ok(summary)
}

fn count_stubs(bytes: &[u8], what: &str) -> Result<usize> {
    let text = String::from_utf8_lossy(bytes);
    Ok(markers::regions(&text, what)?.iter().filter(|r| r.kind == Kind::Solution).count())
}

fn write(dir: &Path, path: &str, content: &[u8]) -> Result<()> {
    let dest: PathBuf = dir.join(path);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&dest, content).with_context(|| format!("cannot write {}", dest.display()))
}

/// Scripts stay runnable in the edition.
fn keep_executable_bits(master: &Path, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in ["scripts"] {
        let Ok(read) = std::fs::read_dir(dir.join(entry)) else { continue };
        for f in read.flatten() {
            let src = master.join(entry).join(f.file_name());
            if let Ok(meta) = std::fs::metadata(&src) {
                std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(meta.permissions().mode()))?;
            }
        }
    }
    Ok(())
}
