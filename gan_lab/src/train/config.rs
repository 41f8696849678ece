//! The GAN families' training settings.

use crate::losses::{Auxiliary, CriticSchedule, Objective};
use crate::optim::{AdamConfig, OptimizerConfig};
use serde::{Deserialize, Serialize};

/// Training settings shared by the GAN families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total number of training steps (`g_steps` G updates each, after `n_critic` D updates).
    pub steps: i64,
    /// Images per mini-batch.
    pub batch_size: i64,
    /// Seeds weights, batches and noise: the same seed gives the same run on CPU.
    pub seed: u64,
    /// The players' objective.
    pub objective: Objective,
    /// A term both players add (ACGAN's class loss), if any.
    #[serde(default)]
    pub auxiliary: Auxiliary,
    /// Critic (D) updates per generator update.
    #[serde(default)]
    pub n_critic: CriticSchedule,
    /// Generator updates per step, each on the step's noise after D's update(s): 1 in the
    /// DCGAN lesson; 2 for the UPenn report's and DLCV HW4's "train D once and G twice".
    #[serde(default = "one")]
    pub g_steps: i64,
    /// Generator optimizer.
    pub optimizer_g: OptimizerConfig,
    /// Discriminator optimizer.
    pub optimizer_d: OptimizerConfig,
    /// Keep a grid of the fixed noise's images every this many steps (0: never).
    pub snapshot_every: i64,
    /// Score the generator (IS, Mode score, FID on the frozen evaluator of its dataset) every
    /// this many steps (0: never). Needs that evaluator (`gan-lab evaluator train`).
    #[serde(default)]
    pub metrics_every: i64,
    /// Images generated for each scoring.
    #[serde(default = "default_metrics_samples")]
    pub metrics_samples: i64,
    /// Write a checkpoint every this many steps when the run has an output folder (0: at the end only).
    pub checkpoint_every: i64,
    /// Store convolution weights and batches channels-last ([`crate::perf`]): faster on CPUs,
    /// the same numbers up to float rounding.
    #[serde(default = "yes")]
    pub channels_last: bool,
    /// Run the players' forward passes in bfloat16 ([`crate::backend::perf::with_bf16`]; CPUs with
    /// `avx512_bf16` only), with weights, gradients and optimizers in float32. Not always faster:
    /// measured slower than float32 on a CPU with `avx512_bf16` but no AMX (`docs/performance.md`).
    #[serde(default)]
    pub bf16: bool,
    /// Keep an exponential moving average of G's weights with this decay β (0: off), for sampling
    /// from an averaged generator ([`Gan::with_average`]); training itself is unchanged.
    #[serde(default)]
    pub average_generator: f64,
}

fn one() -> i64 {
    1
}

fn yes() -> bool {
    true
}

impl Default for TrainConfig {
    /// The DCGAN lesson's settings: 1500 steps of batch 64, Adam(2e-4, β1 0.5) for both players.
    fn default() -> Self {
        TrainConfig {
            steps: 1500,
            batch_size: 64,
            seed: 0,
            objective: Objective::NonSaturating,
            auxiliary: Auxiliary::None,
            n_critic: CriticSchedule::One,
            g_steps: 1,
            optimizer_g: AdamConfig::dcgan().into(),
            optimizer_d: AdamConfig::dcgan().into(),
            snapshot_every: 250,
            metrics_every: 0,
            metrics_samples: default_metrics_samples(),
            checkpoint_every: 500,
            channels_last: true,
            bf16: false,
            average_generator: 0.0,
        }
    }
}

fn default_metrics_samples() -> i64 {
    4500
}
