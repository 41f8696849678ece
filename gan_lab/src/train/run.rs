//! What every run shares, GAN or VAE: the steps loop with its progress display and stop flag,
//! quick mode, and the checks of the settings every run has.

use crate::data::Dataset;
use crate::progress::Progress;
use anyhow::{bail, ensure, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{nn::VarStore, Tensor};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks running training loops to stop after their current step (Ctrl-C in the CLI).
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested since the last call (which clears the request).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.swap(false, Ordering::SeqCst)
}

/// `GAN_LAB_QUICK=1` caps every run at a few steps: notebooks and examples smoke-run in seconds.
pub fn quick_mode() -> bool {
    std::env::var("GAN_LAB_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Steps a quick-mode run is cut to.
pub const QUICK_STEPS: i64 = 20;

/// The last step of a run set to end at `steps` that has done `done`: `steps`, or at most
/// [`QUICK_STEPS`] more in quick mode.
pub fn quick_steps(steps: i64, done: i64) -> i64 {
    match quick_mode() {
        true => steps.min(done + QUICK_STEPS),
        false => steps,
    }
}

/// How a training run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped early by [`request_stop`]; the state is consistent and can be checkpointed.
    Interrupted,
}

/// Runs a training loop from step `done` until `total` steps are done: `step` takes one step and
/// returns the steps done and the line the progress display shows for it. Sets the allocator
/// up for training, shows progress, and stops early, in a consistent state, when
/// [`request_stop`] is called (checked between steps).
pub(crate) fn run_steps(
    mut done: i64,
    total: i64,
    mut step: impl FnMut(&Progress) -> Result<(i64, String)>,
) -> Result<Outcome> {
    crate::backend::perf::tune_allocator();
    let mut progress = Progress::new(total, done);
    let outcome = loop {
        if done >= total {
            break Ok(Outcome::Finished);
        }
        if stop_requested() {
            break Ok(Outcome::Interrupted);
        }
        match step(&progress) {
            Ok((now, line)) => {
                done = now;
                progress.update(done, total, || line);
            }
            Err(e) => break Err(e),
        }
    };
    progress.finish();
    outcome
}

/// The settings every run has, checked the same way for every model.
pub(crate) struct RunSettings<'a> {
    pub steps: i64,
    pub batch_size: i64,
    /// The smallest batch the model trains on, and why.
    pub min_batch: (i64, &'a str),
    /// Each optimizer's learning rate, by setting name.
    pub learning_rates: &'a [(&'a str, f64)],
    pub bf16: bool,
}

impl RunSettings<'_> {
    /// Checks the settings and the backend switch (`GAN_LAB_BACKEND`).
    pub(crate) fn check(&self) -> Result<()> {
        crate::backend::init()?;
        ensure!(self.steps >= 0, "steps = {}: expected 0 or more", self.steps);
        let (min, why) = self.min_batch;
        ensure!(self.batch_size >= min, "batch_size = {}: expected {min} or more{why}", self.batch_size);
        for &(name, lr) in self.learning_rates {
            ensure!(lr.is_finite() && lr > 0.0, "{name} = {lr}: expected a positive learning rate");
        }
        if self.bf16 {
            crate::backend::perf::check_bf16()?;
        }
        Ok(())
    }
}

/// Checks that `data` holds the images `model` is set for (`channels`-channel `size`×`size`),
/// enough of them for a batch (when it is trained on: `batch_size`), and that the output folder,
/// if any, can be written.
pub(crate) fn check_data(
    data: &Dataset,
    model: &str,
    (channels, size): (i64, i64),
    batch_size: Option<i64>,
    out_dir: Option<&Path>,
) -> Result<()> {
    ensure!(
        data.channels() == channels && data.image_size() == size,
        "dataset {} has {}-channel {}×{} images, but {model} is set for {channels}-channel {size}×{size}: \
         use .channels() / .image_size() or load the dataset at that size",
        data.name,
        data.channels(),
        data.image_size(),
        data.image_size(),
    );
    if let Some(batch_size) = batch_size {
        data.check_batch_size(batch_size)?;
    }
    if let Some(out) = out_dir {
        crate::files::ensure_writable_dir(out)?;
    }
    Ok(())
}

/// After a run that wrote its output to `saved`: an error saying where the state is when the
/// run was interrupted at `step` (and how to continue it, when it can be resumed).
pub(crate) fn after_run(outcome: Outcome, step: i64, saved: &Path, resumable: bool) -> Result<()> {
    if outcome == Outcome::Interrupted {
        match resumable {
            true => {
                bail!("interrupted at step {step}; checkpoint saved in {}; continue with --resume {0}", saved.display())
            }
            false => bail!("interrupted at step {step}; the model so far is saved in {}", saved.display()),
        }
    }
    Ok(())
}

/// The trainable parameters of `vs` by name with their shapes, under `title` and their total.
pub fn parameter_summary(title: &str, vs: &VarStore) -> String {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let total: i64 = vars.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut out = format!("{title}: {total} parameters\n");
    for (name, t) in vars {
        out += &format!("  {name:<16} {:?}\n", t.size());
    }
    out
}
