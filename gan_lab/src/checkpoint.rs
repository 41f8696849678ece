//! Checkpoints: a folder holding the weights (`generator.safetensors`, `discriminator.safetensors`,
//! readable by PyTorch's `safetensors`), the optimizer state (`optimizer.safetensors`) and
//! `state.json` (family, architecture, training settings, step, history).
//!
//! The folder is written beside its final place and swapped in with renames, so an interrupted
//! save leaves the previous checkpoint intact.

use crate::train::{Gan, History, TrainConfig};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct State {
    format: u32,
    family: String,
    architecture: serde_json::Value,
    config: TrainConfig,
    step: i64,
    history: History,
}

/// Writes named tensors as safetensors at `path` (contiguous copies: the file format has no strides).
pub fn write_tensors(tensors: &[(String, tch::Tensor)], path: &Path) -> Result<()> {
    let contiguous: Vec<(&str, tch::Tensor)> =
        tensors.iter().map(|(name, t)| (name.as_str(), t.contiguous())).collect();
    tch::Tensor::write_safetensors(&contiguous, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The variables of `vs` by name, sorted.
pub fn variables(vs: &tch::nn::VarStore) -> Vec<(String, tch::Tensor)> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Writes `gan`'s checkpoint to the folder `dir`, replacing any previous one atomically.
pub fn save(gan: &Gan, dir: &Path) -> Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::files::ensure_writable_dir(parent)?;
    let tmp = crate::files::temp_path(dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = (|| -> Result<()> {
        write_tensors(&variables(&gan.vs_g), &tmp.join("generator.safetensors"))?;
        write_tensors(&variables(&gan.vs_d), &tmp.join("discriminator.safetensors"))?;
        let mut opt = gan.opt_g.state("generator.");
        opt.extend(gan.opt_d.state("discriminator."));
        if let Some(average) = &gan.average {
            opt.extend(average.state("average."));
        }
        write_tensors(&opt, &tmp.join("optimizer.safetensors"))?;
        let state = State {
            format: FORMAT,
            family: gan.family.clone(),
            architecture: gan.architecture.clone(),
            config: gan.config.clone(),
            step: gan.step,
            history: gan.history.clone(),
        };
        std::fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(&state)?)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("cannot write checkpoint {}", dir.display())));
    }
    let old = dir.with_file_name(format!(
        ".{}.old",
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).with_context(|| format!("cannot replace checkpoint {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot write checkpoint {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The number of steps done in the checkpoint at `dir`.
pub fn step_of(dir: &Path) -> Result<i64> {
    Ok(read_state(dir)?.step)
}

/// The family, architecture and training settings recorded in the checkpoint at `dir`.
pub fn setup_of(dir: &Path) -> Result<(String, serde_json::Value, TrainConfig)> {
    let state = read_state(dir)?;
    Ok((state.family, state.architecture, state.config))
}

fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path)
        .with_context(|| format!("checkpoint {}: cannot read {}", dir.display(), path.display()))?;
    let state: State = serde_json::from_slice(&bytes)
        .with_context(|| format!("checkpoint {}: state.json is not a gan_lab checkpoint state", dir.display()))?;
    ensure!(
        state.format == FORMAT,
        "checkpoint {}: format {} is not supported (expected {FORMAT})",
        dir.display(),
        state.format
    );
    Ok(state)
}

/// Loads the checkpoint at `dir` into `gan`, which must have the same family and architecture.
/// The training settings and progress (step, history) become the checkpoint's.
pub fn load(gan: &mut Gan, dir: &Path) -> Result<()> {
    let state = read_state(dir)?;
    if state.family != gan.family || state.architecture != gan.architecture {
        bail!(
            "checkpoint {} holds a {} with architecture {}, but this run builds a {} with {}",
            dir.display(),
            state.family,
            state.architecture,
            gan.family,
            gan.architecture
        );
    }
    let ctx = |what: &str| format!("checkpoint {}: cannot load {what}", dir.display());
    gan.vs_g.load(dir.join("generator.safetensors")).with_context(|| ctx("generator.safetensors"))?;
    gan.vs_d.load(dir.join("discriminator.safetensors")).with_context(|| ctx("discriminator.safetensors"))?;
    let opt: HashMap<String, tch::Tensor> = tch::Tensor::read_safetensors(dir.join("optimizer.safetensors"))
        .with_context(|| ctx("optimizer.safetensors"))?
        .into_iter()
        .collect();
    gan.opt_g.load_state("generator.", &opt).with_context(|| ctx("the optimizer state"))?;
    gan.opt_d.load_state("discriminator.", &opt).with_context(|| ctx("the optimizer state"))?;
    let steps = gan.config.steps;
    gan.config = state.config;
    gan.config.steps = steps;
    gan.opt_g.config = gan.config.optimizer_g;
    gan.opt_d.config = gan.config.optimizer_d;
    gan.average = (gan.config.average_generator > 0.0)
        .then(|| crate::optim::Average::new(&gan.vs_g, gan.config.average_generator));
    if let Some(average) = &mut gan.average {
        average.load_state("average.", &opt).with_context(|| ctx("the averaged generator"))?;
    }
    gan.step = state.step;
    gan.history = state.history;
    Ok(())
}
