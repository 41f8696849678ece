//! Finding and replacing the solution and hidden-test regions, with errors that name the file
//! and line for unbalanced, nested or unknown markers.

use anyhow::{bail, Result};

pub const BEGIN_SOLUTION: &str = "BEGIN SOLUTION";
pub const END_SOLUTION: &str = "END SOLUTION";
pub const BEGIN_HIDDEN: &str = "BEGIN HIDDEN TESTS";
pub const END_HIDDEN: &str = "END HIDDEN TESTS";
/// The lines around an exercise body in the student edition: the instructor's grader takes the
/// code between them, and only that, from a submission.
pub const BEGIN_EXERCISE: &str = "BEGIN EXERCISE";
pub const END_EXERCISE: &str = "END EXERCISE";

/// A marked region: lines `begin..=end` (0-based) of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub kind: Kind,
    pub begin: usize,
    pub end: usize,
    /// The exercise id after `BEGIN SOLUTION`, if any.
    pub id: Option<String>,
    pub indent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Solution,
    HiddenTests,
}

const MARKERS: [&str; 4] = [BEGIN_HIDDEN, END_HIDDEN, BEGIN_SOLUTION, END_SOLUTION];

/// The marker a Rust line holds: a `//` line comment (not a doc comment) starting with one.
fn rust_marker(line: &str) -> Option<(&'static str, &str)> {
    let t = line.trim_start();
    if t.starts_with("///") || t.starts_with("//!") {
        return None;
    }
    let rest = t.strip_prefix("//")?.trim_start();
    MARKERS.into_iter().find_map(|m| rest.strip_prefix(m).map(|after| (m, after.trim())))
}

/// Whether a line of any language looks like a marker comment (`#`, `//`, `--`, `;`, `%`, `<!--`).
pub fn looks_like_marker(line: &str) -> bool {
    let t = line.trim_start();
    ["<!--", "//", "#", "--", ";", "%"]
        .iter()
        .any(|c| t.strip_prefix(c).is_some_and(|rest| MARKERS.iter().any(|m| rest.trim_start().starts_with(m))))
}

/// The regions of `text`, a Rust source or Rust notebook cell, checked for balance and nesting.
/// Markers are `//` line comments. `what` names the file (and cell) in errors.
pub fn regions(text: &str, what: &str) -> Result<Vec<Region>> {
    let mut out = Vec::new();
    let mut open: Option<Region> = None;
    for (i, line) in text.lines().enumerate() {
        let Some((marker, rest)) = rust_marker(line) else {
            if looks_like_marker(line) {
                bail!("{what}:{}: markers in Rust code are `//` line comments: {}", i + 1, line.trim());
            }
            continue;
        };
        let indent = line[..line.len() - line.trim_start().len()].to_string();
        match (marker, &open) {
            (BEGIN_SOLUTION | BEGIN_HIDDEN, Some(o)) => bail!(
                "{what}:{}: `{marker}` inside the region opened at line {}: regions cannot nest",
                i + 1,
                o.begin + 1
            ),
            (BEGIN_SOLUTION, None) => {
                let id = (!rest.is_empty()).then(|| rest.to_string());
                open = Some(Region { kind: Kind::Solution, begin: i, end: i, id, indent });
            }
            (BEGIN_HIDDEN, None) => {
                open = Some(Region { kind: Kind::HiddenTests, begin: i, end: i, id: None, indent });
            }
            (_, None) => bail!("{what}:{}: `{marker}` without a matching BEGIN", i + 1),
            (end, Some(o)) => {
                let expected = if o.kind == Kind::Solution { END_SOLUTION } else { END_HIDDEN };
                if end != expected {
                    bail!(
                        "{what}:{}: `{end}` closes the region opened at line {}, which needs `{expected}`",
                        i + 1,
                        o.begin + 1
                    );
                }
                let mut region = open.take().expect("open region");
                region.end = i;
                out.push(region);
            }
        }
    }
    if let Some(o) = open {
        bail!("{what}:{}: region opened here is never closed", o.begin + 1);
    }
    Ok(out)
}

/// `text` with each solution region replaced by `stub(region)` (indented like the marker) and
/// each hidden-test region removed.
pub fn strip(text: &str, what: &str, stub: impl Fn(&Region) -> Result<String>) -> Result<String> {
    let regions = regions(text, what)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0;
    for r in &regions {
        for line in &lines[next..r.begin] {
            out.push_str(line);
            out.push('\n');
        }
        if r.kind == Kind::Solution {
            for line in stub(r)?.lines() {
                out.push_str(&r.indent);
                out.push_str(line);
                out.push('\n');
            }
        }
        next = r.end + 1;
    }
    for line in &lines[next..] {
        out.push_str(line);
        out.push('\n');
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// One exercise body of a student's file: the lines strictly between `// BEGIN EXERCISE <id>`
/// and `// END EXERCISE` (0-based, `begin..end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: String,
    pub begin: usize,
    pub end: usize,
}

/// The exercise blocks of a student's file, in order. A block left open, or an END without a
/// BEGIN, is left out: the grader then treats that exercise as not found in the file.
pub fn exercise_blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("//").map(str::trim_start) else { continue };
        if let Some(after) = rest.strip_prefix(BEGIN_EXERCISE) {
            let id = after.trim_start().split(|c: char| c.is_whitespace() || c == ':').next().unwrap_or("");
            open = Some((id.to_string(), i + 1));
        } else if rest.starts_with(END_EXERCISE) {
            if let Some((id, begin)) = open.take() {
                out.push(Block { id, begin, end: i });
            }
        }
    }
    out
}
