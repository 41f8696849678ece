//! `gan-lab autograder --gradescope OUT.zip`: what Gradescope runs for each submission, in a
//! container of its own.
//!
//! The zip holds the master (hidden tests included; students never see it) with two scripts at
//! its root, as Gradescope expects: `setup.sh`, run once when Gradescope builds the image
//! (installs what `scripts/setup.sh` installs, builds `gan-lab` and warms the exercise tests'
//! build), and `run_autograder`, run per submission: `gan-lab autograde` on
//! `/autograder/submission` into `/autograder/results/results.json`. Both take their root from
//! `GAN_LAB_AUTOGRADER_ROOT` (default `/autograder`), so the same files run in a folder laid out
//! like Gradescope's on any machine.

use super::release::master_files;
use anyhow::{ensure, Context, Result};
use std::io::Write;
use std::path::Path;

/// Master files an autograder does not need.
const LEFT_OUT: &[&str] = &["notebooks/", "solutions/", "docs/", "tools/", ".ci/", "tests/browser/"];

pub const SETUP: &str = r#"#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image: what gan_lab's own set-up
# installs (libtorch from the PyPI torch wheel), Rust if the image has none, the grader itself,
# and a first build of the exercise tests and their dependencies.
set -euo pipefail
ROOT="${GAN_LAB_AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT/source"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential curl git python3 python3-venv python3-pip
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
source scripts/setup.sh
cargo build --release --quiet --bin gan-lab
# Grading the master itself finds no exercise blocks (every exercise graded as not written): a
# cheap first build of the tree every submission is then built in.
warm="$(mktemp -d)"
"$CARGO_TARGET_DIR/release/gan-lab" autograde "$ROOT/source" --out "$warm" >/dev/null
rm -rf "$warm"
"#;

pub const RUN: &str = r#"#!/usr/bin/env bash
# Gradescope runs this for each submission: the master's visible and hidden exercise tests on the
# exercise bodies in /autograder/submission, results in /autograder/results/results.json.
set -euo pipefail
ROOT="${GAN_LAB_AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT/source"
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/setup.sh 2>/dev/null
mkdir -p "$ROOT/results"
graded="$(mktemp -d)"
"$CARGO_TARGET_DIR/release/gan-lab" autograde "$ROOT/submission" --out "$graded"
cp "$graded/submission/results.json" "$ROOT/results/results.json.tmp"
mv "$ROOT/results/results.json.tmp" "$ROOT/results/results.json"
cat "$graded/submission/feedback.md"
rm -rf "$graded"
"#;

/// Writes the Gradescope autograder zip of the master `master` to `out` (atomically).
pub fn write_bundle(master: &Path, out: &Path) -> Result<usize> {
    ensure!(
        out.extension().is_some_and(|e| e == "zip"),
        "--gradescope {}: expected a path ending in .zip",
        out.display()
    );
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::ensure_writable_dir(parent)?;
    }
    let files: Vec<String> =
        master_files(master)?.into_iter().filter(|p| !LEFT_OUT.iter().any(|l| p.starts_with(l))).collect();
    crate::files::write_atomic_with(out, |tmp| {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(tmp)?);
        let plain = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let script = plain.unix_permissions(0o755);
        zip.start_file("setup.sh", script)?;
        zip.write_all(SETUP.as_bytes())?;
        zip.start_file("run_autograder", script)?;
        zip.write_all(RUN.as_bytes())?;
        for path in &files {
            let src = master.join(path);
            let executable = is_executable(&src);
            zip.start_file(path.as_str(), if executable { script } else { plain })?;
            zip.write_all(&std::fs::read(&src)?)?;
        }
        zip.finish()?.sync_all()
    })
    .with_context(|| format!("writing the Gradescope autograder {}", out.display()))?;
    Ok(files.len() + 2)
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    false
}
